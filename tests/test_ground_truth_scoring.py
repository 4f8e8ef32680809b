"""Ground truth through the whole evaluation: metres kept exact (issue 10 item 4), the standard
metrics at the ground truth's own resolution (item 5), the thesis' G channel and colour-mapped
pictures refused (item 7), bad ground truth named instead of poisoning the means and float
colour inputs checked (issue 11 items 1 and 2).

The references are tests/oracles.py (the peers' and the thesis' formulas restated) applied to
the golden snapshot's real output, on ground-truth files the tests write: 480 x 640 16-bit
millimetre PNGs with holes, depths beyond 10 m and values exactly on the bounds, ``.npy`` maps
with NaN holes and negative depths, RGB and colour-mapped 8-bit pictures.
"""

import math

import cv2
import numpy as np
import png
import pytest

from depth_eval.inputs import images as io
from depth_eval.scoring import score as scoring
from depth_eval.engines import load_engine
from depth_eval.engines.base import DEPTH_OUTPUT
from depth_eval.errors import EXIT_PARTIAL, ImageError
from depth_eval.inputs.ground_truth import GroundTruthSettings, load_ground_truth
from depth_eval.scoring.keys import MetricKey
from depth_eval.settings import EngineSettings
from depth_eval.scoring.alignments import ALIGNMENTS
from helpers import GLOBAL, GOLDEN_E2E, GOOD, STEMS, evaluate, make_workspace, results

import oracles

RTOL = 1e-6  # issue 10: every continuous metric within 1e-6 relative, fractions equal
FRACTIONS = {"d1", "d2", "d3", "Threshold 1.25", "Threshold 1.25^2", "Threshold 1.25^3"}
NYU_SHAPE = (480, 640)
THESIS_SHAPE = (320, 420)


def assert_agree(ours: dict, reference: dict, keys: dict, prefix=""):
    for our_key, ref_key in keys.items():
        got, want = ours[prefix + our_key], reference[ref_key]
        if our_key in FRACTIONS:
            assert got == want, (prefix + our_key, got, want)
        else:
            assert got == pytest.approx(want, rel=RTOL, abs=0.0), prefix + our_key


@pytest.fixture(scope="module")
def maps():
    """The golden refining snapshot's decoded output (depth / 10) for each golden input."""
    folder = GOLDEN_E2E / "snapshots"
    engine = load_engine(EngineSettings(), folder / f"{GOOD}.prototxt",
                         folder / f"{GOOD}.caffemodel", DEPTH_OUTPUT)
    out = {}
    for path in sorted((GOLDEN_E2E / "colors").iterdir()):
        blob = io.to_network_blob(io.load_color_input(path, engine.input_hw))
        out[path.name[: -len("_colors.png")]] = engine.decode(engine.forward(blob))
    return out


def zoomed_m(output_map, shape):
    """The prediction in metres at ``shape``: the original's cubic zoom, x 10 in float64."""
    return oracles.thesis_zoom(output_map, shape).astype(np.float64) * 10.0


def nearest(depth, shape=THESIS_SHAPE):
    """OpenCV's INTER_NEAREST sampling: source index floor(i * H / h), exact integers."""
    rows = np.arange(shape[0]) * depth.shape[0] // shape[0]
    cols = np.arange(shape[1]) * depth.shape[1] // shape[1]
    return depth[rows][:, cols]


def write_mm_png(path, millimetres):
    """A 16-bit grey PNG of integer millimetres, written with pypng."""
    millimetres = np.asarray(millimetres)
    assert millimetres.min() >= 0 and millimetres.max() <= 65535
    with open(path, "wb") as handle:
        png.Writer(millimetres.shape[1], millimetres.shape[0], greyscale=True,
                   bitdepth=16).write(handle, millimetres.astype(np.uint16).tolist())


