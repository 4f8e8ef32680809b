"""Evaluation tasks, by name: what a run reads, scores and draws (see :mod:`.base`).

Adding a task is one module with a :class:`~depth_eval.tasks.base.Task` subclass and one line
in ``TASKS``.
"""

from __future__ import annotations

from depth_eval.registry import resolve


# task name -> "module:class"
TASKS = {
    "depth": "depth_eval.tasks.depth:DepthTask",
    "predict": "depth_eval.tasks.predict:PredictTask",
    "gradients": "depth_eval.tasks.gradients:GradientsTask",
    "joint": "depth_eval.tasks.joint:JointTask",
}


def get(name: str):
    """The Task subclass registered as ``name``."""
    return resolve(TASKS[name])
