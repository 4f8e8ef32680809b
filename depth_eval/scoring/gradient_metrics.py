"""The numbers and pictures of the thesis' gradient-network evaluation (``test_grad.py``).

Pure numpy functions, one step each (SPEC-grad.md sections 3 and 5-7): the fixed 3 x 3 filter
that turns a ground truth into its two gradient maps, the cubic zoom of the network's
2 x h x w ``gradient`` blob to the filtered size, RMSE and MVN per channel, their mean over
images and channels, and the four grey pictures.  Everything is float32, as the original
computed it; loading files and running the network belong to the caller (``depth_eval.inputs.images``,
``depth_eval.scoring.upsample``, the engines).
"""

from __future__ import annotations

from typing import Iterable, Mapping, Sequence

import numpy as np

from depth_eval.scoring.checks import check_shape_equality

from depth_eval.scoring.upsample import upsample

# test_grad.py resizes every ground truth to (GT_HEIGHT + 2, GT_WIDTH + 2) for the filter net.
GT_SHAPE = (320, 420)
# test_grad.py GT_HEIGHT x GT_WIDTH: the filter's valid output, where predictions are zoomed to.
FILTERED_SHAPE = (318, 418)
# The gradient blob's channels (test_grad.py: out1 = vertical, out2 = horizontal).
GRADIENT_CHANNELS = 2
# eval_grad.py Test() / test_grad.py titles, in the original's order; both rank ascending.
METRIC_TITLES = ("RMSE", "MVN")
LOWER_IS_BETTER = {"RMSE": True, "MVN": True}
# test_grad.py: X_colors.png is renamed to X_grad1/_grad2 (prediction) and X_gt1/_gt2 (GT).
PICTURE_SUFFIXES = ("_grad1", "_grad2", "_gt1", "_gt2")
# numpy 1.x's ufunc buffer size (np.getbufsize()): the block in which it summed (see _sum32).
_NUMPY1_BUFFER_SIZE = 8192

