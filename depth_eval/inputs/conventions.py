"""A network's input convention and its output's meaning, as Caffe's own tools state them.

The input side follows ``caffe.io.Transformer.preprocess`` (what ``classify.py`` / ``detect.py``
feed a network), step for step on the H x W x 3 RGB image in [0, 1] already at the network's
input size: transpose to 3 x H x W, reorder the channels by ``channel_swap``, multiply by
``raw_scale``, subtract the mean (one value for every channel, one per channel, or a C x H x W
mean image in the swapped order), multiply by ``input_scale``; float32 throughout.  The thesis'
``x * 255 - 127`` is the special case raw_scale 255, one mean 127 (:data:`THESIS_INPUT`).

The output side says what the network's blob ``o`` is: depth ``M * o``, the thesis' log
encoding ``M * exp((o - 1) / 0.179581)``, or inverse depth ``M / o`` (metres), decoded before
the upsampling; the evaluation's maps are in the thesis' unit, depth / 10.

Options are given on the command line and in a snapshot's sidecar file
``<stem>.depth_eval.toml`` (keys: the long option names, :data:`OPTION_NAMES`); a sidecar's
key wins over the command line's, which wins over the thesis' defaults.  Reading mean files
and a train_val prototxt's ``transform_param`` needs Caffe's schema:
:mod:`depth_eval.caffe.conventions` does that and resolves a snapshot's effective convention.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np

from depth_eval.thesis import DEPTH_RANGE_M, INPUT_MEAN, INPUT_RAW_SCALE, LOG_ENCODING_SLOPE

from depth_eval.inputs.convention_names import (  # noqa: F401  (the names, re-exported)
    CHANNEL_SWAP, COLOR_CHANNELS, CONVENTION_FACT, INPUT_OPTION_NAMES, INPUT_SCALE, MEAN_FILE,
    MEAN_VALUES, OPTION_NAMES, OUTPUT_KIND, OUTPUT_KINDS, OUTPUT_OPTION_NAMES, OUTPUT_SCALE,
    RAW_SCALE, SIDECAR_SUFFIX, TRANSFORM_FROM)


class ConventionValueError(ValueError):
    """A bad value of one option: ``key`` is its long name, the message the reason."""

    def __init__(self, key: str, reason: str):
        super().__init__(reason)
        self.key, self.reason = key, reason


# ------------------------------------------------------------------------------------------
# The input convention


@dataclass(frozen=True, eq=False)
class MeanImage:
    """A C x H x W mean image (C 1 or 3, in the network's channel order, after any swap), the
    file it came from and that file's sha256 (what a results-store key records)."""

    values: np.ndarray
    source: str
    sha256: str

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.values.shape)

    def channel_means(self) -> tuple[float, ...]:
        return tuple(float(v) for v in self.values.reshape(self.values.shape[0], -1).mean(axis=1))

    def cropped(self, height: int, width: int) -> "MeanImage":
        """The centre ``height`` x ``width`` window at Caffe's DataTransformer's TEST-phase
        offsets, ``(H - h) // 2`` and ``(W - w) // 2``."""
        top, left = (self.shape[1] - height) // 2, (self.shape[2] - width) // 2
        window = np.ascontiguousarray(self.values[:, top:top + height, left:left + width])
        return MeanImage(window, f"{self.source} (centre {height} x {width} at row {top}, "
                                 f"column {left})", self.sha256)