def nyu_millimetres(output_map, seed):
    """480 x 640 millimetres around the prediction: 8 % holes, depths up to 14 m, and 400
    pixels each exactly on 1 mm, 0.5 m, 3.3 m, 6.4 m and 10 m."""
    rng = np.random.default_rng(seed)
    pred = zoomed_m(output_map, NYU_SHAPE)
    mm = np.round(pred * 1000 * rng.lognormal(0.0, 0.3, NYU_SHAPE)).astype(np.int64)
    mm[rng.random(NYU_SHAPE) < 0.08] = 0
    mm.flat[rng.choice(mm.size, 6000, replace=False)] = rng.integers(10001, 14000, 6000)
    for bound in (1, 500, 3300, 6400, 10000):
        mm.flat[rng.choice(mm.size, 400, replace=False)] = bound
    return np.clip(mm, 0, 65535)


def thesis_reference(output_map, gt_m):
    """The thesis metrics on the 320 x 420 grid: the zoomed float32 prediction x 10 against the
    ground truth resized by nearest neighbour, on its pixels with depth (finite, > 0)."""
    o = oracles.thesis_zoom(output_map, THESIS_SHAPE) * np.float32(10.0)
    g = nearest(gt_m)
    keep = np.isfinite(g) & (g > 0)
    return oracles.thesis_all(o[keep], g[keep])


# --- issue 10 item 4: metres stay exact ------------------------------------------------------

def test_ground_truth_metres_are_kept_as_read(tmp_path):
    rng = np.random.default_rng(0)
    mm = rng.integers(0, 65536, NYU_SHAPE)
    mm[0, :4] = (3300, 6400, 1, 10000)
    write_mm_png(tmp_path / "a.png", mm)
    truth = load_ground_truth(tmp_path / "a.png")
    assert truth.encoding == "mm" and truth.depth_m.dtype == np.float64
    np.testing.assert_array_equal(truth.depth_m, mm / 1000.0)  # 6400 -> 6.4 exactly
    assert truth.depth_m[0, 1] == 6.4 and truth.depth_m[0, 0] == 3.3

    metres = rng.uniform(0.5, 12.0, (48, 64)).astype(np.float32)
    metres[3, 3] = np.nan
    np.save(tmp_path / "b.npy", metres)
    truth = load_ground_truth(tmp_path / "b.npy")
    assert truth.depth_m.dtype == np.float32
    np.testing.assert_array_equal(truth.depth_m, metres)

    grey = rng.integers(0, 256, (30, 40)).astype(np.uint8)
    cv2.imwrite(str(tmp_path / "c.png"), grey)
    scaled = load_ground_truth(tmp_path / "c.png", GroundTruthSettings(depth_scale=0.05))
    assert scaled.encoding == "thesis" and scaled.depth_m.dtype == np.float64
    np.testing.assert_array_equal(scaled.depth_m, grey * 0.05)
    thesis = load_ground_truth(tmp_path / "c.png")  # the original's float32 arithmetic
    np.testing.assert_array_equal(thesis.depth_m,
                                  (grey.astype(np.float32) / np.float32(255)) * np.float32(10))


def test_millimetres_on_the_bounds_are_outside_end_to_end(workspace, maps):
    # 320 x 420 mm ground truths (the thesis grid: no resize): even columns follow the
    # prediction (to the millimetre), odd ones hold the bound, 6400 mm outside (0.001, 6.4)
    # and 3300 mm outside (3.3, 10).  Read as depth / 10 in float32 they would be 6.3999996 m
    # and 3.3000002 m, inside, and d1 would drop to about 0.5.
    for bounds, on_bound in (((1e-3, 6.4), 6400), ((3.3, 10.0), 3300)):
        depths = workspace / f"depths_{on_bound}"
        depths.mkdir()
        truths = {}
        for stem in STEMS:
            mm = np.round(zoomed_m(maps[stem], THESIS_SHAPE) * 1000)
            mm[:, 1::2] = on_bound
            write_mm_png(depths / f"{stem}_depth.png", mm)
            truths[stem] = mm / 1000.0
        out = f"out_{on_bound}"
        assert evaluate(workspace, "--quiet", "--metrics", "standard", "--min-depth",
                        str(bounds[0]), "--max-depth", str(bounds[1]), out=out,
                        depths=depths.name) == 0
        per_image = results(workspace, out)["snapshots"][GOOD]["per_image"]
        for stem in STEMS:
            reference, _, _ = oracles.standard_reference(maps[stem], truths[stem], *bounds,
                                                         False)
            assert_agree(per_image[f"{stem}_colors"], reference, oracles.BTS_KEYS)
            assert per_image[f"{stem}_colors"]["d1"] == reference["d1"] == 1.0