# filter.prototxt's weights as test_grad.py sets them, (channel, row, column); Caffe's
# Convolution is a cross-correlation.  Channel 0 (gt1): bottom row minus top row; channel 1
# (gt2): right column minus left column.
FILTER_KERNELS = np.array([[[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
                           [[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]]], dtype=np.float32)


def ground_truth_gradients(gt_unit: np.ndarray) -> np.ndarray:
    """The thesis' ground-truth gradients: ``filter.prototxt`` on a ground-truth map.

    Parameters
    ----------
    gt_unit : ndarray
        H x W ground truth in the thesis' [0, 1] units (depth / 10; no x10, SPEC-grad.md
        section 3).  The evaluation passes :data:`GT_SHAPE` (320 x 420): the depth task's
        prepared ``ground_truth`` (channel 1 of the file, resized bilinearly as
        ``caffe.io.resize``); any H, W >= 3 works.  Cast to float32 first, as Caffe's input blob.

    Returns
    -------
    ndarray
        float32, 2 x (H - 2) x (W - 2): channel 0 = ``gt1`` (rows +1 minus rows -1, summed over
        three columns), channel 1 = ``gt2`` (columns +1 minus columns -1, over three rows).

    Notes
    -----
    The nine products of each output are added in float32 in the kernel's row-major order,
    as Caffe's im2col + GEMM does (the products are exact: weights are -1, 0, 1).  On the
    golden ground truths this equals Caffe's blob bit for bit; float64 sums cast to float32
    differ from it by up to 2.4e-7.  One consequence, Caffe's too: a map without variation
    along an axis gives rounding noise (up to ~2.4e-7 for 8-bit values), an exact 0 only where
    the sums are exact (e.g. all-zero or k / 256 values).
    """
    g = np.asarray(gt_unit, dtype=np.float32)
    if g.ndim != 2 or min(g.shape) < 3:
        raise ValueError(f"ground truth must be a 2-D map of at least 3 x 3, got shape {g.shape}")
    height, width = g.shape[0] - 2, g.shape[1] - 2
    gradients = np.zeros((GRADIENT_CHANNELS, height, width), dtype=np.float32)
    for channel, kernel in enumerate(FILTER_KERNELS):
        out = gradients[channel]
        for row in range(3):
            for col in range(3):
                weight = kernel[row, col]
                if weight:  # adding the exact product 0 never changes a float32 sum
                    window = g[row:row + height, col:col + width]
                    if weight > 0:
                        out += window
                    else:
                        out -= window
    return gradients


def _as_channels(array: np.ndarray, name: str) -> np.ndarray:
    """A 2 x h x w view of a 2 x h x w or 1 x 2 x h x w array (the engines' N = 1 blob)."""
    array = np.asarray(array)
    if array.ndim == 4 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 3 or array.shape[0] != GRADIENT_CHANNELS:
        raise ValueError(f"{name} must be 2 x h x w (or 1 x 2 x h x w), got shape {array.shape}")
    return array


def upsample_gradients(output: np.ndarray, shape: tuple[int, int] = FILTERED_SHAPE) -> np.ndarray:
    """Zoom the network's gradient blob to the filtered size, each channel on its own.

    Parameters
    ----------
    output : ndarray
        The ``gradient`` blob, 2 x h x w or 1 x 2 x h x w; h and w are read from it (the thesis
        nets give 25 x 35, which the original hard-coded).
    shape : tuple of int
        Target H x W; :data:`FILTERED_SHAPE` (318 x 418) in the evaluation.

    Returns
    -------
    ndarray
        float32, 2 x H x W: per channel ``scipy.ndimage.zoom(o[c], (H / h, W / w), order=3)``
        (cubic spline, ``mode='constant'``), computed by ``upsample.upsample``'s separable zoom
        matrices (bit-identical to SciPy on the golden blobs).
    """
    channels = _as_channels(output, "gradient output").astype(np.float32, copy=False)
    return np.stack([upsample(channel, shape) for channel in channels])


def _sum32(values: np.ndarray) -> np.float32:
    """A float32 sum as the original's numpy 1.x summed a multi-dimensional array.

    numpy 1.x reduced in blocks of its buffer size, pairwise within each block and in order
    across them; numpy 2 sums the whole array pairwise, which moves some golden metrics by one
    float32 ulp and a few PNG pixels by one level.  Summed this way, every golden
    metric and PNG is Caffe's reference bit for bit (measured).
    """
    flat = np.ascontiguousarray(values, dtype=np.float32).ravel()
    total = np.float32(0.0)
    for start in range(0, flat.size, _NUMPY1_BUFFER_SIZE):
        total = np.float32(total + np.add.reduce(flat[start:start + _NUMPY1_BUFFER_SIZE]))
    return total


def _mean32(values: np.ndarray) -> np.float32:
    """``np.mean`` of a float32 map, as numpy 1.x computed it."""
    return np.float32(_sum32(values) / np.float32(values.size))


def _std32(values: np.ndarray) -> np.float32:
    """``np.std`` (population) of a float32 map, as numpy 1.x computed it."""
    centred = values - _mean32(values)
    return np.sqrt(_mean32(centred * centred))


def _rmse(prediction: np.ndarray, target: np.ndarray) -> np.float32:
    """eval_grad.py's RootMeanSquaredError: ``sqrt(mean(d * d))`` in float32."""
    difference = prediction - target
    return np.sqrt(_mean32(difference * difference))


def _mvn_error(prediction: np.ndarray, target: np.ndarray) -> np.float32:
    """eval_grad.py's MVNError: RMSE of both maps standardised (population std), in float32."""
    standard_prediction = (prediction - _mean32(prediction)) / _std32(prediction)
    standard_target = (target - _mean32(target)) / _std32(target)
    return _rmse(standard_prediction, standard_target)


def gradient_metrics(prediction: np.ndarray, target: np.ndarray) -> dict[str, list[float]]:
    """RMSE and MVN of one image, per channel, as ``eval_grad.py`` computes them.

    Parameters
    ----------
    prediction : ndarray
        2 x H x W zoomed prediction (:func:`upsample_gradients`).
    target : ndarray
        2 x H x W ground-truth gradients (:func:`ground_truth_gradients`), same shape.

    Returns
    -------
    dict
        ``{"RMSE": [channel 1, channel 2], "MVN": [channel 1, channel 2]}``, the float32 values
        as Python floats (keys in :data:`METRIC_TITLES` order).  MVN is NaN for a channel where
        either map's standard deviation is zero (a constant map, such as the all-zero ``gt1``
        of a ground truth without vertical variation: the original divides 0 by 0); no numpy
        warning escapes, the caller reports it (:func:`undefined_channels`).
    """
    prediction = _as_channels(prediction, "prediction").astype(np.float32, copy=False)
    target = _as_channels(target, "target").astype(np.float32, copy=False)
    check_shape_equality(prediction=prediction, target=target)
    values: dict[str, list[float]] = {title: [] for title in METRIC_TITLES}
    with np.errstate(all="ignore"):  # 0 / 0 gives NaN, reported by the caller
        for predicted, expected in zip(prediction, target):
            values["RMSE"].append(float(_rmse(predicted, expected)))
            values["MVN"].append(float(_mvn_error(predicted, expected)))
    return values


def undefined_channels(per_channel: Mapping[str, Sequence[float]]) -> dict[str, list[int]]:
    """Which channels (1-based, as ``grad1`` / ``grad2``) of which metric are NaN or infinite."""
    return {title: [index + 1 for index, value in enumerate(values) if not np.isfinite(value)]
            for title, values in per_channel.items()
            if not all(np.isfinite(value) for value in values)}


def image_contribution(per_channel: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """One image's share of the snapshot sums: both channels added in float64, in order."""
    return {title: float(np.float64(values[0]) + np.float64(values[1]))
            for title, values in per_channel.items()}


def mean_over_images(per_image: Iterable[Mapping[str, Sequence[float]]]) -> dict[str, float]:
    """The snapshot's value of each metric: the mean over images and both channels.

    Parameters
    ----------
    per_image : iterable of dict
        :func:`gradient_metrics` results, in the order the images were evaluated.

    Returns
    -------
    dict
        Per title, the float64 sum of every image's channel 1 then channel 2 (the original's
        accumulation order) divided by 2 x the number of images evaluated (the original
        divided by 2 x all entries of INPUT_DIR: SPEC-grad.md section 9).  A NaN value makes
        its metric NaN (the caller ranks it last); no images give NaN.
    """
    sums = {title: np.float64(0.0) for title in METRIC_TITLES}
    count = 0
    for values in per_image:
        count += 1
        for title in METRIC_TITLES:
            for value in values[title]:
                sums[title] += np.float64(value)
    if count == 0:
        return {title: float("nan") for title in METRIC_TITLES}
    return {title: float(total / (count * 2.0)) for title, total in sums.items()}


def _to_grey(picture: np.ndarray) -> np.ndarray:
    """``uint8(trunc(clip(x, 0, 1) * 255))``; NaN pixels are written 0."""
    clipped = np.clip(np.nan_to_num(picture, nan=0.0), 0, 1)
    return (clipped * np.float32(255)).astype(np.uint8)


def gradient_pictures(prediction: np.ndarray, target: np.ndarray) -> dict[str, np.ndarray]:
    """The four grey pictures ``test_grad.py`` writes per image, keyed by their name suffix.

    Parameters
    ----------
    prediction : ndarray
        2 x H x W zoomed prediction (:func:`upsample_gradients`).
    target : ndarray
        2 x H x W ground-truth gradients (:func:`ground_truth_gradients`).

    Returns
    -------
    dict
        ``{"_grad1", "_grad2", "_gt1", "_gt2"}`` (:data:`PICTURE_SUFFIXES`) -> H x W uint8.
        ``_gtN``: the GT channel min-max normalised, ``N = (G - min G) / (max G - min G)``;
        ``_gradN``: the prediction fitted to N's mean and standard deviation (to the
        normalised GT, not to G), ``F = (P - mean P) / std P * std N + mean N``; both
        ``uint8(trunc(clip(x, 0, 1) * 255))``, in float32.

    Notes
    -----
    A constant channel makes the original's normalisation 0 / 0: NaN, which numpy's cast to
    uint8 turned into 0 (with a warning; the C cast is undefined).  Here every NaN pixel is
    written 0 on purpose, so the files are the original's: a constant GT channel gives a black
    ``_gtN`` and a black ``_gradN`` (its N has no spread), a constant prediction a black
    ``_gradN``.
    """
    prediction = _as_channels(prediction, "prediction").astype(np.float32, copy=False)
    target = _as_channels(target, "target").astype(np.float32, copy=False)
    check_shape_equality(prediction=prediction, target=target)
    pictures = {}
    with np.errstate(all="ignore"):  # a constant channel: 0 / 0, written 0 (see Notes)
        for index, (predicted, expected) in enumerate(zip(prediction, target), start=1):
            normalised = (expected - expected.min()) / (expected.max() - expected.min())
            fitted = predicted - _mean32(predicted)  # a new array: the caller's stays as it was
            fitted /= _std32(fitted)  # of the centred map, as the original
            fitted *= _std32(normalised)
            fitted += _mean32(normalised)
            pictures[f"_grad{index}"] = _to_grey(fitted)
            pictures[f"_gt{index}"] = _to_grey(normalised)
    return {suffix: pictures[suffix] for suffix in PICTURE_SUFFIXES}
