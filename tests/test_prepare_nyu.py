"""``prepare-nyu``: the thesis' NYU Depth v2 preparation (SPEC-nyu.md), on synthetic .mat files.

Every output pixel is compared with an oracle that restates the thesis' arithmetic literally
(explicit MATLAB indexing, float32 products, PIL's crop box, crop.py's six float32 steps), and
the files are read back with pypng (bit depth, colour type, pixels).
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
import png
import pytest
from PIL import Image

from depth_eval import errors, writing as files
from depth_eval.inputs import nyu
from depth_eval.commands import prepare_nyu
from depth_eval.console import Console
from nyu_factory import smooth_scene, write_labeled_mat, write_splits_mat

h5py = pytest.importorskip("h5py")

# Image numbers (1-based) of the synthetic splits: image 4 (number 5) is in both sets, so it is a
# training image (convert.py tests trainNdxs first).
TRAIN, TEST = [2, 5], [1, 3, 4, 5, 6]
TEST_INDICES = [0, 2, 3, 5]
# Hazard rows of image 0 and image 3 (inside the crop window).
ROW_07, ROW_0251, ROW_HALF, ROW_EXACT = 100, 101, 102, 103
EXACT_M, EXACT_CODES = (2.0, 4.0, 8.0, 10.0), (51, 102, 204, 255)
RAMP_ROWS, HOLE_ROWS, FAR_ROWS = slice(80, 240), slice(300, 320), slice(350, 360)


# --- the oracle: the thesis' arithmetic, restated --------------------------------------------

def oracle_rgb(stored: np.ndarray) -> np.ndarray:
    """RGB[y, x, c] = images[i, c, x, y], by explicit indexing."""
    y, x, c = np.indices((480, 640, 3))
    return stored[c, x, y]


def oracle_mm(stored: np.ndarray) -> np.ndarray:
    """int(D * 1000) with the product in float32, D[y, x] = depths[i, x, y]."""
    y, x = np.indices((480, 640))
    product = np.multiply(stored[x, y], np.float32(1000.0), dtype=np.float32)
    assert product.dtype == np.float32
    return np.trunc(product).astype(np.int64)


def pil_crop(frame: np.ndarray) -> np.ndarray:
    """crop.py's PIL crop, box (110, 80, 530, 400)."""
    image = Image.fromarray(frame.astype(np.int32) if frame.ndim == 2 else frame)
    return np.asarray(image.crop((110, 80, 530, 400)))


def oracle_code(mm: np.ndarray) -> np.ndarray:
    """crop.py's six float32 steps; values past 255 saturate (the port's documented choice)."""
    a = mm.astype(np.float32)
    a = np.divide(a, np.float32(65535.0), dtype=np.float32)
    a = np.clip(a, np.float32(0.0039), np.float32(1.0))
    a = np.multiply(a, np.float32(6.5535), dtype=np.float32)
    a = np.multiply(a, np.float32(255.0), dtype=np.float32)
    assert a.dtype == np.float32
    return np.minimum(np.trunc(a), 255).astype(np.int64)


def read_png(path):
    """Pixels and pypng's info of a PNG file."""
    width, height, rows, info = png.Reader(filename=str(path)).read()
    pixels = np.vstack([np.asarray(row, dtype=np.int64) for row in rows])
    shape = (height, width, info["planes"]) if info["planes"] > 1 else (height, width)
    return pixels.reshape(shape), info


# --- synthetic files ------------------------------------------------------------------------

def half_mm_depths() -> np.ndarray:
    """float32 depths whose float32 product with 1000 is exactly k + 0.5 mm."""
    k = np.arange(700, 10000) + 0.5
    depth = (k / 1000).astype(np.float32)
    return depth[depth * np.float32(1000) == k]


