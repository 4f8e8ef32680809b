"""Inference engines, by name: each loads a Caffe snapshot and runs its forward pass.

Adding an engine is one module with an :class:`~depth_eval.engines.base.Engine` subclass and
one line in ``ENGINES``.  Modules are imported only when their engine is used, so an engine's
optional packages (onnxruntime) cost nothing to the others.
"""

from __future__ import annotations

from pathlib import Path

from ..registry import resolve


# --engine name -> "module:class"; the first is the default (the reference).
ENGINES = {
    "opencv": "depth_eval.engines.opencv:OpenCVEngine",
    "onnxruntime": "depth_eval.engines.onnx_runtime:OnnxRuntimeEngine",
}


def engine_class(name: str):
    """The Engine subclass registered as ``name``."""
    return resolve(ENGINES[name])


def devices(name: str) -> tuple[str, ...]:
    """The devices engine ``name`` can run on."""
    return engine_class(name).devices


def load_engine(settings, prototxt: Path, caffemodel: Path, rule, extra_rules=(), cache=None,
                caffemodel_sha256: str | None = None):
    """Load one snapshot into the engine the settings name.

    Parameters
    ----------
    settings : depth_eval.settings.EngineSettings
    prototxt, caffemodel : Path
    rule : depth_eval.engines.base.OutputRule
        What the task reads (``settings.output_blob`` overrides its blob).
    extra_rules : tuple of OutputRule
        Further outputs of the same forward pass (joint evaluations); ``forward`` then
        returns a tuple.
    cache : depth_eval.cache.BlobCache, optional
        The user cache, for an engine that ``uses_cache``.
    caffemodel_sha256 : str, optional
        The caffemodel's sha256 if the run computed it already (not read again for the cache).

    Raises
    ------
    SnapshotError
        The files cannot be read, parsed, matched or run (the message names the file).
    EngineUnavailableError
        The engine's packages (or the device) are missing.
    """
    from ..errors import SnapshotError, UnsupportedLayerError

    try:
        return engine_class(settings.name)(
            prototxt, caffemodel, settings.output_blob, rule=rule,
            log_encoded=settings.log_encoded, device=settings.device,
            cache=cache, caffemodel_sha256=caffemodel_sha256, extra_outputs=tuple(extra_rules))
    except UnsupportedLayerError as error:  # raised without the file's name
        raise SnapshotError(f"{caffemodel}: {error}") from None
    except SnapshotError:
        raise
    except ValueError as error:  # a layer or weights an engine's translation cannot take
        raise SnapshotError(f"{caffemodel}: {error}") from None
