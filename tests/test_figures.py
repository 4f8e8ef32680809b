"""Figures: layout (panels, titles, shared scales), PNG size, bar highlighting, curves, colour maps."""


import cv2
import matplotlib.colors
import numpy as np
import pytest

from depth_eval.inputs.discover import snapshot_iteration, training_runs
from depth_eval import pictures as figures
from depth_eval.scoring.thesis_metrics import THESIS_METRICS, mvn_fit

SHAPE = (320, 420)
LONG_NAME = "refining_network_norm_abs_model_iter_100000"  # 43 characters: wrapped on two lines
LOWER_IS_BETTER = {metric.title: metric.lower_is_better for metric in THESIS_METRICS}


def ramp_ground_truth() -> np.ndarray:
    """Depth growing from 1 m at the top to 9 m at the bottom."""
    return np.repeat(np.linspace(1.0, 9.0, SHAPE[0])[:, None], SHAPE[1], axis=1)


def synthetic_predictions(names) -> dict:
    """Raw = ground truth scaled and noisy (differently per snapshot), fitted = its MVN fit."""
    rng = np.random.default_rng(7)
    gt = ramp_ground_truth()
    predictions = {}
    for index, name in enumerate(names):
        raw = gt * (0.6 + 0.2 * index) + rng.normal(0.0, 0.2, SHAPE)
        predictions[name] = (raw, mvn_fit(raw, gt))
    return predictions


def synthetic_rgb() -> np.ndarray:
    rows, columns = np.mgrid[0:SHAPE[0], 0:SHAPE[1]]
    return np.dstack([rows * 255 // SHAPE[0], columns * 255 // SHAPE[1],
                      np.full(SHAPE, 128)]).astype(np.uint8)


NAMES_1 = [LONG_NAME]
NAMES_3 = [LONG_NAME, "global_context_network_abs", "gradient_network_filter"]


@pytest.fixture(scope="module")
def one_snapshot_figure():
    return figures.build_image_figure(synthetic_rgb(), ramp_ground_truth(),
                                      synthetic_predictions(NAMES_1), "00000")


@pytest.fixture(scope="module")
def three_snapshot_figure():
    return figures.build_image_figure(synthetic_rgb(), ramp_ground_truth(),
                                      synthetic_predictions(NAMES_3), "00000", colormap="magma")


def titled_axes(figure):
    return [axes for axes in figure.axes if axes.get_title()]


def map_images(figure, colormap_name):
    """The images of one-channel maps drawn with a colour map (not the colour input)."""
    return [image for axes in figure.axes for image in axes.get_images()
            if image.get_array().ndim == 2 and image.get_cmap().name.startswith(colormap_name)]


def panel_width_in(figure, axes) -> float:
    return axes.get_position().width * figure.get_size_inches()[0]


def expected_titles(names) -> list[str]:
    return ["input", "ground truth"] + [name for name in names]


@pytest.mark.parametrize("fixture, names, rows", [("one_snapshot_figure", NAMES_1, 1),
                                                  ("three_snapshot_figure", NAMES_3, 4)])
def test_image_figure_panels_titles_and_rows(request, fixture, names, rows):
    figure = request.getfixturevalue(fixture)
    panels = titled_axes(figure)
    # input, ground truth, then raw, fitted and error per snapshot
    assert len(panels) == 2 + 3 * len(names)
    titles = [axes.get_title() for axes in panels]
    assert titles.count("input") == 1 and titles.count("ground truth") == 1
    for name in names:
        # the name may be wrapped on two lines; unwrapped it is whole again
        with_name = [title for title in titles if name in title.replace("\n", "", 1)]
        assert len(with_name) == 3, (name, titles)
        assert any("raw" in t for t in with_name) and any("MVN-fitted" in t for t in with_name)
        assert any("error" in t for t in with_name)
    assert len({round(axes.get_position().y0, 6) for axes in panels}) == rows
    for axes in panels:
        assert panel_width_in(figure, axes) >= 3.0


@pytest.mark.parametrize("fixture, names, colormap",
                         [("one_snapshot_figure", NAMES_1, "viridis"),
                          ("three_snapshot_figure", NAMES_3, "magma")])
def test_depth_panels_share_one_scale_and_one_bar(request, fixture, names, colormap):
    figure = request.getfixturevalue(fixture)
    depth_images = map_images(figure, colormap)
    assert len(depth_images) == 1 + 2 * len(names)  # ground truth, raw and fitted per snapshot
    scales = {image.get_clim() for image in depth_images}
    assert len(scales) == 1
    vmin, vmax = scales.pop()
    assert 0.0 <= vmin < vmax
    depth_bars = [axes for axes in figure.axes if axes.get_ylabel() == "depth (m)"]
    assert len(depth_bars) == 1