def dataset_frames():
    rng = np.random.default_rng(13)
    rgb = rng.integers(0, 256, (6, 480, 640, 3), dtype=np.uint8)
    depth = rng.uniform(0.713, 9.995, (6, 480, 640)).astype(np.float32)
    smooth_rgb, smooth_depth = smooth_scene(7, 2)
    rgb[[2, 5]], depth[[2, 5]] = smooth_rgb, smooth_depth
    # Image 0: the float32 / truncation hazards.
    depth[0, ROW_07, 110:530] = np.float32(0.7)
    depth[0, ROW_0251, 110:530] = np.float32(0.251)
    depth[0, ROW_HALF, 110:530] = half_mm_depths()[::20][:420]
    depth[0, ROW_EXACT, 110:530] = np.tile(np.float32(EXACT_M), 105)
    # Image 3: the lower clip (a 0 .. 0.40 m ramp across the crop) and exact metres.
    depth[3, RAMP_ROWS, 110:530] = np.linspace(0, 0.40, 420, dtype=np.float32)
    depth[3, 240:300, 110:530] = np.tile(np.float32(EXACT_M), 105)
    raw = depth.copy()
    raw[:, HOLE_ROWS, 100:540] = 0  # Kinect holes, across the crop's edges
    raw[3, FAR_ROWS, 110:530] = np.linspace(10.0, 30.0, 420, dtype=np.float32)
    return rgb, depth, raw


@pytest.fixture(scope="module")
def nyu_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("nyu")
    rgb, depth, raw = dataset_frames()
    labeled = write_labeled_mat(folder / "nyu_depth_v2_labeled.mat", rgb, depth, raw)
    splits = write_splits_mat(folder / "splits.mat", TRAIN, TEST)
    with h5py.File(labeled, "r") as f:
        stored = {key: f[key][()] for key in ("images", "depths", "rawDepths")}
    return labeled, splits, stored


def parse(*argv) -> prepare_nyu.PrepareNyuSettings:
    parser = argparse.ArgumentParser(prog="depth-eval prepare-nyu")
    prepare_nyu.add_arguments(parser)
    return prepare_nyu.settings_from_args(parser.parse_args([str(a) for a in argv]))


def console() -> Console:
    return Console(out=io.StringIO(), err=io.StringIO())


def prepare(*argv) -> tuple[int, Console]:
    messages = console()
    return prepare_nyu.run(parse(*argv, "--jobs", "2"), messages), messages


def small_mat(path, count=2, depth=1.0, **kwargs):
    rgb = np.full((count, 480, 640, 3), 50, np.uint8)
    return write_labeled_mat(path, rgb, np.full((count, 480, 640), depth, np.float32), **kwargs)


# --- the arithmetic -------------------------------------------------------------------------

def test_closed_form_is_crop_py_for_every_millimetre():
    mm = np.arange(65536)
    assert np.array_equal(nyu.thesis8(mm)[:10040], oracle_code(mm)[:10040])
    assert (nyu.thesis8(mm)[10040:] == 255).all()
    assert nyu.thesis8(np.array([0, 255, 256, 274, 275, 2000, 4000, 8000, 10000])).tolist() == \
        [6, 6, 6, 6, 7, 51, 102, 204, 255]


def test_millimetres_are_float32_products_truncated():
    depth = np.array([[0.7, 0.251, 2.0, 9.995]], np.float32)
    assert nyu.depth_mm(depth).tolist() == [[700, 250, 2000, 9995]]
    # The hazards are real: float64 products and rounding would give other numbers.
    assert int(np.float64(np.float32(0.7)) * 1000) == 699
    halves = half_mm_depths()[:50]
    assert (nyu.depth_mm(halves) == np.floor(halves * np.float32(1000))).all()
    assert (np.round(halves * np.float32(1000)) != nyu.depth_mm(halves)).sum() >= 20


def test_millimetres_out_of_16_bit_range_are_refused():
    for bad in (-0.5, 65.536, np.nan):
        with pytest.raises(ValueError, match="outside 0 .. 65.535 m"):
            nyu.depth_mm(np.array([[1.0, bad]], np.float32))


# --- the command, every pixel ---------------------------------------------------------------

