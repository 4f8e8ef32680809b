"""A snapshot's effective input convention and output meaning, read from Caffe's own files.

Levels, lowest first: the thesis' defaults, the command line, the snapshot's sidecar
``<stem>.depth_eval.toml`` (:mod:`depth_eval.inputs.conventions`).  Each level's
``transform-from`` (a train_val prototxt) is expanded into the input options it implies (BGR,
raw scale 255, its mean, its ``scale`` as the input scale), and that level's own options then
replace what it implied; a higher level's option replaces a lower one's, the mean being one
option whatever its spelling.  Files are read here: mean images (Caffe's ``BlobProto``
``.binaryproto`` as ``compute_image_mean`` writes it, or ``.npy``) and the train_val's
TEST-phase ``transform_param``.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError

from depth_eval.caffe import proto
from depth_eval.errors import CaffeFormatError, SnapshotError
from depth_eval.inputs import limits
from depth_eval.inputs.conventions import (
    COLOR_CHANNELS, MEAN_FILE, TRANSFORM_FROM, Convention, ConventionOptions,
    MeanImage, convention_of, read_sidecar, sidecar_path, thesis_convention)
from depth_eval.inputs.hashing import file_sha256

# What a train_val's data layer feeds: images as OpenCV / convert_imageset read them (BGR,
# 0-255), minus its mean, times its scale (Caffe's DataTransformer).
TRAIN_VAL_CHANNEL_SWAP = (2, 1, 0)
TRAIN_VAL_RAW_SCALE = 255.0


def read_mean_file(path: Path) -> MeanImage:
    """A mean image: a ``.npy`` array, else a binary BlobProto (``.binaryproto``); its shape
    C x H x W or 1 x C x H x W with C 1 or 3 (Caffe's order, BGR for ``compute_image_mean``).

    Raises
    ------
    SnapshotError
        One line naming the file: unreadable, not a mean image, non-finite values.
    """
    path = Path(path)
    try:
        data = limits.read_regular(path)
    except OSError as error:
        raise SnapshotError(f"{path}: cannot read the mean file "
                            f"({error.strerror or error})") from None
    if path.suffix.lower() == ".npy":
        try:
            values = np.load(io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            raise SnapshotError(f"{path}: not a readable .npy mean ({error})") from None
    else:
        blob = proto.BlobProto()
        try:
            blob.ParseFromString(data)
        except DecodeError as error:
            raise CaffeFormatError(f"{path}: not a Caffe BlobProto mean file ({error})") from None
        flat = blob.double_data if len(blob.double_data) else blob.data
        shape = proto.blob_shape(blob)
        if not shape or int(np.prod(shape)) != len(flat) or not len(flat):
            raise CaffeFormatError(f"{path}: BlobProto of shape {list(shape)} holds {len(flat)} "
                                   "values: not a mean image")
        values = np.asarray(flat, dtype=np.float64).reshape(shape)
    if values.ndim == 4 and values.shape[0] == 1:
        values = values[0]
    if values.ndim != 3 or values.shape[0] not in (1, COLOR_CHANNELS) or values.dtype.kind not in "iuf":
        raise SnapshotError(f"{path}: mean of shape {list(values.shape)}; expected C x H x W "
                            f"numbers with C 1 or {COLOR_CHANNELS}")
    values = np.ascontiguousarray(values, dtype=np.float32)
    if not np.isfinite(values).all():
        raise SnapshotError(f"{path}: the mean image has NaN or infinite values")
    return MeanImage(values, str(path), file_sha256(path))


def transform_param_of(path: Path, input_name: str | None = None, first: bool = False):
    """The TEST-phase data layer's ``transform_param`` of a train_val prototxt, and its layer.

    The layer Caffe builds in the TEST phase that has a ``transform_param``; of several, the
    one whose top is the deploy's input blob ``input_name`` (``first``: the first of several,
    when the network is not known yet and the file is only being checked).

    Raises
    ------
    SnapshotError
        None such, or several and none of them writes ``input_name``.
    """
    try:
        net = proto.read_prototxt(path)
    except OSError as error:
        raise SnapshotError(f"{path}: cannot read the {TRANSFORM_FROM} prototxt "
                            f"({error.strerror or error})") from None
    net.state.phase = proto.PHASE_TEST  # the phase an evaluation runs, whatever the file says
    layers = [layer for layer in proto.included_layers(net) if layer.HasField("transform_param")]
    if len(layers) > 1 and input_name is not None:
        layers = [layer for layer in layers if input_name in layer.top] or layers
    if len(layers) > 1 and first:
        layers = layers[:1]
    if len(layers) != 1:
        found = ", ".join(f"'{layer.name}'" for layer in layers)
        raise SnapshotError(
            f"{path}: {'no' if not layers else 'several'} TEST-phase data layer(s) with a "
            f"transform_param{' (' + found + ')' if found else ''}"
            + (f", none with top '{input_name}' (the network's input)" if layers else ""))
    return layers[0].transform_param, layers[0]


def transform_values(path: Path, input_name: str | None, overridden_mean: bool,
                     first: bool = False) -> dict:
    """The input options a train_val's TEST-phase ``transform_param`` implies (see the module
    docstring); its ``mean_file`` (relative to the prototxt's folder) is read unless
    ``overridden_mean``.  ``mirror`` is ignored (a random training-time flip, not a
    convention); ``crop_size`` only places a larger mean image's window
    (:meth:`InputConvention.fitted`), the image being resized to the input as every image is.
    """
    param, layer = transform_param_of(path, input_name, first)
    values = {"channel_swap": TRAIN_VAL_CHANNEL_SWAP, "raw_scale": TRAIN_VAL_RAW_SCALE,
              "input_scale": float(param.scale) if param.scale != 1.0 else None,
              "crop_size": int(param.crop_size) or None}
    if param.HasField("mean_file") and len(param.mean_value):
        raise SnapshotError(f"{path}: layer '{layer.name}' has both mean_file and mean_value "
                            "(Caffe refuses it too)")
    if overridden_mean:
        return values
    if param.HasField("mean_file"):
        # A relative name: the prototxt's folder first, then the working folder (Caffe's).
        named = Path(param.mean_file)
        candidates = [named] if named.is_absolute() else [Path(path).parent / named, named]
        found = next((c for c in candidates if c.exists()), None)
        if found is None:
            raise SnapshotError(
                f"{path}: layer '{layer.name}': mean_file {param.mean_file!r} not found ("
                + " nor ".join(str(c) for c in candidates)
                + f"); give {MEAN_FILE} beside {TRANSFORM_FROM}")
        values["mean"] = read_mean_file(found)
    elif len(param.mean_value):
        values["mean"] = tuple(float(v) for v in param.mean_value)
    else:
        values["mean"] = None
    return values


def expand(options: ConventionOptions, input_name: str | None = None,
           checking: bool = False) -> tuple[dict, list]:
    """One level's options as convention values (files read), and the files that stated them;
    ``checking``: before the network is known (a train_val's data layers not chosen yet)."""
    values: dict = {}
    sources: list[str] = []
    if options.transform_from is not None:
        values.update(transform_values(options.transform_from, input_name,
                                       overridden_mean=options.mean is not None,
                                       first=checking))
        sources.append(str(options.transform_from))
    for name in ("channel_swap", "raw_scale", "input_scale", "output_kind", "output_scale"):
        if getattr(options, name) is not None:
            values[name] = getattr(options, name)
    if options.mean is not None:
        kind, value = options.mean
        values["mean"] = read_mean_file(value) if kind == "file" else value
    return values, sources


def read_snapshot_sidecar(caffemodel: Path) -> ConventionOptions | None:
    """The options of the caffemodel's sidecar, None when it has none.

    Raises
    ------
    SnapshotError
        The sidecar cannot be read, is not TOML, or has an unknown key or a bad value (the
        file, the key and the reason).
    """
    path = sidecar_path(caffemodel)
    if not path.exists() and not path.is_symlink():
        return None
    try:
        text = limits.read_regular(path).decode("utf-8")
    except OSError as error:
        raise SnapshotError(f"{path}: cannot read ({error.strerror or error})") from None
    except UnicodeDecodeError as error:
        raise SnapshotError(f"{path}: not UTF-8 text ({error.reason})") from None
    try:
        return read_sidecar(path, text)
    except ValueError as error:
        raise SnapshotError(str(error)) from None


def snapshot_convention(command_line: ConventionOptions, caffemodel: Path,
                        input_shape: tuple[int, ...] | None = None,
                        input_name: str | None = None, depth_output: bool = True) -> Convention:
    """A snapshot's effective convention: its sidecar over ``command_line`` over the thesis'.

    Parameters
    ----------
    command_line : ConventionOptions
        The run's options (``--log`` is its ``output_kind`` log).
    caffemodel : Path
        The snapshot; its sidecar is ``<stem>.depth_eval.toml`` beside it.
    input_shape : tuple, optional
        The network's input (N x C x H x W): the convention is checked against it (a mean
        image's size; :meth:`InputConvention.fitted`).  None: not checked (results-store keys).
    input_name : str, optional
        The network's input blob (picks a train_val's data layer among several).
    depth_output : bool
        The task reads a depth output; False (the gradient task): the output options do not
        apply and the output is read as it is.

    Raises
    ------
    SnapshotError
        A bad sidecar, mean file or train_val, or a convention that does not fit the input
        (the file and the reason).
    """
    sidecar = read_snapshot_sidecar(caffemodel)
    values: dict = {}
    sources: list[str] = []
    for level in (command_line, sidecar):
        if level is None:
            continue
        expanded, files = expand(level, input_name)
        values.update(expanded)
        sources += files
    if sidecar is not None:
        sources.insert(0, str(sidecar_path(caffemodel)))
    if not depth_output:
        values.pop("output_kind", None)
        values.pop("output_scale", None)
    if not values:
        return thesis_convention()
    convention = convention_of(values, tuple(sources))
    if input_shape is not None:
        try:
            fitted = convention.input.fitted(input_shape)
        except ValueError as error:
            raise SnapshotError(f"{caffemodel}: {error}") from None
        convention = Convention(fitted, convention.output, convention.sources)
    return convention