def test_error_panels_have_symmetric_scales_and_own_bars(three_snapshot_figure):
    error_images = map_images(three_snapshot_figure, figures.ERROR_COLORMAP)
    assert len(error_images) == 3
    for image in error_images:
        low, high = image.get_clim()
        assert high > 0 and low == -high
    assert len({image.get_clim() for image in error_images}) == 3  # each its own scale
    error_bars = [axes for axes in three_snapshot_figure.axes
                  if axes.get_ylabel().startswith("raw \u2212 truth")]
    assert len(error_bars) == 3


@pytest.mark.parametrize("fixture, names, colormap",
                         [("one_snapshot_figure", NAMES_1, "viridis"),
                          ("three_snapshot_figure", NAMES_3, "magma")])
def test_image_figure_png_size_matches_figure(request, tmp_path, fixture, names, colormap):
    path = tmp_path / "00000.png"
    figures.image_figure(path, synthetic_rgb(), ramp_ground_truth(), synthetic_predictions(names),
                         "00000", colormap=colormap)
    picture = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    # the fixture is the same figure, built by build_image_figure from the same arrays
    width_in, height_in = request.getfixturevalue(fixture).get_size_inches()
    assert picture.shape == (round(height_in * figures.DPI), round(width_in * figures.DPI), 3)
    assert figures.figure_pixels(request.getfixturevalue(fixture)) == picture.shape[1::-1]
    assert [p.name for p in tmp_path.iterdir()] == ["00000.png"]  # no temporary file left


def test_image_figure_is_deterministic_and_replaces_the_file(tmp_path):
    rgb, gt, predictions = synthetic_rgb(), ramp_ground_truth(), synthetic_predictions(NAMES_1)
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(b"old")
    figures.image_figure(first, rgb, gt, predictions)
    figures.image_figure(second, rgb, gt, predictions)
    assert first.read_bytes() == second.read_bytes()


def test_image_figure_accepts_float_grey_input_and_nan():
    gt = ramp_ground_truth()
    raw = gt.copy()
    raw[:10] = np.nan
    figure = figures.build_image_figure(np.full((218, 298), 0.5), gt, {"s": (raw, raw)})
    assert len(titled_axes(figure)) == 5
    figures.render_bgr(figure)  # draws without error


def test_bad_colormap_is_refused_for_figures():
    with pytest.raises(ValueError, match="unknown colour map 'nope'"):
        figures.build_image_figure(synthetic_rgb(), ramp_ground_truth(), {}, colormap="nope")


def synthetic_means(names) -> dict:
    """Metric means that get better with the snapshot's position in ``names``."""
    means = {}
    for index, name in enumerate(names):
        quality = (index + 1) / len(names)
        means[name] = {metric.title: (1.0 - 0.5 * quality if metric.lower_is_better
                                      else 0.5 + 0.4 * quality) for metric in THESIS_METRICS}
    return means


def bar_colours(axes) -> list[tuple]:
    return [matplotlib.colors.to_hex(bar.get_facecolor()) for bar in axes.patches]


def test_metrics_figure_one_panel_per_metric_with_best_bar_highlighted():
    names = ["a", "b", "c"]
    means = synthetic_means(names)
    means["a"]["RMSE"] = 0.1  # best RMSE (lower) is now "a"; best Threshold (higher) is "c"
    figure = figures.build_metrics_figure(means, LOWER_IS_BETTER)
    panels = titled_axes(figure)
    assert len(panels) == len(THESIS_METRICS)
    # names top to bottom at the start of each row of charts
    assert [label.get_text() for label in panels[0].get_yticklabels()] == names
    assert panels[0].yaxis_inverted()
    best, other = figures.BEST_BAR_COLOR.lower(), figures.BAR_COLOR.lower()
    for axes, metric in zip(panels, THESIS_METRICS):
        direction = "lower" if metric.lower_is_better else "higher"
        assert axes.get_title() == f"{metric.title}\n({direction} is better)"
        expected_best = "a" if metric.title == "RMSE" else "c"
        assert bar_colours(axes) == [best if name == expected_best else other for name in names]


def test_metrics_figure_ties_nan_and_unknown_direction():
    means = {"a": {"m": 1.0, "x": 5.0}, "b": {"m": 1.0, "x": 6.0}, "c": {"m": float("nan")}}
    figure = figures.build_metrics_figure(means, {"m": True})
    by_title = {axes.get_title(): axes for axes in titled_axes(figure)}
    best, other = figures.BEST_BAR_COLOR.lower(), figures.BAR_COLOR.lower()
    assert bar_colours(by_title["m\n(lower is better)"]) == [best, best, other]
    assert not by_title["m\n(lower is better)"].patches[2].get_visible()  # NaN: no bar
    assert bar_colours(by_title["x"]) == [other, other, other]  # direction unknown