def test_cropped_outputs_equal_the_thesis_pixel_for_pixel(nyu_files, tmp_path):
    labeled, splits, stored = nyu_files
    status, messages = prepare(labeled, splits, tmp_path / "out")
    assert status == errors.EXIT_OK, messages.err.getvalue()
    colors, depths = tmp_path / "out" / "colors", tmp_path / "out" / "depths"
    assert sorted(p.name for p in colors.glob("*.png")) == [f"{i:05d}_colors.png" for i in TEST_INDICES]
    assert sorted(p.name for p in depths.glob("*.png")) == [f"{i:05d}_depth.png" for i in TEST_INDICES]
    for i in TEST_INDICES:
        rgb, info = read_png(colors / f"{i:05d}_colors.png")
        assert (info["bitdepth"], info["planes"], info["greyscale"]) == (8, 3, False)
        assert "palette" not in info and rgb.shape == (320, 420, 3)
        assert np.array_equal(rgb, pil_crop(oracle_rgb(stored["images"][i])))
        code, info = read_png(depths / f"{i:05d}_depth.png")
        assert (info["bitdepth"], info["planes"], info["greyscale"], info["alpha"]) == (8, 1, True, False)
        assert np.array_equal(code, oracle_code(pil_crop(oracle_mm(stored["depths"][i]))))


def test_full_frame_outputs_equal_convert_py_pixel_for_pixel(nyu_files, tmp_path):
    labeled, splits, stored = nyu_files
    status, _ = prepare(labeled, splits, tmp_path / "out", "--full-frame")
    assert status == errors.EXIT_OK
    for i in TEST_INDICES:
        rgb, info = read_png(tmp_path / "out" / "colors" / f"{i:05d}_colors.png")
        assert (info["bitdepth"], info["planes"], rgb.shape) == (8, 3, (480, 640, 3))
        assert np.array_equal(rgb, oracle_rgb(stored["images"][i]))
        mm, info = read_png(tmp_path / "out" / "depths" / f"{i:05d}_depth.png")
        assert (info["bitdepth"], info["planes"], info["greyscale"], mm.shape) == (16, 1, True, (480, 640))
        assert np.array_equal(mm, oracle_mm(stored["depths"][i]))
    # Pixels where a float64 product would have truncated to another millimetre: the 0.7 m row
    # (420) and dozens of the random ones.
    depth0 = stored["depths"][0].T
    mm0, _ = read_png(tmp_path / "out" / "depths" / "00000_depth.png")
    assert (mm0 != (depth0.astype(np.float64) * 1000).astype(np.int64)).sum() > 420 + 20


def test_hazard_pixels(nyu_files, tmp_path):
    labeled, splits, _ = nyu_files
    assert prepare(labeled, splits, tmp_path / "crop")[0] == errors.EXIT_OK
    assert prepare(labeled, splits, tmp_path / "full", "--full-frame")[0] == errors.EXIT_OK
    mm0, _ = read_png(tmp_path / "full" / "depths" / "00000_depth.png")
    assert (mm0[ROW_07, 110:530] == 700).all() and (mm0[ROW_0251, 110:530] == 250).all()
    halves = half_mm_depths()[::20][:420] * np.float32(1000)
    assert np.array_equal(mm0[ROW_HALF, 110:530], halves - 0.5)  # truncated, never rounded up
    assert mm0[ROW_EXACT, 110:114].tolist() == [2000, 4000, 8000, 10000]
    code0, _ = read_png(tmp_path / "crop" / "depths" / "00000_depth.png")
    assert code0[ROW_07 - 80, 0] == 700 * 51 // 2000 and code0[ROW_0251 - 80, 0] == 6
    assert code0[ROW_EXACT - 80, :4].tolist() == list(EXACT_CODES)
    code3, _ = read_png(tmp_path / "crop" / "depths" / "00003_depth.png")
    ramp = np.linspace(0, 0.40, 420, dtype=np.float32)
    ramp_codes = code3[RAMP_ROWS.start - 80]
    assert (ramp_codes[ramp * np.float32(1000) < 275] == 6).all() and ramp_codes.min() == 6
    assert ramp_codes.max() == 10  # 0.40 m: floor(400 * 0.0255)
    assert code3[240 - 80, :4].tolist() == list(EXACT_CODES)


