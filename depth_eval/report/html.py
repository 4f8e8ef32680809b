"""The browser report: OUT_DIR/report.html (``--report FILE.html`` elsewhere), one file.

Self-contained: its CSS and script are inline and nothing is fetched from the network; the
pictures are the run's own PNGs, linked relatively from where the report is, and small error
maps of the worst images embedded in the page (:data:`ERROR_MAP_BUDGET_BYTES` at most).  Every name from
the file system reaches the page as JSON data and is put in as text by the script (never as
markup), so a snapshot called ``<img src=x onerror=alert(1)>`` shows as just that.  The images
are shown a page at a time, worst first, and their pictures load lazily, so the page opens at
once for 20 snapshots x 654 images.
"""

from __future__ import annotations

import base64
import json
import math
import os
from pathlib import Path
from urllib.parse import quote

import cv2
import numpy as np

from depth_eval.inputs.discover import training_runs
from depth_eval.pictures import pngs
from depth_eval.report.per_image import OwnFile
from depth_eval.report.reporters import Reporter
from depth_eval.scoring.keys import MetricKey, ranked
from depth_eval.scoring.thesis_metrics import DEPTH_RANGE_M, LOG_ENCODING_SLOPE

# The report's file in OUT_DIR.
REPORT_HTML = "report.html"
# How the tool's own report starts (an earlier one may be replaced outside OUT_DIR).
HEADER = b"<!DOCTYPE html><!-- depth_eval report -->"
REPORT_FILE = OwnFile("--report", ".html", HEADER, None, "an HTML page")
# Images per page of the per-image section.
IMAGES_PER_PAGE = 8
# The worst images that get an error map per snapshot, embedded in the page: its first two
# pages, each map at most ERROR_MAP_WIDTH pixels wide, all of them within the byte budget
# (20 snapshots x 16 maps of ~10 kB: ~3 MB).
ERROR_MAP_IMAGES = 2 * IMAGES_PER_PAGE
ERROR_MAP_WIDTH = 200
ERROR_MAP_BUDGET_BYTES = 8 << 20
# Error maps show |fitted - ground truth| on one scale for every snapshot: 0 to a quarter of
# the thesis' 10 m depth range, through OpenCV's copy of matplotlib's magma colour map (no
# matplotlib import for a page).
ERROR_MAP_MAX_M = 2.5
ERROR_MAP_COLORMAP = cv2.COLORMAP_MAGMA


class HtmlReporter(Reporter):
    """report.html: always written for a scored run."""

    def report(self, run, console) -> list[str]:
        outputs = run.settings.outputs
        path = outputs.report_path
        data = report_data(run, path, error_maps(run))
        return REPORT_FILE.write(path, outputs.out_dir, page(data))


def _link(target: Path, report: Path) -> str:
    """``target`` as a relative URL from the report's folder (every segment percent-encoded)."""
    relative = os.path.relpath(os.path.abspath(target), os.path.abspath(report.parent))
    return "/".join(quote(part, safe="") for part in Path(relative).parts)