@dataclass(frozen=True)
class InputConvention:
    """What ``caffe.io.Transformer`` does to an image before the network sees it.

    Attributes
    ----------
    channel_swap : tuple of int or None
        The channels taken, in order, from the RGB image (``(2, 1, 0)``: BGR); None keeps RGB.
    raw_scale : float or None
        Multiplies the [0, 1] image (255: Caffe's ImageNet models); None: 1.
    mean : tuple of float, MeanImage or None
        Subtracted after ``raw_scale``: one value for every channel, one per channel (in the
        swapped order), or a mean image of the input's size; None: nothing.
    input_scale : float or None
        Multiplies the result (after the mean); None: 1.
    crop_size : int or None
        A train_val's ``transform_param { crop_size }`` (``--transform-from``): a larger mean
        image is centre-cropped to the input as Caffe's DataTransformer does in the TEST phase
        (:meth:`fitted`); None otherwise.
    """

    channel_swap: tuple[int, ...] | None = None
    raw_scale: float | None = INPUT_RAW_SCALE
    mean: tuple[float, ...] | MeanImage | None = (INPUT_MEAN,)
    input_scale: float | None = None
    crop_size: int | None = None

    def blob(self, rgb_unit: np.ndarray) -> np.ndarray:
        """H x W x 3 RGB in [0, 1] -> the 1 x C x H x W float32 network input (the
        Transformer's order of operations; see the module docstring)."""
        chw = np.ascontiguousarray(rgb_unit.transpose(2, 0, 1), dtype=np.float32)
        if self.channel_swap is not None:
            chw = chw[list(self.channel_swap)]
        if self.raw_scale is not None:
            chw = chw * np.float32(self.raw_scale)
        mean = self._mean_array()
        if mean is not None:
            chw = chw - mean
        if self.input_scale is not None:
            chw = chw * np.float32(self.input_scale)
        return chw[np.newaxis]

    def _mean_array(self):
        if self.mean is None:
            return None
        if isinstance(self.mean, MeanImage):
            return self.mean.values
        if len(self.mean) == 1:  # one scalar: the thesis' x * 255 - 127, bit for bit
            return np.float32(self.mean[0])
        # float32 values: real Caffe's Transformer blobs of tests/data/golden/preprocess bit
        # for bit (float64 ones differ there by one float32 step).
        return np.asarray(self.mean, dtype=np.float32)[:, np.newaxis, np.newaxis]

    def fitted(self, input_shape: tuple[int, ...]) -> "InputConvention":
        """This convention checked against a network input (N x C x H x W): the mean has one
        value or one per channel, a mean image the input's size (or, from a train_val with
        ``crop_size`` equal to the input's height and width, a larger one, centre-cropped).

        Raises
        ------
        ValueError
            One line naming the mean file and both shapes (and the mean image's per-channel
            means, usable as ``--mean-values``).
        """
        channels, height, width = (int(n) for n in input_shape[1:4])
        if self.channel_swap is not None and len(self.channel_swap) != channels:
            raise ValueError(f"{CHANNEL_SWAP} {list(self.channel_swap)} has "
                             f"{len(self.channel_swap)} channels, the network's input {channels}")
        mean = self.mean
        if isinstance(mean, MeanImage):
            if mean.shape[0] not in (1, channels):
                raise ValueError(f"mean image {mean.source} has {mean.shape[0]} channels, the "
                                 f"network's input {channels}")
            size = mean.shape[1:]
            larger = size[0] >= height and size[1] >= width
            if size != (height, width):
                if self.crop_size == height == width and larger:
                    return replace(self, mean=mean.cropped(height, width))
                means = ",".join(f"{v:.6g}" for v in mean.channel_means())
                raise ValueError(
                    f"mean image {mean.source} is {size[0]} x {size[1]}, the network's input "
                    f"{height} x {width}; a mean image must have the input's size (it is "
                    f"neither resized nor cropped; only a train_val's crop_size equal to the "
                    f"input crops it, as Caffe's DataTransformer does); its per-channel means "
                    f"are --mean-values {means}")
        elif mean is not None and len(mean) not in (1, channels):
            raise ValueError(f"{MEAN_VALUES} has {len(mean)} values; give 1 or {channels} "
                             "(one per channel of the network's input)")
        return self

    def record(self) -> dict:
        """JSON values of this convention, as results.json and the results store's keys hold
        them (a mean image by its file's sha256 and shape: its contents, not its path)."""
        mean = self.mean
        if isinstance(mean, MeanImage):
            mean_key, mean_record = MEAN_FILE, {"sha256": mean.sha256, "shape": list(mean.shape)}
        else:
            mean_key, mean_record = MEAN_VALUES, (None if mean is None
                                                  else [float(v) for v in mean])
        return {CHANNEL_SWAP: None if self.channel_swap is None else list(self.channel_swap),
                RAW_SCALE: _float_or_none(self.raw_scale), mean_key: mean_record,
                INPUT_SCALE: _float_or_none(self.input_scale)}


def _float_or_none(value):
    return None if value is None else float(value)


# The thesis' input: RGB in [0, 1] times 255, minus 127 (depth_eval.thesis).
THESIS_INPUT = InputConvention()


# ------------------------------------------------------------------------------------------
# The output's meaning