def test_crop_box_edges(nyu_files, tmp_path):
    labeled, splits, stored = nyu_files
    prepare(labeled, splits, tmp_path / "out")
    rgb = oracle_rgb(stored["images"][2])
    crop, _ = read_png(tmp_path / "out" / "colors" / "00002_colors.png")
    assert np.array_equal(crop[0, 0], rgb[80, 110]) and np.array_equal(crop[-1, -1], rgb[399, 529])
    assert np.array_equal(crop[0, -1], rgb[80, 529]) and np.array_equal(crop[-1, 0], rgb[399, 110])
    assert not np.array_equal(crop[:, 0], rgb[80:400, 109])  # one column off would show


def test_names_are_zero_based_over_the_whole_mat(nyu_files, tmp_path):
    labeled, splits, _ = nyu_files
    prepare(labeled, splits, tmp_path / "train", "--split", "train")
    assert sorted(p.name for p in (tmp_path / "train" / "colors").glob("*.png")) == \
        ["00001_colors.png", "00004_colors.png"]
    prepare(labeled, splits, tmp_path / "all", "--split", "all")
    assert len(list((tmp_path / "all" / "depths").glob("*_depth.png"))) == 6


def test_raw_depth_keeps_holes_and_saturates_far_depths(nyu_files, tmp_path):
    labeled, splits, stored = nyu_files
    status, messages = prepare(labeled, splits, tmp_path / "full", "--full-frame", "--raw-depth")
    assert status == errors.EXIT_OK
    mm3, _ = read_png(tmp_path / "full" / "depths" / "00003_depth.png")
    assert np.array_equal(mm3, oracle_mm(stored["rawDepths"][3]))
    assert (mm3[HOLE_ROWS, 100:540] == 0).all() and mm3[FAR_ROWS, 529].max() == 30000
    status, messages = prepare(labeled, splits, tmp_path / "crop", "--raw-depth")
    assert status == errors.EXIT_OK
    code3, _ = read_png(tmp_path / "crop" / "depths" / "00003_depth.png")
    assert np.array_equal(code3, oracle_code(pil_crop(oracle_mm(stored["rawDepths"][3]))))
    assert (code3[HOLE_ROWS.start - 80: HOLE_ROWS.stop - 80] == 6).all()
    far = code3[FAR_ROWS.start - 80]
    assert far[0] == 255 and (far == 255).all()  # 10 .. 30 m: saturated, not wrapped
    assert "at 10.04 m or more: written as 255" in messages.err.getvalue()


def test_chunked_compressed_file(tmp_path):
    rgb, depth = smooth_scene(3, 3)
    labeled = write_labeled_mat(tmp_path / "l.mat", rgb, depth, compress=True)
    splits = write_splits_mat(tmp_path / "s.mat", [2], [1, 3])
    assert prepare(labeled, splits, tmp_path / "out", "--full-frame")[0] == errors.EXIT_OK
    mm, _ = read_png(tmp_path / "out" / "depths" / "00002_depth.png")
    assert np.array_equal(mm, np.trunc(depth[2] * np.float32(1000)))


def test_reads_one_image_at_a_time(tmp_path):
    """A 2000-image .mat (4 GB as arrays, a few kB on disk: unwritten chunks) costs a few MB."""
    import tracemalloc

    labeled = tmp_path / "big.mat"
    with h5py.File(labeled, "w") as f:
        f.create_dataset("images", (2000, 3, 640, 480), np.uint8, chunks=(1, 3, 640, 480),
                         fillvalue=90)
        f.create_dataset("depths", (2000, 640, 480), np.float32, chunks=(1, 640, 480),
                         fillvalue=2.5)
    splits = write_splits_mat(tmp_path / "s.mat", list(range(4, 2001)), [1, 2, 3])
    tracemalloc.start()
    try:
        status, _ = prepare(labeled, splits, tmp_path / "out", "--full-frame")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert status == errors.EXIT_OK and peak < 64e6
    assert (read_png(tmp_path / "out" / "depths" / "00002_depth.png")[0] == 2500).all()


def test_a_depth_without_millimetres_skips_that_image(tmp_path):
    depth = np.full((2, 480, 640), 1.5, np.float32)
    depth[1, 5, 7] = np.nan
    labeled = write_labeled_mat(tmp_path / "l.mat", np.zeros((2, 480, 640, 3), np.uint8), depth)
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    status, messages = prepare(labeled, splits, tmp_path / "out")
    assert status == errors.EXIT_PARTIAL
    assert "depths of image 1: 1 depth values outside 0 .. 65.535 m" in messages.err.getvalue()
    assert (tmp_path / "out" / "depths" / "00000_depth.png").is_file()
    assert not (tmp_path / "out" / "depths" / "00001_depth.png").exists()