def _number(value):
    """A JSON-safe number: None for NaN and inf."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _worst_first(entries, keys: list[MetricKey]) -> tuple[list[str], str | None]:
    """The images by the first ranked metric averaged over the snapshots, worst first."""
    directions = ranked(keys)
    if not directions:
        images = {image for entry in entries.values() for image in entry.get("per_image", {})}
        return sorted(images), None
    key, lower = next(iter(directions.items()))
    totals: dict[str, list[float]] = {}
    for entry in entries.values():
        for image, values in entry.get("per_image", {}).items():
            value = _number(values.get(str(key)))
            totals.setdefault(image, [])
            if value is not None:
                totals[image].append(value)
    score = {image: (np.mean(values) if values else -math.inf) for image, values in totals.items()}
    order = sorted(score, key=lambda image: (-score[image] if lower else score[image], image))
    return order, str(key)


def error_maps(run) -> dict:
    """Error maps of the worst images, as PNG data URLs: (snapshot, image) -> URL.

    Each is |fitted - ground truth| in metres from the written 8-bit pictures, at most
    ERROR_MAP_WIDTH wide, until ERROR_MAP_BUDGET_BYTES are used.
    """
    evaluated = [name for name, e in run.tally.entries.items() if e.get("status") == "evaluated"]
    keys = list(next(iter(run.tally.means.values()))) if run.tally.means else []
    order, _ = _worst_first(run.tally.entries, keys)
    items = {Path(getattr(item, "color_path", item)).stem: item for item in run.items}
    wanted = [(name, image) for image in order[:ERROR_MAP_IMAGES] if image in items
              for name in evaluated if image in run.tally.entries[name].get("per_image", {})]
    pictures = {(name, image): run.task.report_pictures(name, items[image])
                for name, image in wanted}
    wanted = [pair for pair in wanted if {"fitted", "ground truth"} <= set(pictures[pair])]
    if not wanted:
        return {}

    def metres(path: Path) -> np.ndarray | None:
        visual = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if visual is None:
            return None
        height, width = visual.shape
        if width > ERROR_MAP_WIDTH:
            size = (ERROR_MAP_WIDTH, max(1, round(height * ERROR_MAP_WIDTH / width)))
            visual = cv2.resize(visual, size, interpolation=cv2.INTER_AREA)
        # pngs.depth_visual inverted: grey v is exp((v / 255 - 1) / (2 * slope)) depth units.
        return np.exp((visual / 255.0 - 1.0) / (2.0 * LOG_ENCODING_SLOPE)) * DEPTH_RANGE_M

    maps, used = {}, 0
    for pair in wanted:
        fitted, truth = metres(pictures[pair]["fitted"]), metres(pictures[pair]["ground truth"])
        if fitted is None or truth is None or fitted.shape != truth.shape:
            continue  # a picture missing or replaced: no map, the panel shows the rest
        levels = np.rint(np.clip(np.abs(fitted - truth) / ERROR_MAP_MAX_M, 0.0, 1.0) * 255)
        picture = cv2.applyColorMap(levels.astype(np.uint8), ERROR_MAP_COLORMAP)
        url = "data:image/png;base64," + base64.b64encode(pngs.encode_png(picture)).decode()
        used += len(url)
        if used > ERROR_MAP_BUDGET_BYTES:
            break
        maps[pair] = url
    return maps


def report_data(run, report: Path, error_maps: dict) -> dict:
    """Everything the page shows, as JSON-ready data."""
    settings, tally, document, verdict = run.settings, run.tally, run.document, run.verdict
    entries = tally.entries
    keys = list(next(iter(tally.means.values()))) if tally.means else []
    directions = {str(k): lower for k, lower in ranked(keys).items()}
    metrics = [{"key": str(k), "lower": directions.get(str(k))} for k in keys]
    snapshots = []
    for name, entry in entries.items():
        ties = {str(k): ("best" if best == name else "tied" if name in tied else "")
                for k, (best, tied) in verdict.ties.items()}
        snapshots.append({
            "name": name, "status": entry.get("status"), "error": entry.get("error"),
            "images": entry.get("images_evaluated", 0),
            "metrics": {k: _number(v) for k, v in entry.get("metrics", {}).items()},
            "ci": {k: [_number(lo), _number(hi)] for k, (lo, hi)
                   in entry.get("metrics_ci", {}).items()},
            "marks": ties})
    options = document.get("options", {})
    facts = [["task", document.get("task", options.get("task"))],
             ["started", document.get("started")], ["seconds", document.get("seconds")],
             ["images found", document.get("images_found")],
             ["images skipped", len(tally.bad_images)],
             ["engine", options.get("engine")], ["INPUT_DIR", options.get("input_dir")],
             ["GT_DIR", options.get("gt_dir")], ["OUT_DIR", options.get("out_dir")],
             ["SNAPSHOTS_DIR", options.get("snapshots_dir")],
             ["depth_eval", document.get("versions", {}).get("depth_eval")]]
    confidence = document.get("confidence") or {}
    if confidence:
        facts.append(["intervals", f"{confidence['level']:g} bootstrap ({confidence['method']}, "
                                   f"{confidence['resamples']} resamples, seed "
                                   f"{confidence['seed']})"])
    return {"facts": [[k, "" if v is None else str(v)] for k, v in facts],
            "metrics": metrics, "snapshots": snapshots,
            "skipped_images": [[image, reason] for image, reason in tally.bad_images.items()],
            "gate": _gate_data(settings, document, verdict), "curves": _curves(entries, keys),
            "images": _images(run, report, error_maps, keys), "per_page": IMAGES_PER_PAGE}


def _gate_data(settings, document, verdict) -> dict | None:
    gate_settings = settings.gate
    if gate_settings.baseline is None:
        return None
    checks = [{"snapshot": c.snapshot, "rule": c.rule.text, "outcome": c.outcome,
               "reason": c.violation.reason if c.violation is not None else "",
               "interval": None if c.interval is None else [_number(x) for x in c.interval],
               "relative": c.rule.relative, "p": _number(c.p_value)} for c in verdict.checks]
    rows = []
    base = gate_settings.baseline["snapshots"]
    for name in sorted(set(document["snapshots"]) | set(base)):
        pairing = verdict.pairings.get(name)
        for metric in verdict.shown:
            current = (document["snapshots"].get(name) or {}).get("metrics", {}).get(metric)
            before = (base.get(name) or {}).get("metrics", {}).get(metric)
            row = {"snapshot": name, "metric": metric, "baseline": _number(before),
                   "current": _number(current), "interval": None, "p": None, "paired": None}
            if pairing is not None:
                row["interval"] = [_number(x) for x in pairing.relative_interval(metric)]
                row["p"] = _number(pairing.p_value(metric))
                row["paired"] = [pairing.images, pairing.baseline_images]
            rows.append(row)
    return {"baseline": str(gate_settings.baseline_path), "failed": verdict.failed,
            "significant": gate_settings.significant, "checks": checks, "rows": rows,
            "notes": list(verdict.notes), "new": list(verdict.new)}


def _curves(entries, keys) -> dict | None:
    """Training runs (``<run>_iter_<N>`` names) -> metric -> [iteration, value, low, high]."""
    evaluated = {name: e for name, e in entries.items() if e.get("status") == "evaluated"}
    runs = training_runs(evaluated)
    if runs is None or not any(len(points) > 1 for points in runs.values()):
        return None
    curves = {}
    for run_name, points in runs.items():
        curves[run_name] = {
            str(k): [[iteration, _number(evaluated[name]["metrics"].get(str(k))),
                      *[_number(x) for x in evaluated[name].get("metrics_ci", {})
                        .get(str(k), [None, None])]] for iteration, name in points]
            for k in ranked(keys)}
    return curves


def _images(run, report: Path, error_maps: dict, keys) -> dict:
    """The per-image section: images worst first, each snapshot's pictures and value."""
    entries = run.tally.entries
    order, key = _worst_first(entries, keys)
    evaluated = [name for name, e in entries.items() if e.get("status") == "evaluated"]
    items = {Path(getattr(item, "color_path", item)).stem: item for item in run.items}
    rows = []
    for image in order:
        item = items.get(image)
        if item is None:
            continue
        shared, per_snapshot = {}, {}
        for name in evaluated:
            values = entries[name].get("per_image", {}).get(image)
            if values is None:
                continue
            files = run.task.report_pictures(name, item)
            shared = shared or {label: _link(files[label], report)
                                for label in ("input", "ground truth") if label in files}
            links = {label: _link(files[label], report)
                     for label in ("raw", "fitted") if label in files}
            if (name, image) in error_maps:
                links["error"] = error_maps[(name, image)]
            per_snapshot[name] = {"value": _number(values.get(key)) if key else None,
                                  "pictures": links}
        rows.append({"image": image, "pictures": shared, "snapshots": per_snapshot})
    return {"metric": key, "rows": rows}


