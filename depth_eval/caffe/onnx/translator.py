"""The translation's driver: graph inputs, weights, dispatch and the model (of the layers
the TEST phase keeps: :func:`depth_eval.caffe.proto.included_layers`).

Each layer is handed to the function :data:`~.graph.LAYERS` registers for its type (the
family modules :mod:`.conv`, :mod:`.pool`, :mod:`.elementwise`, :mod:`.normalize`,
:mod:`.reduction`, :mod:`.reshape`); this module tracks which ONNX value holds each Caffe
blob and builds the final model from the requested outputs.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper

from depth_eval.caffe.proto import blob_shape, included_layers
from depth_eval.caffe.weights import CaffeWeights
from depth_eval.caffe.onnx import conv, elementwise, normalize, pool, reduction, reshape  # noqa: F401
from depth_eval.caffe.onnx.graph import (BATCH_DIM, IR_VERSION, LAYERS, OPSET, TRANSLATOR_VERSION, Graph, Shape, fmt, unsupported)

# ----------------------------------------------------------------------------------------------

class Translator:
    """One translation: the graph, the Caffe blob -> ONNX value map, the graph inputs."""

    def __init__(self, net, weights, batch: int | None, external=None):
        self.net = net
        self.g = Graph(batch=batch)
        self.external = external
        # Mapped weights keep their values apart from the messages (views of the file).
        self.values = weights.values if isinstance(weights, CaffeWeights) else None
        layers = [] if weights is None else (
            weights.net.layer if isinstance(weights, CaffeWeights) else weights.layer)
        self.weights = {layer.name: layer for layer in layers}
        self.blobs: dict[str, str] = {}       # Caffe blob name -> current ONNX value
        self.inputs: list = []                # graph inputs (ValueInfoProto)
        self.input_names: list[str] = []
        self.producer: dict[str, str] = {}    # Caffe blob name -> last layer writing it

    def add_input(self, name: str, dims: Sequence[int], where: str):
        """Declare a graph input (its batch dimension becomes the translation's batch)."""
        dims = [int(d) for d in dims]
        if not dims or any(d <= 0 for d in dims):
            raise ValueError(f"{where}: input '{name}' has an invalid shape {dims}")
        if name in self.blobs:
            raise ValueError(f"{where}: input blob '{name}' is declared twice")
        shape = (self.g.batch,) + tuple(dims[1:])
        self.g.shapes[name] = shape
        self.blobs[name] = name
        self.producer[name] = where
        self.input_names.append(name)
        self.inputs.append(helper.make_tensor_value_info(
            name, TensorProto.FLOAT, [BATCH_DIM if d is None else d for d in shape]))

    def blob_arrays(self, layer, expected: list[Shape]) -> list[np.ndarray]:
        """The layer's stored weight blobs as float32 arrays, checked against ``expected``."""
        source = self.weights.get(layer.name)
        shapes = " and ".join(fmt(s) for s in expected)
        if source is None or not source.blobs:
            raise ValueError(f"layer '{layer.name}' ({layer.type}): no weights in the "
                             f"caffemodel (expected {len(expected)} blob(s) of shape {shapes})")
        if len(source.blobs) != len(expected):
            found = " and ".join(fmt(blob_shape(b)) for b in source.blobs)
            raise ValueError(f"layer '{layer.name}' ({layer.type}): expected {len(expected)} "
                             f"weight blob(s) of shape {shapes}, found {len(source.blobs)}: "
                             f"{found}")
        arrays = []
        values = self.values(layer.name) if self.values is not None else None
        for i, (blob, want) in enumerate(zip(source.blobs, expected)):
            have = blob_shape(blob)
            if blob.HasField("shape") or have == ():  # () : no dimensions stored at all
                ok = tuple(have) == tuple(want)
            else:  # legacy num/channels/height/width: Caffe pads the expected shape to 4-D
                ok = len(want) <= 4 and tuple(have) == (1,) * (4 - len(want)) + tuple(want)
            if not ok:
                raise ValueError(f"layer '{layer.name}' ({layer.type}): weight blob {i} has "
                                 f"shape {fmt(have)}, expected {fmt(want)}")
            if values is not None:
                data = values[i] if values[i] is not None else np.zeros(0, np.float32)
            else:
                data = np.asarray(blob.double_data if len(blob.double_data) else blob.data,
                                  dtype=np.float32)
            if data.size != math.prod(want):
                raise ValueError(f"layer '{layer.name}' ({layer.type}): weight blob {i} holds "
                                 f"{data.size} values, its shape {fmt(want)} needs "
                                 f"{math.prod(want)}")
            arrays.append(data.reshape(want))
        return arrays

    def _declare_net_inputs(self) -> None:
        net = self.net
        if not net.input:
            return
        if net.input_shape:
            if len(net.input_shape) != len(net.input):
                raise ValueError("network: 'input' and 'input_shape' counts differ")
            for name, shape in zip(net.input, net.input_shape):
                self.add_input(name, shape.dim, "network")
        elif net.input_dim:
            if len(net.input_dim) != 4 * len(net.input):
                raise ValueError("network: expected 4 'input_dim' values per input")
            for i, name in enumerate(net.input):
                self.add_input(name, net.input_dim[4 * i:4 * i + 4], "network")
        else:
            raise ValueError("network: 'input' without 'input_shape' or 'input_dim'")

    def run(self, outputs: Sequence[str]) -> onnx.ModelProto:
        """Translate every included layer, then build the model for ``outputs``."""
        layers = included_layers(self.net)
        # Graph input and output names are the Caffe blob names: reserve them so that no
        # internal (SSA) value takes one of them.
        consumed = {b for layer in layers for b in layer.bottom}
        if not outputs:
            outputs = []
            for layer in layers:
                outputs += [t for t in layer.top if t not in consumed and t not in outputs
                            and layer.type != "Input"]
        outputs = list(outputs)
        self.g.names.update(outputs)
        self.g.names.update(self.net.input)
        self.g.names.update(t for layer in layers if layer.type == "Input" for t in layer.top)
        self._declare_net_inputs()
        for layer in layers:
            missing = [b for b in layer.bottom if b not in self.blobs]
            if missing:
                raise ValueError(f"layer '{layer.name}' ({layer.type}): unknown bottom blob(s) "
                                 f"{missing}")
            translate = LAYERS.get(layer.type)
            if translate is None:
                raise unsupported(layer)
            tops = translate(self, layer, [self.blobs[b] for b in layer.bottom])
            if tops is None:
                continue
            if len(tops) != len(layer.top):
                raise ValueError(f"layer '{layer.name}' ({layer.type}): expected "
                                 f"{len(tops)} top blob(s), found {len(layer.top)}")
            for top, value in zip(layer.top, tops):
                self.blobs[top] = value
                self.producer[top] = layer.name
        if not self.input_names:
            raise ValueError("network has no input (no 'input' and no Input layer)")
        return self.finish(outputs)

    def finish(self, outputs: Sequence[str]) -> onnx.ModelProto:
        """The model computing ``outputs``, with only the nodes and weights they need."""
        g = self.g
        out_infos, out_nodes = [], []
        for blob in outputs:
            if blob not in self.blobs:
                raise ValueError(f"output blob '{blob}' is not produced by the network "
                                 f"(blobs: {', '.join(self.blobs)})")
            if blob in self.input_names:
                raise ValueError(f"output blob '{blob}' is a network input")
            if outputs.count(blob) > 1:
                raise ValueError(f"output blob '{blob}' requested twice")
            value = self.blobs[blob]
            shape = g.shape(value)
            out_nodes.append(helper.make_node("Identity", [value], [blob],
                                              name=f"output:{blob}"))
            out_infos.append(helper.make_tensor_value_info(
                blob, TensorProto.FLOAT, [BATCH_DIM if d is None else d for d in shape]))
        nodes = g.nodes + out_nodes
        # Keep only what the requested outputs depend on (in topological order).
        needed = set(outputs)
        kept = []
        for node in reversed(nodes):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(i for i in node.input if i)
        kept.reverse()
        inputs = [info for info in self.inputs if info.name in needed] or self.inputs[:1]
        graph = helper.make_graph(kept, self.net.name or "caffe_net", inputs, out_infos)
        for name, array in g.initializers.items():
            if name in needed:  # filled in place: make_graph would copy every tensor again
                tensor = graph.initializer.add()
                tensor.name = name
                tensor.data_type = helper.np_dtype_to_tensor_dtype(array.dtype)
                tensor.dims.extend(array.shape)
                if self.external is None or not self.external.store(tensor, array):
                    tensor.raw_data = np.ascontiguousarray(
                        array, array.dtype.newbyteorder("<")).tobytes()
        model = helper.make_model(graph, producer_name="depth_eval",
                                  producer_version=TRANSLATOR_VERSION,
                                  opset_imports=[helper.make_opsetid("", OPSET)])
        model.ir_version = IR_VERSION
        model.doc_string = f"Translated from Caffe network '{self.net.name}' by depth_eval"
        return model


def caffe_to_onnx(net, weights, outputs: list[str], batch: int | None = None,
                  external=None) -> onnx.ModelProto:
    """Translate a Caffe deploy network and its trained weights into an ONNX model.

    Parameters
    ----------
    net : NetParameter
        The deploy definition (``read_prototxt``).  Layers excluded from the TEST phase by
        ``include``/``exclude`` rules are dropped, as Caffe does.
    weights : NetParameter or CaffeWeights
        The trained weights (``read_caffemodel``, or mapped: :class:`~depth_eval.caffe.weights.
        CaffeWeights`), bound to ``net``'s layers by layer name.
    outputs : list of str
        Caffe blob names to expose as graph outputs (same names in the ONNX model); for a blob
        rewritten by in-place layers, the value after the last of them.  Empty: the blobs no
        layer consumes (Caffe's network outputs).
    batch : int or None
        Fixed batch size, or ``None`` for a symbolic batch dimension (named ``"N"``).
    external : depth_eval.caffe.onnx.external.ExternalData, optional
        Where to write the initializers (ONNX external data) instead of embedding them.

    Returns
    -------
    onnx.ModelProto
        Opset :data:`OPSET` model with float32 inputs named like the Caffe input blobs.  Nodes
        the requested outputs do not depend on are left out.

    Raises
    ------
    UnsupportedLayerError
        For a layer type or parameter the translation does not implement.
    ShapeError
        For window parameters Caffe refuses (:mod:`depth_eval.caffe.geometry`).
    ValueError
        For missing or mis-shaped weights (the message names the layer and both shapes),
        unknown blobs or an inconsistent definition.
    """
    if batch is not None and (int(batch) != batch or batch < 1):
        raise ValueError(f"batch must be a positive integer or None, got {batch!r}")
    return Translator(net, weights, None if batch is None else int(batch), external).run(outputs)
