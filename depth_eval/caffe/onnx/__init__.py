"""Translate a Caffe deploy network and its trained weights into an ONNX graph.

The graph reproduces Caffe 1.0's forward pass for the layer types of Caffe's catalogue
that have a TEST-phase CPU forward pass, with Caffe's own size and rounding rules where
they differ from the ONNX defaults (pooling: :mod:`.pool`; MVN and LRN: :mod:`.normalize`).
The batch dimension may stay symbolic (``batch=None``) so one session can run several images
per call; every other dimension is fixed from the definition.

Importing this package does not import ``onnx``; :func:`caffe_to_onnx` (and the modules
below) do, on first use.  The OpenCV engine never does, nor does the onnxruntime engine when
its cached translation is reused.

Layout: :mod:`.graph` (the graph builder, tracked shapes, the layer registry),
:mod:`.translator` (inputs, weights, dispatch, the model), and one module per
layer family: :mod:`.conv`, :mod:`.pool`, :mod:`.elementwise`, :mod:`.normalize`,
:mod:`.reduction`, :mod:`.reshape`.  Caffe's shape rules for each type live in
:mod:`depth_eval.caffe.shapes`, which the translation calls rather than repeats.  A new
layer type is one function registered with ``@register("Type")`` in its family's module.

Public API: :func:`caffe_to_onnx`, :class:`UnsupportedLayerError`, :data:`TRANSLATOR_VERSION`.
"""

from depth_eval.errors import UnsupportedLayerError
from depth_eval.caffe.onnx.version import BATCH_DIM, OPSET, TRANSLATOR_VERSION

__all__ = ["caffe_to_onnx", "UnsupportedLayerError", "TRANSLATOR_VERSION", "OPSET", "BATCH_DIM"]


def __getattr__(name: str):
    if name == "caffe_to_onnx":  # imports onnx: only when a translation is made
        from depth_eval.caffe.onnx.translator import caffe_to_onnx

        return caffe_to_onnx
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
