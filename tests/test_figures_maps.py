"""Named maps on one shared scale (maps_figure), and the light import of the colour maps."""

import subprocess
import sys

import cv2
import matplotlib
import numpy as np
import pytest

from depth_eval import pictures as figures

SHAPE = (318, 418)  # the gradient networks' upsampled maps (SPEC-grad.md, section 5)
SCALE = (-1.0, 1.0)
COLORMAP = "RdBu_r"
CONSTANT = 0.5


def gradient_rows():
    """Two rows of two channels: the first map repeats below, the second differs."""
    rows, columns = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    across = columns / (SHAPE[1] - 1) * 2.0 - 1.0  # -1 at the left, +1 at the right
    down = rows / (SHAPE[0] - 1) * 2.0 - 1.0
    return [[("GT channel 1", across), ("GT channel 2", down)],
            [("predicted channel 1", across), ("predicted channel 2",
                                                np.full(SHAPE, CONSTANT))]]


def synthetic_rgb():
    rows, columns = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    return np.dstack([rows * 255 // SHAPE[0], columns * 255 // SHAPE[1],
                      np.full(SHAPE, 128)]).astype(np.uint8)


def panel_crops(figure, picture, inset=4):
    """Panel title -> the map's pixels in ``picture`` (a few pixels inside the frame)."""
    height, width = picture.shape[:2]
    crops = {}
    for axes in figure.axes:
        if not axes.get_title():
            continue
        box = axes.get_position()
        left, top = round(box.x0 * width) + inset, round((1 - box.y1) * height) + inset
        # every panel has the same size: crop the same whole number of pixels from each
        columns, rows = int(box.width * width) - 2 * inset, int(box.height * height) - 2 * inset
        crops[axes.get_title()] = picture[top:top + rows, left:left + columns].astype(np.int16)
    return crops


def test_maps_figure_writes_png_of_expected_size_with_distinct_maps(tmp_path):
    path = tmp_path / "00000.png"
    rgb, rows = synthetic_rgb(), gradient_rows()
    figures.maps_figure(path, rgb, rows, SCALE, COLORMAP, "00000", label="gradient")
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    # width: margins 2 x 0.15 + 3 panels x 3.2 + 2 gaps x 0.12 + one colour bar block 1.0 in;
    # height: title 0.5 + 2 x (title band 0.28 + map 3.2 * 318 / 418) + gap 0.12 + margin 0.15,
    # rounded up to whole pixels at 100 dpi
    assert picture.shape == (620, 1114, 3)
    assert [p.name for p in tmp_path.iterdir()] == ["00000.png"]
    figure = figures.build_maps_figure(rgb, rows, SCALE, COLORMAP, "00000", label="gradient")
    assert figures.figure_pixels(figure) == (1114, 620)
    assert figures.render_bgr(figure).tobytes() == picture.tobytes()

    crops = panel_crops(figure, picture)
    assert sorted(crops) == sorted(["input", "GT channel 1", "GT channel 2",
                                    "predicted channel 1", "predicted channel 2"])
    maps = [crops[name] for name in ("GT channel 1", "GT channel 2", "predicted channel 2")]
    for index, first in enumerate(maps):  # three different maps: clearly different pixels
        for second in maps[index + 1:]:
            assert np.abs(first - second).mean() > 20
    # the same map in both rows, on the one shared scale: the same colours
    assert np.abs(crops["GT channel 1"] - crops["predicted channel 1"]).mean() < 2
    # a constant map is the colour map's colour at its place on the shared scale
    expected_bgr = matplotlib.colormaps[COLORMAP]((CONSTANT - SCALE[0]) / (SCALE[1] - SCALE[0]),
                                                  bytes=True)[2::-1]
    assert np.abs(crops["predicted channel 2"] - np.array(expected_bgr)).max() <= 1
    # one colour bar for all maps, labelled, beside the first row
    bars = [axes for axes in figure.axes if axes.get_ylabel() == "gradient"]
    assert len(bars) == 1 and tuple(bars[0].get_ylim()) == SCALE


def test_maps_figure_without_input_and_shared_clim():
    figure = figures.build_maps_figure(None, gradient_rows(), SCALE, "magma")
    # width: margins 0.3 + 2 panels x 3.2 + gap 0.12 + colour bar block 1.0 in; height: no
    # title band, the margin 0.15 above instead of the title's 0.5
    assert figures.figure_pixels(figure) == (782, 585)
    images = [image for axes in figure.axes for image in axes.get_images()]
    assert len(images) == 4
    assert {image.get_clim() for image in images} == {SCALE}
    assert {image.get_cmap().name for image in images} == {"magma"}


@pytest.mark.parametrize("rows, scale, colormap, message", [
    ([[("a", np.zeros(SHAPE))]], SCALE, "nope", "unknown colour map 'nope'"),
    ([], SCALE, COLORMAP, "no maps"),
    ([[("a", np.zeros(SHAPE)), ("b", np.zeros((2, 2)))]], SCALE, COLORMAP, r"shape \(2, 2\)"),
    ([[("a", np.zeros((*SHAPE, 2)))]], SCALE, COLORMAP, "H x W maps"),
    ([[("a", np.zeros(SHAPE))]], (1.0, 1.0), COLORMAP, "vmax"),
])
def test_maps_figure_refuses_bad_input(rows, scale, colormap, message):
    with pytest.raises(ValueError, match=message):
        figures.build_maps_figure(None, rows, scale, colormap)


def test_colormaps_import_leaves_the_figure_machinery_unloaded():
    code = ("import sys\nfrom depth_eval.pictures import check_colormap, colormap_png\n"
            "check_colormap('magma')\n"
            "print(sorted(m for m in sys.modules if m.startswith(('matplotlib.pyplot', "
            "'matplotlib.figure', 'matplotlib.backends.backend_agg', 'depth_eval.pictures.'))))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "['depth_eval.pictures.colormaps']"
