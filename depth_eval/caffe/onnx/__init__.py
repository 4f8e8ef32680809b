"""Translate a Caffe deploy network and its trained weights into an ONNX graph.

The graph reproduces Caffe 1.0's forward pass for the layer types the thesis networks use
(plus a few simple ones), with Caffe's own size and rounding rules where they differ from the
ONNX defaults (pooling: :mod:`.pool`; MVN and LRN: :mod:`.normalize`).  The batch dimension
may stay symbolic (``batch=None``) so one session can run several images per call; every other
dimension is fixed from the definition.

Importing this package imports ``onnx``; the OpenCV engine never does.

Layout: :mod:`.graph` (the graph builder, tracked shapes, the layer registry),
:mod:`.translator` (phase rules, inputs, weights, dispatch, the model), and one module per
layer family: :mod:`.conv`, :mod:`.pool`, :mod:`.elementwise`, :mod:`.normalize`,
:mod:`.reshape`.  A new layer type is one function registered with
``@register("Type")`` in its family's module.

Public API: :func:`caffe_to_onnx`, :class:`UnsupportedLayerError`, :data:`TRANSLATOR_VERSION`.
"""

from ...errors import UnsupportedLayerError
from .graph import BATCH_DIM, OPSET, TRANSLATOR_VERSION
from .translator import caffe_to_onnx

__all__ = ["caffe_to_onnx", "UnsupportedLayerError", "TRANSLATOR_VERSION", "OPSET", "BATCH_DIM"]