@dataclass(frozen=True)
class OutputMeaning:
    """What the network's output ``o`` is: ``kind`` (:data:`OUTPUT_KINDS`) and scale M in
    metres: depth ``M * o``, log ``M * exp((o - 1) / 0.179581)``, inverse ``M / o``."""

    kind: str = "depth"
    scale: float = DEPTH_RANGE_M

    def decode(self, maps: np.ndarray) -> np.ndarray:
        """The output's maps in the evaluation's unit, depth / 10 (float32, same shape).

        Raises
        ------
        ValueError
            An inverse-depth output with a value that is not positive and finite (no depth).
        """
        factor = self.scale / DEPTH_RANGE_M  # 1 for the thesis' M: its maps unchanged
        if self.kind == "inverse":
            bad = ~(np.isfinite(maps) & (maps > 0))
            if bad.any():
                raise ValueError(
                    f"{int(bad.sum())} of {maps.size} values of the inverse-depth output are "
                    f"not positive (smallest {float(np.nanmin(maps)):g}): not an inverse depth "
                    f"(is {OUTPUT_KIND} right?)")
            return (np.float32(factor) / maps).astype(np.float32, copy=False)
        if self.kind == "log":
            maps = np.exp((maps - 1.0) / LOG_ENCODING_SLOPE)
        return maps if factor == 1.0 else maps * np.float32(factor)

    def record(self) -> dict:
        return {OUTPUT_KIND: self.kind, OUTPUT_SCALE: float(self.scale)}


@dataclass(frozen=True)
class Convention:
    """A snapshot's input convention and output meaning, and where each came from."""

    input: InputConvention = THESIS_INPUT
    output: OutputMeaning = OutputMeaning()
    sources: tuple[str, ...] = ()   # the files that stated it (sidecar, train_val), for people

    def record(self) -> dict:
        """The effective convention as results.json records it (:meth:`key_record` plus the
        files it came from)."""
        record = self.key_record()
        if isinstance(self.input.mean, MeanImage):
            record[MEAN_FILE]["path"] = self.input.mean.source
        if self.sources:
            record["from"] = list(self.sources)
        return record

    def key_record(self) -> dict:
        """What the numbers depend on (the results store's unit keys): values and contents."""
        return {**self.input.record(), **self.output.record()}

    def same_numbers(self, other: "Convention") -> bool:
        return self.key_record() == other.key_record()


def thesis_convention(log_encoded: bool = False) -> Convention:
    """The thesis' convention: its input, its depth / 10 output (its log encoding with --log)."""
    return Convention(output=OutputMeaning("log" if log_encoded else "depth"))


# ------------------------------------------------------------------------------------------
# Options as given (command line or sidecar), before files are read


@dataclass(frozen=True)
class ConventionOptions:
    """The options one level states (the command line, or one sidecar); None: not stated.

    ``mean`` is one slot with two spellings: ``("values", (..))`` or ``("file", Path)``.
    Paths are as the level gave them (a sidecar's relative to its folder, already joined).
    """

    channel_swap: tuple[int, ...] | None = None
    raw_scale: float | None = None
    mean: tuple | None = None
    input_scale: float | None = None
    transform_from: Path | None = None
    output_kind: str | None = None
    output_scale: float | None = None

    def stated(self) -> list[str]:
        """The long names of the options this level states."""
        names = {"mean": MEAN_FILE if self.mean and self.mean[0] == "file" else MEAN_VALUES}
        return [names.get(f.name, f.name.replace("_", "-")) for f in fields(self)
                if getattr(self, f.name) is not None]

    def record(self) -> dict:
        """The stated options as JSON values (results.json's run options)."""
        record = {}
        for name in self.stated():
            value = self._value(name)
            record[name] = (str(value) if isinstance(value, Path)
                            else list(value) if isinstance(value, tuple) else value)
        return record

    def _value(self, name: str):
        if name in (MEAN_FILE, MEAN_VALUES):
            return self.mean[1]
        return getattr(self, name.replace("-", "_"))


def _number(key: str, value, what: str = "a positive number") -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ConventionValueError(key, f"expected {what}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ConventionValueError(key, f"expected {what}, got {value!r}")
    return number


def _numbers(key: str, values, count: tuple[int, ...]) -> tuple[float, ...]:
    if not isinstance(values, (list, tuple)) or len(values) not in count:
        wanted = " or ".join(str(n) for n in count)
        raise ConventionValueError(key, f"expected a list of {wanted} numbers, got {values!r}")
    out = []
    for value in values:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
                float(value)):
            raise ConventionValueError(key, f"expected finite numbers, got {value!r}")
        out.append(float(value))
    return tuple(out)


