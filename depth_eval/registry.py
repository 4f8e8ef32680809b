"""Plug-in registries (engines, tasks) name their classes as ``"module:Class"`` text, so a
plug-in's module (and its optional packages) is imported only when it is used."""

from __future__ import annotations

import importlib


def resolve(spec: str):
    """The object a ``"package.module:Name"`` spec names (imports the module)."""
    module_name, _, name = spec.partition(":")
    return getattr(importlib.import_module(module_name), name)
