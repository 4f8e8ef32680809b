"""Hostile inputs (issue 11, items 5, 6 and 10): each test makes the file a tester threw at the
tool and checks that the run refuses it with one line naming the file and the cause, never
hangs, never decodes a bomb and never reports an "unexpected" error.

Outputs (items 3, 4, 7, 8, 9) are in test_hostile_outputs.py.
"""

import os
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from caffemodel_factory import write_random_caffemodel
from depth_eval.inputs import limits as guards
from depth_eval.caffe.proto import NetParameter
from depth_eval.errors import SnapshotError
from helpers import GOLDEN_E2E, GOOD, REPO, STEMS, add_snapshot, evaluate, results, run_cli

GOOD_MODEL = GOLDEN_E2E / "snapshots" / f"{GOOD}.caffemodel"
GOOD_PROTOTXT = GOLDEN_E2E / "snapshots" / f"{GOOD}.prototxt"


@pytest.fixture
def no_hang():
    """Fail instead of hanging: SIGALRM after 60 s raises in the main thread (a blocked open()
    of a FIFO is interrupted by it)."""
    def expired(_signum, _frame):
        raise TimeoutError("the run hung")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(60)
    yield
    signal.alarm(0)
    signal.signal(signal.SIGALRM, previous)


def errors_of(stderr: str) -> list[str]:
    assert "unexpected" not in stderr and "Traceback" not in stderr, stderr
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of zeros: tens of KB on disk, width x height bytes decoded."""
    row = bytes(1 + (width + 7) // 8)  # filter byte 0, then the packed row
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def model_with(edit) -> bytes:
    """The good caffemodel with ``edit(net)`` applied to its parsed layers."""
    net = NetParameter()
    net.ParseFromString(GOOD_MODEL.read_bytes())
    edit(net)
    return net.SerializeToString()


def layer(net, name):
    return next(entry for entry in net.layer if entry.name == name)


# --- item 5: memory ------------------------------------------------------------------------------

def test_decompression_bomb_input_and_ground_truth_are_refused_by_their_header(workspace, capsys):
    bomb = png_bomb(20000, 15000)
    assert len(bomb) < 400_000  # the 330 KB PNG that took 6.1 GB
    (workspace / "colors" / "bomb_colors.png").write_bytes(bomb)
    shutil.copy(workspace / "depths" / "00000_depth.png", workspace / "depths" / "bomb_depth.png")
    shutil.copy(workspace / "colors" / "00000_colors.png", workspace / "colors" / "gtb_colors.png")
    (workspace / "depths" / "gtb_depth.png").write_bytes(bomb)
    assert evaluate(workspace, "--quiet") == 1
    errors = errors_of(capsys.readouterr().err)
    assert len(errors) == 2
    for name, line in zip(("bomb_colors.png", "gtb_depth.png"), errors):
        assert line.startswith("error: image skipped: ") and name in line
        assert "20000 x 15000 = 300.0 megapixels, more than --max-image-pixels 50000000" in line
    assert results(workspace)["snapshots"][GOOD]["images_evaluated"] == len(STEMS)


def test_max_image_pixels_option_moves_the_limit(workspace, capsys):
    assert evaluate(workspace, "--quiet", "--max-image-pixels", "1000", out="small") == 2
    errors = errors_of(capsys.readouterr().err)
    assert all("more than --max-image-pixels 1000" in line for line in errors[:2])
    assert evaluate(workspace, "--quiet", "--max-image-pixels", "0", out="zero") == 2
    assert "--max-image-pixels must be at least 1" in capsys.readouterr().err
    assert not (workspace / "zero").exists()
    assert evaluate(workspace, "--quiet", "--max-image-pixels", str(640 * 480)) == 0
    assert guards.max_image_pixels() == 640 * 480


def fully_convolutional(height: int, width: int) -> str:
    return (f'name: "fcn"\nlayer {{ name: "data" type: "Input" top: "X" input_param {{ shape {{ '
            f'dim: 1 dim: 3 dim: {height} dim: {width} }} }} }}\n'
            'layer { name: "c1" type: "Convolution" bottom: "X" top: "c1" '
            'convolution_param { num_output: 8 kernel_size: 3 pad: 1 } }\n'
            'layer { name: "c2" type: "Convolution" bottom: "c1" top: "depth" '
            'convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }\n')


def test_network_whose_activations_exceed_the_memory_is_refused(workspace, capsys):
    # 10^6 x 10^6 input: 3 + 8 + 1 channels of float32 are 48 TB, more than any machine has;
    # refused from the prototxt before the weights are read (they are not even valid here).
    add_snapshot(workspace, "huge", prototxt_text=fully_convolutional(10**6, 10**6),
                 model_bytes=b"not read")
    assert evaluate(workspace, "--quiet") == 1
    line, = errors_of(capsys.readouterr().err)
    assert line.startswith("error: snapshot huge skipped: ") and "huge.prototxt" in line
    assert "the forward pass needs about 48000.0 GB (48000.0 GB of activations" in line
    assert "1 x 3 x 1000000 x 1000000 input" in line and "this machine has available" in line


def test_network_with_large_activations_that_fit_gets_a_warning_naming_the_size(workspace, capsys):
    # The 9000 x 9000 fully convolutional network: 3.9 GB of activations here, more
    # than 100x the thesis' networks.  Refused where it does not fit, else run with a warning;
    # the weights are empty so that it stops at load either way, after the memory check.
    add_snapshot(workspace, "large", prototxt_text=fully_convolutional(9000, 9000), model_bytes=b"")
    assert evaluate(workspace) == 1
    err = capsys.readouterr().err
    line, = errors_of(err)
    needs = ("large.prototxt: the forward pass needs about 3.9 GB (3.9 GB of activations for a "
             "1 x 3 x 9000 x 9000 input, 0.0 GB for the weights)")
    if guards.available_memory() > 3.9e9:
        assert f"warning: {workspace}/snapshots/{needs}; " in err
        assert line.endswith("large.caffemodel: caffemodel file is empty (0 bytes)")
    else:
        assert needs in line and "this machine has available" in line


def test_network_memory_estimate_counts_blobs_batch_and_weights(tmp_path):
    from depth_eval.caffe.shapes import infer_shapes
    from google.protobuf import text_format

    net = text_format.Parse(fully_convolutional(100, 200), NetParameter())
    shapes = infer_shapes(net)
    assert guards.activation_values(shapes) == (3 + 8 + 1) * 100 * 200
    needed = 12 * 100 * 200 * 4 * 2 + int(1000 * guards.WEIGHT_COPIES)  # batch 2, 1000 B weights
    assert guards.check_network_memory(Path("n.prototxt"), shapes, (1, 3, 100, 200), 2, 1000,
                                       needed) is None
    with pytest.raises(SnapshotError, match=r"n.prototxt: the forward pass needs about 0.0 GB "
                                             r"\(0.0 GB of activations for a 2 x 3 x 100 x 200"):
        guards.check_network_memory(Path("n.prototxt"), shapes, (1, 3, 100, 200), 2, 1000,
                                    needed - 1)
    assert guards.available_memory() > 0


def test_caffemodel_linked_to_dev_zero_is_refused(workspace, capsys, no_hang):
    add_snapshot(workspace, "zero")
    (workspace / "snapshots" / "zero.caffemodel").unlink()
    os.symlink("/dev/zero", workspace / "snapshots" / "zero.caffemodel")
    assert evaluate(workspace, "--quiet") == 1
    line, = errors_of(capsys.readouterr().err)
    assert line.startswith("error: snapshot zero skipped: ")
    assert line.endswith("zero.caffemodel: cannot read (is a character device, not a regular file)")


# --- item 6: stalled reads -------------------------------------------------------------------

def test_fifo_snapshot_files_are_refused_without_hanging(workspace, capsys, no_hang):
    add_snapshot(workspace, "fifo_model")
    (workspace / "snapshots" / "fifo_model.caffemodel").unlink()
    os.mkfifo(workspace / "snapshots" / "fifo_model.caffemodel")
    add_snapshot(workspace, "fifo_proto")
    (workspace / "snapshots" / "fifo_proto.prototxt").unlink()
    os.mkfifo(workspace / "snapshots" / "fifo_proto.prototxt")
    for engine in ("opencv", "onnxruntime"):
        assert evaluate(workspace, "--quiet", "--engine", engine, out=engine) == 1
        errors = errors_of(capsys.readouterr().err)
        assert errors == [
            f"error: snapshot fifo_model skipped: {workspace}/snapshots/fifo_model.caffemodel: "
            "cannot read (is a FIFO, not a regular file)",
            f"error: snapshot fifo_proto skipped: {workspace}/snapshots/fifo_proto.prototxt: "
            "is a FIFO, not a regular file"]
        assert results(workspace, out=engine)["snapshots"][GOOD]["status"] == "evaluated"


def test_fifos_and_broken_links_among_the_images_are_refused_without_hanging(workspace):
    # In a subprocess: images are read on worker threads, which no alarm can interrupt.
    os.mkfifo(workspace / "colors" / "fifo_colors.png")
    shutil.copy(workspace / "depths" / "00000_depth.png", workspace / "depths" / "fifo_depth.png")
    shutil.copy(workspace / "colors" / "00000_colors.png", workspace / "colors" / "gtfifo_colors.png")
    os.mkfifo(workspace / "depths" / "gtfifo_depth.npy")
    os.symlink("nowhere.png", workspace / "colors" / "dangling_colors.png")
    shutil.copy(workspace / "depths" / "00000_depth.png", workspace / "depths" / "dangling_depth.png")
    status, _, stderr = run_cli(workspace, "--quiet")  # run_cli times out after 120 s
    assert status == 1
    errors = errors_of(stderr)
    assert errors == [
        f"error: image skipped: {workspace}/colors/dangling_colors.png: cannot read file "
        "(is a dangling symbolic link (to nowhere.png))",
        f"error: image skipped: {workspace}/colors/fifo_colors.png: cannot read file "
        "(is a FIFO, not a regular file)",
        f"error: image skipped: {workspace}/depths/gtfifo_depth.npy: cannot read file "
        "(is a FIFO, not a regular file)"]
    assert results(workspace)["snapshots"][GOOD]["images_evaluated"] == len(STEMS)


def test_fifo_prototxt_option_and_baseline_are_refused_before_any_work(workspace, capsys, no_hang):
    os.mkfifo(workspace / "shared.prototxt")
    assert evaluate(workspace, "--prototxt", str(workspace / "shared.prototxt")) == 2
    assert errors_of(capsys.readouterr().err) == [
        f"error: {workspace}/shared.prototxt: --prototxt is a FIFO, not a file"]
    os.mkfifo(workspace / "base.json")
    assert evaluate(workspace, "--baseline", str(workspace / "base.json")) == 2
    assert errors_of(capsys.readouterr().err) == [
        f"error: {workspace}/base.json: cannot read file (is a FIFO, not a regular file)"]
    assert not (workspace / "out").exists()


def heavy_prototxt(layers: int = 24, channels: int = 64) -> str:
    """A fully convolutional net at the thesis' input size: about 1.5 s per forward pass here."""
    text = ['name: "heavy"', 'layer { name: "data" type: "Input" top: "X" input_param { shape { '
            'dim: 1 dim: 3 dim: 218 dim: 298 } } }']
    bottom = "X"
    for i in range(layers):
        text.append(f'layer {{ name: "c{i}" type: "Convolution" bottom: "{bottom}" top: "c{i}" '
                    f'convolution_param {{ num_output: {channels} kernel_size: 3 pad: 1 }} }}')
        bottom = f"c{i}"
    text.append(f'layer {{ name: "out" type: "Convolution" bottom: "{bottom}" top: "depth" '
                'convolution_param { num_output: 1 kernel_size: 3 pad: 1 } }')
    return "\n".join(text) + "\n"


