"""The sub-commands of ``depth-eval``, by name; each module has ``NAME``, ``HELP``,
``add_arguments(parser)``, ``settings_from_args(args)`` and ``run(settings, console)``.

Adding a command is one module and one line in ``COMMANDS``; modules are imported only when
their command runs (or for ``--help``).
"""

from __future__ import annotations

import importlib

# name -> module; the first is the default when the first argument is not a command name.
COMMANDS = {
    "evaluate": "depth_eval.commands.evaluate",
    "predict": "depth_eval.commands.predict",
    "gradients": "depth_eval.commands.gradients",
    "prepare-nyu": "depth_eval.commands.prepare_nyu",
    "history": "depth_eval.commands.history",
}
DEFAULT_COMMAND = "evaluate"


def load(name: str):
    return importlib.import_module(COMMANDS[name])
