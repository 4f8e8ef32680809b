"""The depth task's figures (``--figures``): per-image comparisons and the metric charts."""

from __future__ import annotations

from pathlib import Path

from depth_eval.inputs import images
from depth_eval.writing import OutputFolder
from depth_eval.thesis import DEPTH_RANGE_M
from depth_eval.inputs.ground_truth import load_ground_truth, thesis_pixels
from depth_eval.scoring.keys import ranked
from depth_eval.scoring.alignments import fitted_picture


def write_figures(folder_path: Path, pairs, kept: dict, means: dict, gt_settings,
                  intervals: dict | None = None) -> list[str]:
    """Per-image comparison figures and the metric charts into OUT_DIR/figures/.

    ``kept``: stem -> snapshot -> upsampled raw prediction (depth / 10); ``means``: snapshot ->
    MetricKey -> value; ``intervals``: snapshot -> metric title -> (low, high), drawn as error
    bars and bands.  Returns the problems, one line each.
    """
    from depth_eval import pictures  # matplotlib, when the figures are drawn

    folder = OutputFolder(folder_path)
    by_stem = {pair.stem: pair for pair in pairs}
    names = [f"{stem}.png" for stem in kept] + ["metrics.png", "metrics_curve.png"]
    taken = set(folder.claim(names))
    problems = [f"{folder.path / name}: exists and was not written by depth_eval; left untouched"
                for name in sorted(taken)]
    for stem, predictions in kept.items():
        if not predictions or f"{stem}.png" in taken:
            continue
        pair = by_stem[stem]
        try:
            rgb = images.as_rgb(images.read_image(pair.color_path))
            truth = load_ground_truth(pair.depth_path, gt_settings)
        except Exception as error:  # an image that failed is already reported
            problems.append(f"figure for {stem} not drawn: {error}")
            continue
        gt_unit, gt_m = truth.on_thesis_grid()
        pixels = thesis_pixels(gt_m, truth.encoding)
        panels = {name: (raw * DEPTH_RANGE_M,
                         fitted_picture(raw, gt_unit, pixels) * DEPTH_RANGE_M)
                  for name, raw in predictions.items()}
        pictures.image_figure(folder.path / f"{stem}.png", rgb, gt_m, panels,
                             title=pair.color_path.name)
    if "metrics.png" not in taken:
        directions = {str(k): lower for k, lower in ranked(next(iter(means.values()))).items()}
        charted = {name: {str(k): v for k, v in values.items() if str(k) in directions}
                   for name, values in means.items()}
        pictures.metrics_figure(folder.path / "metrics.png", charted, directions, intervals)
    return problems
