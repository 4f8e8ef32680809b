"""Loading a Caffe snapshot into OpenCV's dnn module and running it.

The deploy definition is read (with our own Caffe schema) for what OpenCV does not expose: the
input blob's name and size, which layer last writes each blob, and the weight shapes, checked
before OpenCV sees the weights because OpenCV runs some mismatched weights silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .caffe import proto as caffe_proto, shapes as caffe_shapes
from .errors import CaffeFormatError, ShapeError

# Output blobs of the thesis networks, in order of preference: the refining network's final
# output, then the global-context / joint networks' coarse depth.
PREFERRED_OUTPUT_BLOBS = ("depth-refine", "depth")


class SnapshotError(ValueError):
    """A snapshot that cannot be evaluated; the message names the file and the cause."""


@dataclass(frozen=True)
class NetworkInfo:
    """What the evaluator needs to know about a deploy definition."""

    input_name: str
    input_shape: tuple[int, int, int, int]
    output_blob: str
    output_layer: str


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def blob_writers(definition) -> dict[str, str]:
    """Blob name -> name of the last layer that writes it (in-place layers overwrite their bottom)."""
    writers = {}
    for layer in definition.layer:
        for top in layer.top:
            writers[top] = layer.name
    for name in definition.input:
        writers.setdefault(name, name)
    return writers


def unconnected_outputs(definition) -> list[str]:
    """Blobs that no later layer reads (in-place layers do not count as readers)."""
    consumed = set()
    for layer in definition.layer:
        consumed.update(b for b in layer.bottom if b not in layer.top)
    outputs = []
    for layer in definition.layer:
        outputs.extend(t for t in layer.top if t not in consumed and t not in outputs)
    return outputs


def describe_network(definition, output_blob: str | None = None, source: str = "prototxt",
                     require_depth_output: bool = True) -> NetworkInfo:
    """Find the input blob and its size, and the depth output blob, of a deploy definition.

    Parameters
    ----------
    definition : NetParameter
        The parsed deploy prototxt.
    output_blob : str, optional
        A blob named by the user; by default ``depth-refine``, else ``depth``, else the single
        unconnected output with one channel.
    source : str
        The file name used in error messages.
    require_depth_output : bool
        Check that the input takes colour images and the output is a one-channel map (the
        evaluation's needs); False lets any blob of any network run (diagnostics, tests).
    """
    inputs = caffe_shapes.network_inputs(definition)
    if len(inputs) != 1:
        found = ", ".join(inputs) or "none"
        raise SnapshotError(f"{source}: needs exactly one input blob with a 4-D shape "
                            f"(an Input layer or net-level input/input_shape), found {found}")
    (input_name, input_shape), = inputs.items()
    if len(input_shape) != 4 or (require_depth_output and input_shape[1] != 3):
        raise SnapshotError(f"{source}: input '{input_name}' has shape {input_shape}; the "
                            "evaluation feeds 1 x 3 x H x W colour images")
    writers = blob_writers(definition)
    try:
        shapes = caffe_shapes.infer_shapes(definition, strict=False)
    except ShapeError as error:
        raise SnapshotError(f"{source}: {error}") from None
    if output_blob is not None:
        if output_blob not in writers:
            raise SnapshotError(f"{source}: no blob named '{output_blob}' "
                                f"(outputs: {', '.join(unconnected_outputs(definition))})")
        chosen = output_blob
    else:
        chosen = next((b for b in PREFERRED_OUTPUT_BLOBS if b in writers), None)
        if chosen is None:
            candidates = [b for b in unconnected_outputs(definition)
                          if b in shapes and len(shapes[b]) == 4 and shapes[b][1] == 1]
            if len(candidates) != 1:
                raise SnapshotError(
                    f"{source}: cannot tell which blob is the depth output (no 'depth-refine' "
                    f"or 'depth', one-channel outputs: {', '.join(candidates) or 'none'}); "
                    "name it with --output-blob")
            chosen = candidates[0]
    shape = shapes.get(chosen)
    if require_depth_output and shape is not None and (len(shape) != 4 or shape[1] != 1):
        raise SnapshotError(f"{source}: output blob '{chosen}' has shape {shape}; a depth map "
                            "needs N x 1 x h x w")
    return NetworkInfo(input_name, tuple(input_shape), chosen, writers[chosen])


class LoadedSnapshot:
    """A deploy definition and its weights, read, hashed and checked against each other.

    The part every engine shares: input and output blobs found (:func:`describe_network`),
    sha256 of both files, and each parametrised layer's weight shapes checked against the
    definition.  Engines subclass it and add ``forward``.

    Parameters
    ----------
    prototxt, caffemodel : Path
        The deploy definition and the trained weights.
    output_blob : str, optional
        Overrides the output blob detection of :func:`describe_network`.
    require_depth_output : bool
        As in :func:`describe_network`.

    Attributes
    ----------
    definition : NetParameter
        The parsed prototxt.
    info : NetworkInfo
        Input name and shape, output blob and the layer that writes it.
    prototxt_sha256, caffemodel_sha256 : str
        Hashes of the two files as read.
    """

    engine = ""
    # Forward passes that may run at once on this object (OpenCV's Net is not thread-safe).
    concurrent_forwards = 1

    def __init__(self, prototxt: Path, caffemodel: Path, output_blob: str | None = None,
                 require_depth_output: bool = True):
        self.prototxt, self.caffemodel = Path(prototxt), Path(caffemodel)
        self.definition = caffe_proto.read_prototxt(self.prototxt)
        self.info = describe_network(self.definition, output_blob, str(self.prototxt),
                                     require_depth_output)
        self.prototxt_sha256 = sha256_of(self.prototxt.read_bytes())

    def hash_weights(self) -> str:
        """sha256 of the caffemodel, read in chunks (no copy of the file in memory)."""
        digest = hashlib.sha256()
        try:
            with open(self.caffemodel, "rb") as stream:
                for chunk in iter(lambda: stream.read(1 << 22), b""):
                    digest.update(chunk)
        except OSError as error:
            raise SnapshotError(f"{self.caffemodel}: cannot read ({error.strerror})") from None
        self.caffemodel_sha256 = digest.hexdigest()
        return self.caffemodel_sha256

    def read_weights(self):
        """Parse and check the caffemodel (and hash it); returns the parsed NetParameter."""
        model_bytes = _read_bytes(self.caffemodel)
        self.caffemodel_sha256 = sha256_of(model_bytes)
        weights = caffe_proto.NetParameter()
        try:
            weights.ParseFromString(model_bytes)
        except Exception:  # protobuf's DecodeError, or a RuntimeError from some builds
            raise CaffeFormatError(f"{self.caffemodel}: caffemodel is corrupt or truncated "
                                   "(protobuf cannot parse it)") from None
        del model_bytes
        caffe_proto.upgrade_v1(weights)
        try:
            caffe_shapes.check_weights(self.definition, weights)
        except ShapeError as error:
            raise SnapshotError(f"{self.caffemodel}: does not match {self.prototxt.name}: "
                                f"{error}") from None
        return weights

    @property
    def input_hw(self) -> tuple[int, int]:
        return self.info.input_shape[2], self.info.input_shape[3]

    @property
    def input_name(self) -> str:
        return self.info.input_name

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.info.input_shape

    @property
    def output_blob(self) -> str:
        return self.info.output_blob


class OpenCVNetwork(LoadedSnapshot):
    """A snapshot loaded into OpenCV's dnn module (the reference engine).

    Parameters are those of :class:`LoadedSnapshot`.
    """

    engine = "opencv"

    def __init__(self, prototxt: Path, caffemodel: Path, output_blob: str | None = None,
                 require_depth_output: bool = True):
        super().__init__(prototxt, caffemodel, output_blob, require_depth_output)
        self.read_weights()  # checks them; OpenCV reads the weights from the file itself
        try:
            # From the files: OpenCV's in-memory path is 5x slower on a 287 MB caffemodel.
            self._net = cv2.dnn.readNetFromCaffe(str(self.prototxt), str(self.caffemodel))
        except cv2.error as error:
            raise SnapshotError(f"{self.caffemodel}: OpenCV cannot load it: "
                                f"{_cv_message(error)}") from None
        self._output_layer = opencv_layer_for_blob(self._net, self.info, str(self.prototxt))
        self._net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
        self._net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)

    def forward(self, blob: np.ndarray) -> np.ndarray:
        """Run one N x 3 x H x W float32 blob; returns the output blob (a copy), N x 1 x h x w."""
        self._net.setInput(blob, self.info.input_name)
        try:
            return np.array(self._net.forward(self._output_layer), copy=True)
        except cv2.error as error:
            raise SnapshotError(f"forward pass failed: {_cv_message(error)}") from None


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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise SnapshotError(f"{path}: cannot read ({error.strerror})") from None


def _cv_message(error: cv2.error) -> str:
    """The useful last line of an OpenCV exception."""
    text = str(error).strip().splitlines()[-1] if str(error).strip() else repr(error)
    return text.split(") ", 1)[-1] if text.startswith("OpenCV(") else text