# --- issue 10 item 5: standard metrics at the ground truth's own resolution -----------------

@pytest.mark.parametrize("bounds,crop", [((1e-3, 10.0), "none"), ((3.3, 6.4), "eigen"),
                                         ((0.5, 80.0), "eigen")])
def test_standard_metrics_at_native_resolution_reproduce_bts(workspace, maps, bounds, crop):
    depths = workspace / "depths_nyu"
    depths.mkdir()
    truths = {}
    for seed, stem in enumerate(STEMS):
        mm = nyu_millimetres(maps[stem], seed)
        write_mm_png(depths / f"{stem}_depth.png", mm)
        truths[stem] = mm / 1000.0
    assert evaluate(workspace, "--quiet", "--metrics", "thesis,standard", "--align",
                    ",".join(ALIGNMENTS), "--min-depth", str(bounds[0]), "--max-depth",
                    str(bounds[1]), "--crop", crop, depths="depths_nyu") == 0
    entry = results(workspace)["snapshots"][GOOD]
    for stem in STEMS:
        ours = entry["per_image"][f"{stem}_colors"]
        for align in ALIGNMENTS:
            reference, scale, _ = oracles.standard_reference(maps[stem], truths[stem], *bounds,
                                                             crop == "eigen", align)
            prefix = "" if align == "none" else f"{align}/"
            assert_agree(ours, reference, oracles.BTS_KEYS, prefix)
            if scale is not None:  # median / lsq: the scale of the native evaluation
                assert ours[f"{align}/scale"] == pytest.approx(scale, rel=1e-12)
        # The thesis metrics stay on the thesis' 320 x 420 grid.
        assert_agree(ours, thesis_reference(maps[stem], truths[stem]),
                     {t: t for t in oracles.THESIS_TITLES})


