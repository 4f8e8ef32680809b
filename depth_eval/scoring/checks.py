"""The one check every metric and alignment makes of its inputs."""

from __future__ import annotations

import numpy as np


def check_shape_equality(**arrays) -> None:
    """Raise ValueError, naming every array and its shape, unless all have the same shape.

    Examples
    --------
    >>> check_shape_equality(prediction=np.zeros((2, 3)), ground_truth=np.zeros((3, 2)))
    Traceback (most recent call last):
    ...
    ValueError: shapes differ: prediction (2, 3), ground truth (3, 2)
    """
    shapes = {name.replace("_", " "): np.shape(array) for name, array in arrays.items()}
    if len(set(shapes.values())) > 1:
        raise ValueError("shapes differ: " + ", ".join(f"{name} {shape}"
                                                       for name, shape in shapes.items()))
