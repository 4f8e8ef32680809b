"""What every engine shares: the deploy definition read and checked, the output blob found,
the weights hashed and checked, and the decoding of the output (``--log``).

An engine (:mod:`depth_eval.engines`) subclasses :class:`Engine` and adds ``forward``.  The
deploy definition is read with our own Caffe schema for what the engines do not expose: the
input blob's name and size, which layer last writes each blob, and the weight shapes, checked
before an engine sees the weights because OpenCV runs some mismatched weights silently.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from depth_eval.inputs import limits
from depth_eval import timings
from depth_eval.inputs.hashing import file_sha256
from depth_eval.caffe import proto as caffe_proto, shapes as caffe_shapes
from depth_eval.caffe.weights import CaffeWeights
from depth_eval.errors import CaffeFormatError, ImageError, ShapeError, SnapshotError
from depth_eval.inputs.conventions import CONVENTION_FACT, Convention, thesis_convention


@dataclass(frozen=True)
class OutputRule:
    """Which blob a task reads and what it must look like.

    ``preferred``: blob names tried in order when the user names none; ``channels``: the
    channels the output must have (None: any); ``color_input``: the input must take 3-channel
    images (every evaluation feeds colour images; diagnostics may run any network).
    """

    preferred: tuple[str, ...]
    channels: int | None
    color_input: bool = True
    what: str = "output"


# The thesis' depth networks: the refining network's final output, else the global-context /
# joint networks' coarse depth (test_depth.py hard-coded one of the two per family).
DEPTH_OUTPUT = OutputRule(("depth-refine", "depth"), channels=1, what="depth map")
# The thesis' gradient and joint networks: vertical and horizontal depth gradients (test_grad.py).
GRADIENT_OUTPUT = OutputRule(("gradient",), channels=2, what="gradient map")
# Any blob of any network (diagnostics and tests of the engines).
ANY_OUTPUT = OutputRule((), channels=None, color_input=False)


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


def describe_outputs(definition, output_blob: str | None, source: str, rule: OutputRule,
                     extra_rules: tuple[OutputRule, ...] = ()
                     ) -> tuple[NetworkInfo, tuple[NetworkInfo, ...]]:
    """The network's main output (``output_blob`` or by ``rule``) and, for a joint evaluation,
    its further outputs by ``extra_rules``; each blob may be only one of them."""
    info = describe_network(definition, output_blob, source, rule)
    extra_info = tuple(describe_network(definition, None, source, extra) for extra in extra_rules)
    for extra in extra_info:
        if extra.output_blob == info.output_blob:
            raise SnapshotError(f"{source}: blob '{extra.output_blob}' cannot be both outputs "
                                "of a joint evaluation")
    return info, extra_info


def network_facts(engine: str, info: NetworkInfo, extra_info: tuple[NetworkInfo, ...],
                  prototxt_sha256: str, caffemodel_sha256: str) -> dict:
    """The facts results.json records about a snapshot's network, whether its engine was
    loaded by this run or every one of its units was reused from the results store."""
    facts = {"engine": engine, "output_blob": info.output_blob, "input_name": info.input_name,
             "input_size": list(info.input_shape[2:]), "prototxt_sha256": prototxt_sha256,
             "caffemodel_sha256": caffemodel_sha256}
    if extra_info:  # a joint evaluation's further outputs
        facts["extra_output_blobs"] = [extra.output_blob for extra in extra_info]
    return facts


def describe_network(definition, output_blob: str | None = None, source: str = "prototxt",
                     rule: OutputRule = DEPTH_OUTPUT) -> NetworkInfo:
    """Find the input blob and its size, and the depth output blob, of a deploy definition.

    Parameters
    ----------
    definition : NetParameter
        The parsed deploy prototxt.
    output_blob : str, optional
        A blob named by the user; by default the first of ``rule.preferred`` the network has,
        else its single unconnected output with ``rule.channels`` channels.
    source : str
        The file name used in error messages.
    rule : OutputRule
        What the task reads: preferred blobs, channels, colour input.
    """
    inputs = caffe_shapes.network_inputs(definition)
    if len(inputs) != 1:
        found = ", ".join(inputs) or "none"
        raise SnapshotError(f"{source}: needs exactly one input blob with a 4-D shape "
                            f"(an Input layer or net-level input/input_shape), found {found}")
    (input_name, input_shape), = inputs.items()
    if len(input_shape) != 4 or (rule.color_input and input_shape[1] != 3):
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
        chosen = next((b for b in rule.preferred if b in writers), None)
        if chosen is None:
            candidates = [b for b in unconnected_outputs(definition)
                          if b in shapes and len(shapes[b]) == 4
                          and rule.channels in (None, shapes[b][1])]
            if len(candidates) != 1:
                named = " or ".join(f"'{b}'" for b in rule.preferred) or "preferred blob"
                raise SnapshotError(
                    f"{source}: cannot tell which blob is the {rule.what} (no {named}, "
                    f"candidate outputs: {', '.join(candidates) or 'none'}); "
                    "name it with --output-blob")
            chosen = candidates[0]
    shape = shapes.get(chosen)
    if rule.channels is not None and shape is not None and (
            len(shape) != 4 or shape[1] != rule.channels):
        raise SnapshotError(f"{source}: output blob '{chosen}' has shape {shape}; a "
                            f"{rule.what} needs N x {rule.channels} x h x w")
    return NetworkInfo(input_name, tuple(input_shape), chosen, writers[chosen])


class Engine:
    """A deploy definition and its weights, read, hashed and checked against each other.

    The part every engine shares: input and output blobs found (:func:`describe_network`),
    sha256 of both files, and each parametrised layer's weight shapes checked against the
    definition; the output decoded in the task's units (:meth:`decode`).  Engines subclass it,
    load the network in ``__init__`` and add ``forward``.

    Parameters
    ----------
    prototxt, caffemodel : Path
        The deploy definition and the trained weights.
    output_blob : str, optional
        Overrides the output blob detection of :func:`describe_network`.
    rule : OutputRule
        What the task reads (:func:`describe_network`); the thesis' depth output by default.
    log_encoded : bool
        The output is log-encoded depth (``--log``): :meth:`decode` undoes it.  The loader
        replaces :attr:`convention` by the snapshot's own (:mod:`depth_eval.caffe.conventions`).
    extra_outputs : tuple of OutputRule
        Further outputs computed by the same forward pass (a joint network's gradients beside
        its depth), each found by its rule alone (``output_blob`` names the first output
        only).  With any, ``forward`` returns a tuple, the first output first.

    Attributes
    ----------
    definition : NetParameter
        The parsed prototxt.
    info : NetworkInfo
        Input name and shape, output blob and the layer that writes it.
    extra_info : tuple of NetworkInfo
        The same for each of ``extra_outputs``.
    prototxt_sha256, caffemodel_sha256 : str
        Hashes of the two files as read.
    convention : depth_eval.inputs.conventions.Convention
        The network's input convention (the blobs it is fed) and its output's meaning
        (:meth:`decode`); the thesis' by default, its log encoding with ``log_encoded``.
    """

    engine = ""
    # Devices the engine can run on (--device).
    devices: tuple[str, ...] = ("cpu",)
    # Forward passes that may run at once on this object (OpenCV's Net is not thread-safe).
    concurrent_forwards = 1
    # Keeps derived files (translations) in the user cache: the run then opens it (--cache-dir).
    uses_cache = False

    def __init__(self, prototxt: Path, caffemodel: Path, output_blob: str | None = None,
                 rule: OutputRule = DEPTH_OUTPUT, log_encoded: bool = False,
                 extra_outputs: tuple[OutputRule, ...] = ()):
        self.prototxt, self.caffemodel = Path(prototxt), Path(caffemodel)
        self.convention: Convention = thesis_convention(log_encoded)
        with timings.phase("model read"):
            self.definition = caffe_proto.read_prototxt(self.prototxt)
            self.info, self.extra_info = describe_outputs(
                self.definition, output_blob, str(self.prototxt), rule, extra_outputs)
            self.prototxt_sha256 = sha256_of(_read_bytes(self.prototxt))
        self.caffemodel_sha256 = ""

    def facts(self) -> dict:
        """What results.json records about this loaded network (:func:`network_facts`)."""
        return {**network_facts(self.engine, self.info, self.extra_info, self.prototxt_sha256,
                                self.caffemodel_sha256),
                CONVENTION_FACT: self.convention.record()}

    def forward(self, batch: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Run N x 3 x H x W float32 inputs; returns the output blob, N x C x h x w, or with
        ``extra_outputs`` a tuple of such blobs in :attr:`output_blobs` order."""
        raise NotImplementedError

    def decode(self, output: np.ndarray) -> np.ndarray:
        """One image's output blob (1 x C x h x w) as maps in the task's units.

        A one-channel output becomes an h x w map (depth / 10), more channels C x h x w,
        decoded by :attr:`convention`'s output meaning (the thesis' depth / 10 unchanged; its
        log encoding ``exp((o - 1) / 0.179581)``; metric or inverse depth with a scale).
        """
        _check_finite(output, self.info.output_blob)
        maps = output.reshape(output.shape[-3:]) if output.ndim >= 3 else output
        try:
            maps = self.convention.output.decode(maps)
        except ValueError as error:
            raise SnapshotError(f"{self.caffemodel}: output '{self.output_blob}': {error}") from None
        return maps[0] if maps.ndim == 3 and maps.shape[0] == 1 else maps

    def decode_outputs(self, outputs: tuple[np.ndarray, ...], index: int) -> tuple[np.ndarray, ...]:
        """Image ``index`` of a multi-output forward pass, as maps: the first output as
        :meth:`decode` gives it, the extra ones C x h x w as they are (``--log`` is the first
        output's encoding, never theirs)."""
        first, *extras = (output[index:index + 1] for output in outputs)
        for extra, info in zip(extras, self.extra_info):
            _check_finite(extra, info.output_blob)
        return (self.decode(first), *(extra.reshape(extra.shape[-3:]) for extra in extras))

    def hash_weights(self) -> str:
        """sha256 of the caffemodel (no copy of the file in memory)."""
        try:
            self.caffemodel_sha256 = file_sha256(self.caffemodel)
        except OSError as error:
            raise SnapshotError(f"{self.caffemodel}: cannot read ({error.strerror})") from None
        return self.caffemodel_sha256

    def read_weights(self):
        """Map and check the caffemodel (its hash is :meth:`hash_weights`).

        Refused with a SnapshotError naming the file: an empty file, one protobuf cannot
        parse, weight shapes that do not fit the definition, blobs whose value count differs
        from their shape, NaN or infinite weights (the layer named).

        Returns
        -------
        depth_eval.caffe.weights.CaffeWeights
            The file's messages and its blobs' values as views of the mapped file: no copy of
            the weights is made here.
        """
        try:
            weights = CaffeWeights(self.caffemodel)
        except OSError as error:
            raise SnapshotError(f"{self.caffemodel}: cannot read ({error.strerror})") from None
        if not weights.size:
            raise CaffeFormatError(f"{self.caffemodel}: caffemodel file is empty (0 bytes)")
        try:
            caffe_shapes.check_weights(self.definition, weights.net)
        except ShapeError as error:
            raise SnapshotError(f"{self.caffemodel}: does not match {self.prototxt.name}: "
                                f"{error}") from None
        try:
            caffe_shapes.check_weight_values(self.definition, weights)
        except ShapeError as error:
            raise SnapshotError(f"{self.caffemodel}: {error}") from None
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

    @property
    def output_blobs(self) -> tuple[str, ...]:
        """Every blob a forward pass returns: the output, then the extra outputs."""
        return (self.info.output_blob, *(extra.output_blob for extra in self.extra_info))


def _check_finite(output: np.ndarray, blob: str) -> None:
    """Refuse one image's output with NaN or infinite values (a network can compute them:
    the log of a negative value); the metrics would be NaN or raise warnings."""
    bad = output.size - int(np.count_nonzero(np.isfinite(output)))
    if bad:
        raise ImageError(f"output blob '{blob}' has {bad} NaN or infinite values "
                         f"(of {output.size})")


def _read_bytes(path: Path) -> bytes:
    try:
        return limits.read_regular(path)
    except OSError as error:
        raise SnapshotError(f"{path}: cannot read ({error.strerror})") from None