def test_metrics_figure_without_iterations_writes_one_file(tmp_path):
    path = tmp_path / "metrics.png"
    written = figures.metrics_figure(path, synthetic_means(["a", "b", "c"]), LOWER_IS_BETTER)
    assert written == [path]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.png"]
    picture = cv2.imread(str(path))
    width_in, height_in = figures.build_metrics_figure(
        synthetic_means(["a", "b", "c"]), LOWER_IS_BETTER).get_size_inches()
    assert picture.shape[:2] == (round(height_in * figures.DPI), round(width_in * figures.DPI))


def test_metrics_figure_with_iterations_writes_curves(tmp_path):
    names = ["run_a_iter_10000", "run_a_iter_20000", "run_a_iter_5000",
             "run_b_iter_10000", "run_b_iter_20000"]
    path = tmp_path / "metrics.png"
    written = figures.metrics_figure(path, synthetic_means(names), LOWER_IS_BETTER)
    curve = tmp_path / "metrics_curve.png"
    assert written == [path, curve]
    assert curve.is_file() and cv2.imread(str(curve)) is not None
    runs = training_runs(names)
    assert runs == {"run_a": [(5000, "run_a_iter_5000"), (10000, "run_a_iter_10000"),
                              (20000, "run_a_iter_20000")],
                    "run_b": [(10000, "run_b_iter_10000"), (20000, "run_b_iter_20000")]}
    figure = figures.build_curve_figure(synthetic_means(names), LOWER_IS_BETTER, runs)
    panels = titled_axes(figure)
    assert len(panels) == len(THESIS_METRICS)
    for axes in panels:
        lines = axes.get_lines()
        assert [line.get_label() for line in lines] == ["run_a", "run_b"]
        assert list(lines[0].get_xdata()) == [5000, 10000, 20000]  # sorted by iteration


def test_no_curves_unless_every_name_has_an_iteration():
    assert training_runs(["a_iter_100", "final"]) is None
    assert snapshot_iteration("model_iter_10000") == ("model", 10000)
    assert snapshot_iteration("x_iter_5_finetuned") == ("x_finetuned", 5)
    assert snapshot_iteration("model_norm_abs_100k") is None


def test_metrics_figure_without_snapshots_writes_nothing(tmp_path):
    assert figures.metrics_figure(tmp_path / "m.png", {}, LOWER_IS_BETTER) == []
    assert list(tmp_path.iterdir()) == []


def test_colormap_png_shape_colours_and_nan():
    depth = np.linspace(0.0, 12.0, 4 * 6).reshape(4, 6)
    depth[0, 0] = np.nan
    picture = figures.colormap_png(depth, "viridis", vmin=1.0, vmax=10.0)
    assert picture.shape == (4, 6, 3) and picture.dtype == np.uint8
    assert picture[0, 0].tolist() == [0, 0, 0]
    viridis = matplotlib.colormaps["viridis"]
    first_bgr = np.array(viridis(0.0, bytes=True)[2::-1])
    last_bgr = np.array(viridis(1.0, bytes=True)[2::-1])
    assert picture[0, 1].tolist() == first_bgr.tolist()  # 0.52 m, below vmin: first colour
    assert picture[-1, -1].tolist() == last_bgr.tolist()  # 12 m, above vmax: last colour
    ok, _ = cv2.imencode(".png", picture)
    assert ok


def test_check_colormap():
    figures.check_colormap("magma")
    figures.check_colormap("gray")
    message = "unknown colour map 'x'; e.g. viridis, magma, plasma, inferno, turbo, gray"
    with pytest.raises(ValueError) as error:
        figures.check_colormap("x")
    assert str(error.value) == message
    with pytest.raises(ValueError, match="unknown colour map"):
        figures.colormap_png(np.zeros((2, 2)), "x")
    with pytest.raises(ValueError, match="vmax"):
        figures.colormap_png(np.zeros((2, 2)), "gray", vmin=1.0, vmax=1.0)


@pytest.mark.parametrize("name", ["short", LONG_NAME, "x" * 40, "a_" * 40,
                                  "model_iter_10000_" + "z" * 60])
def test_names_are_wrapped_on_at_most_two_short_lines(name):
    lines = figures.wrap_name(name)
    assert 1 <= len(lines) <= 2
    assert all(len(line) <= figures.MAX_NAME_CHARS for line in lines)
    if len(name) <= 2 * figures.MAX_NAME_CHARS:
        assert "".join(lines) == name
    assert len(figures.shorten_name(name)) <= figures.MAX_NAME_CHARS