# --- files: never a user's, rerun-safe ------------------------------------------------------

def test_never_overwrites_a_file_it_did_not_write(tmp_path):
    labeled = small_mat(tmp_path / "l.mat")
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    mine = tmp_path / "out" / "depths" / "00001_depth.png"
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"the user's own file")
    with pytest.raises(errors.OutputError, match="00001_depth.png: exists and was not written"):
        prepare(labeled, splits, tmp_path / "out")
    assert mine.read_bytes() == b"the user's own file"
    assert [p.name for p in (tmp_path / "out").rglob("*.png")] == ["00001_depth.png"]
    assert not list((tmp_path / "out").rglob(files.MANIFEST_NAME))  # nothing claimed either


def test_rerun_rewrites_its_own_files(tmp_path):
    labeled = small_mat(tmp_path / "l.mat", depth=2.0)
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    assert prepare(labeled, splits, tmp_path / "out")[0] == errors.EXIT_OK
    target = tmp_path / "out" / "depths" / "00000_depth.png"
    target.write_bytes(b"stale")
    small_mat(labeled, depth=4.0)
    assert prepare(labeled, splits, tmp_path / "out")[0] == errors.EXIT_OK
    assert (read_png(target)[0] == 102).all()
    manifest = files.read_manifest((tmp_path / "out" / "depths" / files.MANIFEST_NAME).read_bytes())
    assert sorted(manifest) == ["00000_depth.png", "00001_depth.png"]
    assert not [p for p in (tmp_path / "out").rglob("*") if p.name.endswith(".tmp")]


# --- errors: one line naming the file -------------------------------------------------------

def run_error(tmp_path, labeled, splits, *extra):
    with pytest.raises(errors.DepthEvalError) as caught:
        prepare(labeled, splits, tmp_path / "out", *extra)
    message = str(caught.value)
    assert "\n" not in message and caught.value.exit_status == errors.EXIT_NOTHING
    assert not list(tmp_path.glob("out/*/*.png"))
    return message


def test_an_image_in_neither_split_is_refused(tmp_path):
    labeled = small_mat(tmp_path / "l.mat", count=3)
    splits = write_splits_mat(tmp_path / "s.mat", [1], [3])
    assert "image 1 (number 2) of" in run_error(tmp_path, labeled, splits)


@pytest.mark.parametrize("content, expected", [
    (dict(depth_m=None), "no depths dataset"),
    (dict(rgb=np.zeros((2, 480, 600, 3), np.uint8)), "images is 2 x 3 x 600 x 480, expected N x 3 x 640 x 480"),
    (dict(depth_m=np.zeros((3, 480, 640), np.float32)), "2 images but 3 depths"),
    (dict(depth_m=np.zeros((2, 480, 640), np.uint16)), "depths is uint16, expected float32"),
])
def test_a_mat_of_the_wrong_layout_is_refused(tmp_path, content, expected):
    frames = dict(rgb=np.zeros((2, 480, 640, 3), np.uint8), depth_m=np.ones((2, 480, 640), np.float32))
    labeled = write_labeled_mat(tmp_path / "l.mat", **{**frames, **content})
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    message = run_error(tmp_path, labeled, splits)
    assert message.startswith(str(labeled)) and expected in message


def test_raw_depth_needs_raw_depths(tmp_path):
    labeled = small_mat(tmp_path / "l.mat")
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    assert "no rawDepths dataset" in run_error(tmp_path, labeled, splits, "--raw-depth")


@pytest.mark.parametrize("train, test, expected", [
    ([1], None, "no testNdxs"),
    (None, [1, 2], "no trainNdxs"),
    ([1], [2, 3], "testNdxs has image number 3, but"),
    ([0], [1, 2], "trainNdxs holds 0, not a 1-based image number"),
    ([1, 2], [], "the test split has no images"),
])
def test_splits_that_do_not_fit_are_refused(tmp_path, train, test, expected):
    labeled = small_mat(tmp_path / "l.mat")
    splits = write_splits_mat(tmp_path / "s.mat", train, test)
    message = run_error(tmp_path, labeled, splits)
    assert message.startswith(str(splits)) and expected in message