@pytest.mark.parametrize("signum, status", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_interrupted_run_keeps_the_finished_snapshot_and_no_temp_files(workspace, signum, status):
    folder = workspace / "snapshots"
    (folder / "zz_heavy.prototxt").write_text(heavy_prototxt())
    write_random_caffemodel(folder / "zz_heavy.prototxt", folder / "zz_heavy.caffemodel", scale=0.5)
    args = [sys.executable, str(REPO / "test_depth.py"), *(str(workspace / name) for name in
                                                          ("colors", "depths", "out", "snapshots")),
            "--quiet", "--jobs", "1"]
    child = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    results_json, deadline = workspace / "out" / "results.json", time.monotonic() + 60
    while not results_json.exists() and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # results.json appears when the first snapshot is done
    child.send_signal(signum)
    _, stderr = child.communicate(timeout=60)
    assert child.returncode == status, stderr
    assert stderr.splitlines()[-1] == ("error: terminated" if signum == signal.SIGTERM
                                       else "error: interrupted")
    snapshots = results(workspace)["snapshots"]
    assert list(snapshots) == [GOOD] and snapshots[GOOD]["images_evaluated"] == len(STEMS)
    assert [p for p in workspace.rglob("*") if p.name.endswith(".tmp")] == []


# --- item 10: smaller ----------------------------------------------------------------------------

def snapshot_error(workspace, capsys, name, *options) -> str:
    """The one error line of a run where snapshot ``name`` is skipped and GOOD evaluated."""
    assert evaluate(workspace, "--quiet", *options) == 1
    line, = errors_of(capsys.readouterr().err)
    assert line.startswith(f"error: snapshot {name} skipped: ")
    return line


def test_empty_caffemodel_says_the_file_is_empty(workspace, capsys):
    add_snapshot(workspace, "empty", model_bytes=b"")
    line = snapshot_error(workspace, capsys, "empty")
    assert line.endswith("empty.caffemodel: caffemodel file is empty (0 bytes)")


@pytest.mark.parametrize("value, kind", [(np.nan, "NaN"), (np.inf, "infinite")])
def test_nan_or_infinite_weights_are_refused_naming_the_layer(workspace, capsys, value, kind):
    def poison(net):
        layer(net, "conv2").blobs[1].data[3] = value

    add_snapshot(workspace, "poisoned", model_bytes=model_with(poison))
    line = snapshot_error(workspace, capsys, "poisoned")
    assert line.endswith(f"poisoned.caffemodel: layer 'conv2' blob 1 holds 1 {kind} value(s)")


def test_weights_shorter_than_their_shape_are_named_before_opencv(workspace, capsys):
    def shorten(net):
        del layer(net, "conv1").blobs[0].data[-5:]

    add_snapshot(workspace, "short", model_bytes=model_with(shorten))
    line = snapshot_error(workspace, capsys, "short")
    assert "short.caffemodel: layer 'conv1' blob 0 holds 5803 values, its shape 16x3x11x11 " \
           "needs 5808" in line
    assert "Assertion" not in line and "pbBlob" not in line


def test_unsupported_layer_type_is_reported_at_load(workspace, capsys):
    text = GOOD_PROTOTXT.read_text().replace('type: "LRN"', 'type: "FancyNorm"', 1)
    add_snapshot(workspace, "fancy", prototxt_text=text)
    line = snapshot_error(workspace, capsys, "fancy")
    assert line.endswith("fancy.prototxt: layer 'norm1' has type 'FancyNorm', which OpenCV's dnn "
                         "module cannot run")
    assert "forward pass" not in line and "image skipped" not in line


def test_symlink_loop_and_dangling_prototxt_say_what_they_are(workspace, capsys):
    for name, target in (("loop", "loop.prototxt"), ("dangling", "gone.prototxt")):
        add_snapshot(workspace, name)
        (workspace / "snapshots" / f"{name}.prototxt").unlink()
        os.symlink(target, workspace / "snapshots" / f"{name}.prototxt")
    assert evaluate(workspace, "--quiet") == 1
    errors = errors_of(capsys.readouterr().err)
    assert errors == [
        f"error: snapshot dangling skipped: {workspace}/snapshots/dangling.prototxt: "
        "is a dangling symbolic link (to gone.prototxt)",
        f"error: snapshot loop skipped: {workspace}/snapshots/loop.prototxt: "
        "is a symbolic link loop"]


def test_prototxt_option_naming_a_folder_says_it_is_a_folder(workspace, capsys):
    assert evaluate(workspace, "--prototxt", str(workspace / "snapshots")) == 2
    assert errors_of(capsys.readouterr().err) == [
        f"error: {workspace}/snapshots: --prototxt is a folder, not a file"]


@pytest.mark.parametrize("options, message", [
    (("--min-depth", "nan"), "--min-depth nan and --max-depth 10.0: need 0 < min < max"),
    (("--max-depth", "inf"), "--min-depth 0.001 and --max-depth inf: need 0 < min < max"),
    (("--depth-scale", "inf"), "--depth-scale must be positive, got inf"),
    (("--depth-scale", "nan"), "--depth-scale must be positive, got nan"),
    (("--depth-scale", "-1"), "--depth-scale must be positive, got -1.0"),
    (("--figures-max", "-5"), "--figures-max must be 0 or more, got -5"),
])
def test_non_finite_and_negative_options_are_refused(workspace, capsys, options, message):
    assert evaluate(workspace, *options) == 2
    assert errors_of(capsys.readouterr().err) == [f"error: {message}"]
    assert not (workspace / "out").exists()


def test_exif_rotated_jpeg_names_the_rotation(workspace, capsys):
    from PIL import Image

    # A camera's portrait JPEG: stored 320 wide x 420 high, EXIF orientation 6 (turn 90 degrees);
    # read unrotated as the original did, it does not match its 420 x 320 ground truth.
    stored = Image.fromarray(np.full((420, 320, 3), 128, np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(workspace / "colors" / "phone_colors.jpg", exif=exif.tobytes())
    cv2.imwrite(str(workspace / "depths" / "phone_depth.png"), np.full((320, 420), 60, np.uint8))
    assert evaluate(workspace, "--quiet") == 1
    line, = errors_of(capsys.readouterr().err)
    assert "phone_depth.png: ground truth is 420x320 but input phone_colors.jpg is 320x420" in line
    assert line.endswith("; phone_colors.jpg carries EXIF orientation 6, which is not applied "
                         "(pixels are read as stored, as the original did): rotate the file itself")
