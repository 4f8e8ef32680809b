"""The reference engine: OpenCV's dnn module reading the Caffe files itself."""

from __future__ import annotations

import os
import re
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np

from depth_eval import timings
from depth_eval.caffe import geometry
from depth_eval.caffe.proto import blob_shape, read_caffemodel
from depth_eval.caffe.shapes import infer_shapes
from depth_eval.errors import ShapeError, SnapshotError, UnsupportedLayerError
from depth_eval.engines import opencv_fixes
from depth_eval.engines.base import DEPTH_OUTPUT, Engine, NetworkInfo, OutputRule, _read_bytes


# PoolingParameter.pool MAX (caffe.proto).
_MAX_POOL = 0


class OpenCVEngine(Engine):
    """A snapshot loaded into OpenCV's dnn module (``cv2.dnn.readNetFromCaffe``).

    Parameters are those of :class:`depth_eval.engines.base.Engine`.
    """

    engine = "opencv"
    # The layers given to OpenCV as a private type (opencv_fixes): (name, Caffe type, type).
    corrected_layers: tuple[tuple[str, str, str], ...] = ()

    def __init__(self, prototxt: Path, caffemodel: Path, output_blob: str | None = None,
                 rule: OutputRule = DEPTH_OUTPUT, log_encoded: bool = False,
                 extra_outputs: tuple[OutputRule, ...] = (),
                 caffemodel_sha256: str | None = None, **_options):
        super().__init__(prototxt, caffemodel, output_blob, rule, log_encoded, extra_outputs)
        # The hash (0.17 s for the thesis' 287 MB; none when the run has it) runs while OpenCV
        # reads the model: both release the GIL.
        with ThreadPoolExecutor(1, thread_name_prefix="hash") as hasher:
            if caffemodel_sha256:
                self.caffemodel_sha256 = caffemodel_sha256
            hashed = None if caffemodel_sha256 else hasher.submit(self.hash_weights)
            with timings.phase("model read"):
                self.read_weights()  # checks; OpenCV reads the weights from the file itself
            with timings.phase("session"):
                self._net = self._read_net()
            if hashed is not None:
                hashed.result()  # its SnapshotError if the file cannot be read
        # Each output as (OpenCV layer, index among its outputs): a blob can be any top.
        self._outputs = [opencv_output_for_blob(self._net, self.definition, info,
                                                str(self.prototxt))
                         for info in (self.info, *self.extra_info)]
        self._output_layers = [layer for layer, _ in self._outputs]
        self._output_layer = self._output_layers[0]
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
        # OpenCV's Winograd 3x3 convolutions (on by default since 4.7) round 10 to 40 times
        # further from Caffe's direct sums (2e-6 of the range against 1e-7; after a Sigmoid or
        # TanH, 1.7e-4 against 4e-6): the direct convolution keeps Caffe's numbers.
        self._net.enableWinograd(False)
        read = {blob for layer in self.definition.layer for blob in layer.bottom
                if blob not in layer.top}
        if read.intersection(self.output_blobs):
            # An output other layers read: OpenCV may have fused its layer into the one before
            # (an activation into a convolution) and then fails asking for it (an assertion
            # per image); unfused, every layer's own top is there, as in Caffe.
            self._net.enableFusion(False)

    def _read_net(self):
        text = _read_bytes(self.prototxt).decode("utf-8", errors="replace")
        try:
            corrected, swapped = opencv_fixes.corrected_definition(text, self._caffe_shapes())
        except opencv_fixes.Refused as why:
            raise UnsupportedLayerError(
                f"{self.prototxt}: {why}; OpenCV's dnn module cannot compute it as Caffe "
                "does: use --engine onnxruntime") from None
        self.corrected_layers = tuple(swapped)
        transposed = opencv_fixes.transposed_inner_products(text)
        try:
            # From the files: OpenCV's in-memory path is 5x slower on a 287 MB caffemodel.
            if transposed:
                net = _read_transposed(corrected or text, self.caffemodel, transposed)
            elif corrected is None:
                net = cv2.dnn.readNetFromCaffe(str(self.prototxt), str(self.caffemodel))
            else:
                net = _read_corrected(corrected, self.caffemodel)
        except cv2.error as error:
            raise SnapshotError(f"{self.caffemodel}: OpenCV cannot load it: "
                                f"{_cv_message(error)}") from None
        created = opencv_fixes.track_layers()
        try:
            # Creates every layer now (OpenCV defers it to the first forward pass), so a layer
            # type OpenCV lacks is reported at load, naming the layer, and not per image.
            net.getMemoryConsumption(tuple(self.input_shape))
        except cv2.error as error:
            self._refuse_unreturnable(created)  # a private layer's problem, if that was it
            unknown = _UNKNOWN_LAYER.search(str(error))
            if unknown:
                raise SnapshotError(f"{self.prototxt}: layer '{unknown[1]}' has type "
                                    f"'{unknown[2]}', which OpenCV's dnn module cannot "
                                    "run") from None
            raise SnapshotError(f"{self.prototxt}: OpenCV cannot run this network: "
                                f"{_cv_message(error)}") from None
        finally:
            opencv_fixes.stop_tracking()
        self._refuse_unreturnable(created)
        self._refuse_other_shapes(net)
        return net

    def _caffe_shapes(self) -> dict | None:
        """Caffe's blob shapes (None where the definition's own shapes do not work out: OpenCV
        or the weights check reports that)."""
        try:
            return infer_shapes(self.definition, strict=False)
        except ShapeError:
            return None

    def _refuse_other_shapes(self, net) -> None:
        """A layer whose top OpenCV shapes otherwise than Caffe (a parameter it ignores):
        refused now, naming the layer, rather than computed with other numbers."""
        caffe = self._caffe_shapes()
        if caffe is None:
            return
        for layer in self.definition.layer:
            bottom = caffe.get(layer.bottom[0]) if layer.bottom else None
            if layer.type == "Pooling" and layer.pooling_param.pool == _MAX_POOL \
                    and bottom is not None and len(bottom) == 4:
                window, out = geometry.pooling(layer, bottom[2], bottom[3])
                if geometry.window_outside(window, out, bottom[2], bottom[3]):
                    raise UnsupportedLayerError(
                        f"{self.prototxt}: layer '{layer.name}' (Pooling): its last MAX window "
                        f"lies past the {bottom[2]} x {bottom[3]} input (stride larger than "
                        "the kernel), where Caffe gives -FLT_MAX; OpenCV's dnn module cannot "
                        "compute it as Caffe does: use --engine onnxruntime")
        ids, _, outputs = net.getLayersShapes(tuple(self.input_shape))
        layers = {layer.name: layer for layer in self.definition.layer}
        # infer_shapes keeps a blob's last shape: a name two layers write anew is not compared.
        written = [top for layer in self.definition.layer for top in layer.top
                   if top not in layer.bottom]
        for layer_id, shapes in zip(ids, outputs):
            layer = layers.get(net.getLayer(int(layer_id)).name)
            if layer is None:
                continue  # a layer OpenCV added (a split, the input)
            for top, shape in zip(layer.top, shapes):
                want, got = caffe.get(top), tuple(int(d) for d in np.ravel(shape))
                if want is not None and tuple(want) != got and written.count(top) <= 1:
                    raise UnsupportedLayerError(
                        f"{self.prototxt}: layer '{layer.name}' ({layer.type}): OpenCV's dnn "
                        f"module gives its top '{top}' the shape {list(got)}, Caffe "
                        f"{list(want)}; it cannot compute it as Caffe does: use --engine "
                        "onnxruntime")

    def _refuse_unreturnable(self, created: list) -> None:
        """A private layer that cannot compute Caffe's blob: refused now, naming the layer."""
        found = opencv_fixes.first_problem(created)
        if found is None:
            return
        index, weights, why = found
        kind = opencv_fixes.caffe_type_of(created[index])
        # OpenCV creates the layers once each, in the definition's order: the index names it.
        name, caffe_type, _ = (self.corrected_layers[index]
                               if len(created) == len(self.corrected_layers) else ("?", kind, ""))
        if caffe_type != kind:
            name, caffe_type = "?", kind
        if weights:
            raise SnapshotError(f"{self.caffemodel}: does not match {self.prototxt.name}: "
                                f"layer '{name}' ({caffe_type}): {why}")
        raise UnsupportedLayerError(
            f"{self.prototxt}: layer '{name}' ({caffe_type}): {why}; OpenCV's dnn module cannot "
            "compute it as Caffe does: use --engine onnxruntime")

    def forward(self, batch: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run one N x 3 x H x W float32 blob; returns the output blob (a copy), N x C x h x w,
        or with extra outputs a tuple of them (one pass computes all)."""
        self._net.setInput(batch, self.info.input_name)
        try:
            retrieved = self._net.forwardAndRetrieve(self._output_layers)
        except cv2.error as error:
            raise SnapshotError(f"{self.caffemodel}: forward pass failed at "
                                f"{self._failing_layer(batch)}: {_cv_message(error)}") from None
        outputs = tuple(np.array(retrieved[i][index], copy=True)
                        for i, (_, index) in enumerate(self._outputs))
        return outputs[0] if len(outputs) == 1 else outputs

    def _failing_layer(self, batch: np.ndarray) -> str:
        """The first layer whose forward pass fails (OpenCV's error does not name it)."""
        types = {layer.name: layer.type for layer in self.definition.layer}
        for name in self._net.getLayerNames():
            self._net.setInput(batch, self.info.input_name)
            try:
                self._net.forward(name)
            except cv2.error:
                layer = self._net.getLayer(self._net.getLayerId(name))
                return f"layer '{name}' ({types.get(name, layer.type)})"
        return "an unknown layer"


def _read_corrected(text: str, caffemodel: Path):
    """OpenCV's net from corrected prototxt text (a temporary file: OpenCV reads paths)."""
    handle, path = tempfile.mkstemp(suffix=".prototxt", prefix="depth_eval-")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
        return cv2.dnn.readNetFromCaffe(path, str(caffemodel))
    finally:
        os.unlink(path)


def _read_transposed(text: str, caffemodel: Path, layers: list[str]):
    """OpenCV's net with the named InnerProduct layers' K x N weights stored N x K, the
    layout OpenCV reads (from memory: the weights are rewritten)."""
    model = read_caffemodel(caffemodel)
    for layer in model.layer:
        if layer.name in layers and layer.blobs:
            blob = layer.blobs[0]
            rows, columns = blob_shape(blob)[-2:]
            values = np.asarray(blob.double_data or blob.data, np.float32)
            flipped = values.reshape(rows, columns).T.ravel()
            blob.ClearField("data")
            blob.ClearField("double_data")
            for legacy in ("num", "channels", "height", "width"):
                blob.ClearField(legacy)
            blob.data.extend(flipped.tolist())
            blob.shape.ClearField("dim")
            blob.shape.dim.extend([columns, rows])
    return cv2.dnn.readNetFromCaffe(np.frombuffer(text.encode("utf-8"), np.uint8),
                                    np.frombuffer(model.SerializeToString(), np.uint8))


def opencv_output_for_blob(net, definition, info: NetworkInfo, source: str) -> tuple[str, int]:
    """The OpenCV layer writing ``info.output_blob`` and the blob's index among its outputs
    (the position of the blob among the last writer's tops)."""
    layer = opencv_layer_for_blob(net, info, source)
    writer = next((one for one in reversed(definition.layer)
                   if one.name == info.output_layer and info.output_blob in one.top), None)
    return layer, list(writer.top).index(info.output_blob) if writer is not None else 0


def opencv_layer_for_blob(net, info: NetworkInfo, source: str) -> str:
    """The OpenCV layer whose output is ``info.output_blob``.

    OpenCV 4.x names most layers by their prototxt name, but a Convolution layer by its top
    (``conv5-grad`` writing ``gradient`` becomes ``gradient``), so both names are tried.
    """
    names = set(net.getLayerNames())
    for candidate in (info.output_layer, info.output_blob):
        if candidate in names:
            return candidate
    raise SnapshotError(f"{source}: OpenCV has no layer writing blob '{info.output_blob}'")


# OpenCV's message for a layer type its Caffe importer has no implementation of.
_UNKNOWN_LAYER = re.compile(r'Can\'t create layer "([^"]*)" of type "([^"]*)"')
# OpenCV's exception text: "OpenCV(4.x) FILE:LINE: error: (-N:KIND) MESSAGE in function 'F'".
_CV_ERROR = re.compile(r"error: \(-?\d+:[^)]*\) (.*?)(?: in function '[^']*')?$")


def _cv_message(error: cv2.error) -> str:
    """The useful part of an OpenCV exception's last line (no version, source file or code)."""
    text = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
    match = _CV_ERROR.search(text)
    if match:
        return match[1]
    return text.split(") ", 1)[-1] if text.startswith("OpenCV(") else text
