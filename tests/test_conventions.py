"""Input conventions and output meanings checked against real Caffe (tests/data/golden/preprocess):
the Transformer's blobs, the forward pass on both engines, and the CLI's predictions decoded and
upsampled as the thesis does; sidecars, train_val transform_params, precedence and refusals."""

from __future__ import annotations

import gzip
import importlib.util
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from depth_eval import cli
from depth_eval.caffe import conventions as caffe_conventions
from depth_eval.engines import load_engine
from depth_eval.engines.base import DEPTH_OUTPUT
from depth_eval.errors import SnapshotError
from depth_eval.inputs import images
from depth_eval.inputs.conventions import (
    SIDECAR_SUFFIX, InputConvention, MeanImage, OutputMeaning,
    options_from_values, thesis_convention)
from depth_eval.scoring.alignments import align_least_squares_inverse
from depth_eval.settings import EngineSettings
from helpers import GOLDEN, GOLDEN_E2E, GOOD, REPO, evaluate, relative_range_error, results

PREPROCESS = GOLDEN / "preprocess"
META = json.loads((PREPROCESS / "meta.json").read_text())
GOLDEN_SCENE = np.load(PREPROCESS / "90000_colors.npz")
SCENE = REPO / "examples" / "colors" / "90000_colors.png"
CONFIGS = tuple(META["configs"])
# The network Caffe ran: the e2e refining definition with the weights kept beside the data.
PROTOTXT = GOLDEN_E2E / "snapshots" / f"{GOOD}.prototxt"
CAFFEMODEL = PREPROCESS / f"{GOOD}.caffemodel"
# Both engines; onnxruntime only where it is installed (the 'fast' extra).
ENGINE_NAMES = ["opencv", pytest.param("onnxruntime", marks=pytest.mark.skipif(
    importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime not installed"))]
# Tolerances of the issue: blobs within 1e-5 of the Transformer's, outputs within 1e-4 of
# Caffe's output range.
BLOB_TOLERANCE, OUTPUT_TOLERANCE = 1e-5, 1e-4


def unpack_mean(folder: Path) -> Path:
    """The golden mean image as a .binaryproto file in ``folder``."""
    path = folder / "mean.binaryproto"
    path.write_bytes(gzip.decompress((PREPROCESS / "mean.binaryproto.gz").read_bytes()))
    return path


def config_values(name: str, mean_path: Path) -> dict:
    """meta.json's configuration as the tool's options (long names, TOML values)."""
    config = META["configs"][name]
    values = {"raw-scale": config["raw_scale"]}
    if "channel_swap" in config:
        values["channel-swap"] = config["channel_swap"]
    kind, mean = config["mean"]
    if kind == "file":
        values["mean-file"] = str(mean_path)
    else:
        values["mean-values"] = [mean] if kind == "scalar" else mean
    if "input_scale" in config:
        values["input-scale"] = config["input_scale"]
    return values


def convention_for(values: dict, tmp_path: Path):
    options = options_from_values(values)
    return caffe_conventions.snapshot_convention(options, tmp_path / "none.caffemodel",
                                                 input_shape=tuple(META["input_shape"]))


@pytest.mark.parametrize("name", CONFIGS)
def test_every_convention_makes_the_transformers_blob(name, tmp_path):
    convention = convention_for(config_values(name, unpack_mean(tmp_path)), tmp_path)
    blob = images.to_network_blob(GOLDEN_SCENE["resized"], convention.input)
    expected = GOLDEN_SCENE[f"{name}.input_rows"]  # the blob's first rows (README there)
    assert blob.dtype == np.float32 and blob.shape == tuple(META["input_shape"])
    np.testing.assert_allclose(blob[:, :, :expected.shape[2]], expected, rtol=0,
                               atol=BLOB_TOLERANCE)


def test_the_thesis_default_is_bit_identical_and_the_reading_matches_the_transformers():
    resized = GOLDEN_SCENE["resized"]
    rows = GOLDEN_SCENE["thesis.input_rows"].shape[2]
    assert np.array_equal(images.to_network_blob(resized)[:, :, :rows],
                          GOLDEN_SCENE["thesis.input_rows"])
    chw = np.ascontiguousarray(resized.transpose(2, 0, 1), dtype=np.float32)
    assert np.array_equal(images.to_network_blob(resized),
                          (chw * np.float32(255.0) - np.float32(127.0))[np.newaxis])
    spelled_out = convention_for({"raw-scale": 255, "mean-values": [127]}, Path("."))
    assert spelled_out.same_numbers(thesis_convention())
    assert np.array_equal(images.to_network_blob(resized, spelled_out.input),
                          images.to_network_blob(resized))
    # The example PNG read and resized as every input is: the Transformer's input.
    read = images.load_color_input(SCENE, tuple(META["input_shape"][2:]))
    np.testing.assert_allclose(read, resized, rtol=0, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_both_engines_give_caffes_output_for_every_convention(engine, tmp_path):
    net = load_engine(EngineSettings(name=engine), PROTOTXT, CAFFEMODEL, DEPTH_OUTPUT)
    mean_path = unpack_mean(tmp_path)
    for name in CONFIGS:
        convention = convention_for(config_values(name, mean_path), tmp_path)
        output = net.forward(images.to_network_blob(GOLDEN_SCENE["resized"], convention.input))
        expected = GOLDEN_SCENE[f"{name}.output"]
        assert relative_range_error(output, expected) < OUTPUT_TOLERANCE, name


# ------------------------------------------------------------------------------------------
# The command line, end to end: predictions against Caffe's output decoded and upsampled


def predict_workspace(tmp_path: Path, prototxt_text: str | None = None) -> Path:
    (tmp_path / "colors").mkdir()
    shutil.copy(SCENE, tmp_path / "colors")
    folder = tmp_path / "snapshots"
    folder.mkdir()
    shutil.copy(CAFFEMODEL, folder / "net.caffemodel")
    (folder / "net.prototxt").write_text(prototxt_text or PROTOTXT.read_text())
    return tmp_path


def predict(workspace: Path, *options) -> tuple[int, np.ndarray | None]:
    status = cli.main(["predict", str(workspace / "colors"), str(workspace / "out"),
                       str(workspace / "snapshots"), *options])
    path = workspace / "out_abs" / "net" / "90000_depth.npy"
    return status, np.load(path) if path.exists() else None


# The depth in metres of an output o, by kind and M (the formulas).
DECODED_M = {"depth": lambda o, m: m * o, "inverse": lambda o, m: m / o,
             "log": lambda o, m: m * np.exp((o - 1.0) / 0.179581)}


def thesis_upsampled(output: np.ndarray, meaning: OutputMeaning) -> np.ndarray:
    """What the thesis does with Caffe's output blob: decoded to metres, then zoomed to
    320 x 420 by scipy.ndimage.zoom(order=3) of the 1 x 1 x h x w blob."""
    from scipy.ndimage import zoom

    depth_m = DECODED_M[meaning.kind](output.astype(np.float64), meaning.scale)
    h, w = depth_m.shape[-2:]
    return zoom(depth_m.reshape(1, 1, h, w), (1, 1, 320 / h, 420 / w), order=3)[0, 0]


def write_sidecar(workspace: Path, text: str, name: str = "net") -> Path:
    path = workspace / "snapshots" / f"{name}{SIDECAR_SUFFIX}"
    path.write_text(text)
    return path


def assert_matches_caffe(depth_m, output, meaning):
    expected = thesis_upsampled(output, meaning)
    assert depth_m is not None and depth_m.shape == expected.shape
    assert relative_range_error(depth_m, expected) < OUTPUT_TOLERANCE


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_cli_bgr_mean_values_as_classify_names_them(tmp_path, engine):
    workspace = predict_workspace(tmp_path)
    status, depth = predict(workspace, "--channel-swap", "2,1,0", "--raw-scale", "255",
                            "--mean-values", "104,117,123", "--engine", engine)
    assert status == 0
    assert_matches_caffe(depth, GOLDEN_SCENE["bgr_mean_values.output"], OutputMeaning())


def test_cli_default_is_the_thesis(tmp_path):
    status, depth = predict(predict_workspace(tmp_path))
    assert status == 0
    assert_matches_caffe(depth, GOLDEN_SCENE["thesis.output"], OutputMeaning())


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_sidecar_mean_image_and_input_scale_with_a_metric_output(tmp_path, engine):
    workspace = predict_workspace(tmp_path)
    unpack_mean(workspace / "snapshots")
    write_sidecar(workspace, 'channel-swap = [2, 1, 0]\nraw-scale = 255.0\n'
                             'mean-file = "mean.binaryproto"\ninput-scale = 0.017\n'
                             'output-scale = 1.0\noutput-kind = "depth"\n')
    status, depth = predict(workspace, "--engine", engine)
    assert status == 0
    assert_matches_caffe(depth, GOLDEN_SCENE["bgr_mean_file_scaled.output"],
                         OutputMeaning("depth", 1.0))


def test_sidecar_rgb_unit_range_with_a_log_output(tmp_path):
    workspace = predict_workspace(tmp_path)
    write_sidecar(workspace, 'raw-scale = 1\nmean-values = [0.485, 0.456, 0.406]\n'
                             'input-scale = 4.0\noutput-kind = "log"\noutput-scale = 20\n')
    status, depth = predict(workspace)
    assert status == 0
    assert_matches_caffe(depth, GOLDEN_SCENE["rgb_unit_range_std.output"],
                         OutputMeaning("log", 20.0))


TRAIN_VAL = """
name: "train_val"
layer {
  name: "train-images" type: "Data" top: "X" top: "label"
  include { phase: TRAIN }
  transform_param { mirror: true crop_size: 218 mean_value: 1 scale: 3 }
  data_param { source: "train_lmdb" batch_size: 8 backend: LMDB }
}
layer {
  name: "test-images" type: "Data" top: "X" top: "label"
  include { phase: TEST }
  transform_param { mirror: false mean_file: "%s" scale: 0.017 }
  data_param { source: "test_lmdb" batch_size: 1 backend: LMDB }
}
layer { name: "conv" type: "Convolution" bottom: "X" top: "conv" }
"""


def test_transform_from_reads_the_test_phase_data_layer(tmp_path):
    workspace = predict_workspace(tmp_path)
    data = workspace / "training"
    data.mkdir()
    unpack_mean(data)
    (data / "train_val.prototxt").write_text(TRAIN_VAL % "mean.binaryproto")
    status, depth = predict(workspace, "--transform-from", str(data / "train_val.prototxt"))
    assert status == 0
    assert_matches_caffe(depth, GOLDEN_SCENE["bgr_mean_file_scaled.output"], OutputMeaning())


def test_transform_from_in_a_sidecar_legacy_layers_form(tmp_path):
    workspace = predict_workspace(tmp_path)
    unpack_mean(workspace / "snapshots")
    (workspace / "snapshots" / "tv.prototxt").write_text(
        'layers { name: "d" type: DATA top: "X" include { phase: TEST }\n'
        '  transform_param { mean_file: "mean.binaryproto" scale: 0.017 } }\n')
    write_sidecar(workspace, 'transform-from = "tv.prototxt"\n')
    status, depth = predict(workspace)
    assert status == 0
    assert_matches_caffe(depth, GOLDEN_SCENE["bgr_mean_file_scaled.output"], OutputMeaning())


INVERSE_TAIL = """
layer { name: "abs" type: "AbsVal" bottom: "depth-lin" top: "depth-abs" }
layer { name: "shift" type: "Power" bottom: "depth-abs" top: "depth-refine"
        power_param { shift: 0.5 } }
"""


def positive_prototxt() -> str:
    """The refining network whose output is made positive (|o| + 0.5): an inverse depth."""
    text = PROTOTXT.read_text()
    last = text.rindex('top: "depth-refine"')
    return text[:last] + 'top: "depth-lin"' + text[last + len('top: "depth-refine"'):] \
        + INVERSE_TAIL


@pytest.mark.parametrize("engine", ENGINE_NAMES)
def test_inverse_depth_output(tmp_path, engine):
    workspace = predict_workspace(tmp_path, positive_prototxt())
    status, depth = predict(workspace, "--output-kind", "inverse", "--output-scale", "2",
                            "--engine", engine)
    assert status == 0
    caffe_output = np.abs(GOLDEN_SCENE["thesis.output"]) + np.float32(0.5)
    assert_matches_caffe(depth, caffe_output, OutputMeaning("inverse", 2.0))


def test_inverse_output_that_is_not_positive_skips_the_snapshot(tmp_path, capsys):
    workspace = predict_workspace(tmp_path)  # outputs with negative values
    status, depth = predict(workspace, "--output-kind", "inverse")
    assert status != 0 and depth is None
    err = capsys.readouterr().err
    assert "net.caffemodel" in err and "inverse-depth output" in err and "not positive" in err


# ------------------------------------------------------------------------------------------
# Levels: sidecar over command line over defaults; --log; refusals


def test_sidecar_key_wins_over_the_command_line(tmp_path, capsys):
    workspace = predict_workspace(tmp_path)
    sidecar = write_sidecar(workspace, "mean-values = [104, 117, 123]\n")
    # The command line's mean (a mean image) is replaced by the sidecar's mean values; its
    # channel swap stays.
    unpack_mean(tmp_path)
    status, depth = predict(workspace, "--channel-swap", "2,1,0",
                            "--mean-file", str(tmp_path / "mean.binaryproto"))
    assert status == 0
    assert_matches_caffe(depth, GOLDEN_SCENE["bgr_mean_values.output"], OutputMeaning())
    assert f"note: net: input convention and output meaning from {sidecar}" in \
        capsys.readouterr().err


def test_log_is_output_kind_log_with_the_thesis_scale(tmp_path):
    workspace = predict_workspace(tmp_path)
    _, logged = predict(workspace, "--log")
    shutil.rmtree(workspace / "out_abs")
    _, kind = predict(workspace, "--output-kind", "log")
    assert np.array_equal(logged, kind)
    assert_matches_caffe(logged, GOLDEN_SCENE["thesis.output"], OutputMeaning("log", 10.0))
    assert thesis_convention(True).output == OutputMeaning("log", 10.0)


def test_log_contradicting_output_kind_is_a_usage_error(tmp_path, capsys):
    status, _ = predict(predict_workspace(tmp_path), "--log", "--output-kind", "inverse")
    assert status == 2 and "--log" in capsys.readouterr().err


@pytest.mark.parametrize("text, key, reason", [
    ("mean-value = [1, 2, 3]\n", "mean-value", "unknown key"),
    ("channel-swap = [3, 1, 0]\n", "channel-swap", "channel indices"),
    ("raw-scale = -1\n", "raw-scale", "positive number"),
    ("output-kind = \"disparity\"\n", "output-kind", "depth, log, inverse"),
    ("mean-values = [1, 2]\n", "mean-values", "1 or 3 numbers"),
    ('mean-values = [1, 2, 3]\nmean-file = "m.npy"\n', "mean-file", "both given"),
])
def test_bad_sidecar_is_refused_with_file_key_and_reason(tmp_path, capsys, text, key, reason):
    workspace = predict_workspace(tmp_path)
    sidecar = write_sidecar(workspace, text)
    status, depth = predict(workspace)
    assert status != 0 and depth is None
    err = capsys.readouterr().err
    assert str(sidecar) in err and f"'{key}'" in err and reason in err


def test_sidecar_that_is_not_toml(tmp_path, capsys):
    workspace = predict_workspace(tmp_path)
    sidecar = write_sidecar(workspace, "raw-scale = = 3\n")
    status, _ = predict(workspace)
    assert status != 0 and f"{sidecar}: not valid TOML" in capsys.readouterr().err


@pytest.mark.parametrize("option, value, message", [
    ("--channel-swap", "2,1", "channel indices"),
    ("--mean-values", "1,x,3", "comma list of numbers"),
    ("--input-scale", "0", "positive number"),
])
def test_bad_command_line_values_are_usage_errors(tmp_path, capsys, option, value, message):
    try:
        status, _ = predict(predict_workspace(tmp_path), option, value)
    except SystemExit as exit_:  # argparse's refusal of a value it cannot parse
        status = exit_.code
    assert status == 2 and message in capsys.readouterr().err


def test_missing_mean_file_on_the_command_line(tmp_path, capsys):
    status, _ = predict(predict_workspace(tmp_path), "--mean-file", str(tmp_path / "no.npy"))
    assert status == 2 and "--mean-file file does not exist" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------
# Mean images: sizes, formats; train_val details


def test_mean_image_of_another_size_is_refused_with_its_channel_means(tmp_path):
    mean = np.stack([np.full((10, 12), v, np.float32) for v in (104.0, 117.0, 123.0)])
    np.save(tmp_path / "small.npy", mean)
    options = options_from_values({"mean-file": str(tmp_path / "small.npy")})
    with pytest.raises(SnapshotError) as caught:
        caffe_conventions.snapshot_convention(options, tmp_path / "s.caffemodel",
                                              input_shape=(1, 3, 218, 298))
    message = str(caught.value)
    assert "small.npy is 10 x 12, the network's input 218 x 298" in message
    assert "--mean-values 104,117,123" in message


def test_a_train_val_crop_size_centre_crops_a_larger_mean_as_the_data_transformer(tmp_path):
    mean = np.arange(3 * 9 * 8, dtype=np.float32).reshape(3, 9, 8)
    image = MeanImage(mean, "m.npy", "0" * 64)
    fitted = InputConvention(mean=image, crop_size=5).fitted((1, 3, 5, 5))
    # DataTransformer, TEST phase: h_off = (9 - 5) // 2 = 2, w_off = (8 - 5) // 2 = 1.
    assert np.array_equal(fitted.mean.values, mean[:, 2:7, 1:6])
    with pytest.raises(ValueError, match="must have the input's size"):
        InputConvention(mean=image, crop_size=4).fitted((1, 3, 5, 5))


def test_npy_and_binaryproto_means_read_alike(tmp_path):
    proto_mean = caffe_conventions.read_mean_file(unpack_mean(tmp_path))
    np.save(tmp_path / "mean.npy", proto_mean.values.astype(np.float64))
    npy_mean = caffe_conventions.read_mean_file(tmp_path / "mean.npy")
    assert proto_mean.shape == (3, 218, 298)
    assert np.array_equal(proto_mean.values, npy_mean.values)
    (tmp_path / "bad.binaryproto").write_bytes(b"\xff\xff\xff")
    with pytest.raises(SnapshotError, match="bad.binaryproto"):
        caffe_conventions.read_mean_file(tmp_path / "bad.binaryproto")


def test_train_val_choice_of_data_layer_and_refusals(tmp_path):
    two = tmp_path / "two.prototxt"
    two.write_text(
        'layer { name: "rgb" type: "Data" top: "image" transform_param { mean_value: 5 } }\n'
        'layer { name: "depth" type: "Data" top: "depth" transform_param { scale: 0.1 } }\n')
    values = caffe_conventions.transform_values(two, "image", overridden_mean=False)
    assert values["mean"] == (5.0,) and values["input_scale"] is None
    assert values["channel_swap"] == (2, 1, 0) and values["raw_scale"] == 255.0
    with pytest.raises(SnapshotError, match="several TEST-phase data layer"):
        caffe_conventions.transform_values(two, "X", overridden_mean=False)
    none = tmp_path / "none.prototxt"
    none.write_text('layer { name: "in" type: "Input" top: "X" }\n')
    with pytest.raises(SnapshotError, match="no TEST-phase data layer"):
        caffe_conventions.transform_values(none, "X", overridden_mean=False)


# ------------------------------------------------------------------------------------------
# Output meanings and the inverse-depth alignment


def test_output_meanings_decode_to_the_thesis_unit():
    o = np.array([[0.5, 1.0], [2.0, 4.0]], np.float32)
    assert OutputMeaning().decode(o) is o  # the thesis' depth / 10, untouched
    np.testing.assert_allclose(OutputMeaning("depth", 1.0).decode(o) * 10, o, rtol=1e-7)
    np.testing.assert_allclose(OutputMeaning("inverse", 3.0).decode(o) * 10, 3.0 / o, rtol=1e-6)
    np.testing.assert_allclose(OutputMeaning("log", 10.0).decode(o),
                               np.exp((o - 1) / 0.179581), rtol=1e-6)


def test_lsq_in_inverse_depth_recovers_an_affine_disparity():
    rng = np.random.default_rng(3)
    gt = rng.uniform(0.5, 8.0, (20, 30))
    prediction = 1.0 / (0.25 / gt + 0.1)  # disparity = 0.25 * true disparity + 0.1
    mask = np.ones_like(gt, dtype=bool)
    aligned, scale, shift = align_least_squares_inverse(prediction, gt, mask, max_depth=10.0)
    np.testing.assert_allclose(aligned, gt, rtol=1e-9)
    assert scale == pytest.approx(4.0) and shift == pytest.approx(-0.4)


def test_evaluate_lsq_of_an_inverse_output_fits_in_inverse_depth(tmp_path):
    workspace = predict_workspace(tmp_path, positive_prototxt())
    (workspace / "depths").mkdir()
    gt = np.clip(np.linspace(40, 250, 420 * 320).reshape(320, 420), 1, 255).astype(np.uint8)
    cv2.imwrite(str(workspace / "depths" / "90000_depth.png"), gt)
    out = workspace / "out"
    status = cli.main([str(workspace / "colors"), str(workspace / "depths"), str(out),
                       str(workspace / "snapshots"), "--output-kind", "inverse",
                       "--align", "lsq", "--metrics", "standard"])
    assert status == 0
    entry = json.loads((out / "results.json").read_text())["snapshots"]["net"]
    assert entry["convention"]["output-kind"] == "inverse"
    # The scale is fitted in inverse depth: disparity scale, not depth scale.
    prediction_m = thesis_upsampled(np.abs(GOLDEN_SCENE["thesis.output"]) + np.float32(0.5),
                                    OutputMeaning("inverse", 10.0))
    gt_m = cv2.imread(str(workspace / "depths" / "90000_depth.png"), -1) / 255.0 * 10.0
    _, scale, _ = align_least_squares_inverse(prediction_m, gt_m,
                                              (gt_m > 1e-3) & (gt_m < 10.0), 10.0)
    assert entry["per_image"]["90000_colors"]["lsq/scale"] == pytest.approx(scale, rel=1e-4)


# ------------------------------------------------------------------------------------------
# results.json and the results store


def reuse_counts(workspace: Path) -> tuple[int, int]:
    entry = results(workspace)["snapshots"][GOOD]
    return entry["images_reused"], entry["images_computed"]


def test_the_store_never_reuses_units_of_another_convention(workspace):
    assert evaluate(workspace) == 0
    default = results(workspace)["snapshots"][GOOD]
    assert default["convention"] == thesis_convention().record()
    assert evaluate(workspace) == 0 and reuse_counts(workspace) == (2, 0)
    sidecar = workspace / "snapshots" / f"{GOOD}{SIDECAR_SUFFIX}"
    sidecar.write_text("channel-swap = [2, 1, 0]\nmean-values = [104, 117, 123]\n")
    assert evaluate(workspace) == 0 and reuse_counts(workspace) == (0, 2)
    swapped = results(workspace)["snapshots"][GOOD]
    assert swapped["convention"]["channel-swap"] == [2, 1, 0]
    assert swapped["convention"]["from"] == [str(sidecar)]
    assert swapped["metrics"] != default["metrics"]
    assert evaluate(workspace) == 0 and reuse_counts(workspace) == (2, 0)
    # The same options from the command line: the same numbers, the same units.
    sidecar.unlink()
    assert evaluate(workspace, "--channel-swap", "2,1,0", "--mean-values",
                    "104,117,123") == 0
    assert reuse_counts(workspace) == (2, 0)
    assert results(workspace)["snapshots"][GOOD]["metrics"] == swapped["metrics"]
    # A mean file's contents, not its name, are in the key.
    mean = np.stack([np.full((218, 298), v, np.float32) for v in (104.0, 117.0, 123.0)])
    np.save(workspace / "mean.npy", mean)
    assert evaluate(workspace, "--channel-swap", "2,1,0", "--mean-file",
                    str(workspace / "mean.npy")) == 0
    assert reuse_counts(workspace) == (0, 2)
    np.save(workspace / "mean.npy", mean + 1)
    assert evaluate(workspace, "--channel-swap", "2,1,0", "--mean-file",
                    str(workspace / "mean.npy")) == 0
    assert reuse_counts(workspace) == (0, 2)


def test_thesis_default_unit_keys_are_those_of_the_run_options(workspace):
    """A snapshot of the thesis' convention (here --log's) keeps the keys runs made before
    conventions existed; any other convention adds its values to them."""
    from depth_eval import tasks
    from depth_eval.commands import evaluate as evaluate_command
    from depth_eval.console import Console
    from depth_eval.execution.stored_units import StoredRun
    from depth_eval.inputs.discover import find_snapshots

    args = cli.parse([str(workspace / "colors"), str(workspace / "depths"),
                      str(workspace / "out"), str(workspace / "snapshots"), "--log"])
    settings = evaluate_command.settings_from_args(args)
    task = tasks.get(settings.task)(settings)
    (workspace / "out").mkdir()  # the run makes OUT_DIR before it opens the store in it
    stored = StoredRun.open(settings, task, task.find_items(Console(quiet=True)))
    try:
        snapshot, = find_snapshots(workspace / "snapshots")
        assert stored.snapshot_options(snapshot) == settings.numbers_options()
        (workspace / "snapshots" / f"{GOOD}{SIDECAR_SUFFIX}").write_text("output-scale = 1\n")
        options = stored.snapshot_options(snapshot)
        assert options["convention"]["output-scale"] == 1.0
        assert options["convention"]["output-kind"] == "log"  # --log, from the command line
    finally:
        stored.close(0)


def test_gradients_take_the_input_options_only(workspace, capsys):
    from depth_eval.commands import gradients

    args = cli.parse(["gradients", str(workspace / "colors"), str(workspace / "depths"),
                      str(workspace / "out"), str(workspace / "snapshots"),
                      "--channel-swap", "2,1,0"])
    assert gradients.settings_from_args(args).engine.convention.channel_swap == (2, 1, 0)
    with pytest.raises(SystemExit):
        cli.parse(["gradients", str(workspace / "colors"), str(workspace / "depths"),
                   str(workspace / "out"), str(workspace / "snapshots"), "--output-kind", "log"])


def test_transform_from_with_an_image_and_a_depth_layer_on_the_command_line(tmp_path):
    workspace = predict_workspace(tmp_path)
    (workspace / "tv.prototxt").write_text(
        'layer { name: "depth" type: "Data" top: "gt" include { phase: TEST }\n'
        '  transform_param { scale: 0.00392 } }\n'
        'layer { name: "rgb" type: "Data" top: "X" include { phase: TEST }\n'
        '  transform_param { mean_value: 104 mean_value: 117 mean_value: 123 } }\n')
    status, depth = predict(workspace, "--transform-from", str(workspace / "tv.prototxt"))
    assert status == 0  # the layer writing the deploy's input 'X' is the image layer
    assert_matches_caffe(depth, GOLDEN_SCENE["bgr_mean_values.output"], OutputMeaning())


def test_a_v1_data_layers_own_preprocessing_is_upgraded_as_caffe_does(tmp_path):
    old = tmp_path / "old.prototxt"
    old.write_text(
        'layers { name: "d" type: DATA top: "X" include { phase: TEST }\n'
        '  data_param { source: "lmdb" batch_size: 1 backend: LMDB scale: 0.5 crop_size: 5\n'
        '               mirror: true mean_file: "m.npy" } }\n')
    param, layer = caffe_conventions.transform_param_of(old)
    assert layer.name == "d" and layer.type == "Data"
    assert (param.scale, param.crop_size, param.mirror, param.mean_file) == (0.5, 5, True, "m.npy")


def test_a_train_val_with_two_data_layers_is_keyed_and_reused(workspace):
    snapshots = workspace / "snapshots"
    (snapshots / "tv.prototxt").write_text(
        'layer { name: "gt" type: "Data" top: "gt" transform_param { scale: 0.1 } }\n'
        'layer { name: "rgb" type: "Data" top: "X" transform_param { mean_value: 100 } }\n')
    (snapshots / f"{GOOD}{SIDECAR_SUFFIX}").write_text('transform-from = "tv.prototxt"\n')
    assert evaluate(workspace) == 0 and reuse_counts(workspace) == (0, 2)
    convention = results(workspace)["snapshots"][GOOD]["convention"]
    assert convention["mean-values"] == [100.0] and convention["input-scale"] is None
    assert evaluate(workspace) == 0 and reuse_counts(workspace) == (2, 0)


def test_the_colours_picture_is_the_thesis_one_whatever_the_convention(workspace):
    assert evaluate(workspace, "--quiet", out="thesis") == 0
    assert evaluate(workspace, "--quiet", "--channel-swap", "2,1,0", "--raw-scale", "1",
                    "--mean-values", "0.5", "--input-scale", "3", out="other") == 0
    for folder in ("thesis", "thesis_abs"):
        picture = workspace / folder / GOOD / "00000_colors.png"
        twin = workspace / folder.replace("thesis", "other") / GOOD / "00000_colors.png"
        assert np.array_equal(images.read_image(picture), images.read_image(twin))
    assert not np.array_equal(
        images.read_image(workspace / "thesis" / GOOD / "00000_depth.png"),
        images.read_image(workspace / "other" / GOOD / "00000_depth.png"))