def test_thesis_ground_truth_of_any_size(maps, tmp_path):
    # The golden 8-bit ground truths, 320 x 420 and 480 x 640 (big00000): the thesis metrics
    # as the original (bilinear to 320 x 420, every pixel), the standard ones at the file's size
    # (no crop: BTS's crop indices are for 480 x 640 frames only).
    workspace = make_workspace(tmp_path, stems=("00000", "big00000"))
    assert evaluate(workspace, "--quiet", "--metrics", "thesis,standard") == 0
    entry = results(workspace)["snapshots"][GOOD]
    for stem in ("00000", "big00000"):
        raw = cv2.imread(str(workspace / "depths" / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        native_m = oracles.thesis_ground_truth(raw, raw.shape[:2]) * np.float32(10)
        grid_m = io.resize_bilinear(native_m / np.float32(10), THESIS_SHAPE) * np.float32(10)
        ours = entry["per_image"][f"{stem}_colors"]
        o = oracles.thesis_zoom(maps[stem], THESIS_SHAPE) * np.float32(10)
        assert_agree(ours, oracles.thesis_all(o, grid_m), {t: t for t in oracles.THESIS_TITLES})
        reference, _, _ = oracles.standard_reference(maps[stem], native_m, 1e-3, 10.0, False)
        assert_agree(ours, reference, oracles.BTS_KEYS)


# --- issue 10 item 7: the thesis' G channel; colour-mapped pictures refused -----------------

@pytest.mark.parametrize("shape", [THESIS_SHAPE, NYU_SHAPE])
def test_grey_stored_as_rgb_is_read_as_the_original(tmp_path, shape):
    levels = np.resize(np.arange(256, dtype=np.uint8), shape)
    rgb = np.repeat(levels[:, :, None], 3, axis=2)
    cv2.imwrite(str(tmp_path / "rgb.png"), rgb)
    unit, gt_m = load_ground_truth(tmp_path / "rgb.png").on_thesis_grid()
    reference = oracles.thesis_ground_truth(rgb)
    if shape == THESIS_SHAPE:
        np.testing.assert_array_equal(unit, reference)  # not the luma mix's float32 rounding
        np.testing.assert_array_equal(gt_m, reference * np.float32(10))
    else:  # shrinking uses OpenCV's bilinear resize (docs/metrics.md: within float32 rounding)
        np.testing.assert_allclose(unit, reference, rtol=0, atol=2.4e-7)


def test_colour_mapped_ground_truth_is_refused(workspace, capsys):
    grey = cv2.imread(str(workspace / "depths" / "00000_depth.png"), cv2.IMREAD_UNCHANGED)
    jet = cv2.applyColorMap(grey, cv2.COLORMAP_JET)
    cv2.imwrite(str(workspace / "depths" / "00000_depth.png"), jet)
    for settings in (GroundTruthSettings(), GroundTruthSettings("thesis", 0.04)):
        with pytest.raises(ImageError, match="00000_depth.png: colour-mapped picture, not a "
                                             "depth map"):
            load_ground_truth(workspace / "depths" / "00000_depth.png", settings)
    assert evaluate(workspace, "--quiet") == EXIT_PARTIAL
    err = capsys.readouterr().err
    assert "00000_depth.png: colour-mapped picture, not a depth map" in err
    entry = results(workspace)["snapshots"][GOOD]
    assert list(entry["per_image"]) == ["gray00000_colors"]


# --- issue 11 item 1: bad ground truth is named, and left out of the means ---------------

@pytest.mark.snapshots(GOOD, GLOBAL)
def test_npy_with_nan_holes_and_negative_depths(workspace, maps, capsys):
    depths = workspace / "depths_npy"
    depths.mkdir()
    truths = {}
    for seed, stem in enumerate(STEMS):
        metres = nyu_millimetres(maps[stem], seed) / 1000.0
        metres[metres == 0] = np.nan
        metres[:40, :40] = -2.0
        np.save(depths / f"{stem}_depth.npy", metres)
        truths[stem] = metres
    assert evaluate(workspace, "--metrics", "thesis,standard", "--crop", "eigen",
                    depths="depths_npy") == 0
    err = capsys.readouterr().err
    entry = results(workspace)["snapshots"][GOOD]
    for stem in STEMS:
        ours = entry["per_image"][f"{stem}_colors"]
        assert_agree(ours, thesis_reference(maps[stem], truths[stem]),
                     {t: t for t in oracles.THESIS_TITLES})
        reference, _, _ = oracles.standard_reference(maps[stem], truths[stem], 1e-3, 10.0, True)
        assert_agree(ours, reference, oracles.BTS_KEYS)
        # said once per file (two snapshots), naming it
        lines = [line for line in err.splitlines() if f"/{stem}_depth.npy" in line]
        assert len(lines) == 1 and lines[0].startswith("warning: ") and "no depth" in lines[0]
    assert all(math.isfinite(v) for v in entry["metrics"].values())
    assert entry["metrics"]["AbsRelDiff"] < 2.0 and "metric_images" not in entry


def test_constant_and_empty_ground_truths_are_named_and_left_out(tmp_path, capsys):
    workspace = make_workspace(tmp_path, stems=("00000", "00001", "gray00000"))
    cv2.imwrite(str(workspace / "depths" / "00001_depth.png"), np.full(THESIS_SHAPE, 90, np.uint8))
    cv2.imwrite(str(workspace / "depths" / "gray00000_depth.png"), np.zeros(THESIS_SHAPE, np.uint8))
    assert evaluate(workspace, "--metrics", "thesis,standard") == 0
    err = capsys.readouterr().err
    entry = results(workspace)["snapshots"][GOOD]
    good, constant, empty = (entry["per_image"][f"{s}_colors"]
                             for s in ("00000", "00001", "gray00000"))
    assert math.isnan(constant["MVN"]) and math.isfinite(constant["AbsRelDiff"])
    assert all(math.isnan(v) for v in empty.values())
    assert entry["images_evaluated"] == 3
    # Each mean is over the images where its metric is defined, and says over how many.
    assert entry["metrics"]["MVN"] == good["MVN"]
    assert entry["metrics"]["AbsRelDiff"] == pytest.approx(
        (good["AbsRelDiff"] + constant["AbsRelDiff"]) / 2, rel=1e-15)
    assert entry["metrics"]["AbsRelDiff"] < 1.0  # the empty frame alone would give ~500
    assert entry["metric_images"]["MVN"] == 1
    assert entry["metric_images"]["AbsRelDiff"] == entry["metric_images"]["rmse"] == 2
    assert set(entry["metric_images"]) == {str(k) for k in scoring.ScoringSettings(
        ("thesis", "standard")).metric_keys()}
    warnings = [line for line in err.splitlines() if line.startswith("warning: ")]
    (constant_line,) = [w for w in warnings if "00001_depth.png" in w]
    assert ": MVN undefined for this image (the ground truth is constant)" in constant_line
    (empty_line,) = [w for w in warnings if "gray00000_depth.png" in w]
    assert "AbsRelDiff" in empty_line and "d3" in empty_line
    assert "the ground truth has no pixel with depth" in empty_line
    assert len(warnings) == 2


@pytest.mark.snapshots(GOOD, GLOBAL)
def test_the_golden_run_says_nothing_extra(workspace, capsys):
    assert evaluate(workspace) == 0
    assert evaluate(workspace, "--metrics", "thesis,standard", "--align", "none,mvn,median,lsq",
                    "--crop", "eigen", out="all") == 0
    assert "warning" not in capsys.readouterr().err
    for out in ("out", "all"):
        assert all("metric_images" not in e for e in results(workspace, out)["snapshots"].values())


def test_summary_is_over_defined_values():
    nan, inf = math.nan, math.inf
    key, scale = MetricKey("none", "RMSE"), MetricKey("median", "scale")
    per_image = [{key: 1.0, scale: 2.0}, {key: nan, scale: nan}, {key: 3.0, scale: inf},
                 {key: inf, scale: 4.0}]
    summary = scoring.summarise(per_image)
    assert summary[key] == 2.0
    assert summary[MetricKey("median", "scale_median")] == 3.0
    assert summary[MetricKey("median", "scale_std")] == pytest.approx(np.std([2 / 3, 4 / 3]))
    assert scoring.defined_counts(per_image) == {key: 2, scale: 2}
    assert math.isnan(scoring.summarise([{key: nan}])[key])


# --- issue 11 item 2: floating-point colour inputs ---------------------------------------

def test_float_colour_inputs_must_hold_unit_values(workspace, capsys):
    colour = cv2.imread(str(workspace / "colors" / "00000_colors.png"), cv2.IMREAD_UNCHANGED)
    assert evaluate(workspace, "--quiet", out="png") == 0
    (workspace / "colors" / "00000_colors.png").unlink()
    path = workspace / "colors" / "00000_colors.tif"
    cv2.imwrite(str(path), colour.astype(np.float32) / np.float32(255))
    assert evaluate(workspace, "--quiet", out="unit") == 0  # the same input, the same numbers
    assert (results(workspace, "unit")["snapshots"][GOOD]["metrics"]
            == results(workspace, "png")["snapshots"][GOOD]["metrics"])
    for bad, shown in ((colour.astype(np.float32), "values in [0, 255]"),
                       (np.full(colour.shape, np.nan, np.float32), "NaN or inf")):
        cv2.imwrite(str(path), bad)
        capsys.readouterr()
        assert evaluate(workspace, "--quiet", out="bad") == EXIT_PARTIAL
        (line,) = [l for l in capsys.readouterr().err.splitlines() if "00000_colors.tif" in l]
        assert "floating-point colour input" in line and shown in line
        with pytest.raises(ImageError, match=r"00000_colors\.tif: floating-point"):
            io.load_color_input(path, (218, 298))
