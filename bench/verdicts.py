#!/usr/bin/env python3
"""Benchmark of the CI verdicts: the intervals' cost, and report.html's opening time.

(a) Intervals of every metric of S snapshots over N images (default 20 x 654 x 30 metrics,
    the NYU test set): depth_eval's resample-count matrix product against
    scipy.stats.bootstrap on the same values (same method and resamples), side by side in one
    run; the ratio is what counts (the machine is shared).
(b) report.html for S snapshots x N images of synthetic results (the verdict and pictures of a
    real run's shape; pictures are links to one small PNG, the error maps of the worst images
    embedded as the report embeds them, noise: its whole byte budget), opened in headless
    Chromium:
    the time from navigation to the rankings and the first page of images being on screen.

    python bench/verdicts.py [--snapshots 20] [--images 654] [--metrics 30] [--repeats 3]
"""

from __future__ import annotations

import argparse
import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]

from depth_eval.report import html
from depth_eval.scoring.uncertainty import Confidence, mean_intervals


def intervals(values: np.ndarray, repeats: int) -> None:
    from scipy import stats

    confidence = Confidence()

    def ours():
        for rows in values:
            mean_intervals(rows, confidence)

    def scipy():
        for rows in values:
            stats.bootstrap((rows,), np.mean, n_resamples=confidence.resamples, axis=-1,
                            method=confidence.method, vectorized=True, batch=200,
                            random_state=np.random.default_rng(confidence.seed))

    times = {"depth_eval": [], "scipy.stats.bootstrap": []}
    for _ in range(repeats):
        for name, function in (("depth_eval", ours), ("scipy.stats.bootstrap", scipy)):
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(t) for name, t in times.items()}
    snapshots, metrics, images = values.shape
    print(f"(a) intervals of {snapshots} snapshots x {metrics} metrics x {images} images "
          f"({confidence.method}, {confidence.resamples} resamples), median of {repeats}:")
    for name, seconds in medians.items():
        print(f"    {name:24s} {seconds:8.3f} s")
    print(f"    ratio scipy / depth_eval: {medians['scipy.stats.bootstrap'] / medians['depth_eval']:.1f}")


def synthetic_report(folder: Path, snapshots: int, images: int, metrics: int) -> Path:
    import cv2

    rng = np.random.default_rng(0)
    keys = [f"m{i}" for i in range(metrics)]
    picture = folder / "picture.png"
    cv2.imwrite(str(picture), (rng.random((120, 160)) * 255).astype(np.uint8))
    # An embedded error map as large as the report's (200 px wide, noise: the worst case).
    error = (rng.random((150, html.ERROR_MAP_WIDTH, 3)) * 255).astype(np.uint8)
    embedded = "data:image/png;base64," + base64.b64encode(
        cv2.imencode(".png", error)[1].tobytes()).decode()
    embeddable = min(html.ERROR_MAP_IMAGES * snapshots, html.ERROR_MAP_BUDGET_BYTES // len(embedded))
    names = [f"run_iter_{1000 * (i + 1)}" for i in range(snapshots)]
    data = {
        "facts": [["task", "depth"]], "per_page": html.IMAGES_PER_PAGE, "skipped_images": [],
        "metrics": [{"key": key, "lower": True} for key in keys],
        "snapshots": [{"name": name, "status": "evaluated", "error": None, "images": images,
                       "metrics": {key: float(rng.random()) for key in keys},
                       "ci": {key: [0.1, 0.9] for key in keys}, "marks": {}} for name in names],
        "gate": None,
        "curves": {"run": {key: [[1000 * (i + 1), float(rng.random()), 0.1, 0.9]
                                 for i in range(snapshots)] for key in keys}},
        "images": {"metric": keys[0], "rows": [
            {"image": f"{i:05d}_colors", "pictures": {"input": picture.name,
                                                      "ground truth": picture.name},
             "snapshots": {name: {"value": float(rng.random()),
                                  "pictures": {"raw": picture.name, "fitted": picture.name,
                                               **({"error": embedded}
                                                  if i * snapshots + j < embeddable else {})}}
                           for j, name in enumerate(names)}}
            for i in range(images)]},
    }
    path = folder / "report.html"
    path.write_bytes(html.page(data))
    return path


def opening(path: Path, repeats: int) -> None:
    from playwright.sync_api import sync_playwright
    from test_report_browser import CHROMIUM, CHROMIUM_ARGS

    times = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        for _ in range(repeats):
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            start = time.perf_counter()
            page.goto(path.as_uri(), wait_until="load")
            page.wait_for_selector("#images .panel")
            times.append(time.perf_counter() - start)
            page.close()
        browser.close()
    print(f"(b) report.html, {path.stat().st_size / 1e6:.1f} MB: opened in "
          f"{statistics.median(times):.3f} s (median of {repeats})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--snapshots", type=int, default=20)
    parser.add_argument("--images", type=int, default=654)
    parser.add_argument("--metrics", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    intervals(rng.gamma(2.0, 0.3, (args.snapshots, args.metrics, args.images)), args.repeats)
    with tempfile.TemporaryDirectory() as folder:
        opening(synthetic_report(Path(folder), args.snapshots, args.images, args.metrics),
                args.repeats)


if __name__ == "__main__":
    main()