def _channel_swap(key: str, values) -> tuple[int, ...]:
    if (not isinstance(values, (list, tuple)) or len(values) != COLOR_CHANNELS
            or any(isinstance(v, bool) or not isinstance(v, int) for v in values)
            or any(not 0 <= v < COLOR_CHANNELS for v in values)):
        raise ConventionValueError(key, f"expected {COLOR_CHANNELS} channel indices in 0..."
                                        f"{COLOR_CHANNELS - 1} (2,1,0: RGB -> BGR), got {values!r}")
    return tuple(values)


def _output_kind(key: str, value) -> str:
    if value not in OUTPUT_KINDS:
        raise ConventionValueError(key, f"expected one of {', '.join(OUTPUT_KINDS)}, got "
                                        f"{value!r}")
    return value


def _path(key: str, value, folder: Path | None) -> Path:
    if not isinstance(value, str) or not value:
        raise ConventionValueError(key, f"expected a file name, got {value!r}")
    path = Path(value)
    return path if folder is None or path.is_absolute() else folder / path


def options_from_values(values: dict, folder: Path | None = None) -> ConventionOptions:
    """One level's options from typed values (a sidecar's TOML table, or the command line's
    parsed options), keyed by long name; ``folder``: where relative file names start.

    Raises
    ------
    ConventionValueError
        An unknown key, a bad value, or both mean-values and mean-file.
    """
    unknown = [key for key in values if key not in OPTION_NAMES]
    if unknown:
        raise ConventionValueError(unknown[0], f"unknown key (known: {', '.join(OPTION_NAMES)})")
    if MEAN_VALUES in values and MEAN_FILE in values:
        raise ConventionValueError(MEAN_FILE, f"{MEAN_VALUES} and {MEAN_FILE} both given: "
                                              "one mean (Caffe refuses both too)")
    mean = None
    if MEAN_VALUES in values:
        mean = ("values", _numbers(MEAN_VALUES, values[MEAN_VALUES], (1, COLOR_CHANNELS)))
    elif MEAN_FILE in values:
        mean = ("file", _path(MEAN_FILE, values[MEAN_FILE], folder))
    get = values.get
    return ConventionOptions(
        channel_swap=None if get(CHANNEL_SWAP) is None
        else _channel_swap(CHANNEL_SWAP, get(CHANNEL_SWAP)),
        raw_scale=None if get(RAW_SCALE) is None else _number(RAW_SCALE, get(RAW_SCALE)),
        mean=mean,
        input_scale=None if get(INPUT_SCALE) is None else _number(INPUT_SCALE, get(INPUT_SCALE)),
        transform_from=None if get(TRANSFORM_FROM) is None
        else _path(TRANSFORM_FROM, get(TRANSFORM_FROM), folder),
        output_kind=None if get(OUTPUT_KIND) is None else _output_kind(OUTPUT_KIND,
                                                                      get(OUTPUT_KIND)),
        output_scale=None if get(OUTPUT_SCALE) is None else _number(OUTPUT_SCALE,
                                                                    get(OUTPUT_SCALE)))


def sidecar_path(caffemodel: Path) -> Path:
    """``<stem>.depth_eval.toml`` beside the caffemodel."""
    caffemodel = Path(caffemodel)
    return caffemodel.with_name(caffemodel.stem + SIDECAR_SUFFIX)


def read_sidecar(path: Path, text: str) -> ConventionOptions:
    """A sidecar's options from its text (TOML); relative file names start at its folder.

    Raises
    ------
    ValueError
        One line naming the file, the key and the reason.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, as a package
        import tomli as tomllib

    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"{path}: not valid TOML ({error})") from None
    try:
        return options_from_values(table, Path(path).parent)
    except ConventionValueError as error:
        raise ValueError(f"{path}: key '{error.key}': {error.reason}") from None


def convention_of(values: dict, sources: tuple[str, ...] = ()) -> Convention:
    """The convention of merged option values (``channel_swap``, ``raw_scale``, ``mean`` as
    a tuple of values / MeanImage / None, ``input_scale``, ``crop_size``, ``output_kind``,
    ``output_scale``), the thesis' default for each one missing."""
    default_input, default_output = THESIS_INPUT, OutputMeaning()
    convention_input = InputConvention(
        channel_swap=values.get("channel_swap", default_input.channel_swap),
        raw_scale=values.get("raw_scale", default_input.raw_scale),
        mean=values.get("mean", default_input.mean),
        input_scale=values.get("input_scale", default_input.input_scale),
        crop_size=values.get("crop_size"))
    output = OutputMeaning(values.get("output_kind", default_output.kind),
                           values.get("output_scale", default_output.scale))
    return Convention(convention_input, output, sources)