def _script_json(data) -> str:
    """JSON for a <script> element: no ``<`` in it, so no ``</script>`` or ``<!--``."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def page(data: dict) -> bytes:
    """The report's bytes."""
    return (HEADER.decode() + "\n" + _PAGE.replace("/*DATA*/", _script_json(data))).encode("utf-8")


_PAGE = """<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src 'self' file: data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>depth_eval report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-variant-numeric:tabular-nums}
td,th{padding:2px 8px;border-bottom:1px solid #eee;text-align:right;white-space:nowrap}
td:first-child,th:first-child{text-align:left}#facts td{text-align:left}
#gate table{margin:.8em 0}
th{cursor:pointer;background:#f4f4f4;position:sticky;top:0}
th.sorted-asc::after{content:" \\25B2"}th.sorted-desc::after{content:" \\25BC"}
.ci{color:#777;font-size:.85em}.best{font-weight:bold;color:#075}.tied{color:#075}
.FAIL{color:#b00;font-weight:bold}.noise{color:#a60}.ok{color:#075}
.verdict{font-size:1.2em;padding:.4em .8em;display:inline-block;border-radius:4px}
.verdict.fail{background:#fdd}.verdict.pass{background:#dfd}
.panel{margin:1em 0;padding:.5em;border:1px solid #ddd}
.panel figure{display:inline-block;margin:2px;text-align:center;font-size:.8em}
.panel img{max-width:200px;max-height:160px;display:block}
.pager button{margin-right:.5em}
svg{background:#fafafa;border:1px solid #ddd;margin:4px}
</style></head><body>
<h1>depth_eval report</h1>
<table id="facts"></table>
<h2>Rankings</h2><p id="legend"></p>
<table id="rankings"><thead></thead><tbody></tbody></table>
<p id="skipped"></p>
<h2>Gate</h2><div id="gate"></div>
<h2>Metrics across iterations</h2><div id="curves"></div>
<h2>Per image, worst first</h2><div class="pager" id="pager"></div><div id="images"></div>
<script type="application/json" id="data">/*DATA*/</script>
<script>
"use strict";
const data = JSON.parse(document.getElementById("data").textContent);
function el(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined && text !== null) e.textContent = String(text);
  if (cls) e.className = cls;
  return e;
}
function fmt(v, d) { return v === null || v === undefined ? "-" : Number(v).toFixed(d === undefined ? 4 : d); }
for (const [k, v] of data.facts) {
  const tr = el("tr"); tr.append(el("th", k), el("td", v));
  document.getElementById("facts").append(tr);
}
const conf = data.facts.find(f => f[0] === "intervals");
document.getElementById("legend").textContent = (conf ? "[low, high]: " + conf[1] +
  " interval of the mean over the images; " : "") +
  "bold: best; green: not distinguishable from the best. Click a column to sort.";
const table = document.getElementById("rankings");
const columns = [{label: "snapshot", value: s => s.name, text: true},
                 {label: "images", value: s => s.images}]
  .concat(data.metrics.map(m => ({label: m.key, metric: m, value: s => s.metrics[m.key]})));
const head = el("tr");
columns.forEach((c, i) => { const th = el("th", c.label); th.dataset.column = i;
  th.addEventListener("click", () => sortBy(i)); head.append(th); });
table.tHead.append(head);
let sortState = {column: -1, asc: true};
function renderRows(rows) {
  const body = table.tBodies[0]; body.replaceChildren();
  for (const s of rows) {
    const tr = el("tr"); tr.dataset.snapshot = s.name;
    tr.append(el("td", s.name), el("td", s.status === "evaluated" ? s.images : s.status));
    for (const m of data.metrics) {
      const td = el("td", fmt(s.metrics[m.key]), s.marks[m.key] || "");
      const ci = s.ci[m.key];
      if (ci) td.append(" ", el("span", "[" + fmt(ci[0]) + ", " + fmt(ci[1]) + "]", "ci"));
      td.dataset.value = s.metrics[m.key] === null || s.metrics[m.key] === undefined ? "" : s.metrics[m.key];
      tr.append(td);
    }
    body.append(tr);
  }
}
function sortBy(i) {
  const c = columns[i];
  const asc = sortState.column === i ? !sortState.asc :
    !(c.metric && c.metric.lower === false);
  sortState = {column: i, asc: asc};
  const rows = data.snapshots.slice().sort((a, b) => {
    const x = c.value(a), y = c.value(b);
    if (x === y) return a.name < b.name ? -1 : 1;
    if (x === null || x === undefined) return 1;
    if (y === null || y === undefined) return -1;
    return (x < y ? -1 : 1) * (asc ? 1 : -1);
  });
  head.querySelectorAll("th").forEach(th => th.className = "");
  head.children[i].className = asc ? "sorted-asc" : "sorted-desc";
  renderRows(rows);
}
renderRows(data.snapshots);
if (data.skipped_images.length) {
  const p = document.getElementById("skipped");
  p.append(el("b", data.skipped_images.length + " images skipped: "));
  for (const [image, reason] of data.skipped_images) p.append(el("div", image + ": " + reason));
}
const gate = document.getElementById("gate");
if (!data.gate) gate.append(el("p", "No baseline (--baseline): nothing compared."));
else {
  const g = data.gate;
  gate.append(el("div", g.failed ? "FAILED" : "passed", "verdict " + (g.failed ? "fail" : "pass")));
  gate.append(el("p", "baseline: " + g.baseline + (g.significant ? " (rules fail only on significant changes)" : "")));
  for (const note of g.notes) gate.append(el("p", note));
  for (const name of g.new) gate.append(el("p", "new snapshot (not checked): " + name));
  if (g.checks.length) {
    const t = el("table"); t.id = "checks";
    const h = el("tr"); for (const l of ["snapshot", "rule", "verdict", "paired interval", "p", "reason"]) h.append(el("th", l));
    t.append(h);
    for (const c of g.checks) {
      const tr = el("tr"); const u = c.relative ? "%" : "";
      tr.append(el("td", c.snapshot), el("td", c.rule), el("td", c.outcome, c.outcome),
        el("td", c.interval ? "[" + fmt(c.interval[0]) + u + ", " + fmt(c.interval[1]) + u + "]" : "-"),
        el("td", fmt(c.p, 3)), el("td", c.reason));
      t.append(tr);
    }
    gate.append(t);
  }
  const t = el("table"); t.id = "comparison";
  const h = el("tr"); for (const l of ["snapshot", "metric", "baseline", "current", "change", "paired interval", "p", "images paired"]) h.append(el("th", l));
  t.append(h);
  for (const r of g.rows) {
    const tr = el("tr");
    const change = r.baseline !== null && r.current !== null && r.baseline !== 0 ?
      ((r.current - r.baseline) / Math.abs(r.baseline) * 100).toFixed(2) + "%" : "-";
    tr.append(el("td", r.snapshot), el("td", r.metric), el("td", fmt(r.baseline)), el("td", fmt(r.current)),
      el("td", change), el("td", r.interval && r.interval[0] !== null ? "[" + fmt(r.interval[0], 2) + "%, " + fmt(r.interval[1], 2) + "%]" : "-"),
      el("td", fmt(r.p, 3)), el("td", r.paired ? r.paired[0] + " of " + r.paired[1] : "-"));
    t.append(tr);
  }
  gate.append(t);
}
const NS = "http://www.w3.org/2000/svg";
function svg(tag, attrs) { const e = document.createElementNS(NS, tag);
  for (const k in attrs) e.setAttribute(k, attrs[k]); return e; }
const curves = document.getElementById("curves");
if (!data.curves) curves.append(el("p", "No training curve: the snapshot names carry no _iter_N, or each run has one snapshot."));
else {
  const colours = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
  for (const m of data.metrics.filter(m => m.lower !== null)) {
    const W = 320, H = 180, P = 30; const box = svg("svg", {width: W, height: H});
    const title = svg("text", {x: P, y: 14, "font-size": 12}); title.textContent = m.key; box.append(title);
    const points = Object.values(data.curves).flatMap(r => r[m.key]).filter(p => p[1] !== null);
    if (!points.length) continue;
    const xs = points.map(p => p[0]), ys = points.flatMap(p => [p[1], p[2], p[3]]).filter(v => v !== null);
    const x0 = Math.min(...xs), x1 = Math.max(...xs), y0 = Math.min(...ys), y1 = Math.max(...ys);
    const X = v => P + (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0)) * (W - 2 * P);
    const Y = v => H - P + (y1 === y0 ? -0.5 : -(v - y0) / (y1 - y0)) * (H - 2 * P);
    Object.entries(data.curves).forEach(([run, byMetric], i) => {
      const c = colours[i % colours.length];
      const pts = byMetric[m.key].filter(p => p[1] !== null);
      const band = pts.filter(p => p[2] !== null);
      if (band.length > 1) box.append(svg("polygon", {fill: c, "fill-opacity": 0.15, stroke: "none",
        points: band.map(p => X(p[0]) + "," + Y(p[2])).concat(band.slice().reverse().map(p => X(p[0]) + "," + Y(p[3]))).join(" ")}));
      box.append(svg("polyline", {fill: "none", stroke: c, points: pts.map(p => X(p[0]) + "," + Y(p[1])).join(" ")}));
      const label = svg("text", {x: W - P, y: 14 + 12 * (i + 1), "font-size": 10, fill: c, "text-anchor": "end"});
      label.textContent = run; box.append(label);
    });
    for (const [value, x, y, anchor] of [[x0, P, H - 8, "start"], [x1, W - P, H - 8, "end"],
                                          [y0, 2, H - P, "start"], [y1, 2, P, "start"]]) {
      const tick = svg("text", {x: x, y: y, "font-size": 9, fill: "#555", "text-anchor": anchor});
      tick.textContent = Number.isInteger(value) ? String(value) : Number(value).toPrecision(3);
      box.append(tick);
    }
    curves.append(box);
  }
}
const rows = data.images.rows, perPage = data.per_page;
const pages = Math.max(1, Math.ceil(rows.length / perPage));
const pager = document.getElementById("pager");
let page = 0;
function showPage(n) {
  page = Math.min(Math.max(n, 0), pages - 1);
  pager.replaceChildren();
  const prev = el("button", "previous"); prev.onclick = () => showPage(page - 1); prev.disabled = page === 0;
  const next = el("button", "next"); next.onclick = () => showPage(page + 1); next.disabled = page === pages - 1;
  pager.append(prev, next, el("span", "page " + (page + 1) + " of " + pages + " (" + rows.length + " images" +
    (data.images.metric ? ", worst " + data.images.metric + " first)" : ")")));
  const box = document.getElementById("images"); box.replaceChildren();
  for (const r of rows.slice(page * perPage, (page + 1) * perPage)) {
    const panel = el("div", undefined, "panel"); panel.append(el("h3", r.image));
    const picture = (src, caption) => { const f = el("figure"); const img = el("img");
      img.loading = "lazy"; img.alt = caption; img.src = src; f.append(img, el("figcaption", caption)); return f; };
    for (const label of ["input", "ground truth"]) if (r.pictures[label]) panel.append(picture(r.pictures[label], label));
    for (const [name, s] of Object.entries(r.snapshots)) {
      const line = el("div"); line.append(el("div", name + (s.value !== null ? ": " + fmt(s.value) : "")));
      for (const label of ["raw", "fitted", "error"]) if (s.pictures[label]) line.append(picture(s.pictures[label], label));
      panel.append(line);
    }
    box.append(panel);
  }
}
showPage(0);
</script></body></html>
"""
