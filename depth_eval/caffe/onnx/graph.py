"""The ONNX graph under construction, the shapes it tracks, and the registry of layer types.

Every layer family module fills :data:`LAYERS` with :func:`register`: a layer type is
translated by one function ``(translator, layer, bottoms) -> tops``, where ``bottoms`` and the
returned ``tops`` are ONNX value names, one per Caffe bottom/top blob (``None``: the layer
declares graph inputs instead).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterable, Sequence

import numpy as np
from onnx import helper

from depth_eval.errors import UnsupportedLayerError
from depth_eval.caffe.onnx.version import BATCH_DIM, IR_VERSION, OPSET, TRANSLATOR_VERSION  # noqa: F401


# A tracked blob shape: ints, with ``None`` standing for the symbolic batch size N (at most
# one ``None`` per shape, i.e. every blob holds N times a fixed number of values).
Shape = tuple

#: Caffe layer type -> its translation (filled by the family modules with :func:`register`).
LAYERS: dict[str, Callable] = {}


def register(*types: str):
    """Decorator: the function translates these Caffe layer types."""
    def add(function: Callable) -> Callable:
        for kind in types:
            LAYERS[kind] = function
        return function
    return add


def unsupported(layer, what: str | None = None) -> UnsupportedLayerError:
    """The error for a layer type (or, with ``what``, a parameter) the translation lacks."""
    if what is None:
        return UnsupportedLayerError(
            f"layer '{layer.name}' of type '{layer.type}' is not supported by the onnxruntime "
            f"engine; use --engine opencv")
    return UnsupportedLayerError(
        f"layer '{layer.name}' of type '{layer.type}': {what} is not supported by the "
        f"onnxruntime engine; use --engine opencv")


def expect_bottoms(layer, bottoms: Sequence[str], n: int | None = 1, at_least: int = 1) -> None:
    """Raise ValueError unless the layer has ``n`` (None: any number >= ``at_least``) bottoms."""
    if (n is not None and len(bottoms) != n) or len(bottoms) < at_least:
        want = n if n is not None else f"at least {at_least}"
        raise ValueError(f"layer '{layer.name}' ({layer.type}): expected {want} bottom "
                         f"blob(s), found {len(bottoms)}")


def one_bottom(g: Graph, layer, bottoms: Sequence[str],
               spatial: bool = False) -> tuple[str, Shape]:
    """The layer's only bottom value and its tracked shape (N x C x H x W if ``spatial``)."""
    expect_bottoms(layer, bottoms)
    x = bottoms[0]
    return x, g.spatial(layer, x) if spatial else g.shape(x)


# ----------------------------------------------------------------------------------------------
# Shape arithmetic with a symbolic batch.

def count(shape: Shape) -> tuple[int, int]:
    """(power of N, fixed product) of a shape's element count."""
    return sum(d is None for d in shape), math.prod(d for d in shape if d is not None)


def fmt(shape: Shape) -> str:
    """A tracked shape for messages: ``(N, 3, 218, 298)``."""
    return "(" + ", ".join(BATCH_DIM if d is None else str(d) for d in shape) + ")"


def reshape_target(shape: Shape) -> list[int]:
    """ONNX Reshape target for a tracked shape: the symbolic dimension becomes -1."""
    return [-1 if d is None else int(d) for d in shape]


# ----------------------------------------------------------------------------------------------

@dataclass
class Graph:
    """Nodes, initializers and tracked value shapes of the graph being built."""

    batch: int | None
    nodes: list = field(default_factory=list)
    initializers: dict = field(default_factory=dict)  # name -> numpy array
    names: set = field(default_factory=set)           # value names in use
    node_names: set = field(default_factory=set)
    shapes: dict = field(default_factory=dict)        # ONNX value name -> tracked shape

    def unique(self, base: str, taken: set | None = None) -> str:
        """``base``, or ``base__1``, ``base__2``... if taken; the name is then taken."""
        taken = self.names if taken is None else taken
        name, i = base, 1
        while name in taken:
            name = f"{base}__{i}"
            i += 1
        taken.add(name)
        return name

    def const(self, base: str, array) -> str:
        name = self.unique(base)
        self.initializers[name] = np.asarray(array)
        return name

    def scalar(self, base: str, value: float) -> str:
        return self.const(base, np.array(value, dtype=np.float32))

    def ints(self, base: str, values: Iterable[int]) -> str:
        return self.const(base, np.array(list(values), dtype=np.int64))

    def node(self, op: str, inputs: Sequence[str], base: str, shape: Shape, name: str,
             **attrs) -> str:
        """Append one node; returns its (unique) output value name, tracked with ``shape``."""
        out = self.unique(base)
        node_name = self.unique(name, self.node_names)
        self.nodes.append(helper.make_node(op, list(inputs), [out], name=node_name,
                                           **attrs))
        self.shapes[out] = tuple(shape)
        return out

    def nodes_outputs(self, op: str, inputs: Sequence[str], bases: Sequence[str],
                      shapes: Sequence[Shape], name: str, **attrs) -> list[str]:
        """Append one node with several outputs (one per base name, tracked with ``shapes``)."""
        outs = [self.unique(base) for base in bases]
        self.nodes.append(helper.make_node(op, list(inputs), outs,
                                           name=self.unique(name, self.node_names), **attrs))
        for out, shape in zip(outs, shapes):
            self.shapes[out] = tuple(shape)
        return outs

    def shape(self, value: str) -> Shape:
        return self.shapes[value]

    def spatial(self, layer, value: str) -> Shape:
        """The shape of a value the layer needs as N x C x H x W (fixed C, H, W)."""
        shape = self.shape(value)
        if len(shape) != 4 or any(d is None for d in shape[1:]):
            raise unsupported(layer, f"a bottom of shape {fmt(shape)} (not N x C x H x W)")
        return shape