def test_swapped_or_foreign_files_are_refused(tmp_path):
    labeled = small_mat(tmp_path / "l.mat")
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    assert "LABELED_MAT and SPLITS_MAT swapped?" in run_error(tmp_path, splits, labeled)
    text = tmp_path / "notes.mat"
    text.write_text("not a mat file")
    assert "not a MATLAB v7.3 (HDF5) file" in run_error(tmp_path, text, splits)
    assert "not a MATLAB splits file" in run_error(tmp_path, labeled, text)


def test_settings_are_checked_before_any_work(tmp_path):
    labeled = small_mat(tmp_path / "l.mat")
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    (tmp_path / "file").write_text("")
    cases = [((tmp_path / "missing.mat", splits, tmp_path / "o"), "missing.mat: no such file"),
             ((labeled, tmp_path, tmp_path / "o"), "is a folder"),
             ((labeled, splits, tmp_path / "file"), "file: exists and is not a folder"),
             ((labeled, splits, tmp_path / "o", "--jobs", "0"), "--jobs must be at least 1")]
    for argv, expected in cases:
        with pytest.raises(errors.UsageError, match=expected):
            parse(*argv)
    settings = parse(labeled, splits, tmp_path / "o", "--full-frame", "--split", "all", "--jobs", "3")
    assert settings == prepare_nyu.PrepareNyuSettings(labeled, splits, tmp_path / "o", True, "all",
                                                      False, 3, False)
    assert not (tmp_path / "o").exists()


def test_missing_h5py_says_how_to_install(tmp_path, monkeypatch):
    labeled = small_mat(tmp_path / "l.mat")
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    monkeypatch.setitem(sys.modules, "h5py", None)  # what an uninstalled package imports as
    with pytest.raises(errors.UsageError, match=r"pip install 'depth_eval\[nyu\]'"):
        parse(labeled, splits, tmp_path / "o")


def test_quiet_run_prints_nothing_and_summary_otherwise(tmp_path, capsys):
    labeled = small_mat(tmp_path / "l.mat")
    splits = write_splits_mat(tmp_path / "s.mat", [], [1, 2])
    messages = Console(quiet=True, out=io.StringIO(), err=io.StringIO())
    assert prepare_nyu.run(parse(labeled, splits, tmp_path / "q", "--quiet"), messages) == 0
    assert messages.out.getvalue() == messages.err.getvalue() == capsys.readouterr().err == ""
    status, messages = prepare(labeled, splits, tmp_path / "v")
    assert "2 images of the NYU Depth v2 test split" in messages.out.getvalue()
    assert "NYU test: 2/2 images" in capsys.readouterr().err


def test_the_two_commands_from_the_mat_to_the_thesis_numbers(nyu_files, tmp_path):
    """docs/nyu.md: ``depth-eval prepare-nyu`` then ``test_depth.py`` on its folders."""
    from depth_eval import cli
    from helpers import GOLDEN_E2E, GOOD

    labeled, splits, _ = nyu_files
    out = tmp_path / "nyu"
    assert cli.main(["prepare-nyu", str(labeled), str(splits), str(out), "--quiet"]) == 0
    snapshots = tmp_path / "snapshots"
    snapshots.mkdir()
    for suffix in (".prototxt", ".caffemodel"):
        (snapshots / f"{GOOD}{suffix}").write_bytes((GOLDEN_E2E / "snapshots" /
                                                    f"{GOOD}{suffix}").read_bytes())
    status = cli.main([str(out / "colors"), str(out / "depths"), str(tmp_path / "eval"),
                       str(snapshots), "--quiet"])
    assert status == 0
    import json

    entry = json.loads((tmp_path / "eval" / "results.json").read_text())["snapshots"][GOOD]
    assert entry["images_evaluated"] == len(TEST_INDICES)
    assert 0.0 < entry["metrics"]["RMSE"] < 10.0
