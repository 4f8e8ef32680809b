#!/usr/bin/env python3
"""Train the demo snapshots shipped in ``examples/snapshots`` (development tool, CPU PyTorch).

The network is a scaled-down ``refining_network/norm_abs_global_only`` of the thesis (see
``ARCHITECTURES.md``): the same layer names, types, wiring and kernel geometry, fewer channels.
It is trained on synthetic scenes from ``tools/synth_scenes.py`` to predict depth / 10 at
54 x 74 (blob ``depth-refine``), with the thesis evaluator's preprocessing, and exported as a
hand-written deploy ``.prototxt`` plus a binary ``.caffemodel`` (``depth_eval.caffe.proto``).
After export every snapshot is loaded with ``cv2.dnn.readNetFromCaffe`` and its output compared
with PyTorch's.

Typical run (about 27 minutes on a 2-core machine: 7 to render, 20 to train on two threads)::

    python tools/train_demo.py --train-count 2500 --iters 3200 --early-iter 200

Scenes are rendered once and cached (``--cache``, default ``/tmp/depth_eval_demo_cache``).
``--eval-only`` skips training and scores the snapshots in ``--out`` on ``examples/``.

PyTorch is needed only here (``pip install torch``); the ``depth_eval`` package never imports
this file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

# Two threads (the machine's two cores): set before numpy / torch start their pools.
THREADS = 2
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, str(THREADS))

import cv2
import numpy as np
import scipy.ndimage
from skimage.transform import resize

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tools"))

from depth_eval.caffe import proto as caffe_proto  # noqa: F401
from synth_scenes import encode_depth, render_scene  # noqa: E402

INPUT_HW = (218, 298)
OUTPUT_HW = (54, 74)
GLOBAL_HW = (27, 37)
GT_HW = (320, 420)
INPUT_MEAN = 127.0
EPS_DEPTH = 1.0 / 255.0

# Channel widths of the scaled-down network (the thesis values in brackets).
WIDTH = {
    "conv1": 16,        # [96]
    "conv2": 32,        # [256], group 2
    "conv3": 32,        # [384]
    "conv4": 32,        # [384], group 2
    "conv5": 16,        # [256], group 2
    "fc-main": 64,      # [1024]
    "conv1-refine": 16,  # [96]
    "conv2-refine": 32,  # [64]
    "conv3-refine": 32,  # [64]
    "conv4-refine": 32,  # [64], group 2
}

# Trained parameter = exported Caffe blob / scale, per layer (weight scale, bias scale), so that
# Adam's steps suit every layer: the first convolutions see x * 255 - 127 (std ~ 60) and the
# last one is followed by the thesis' Power layer (scale 0.01).
PARAM_SCALE = {
    "conv1": (1 / 64.0, 1.0),
    "conv1-refine": (1 / 64.0, 1.0),
    "conv5-refine": (100.0, 100.0),
}

# Seeds: training scenes are 0 .. N-1, validation 80000.., the shipped examples 90000..90011.
VAL_SEED = 80000
EXAMPLE_SEED = 90000


# --------------------------------------------------------------------------------------------
# data

def preprocess(rgb_uint8: np.ndarray) -> np.ndarray:
    """RGB uint8 H x W x 3 -> 3 x 218 x 298 float32, as the thesis evaluator prepares inputs."""
    img = rgb_uint8.astype(np.float32) / np.float32(255.0)
    img = resize(img, INPUT_HW + (3,), order=1, mode="constant", anti_aliasing=False)
    return img.transpose(2, 0, 1).astype(np.float32) * np.float32(255.0) - np.float32(INPUT_MEAN)


def depth_target(depth_m: np.ndarray, hw) -> np.ndarray:
    """Ground truth as the evaluator sees it (8-bit, / 255 = depth / 10), area-downsampled."""
    unit = encode_depth(depth_m).astype(np.float32) / np.float32(255.0)
    return cv2.resize(unit, (hw[1], hw[0]), interpolation=cv2.INTER_AREA)


def build_cache(cache: Path, name: str, seeds) -> dict:
    """Render scenes once and keep inputs / targets in ``cache/name.npz``."""
    path = cache / f"{name}.npz"
    seeds = np.asarray(list(seeds))
    if path.exists():
        data = dict(np.load(path))
        if np.array_equal(data["seeds"], seeds):
            return data
    cache.mkdir(parents=True, exist_ok=True)
    xs = np.empty((len(seeds), 3) + INPUT_HW, np.float16)
    ys = np.empty((len(seeds), 1) + OUTPUT_HW, np.float32)
    gs = np.empty((len(seeds), 1) + GLOBAL_HW, np.float32)
    gt_mean = np.empty(len(seeds), np.float64)
    start = time.time()
    for i, seed in enumerate(seeds):
        rgb, depth = render_scene(int(seed), *GT_HW)
        xs[i] = preprocess(rgb)
        ys[i, 0] = depth_target(depth, OUTPUT_HW)
        gs[i, 0] = depth_target(depth, GLOBAL_HW)
        gt_mean[i] = (encode_depth(depth).astype(np.float64) / 255.0 * 10.0).mean()
        if (i + 1) % 250 == 0:
            print(f"  {name}: {i + 1}/{len(seeds)} scenes, {time.time() - start:.0f} s",
                  flush=True)
    data = {"seeds": seeds, "x": xs, "y": ys, "g": gs, "gt_mean_m": gt_mean}
    np.savez(path, **data)
    return data


def training_data(cache: Path, count: int, chunk: int = 500) -> dict:
    """Scenes 0 .. count-1, cached in chunks of 500 (so a larger count reuses what exists)."""
    parts = [build_cache(cache, f"train_{lo:05d}_{min(lo + chunk, count) - 1:05d}",
                         range(lo, min(lo + chunk, count))) for lo in range(0, count, chunk)]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def augment(rng: np.random.Generator, xb, yb, gb):
    """Depth-preserving variants: mirror, RGB channel order, brightness (x = 255 * rgb - 127)."""
    if rng.random() < 0.5:
        xb, yb, gb = xb.flip(3), yb.flip(3), gb.flip(3)
    xb = xb[:, rng.permutation(3)]
    gain = _torch().from_numpy(rng.uniform(0.75, 1.25, (len(xb), 1, 1, 1)).astype(np.float32))
    xb = (xb + INPUT_MEAN) * gain - INPUT_MEAN
    return xb, yb, gb


# --------------------------------------------------------------------------------------------
# network (PyTorch), with Caffe's layer semantics

def _torch():
    import torch
    torch.set_num_threads(THREADS)
    return torch


def make_model():
    torch = _torch()
    nn = torch.nn
    W = WIDTH

    def lrn():
        # Caffe LRN (ACROSS_CHANNELS): x / (k + alpha / n * sum x^2) ** beta, k = 1.
        return nn.LocalResponseNorm(size=5, alpha=1e-4, beta=0.75, k=1.0)

    def mvn(x):
        # Caffe MVN: per sample and channel, (x - mean) / (std + eps), population std, eps 1e-9.
        mean = x.mean(dim=(2, 3), keepdim=True)
        centred = x - mean
        std = centred.pow(2).mean(dim=(2, 3), keepdim=True).sqrt()
        return centred / (std + 1e-9)

    class DemoRefine(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleDict({
                "conv1": nn.Conv2d(3, W["conv1"], 11, stride=4),
                "conv2": nn.Conv2d(W["conv1"], W["conv2"], 5, padding=2, groups=2),
                "conv3": nn.Conv2d(W["conv2"], W["conv3"], 3, padding=1),
                "conv4": nn.Conv2d(W["conv3"], W["conv4"], 3, padding=1, groups=2),
                "conv5": nn.Conv2d(W["conv4"], W["conv5"], 3, padding=1, groups=2),
                "fc-main": nn.Linear(W["conv5"] * 13 * 18, W["fc-main"]),
                "fc-depth": nn.Linear(W["fc-main"], GLOBAL_HW[0] * GLOBAL_HW[1]),
                "upsample-global": nn.ConvTranspose2d(1, 1, 2, stride=2, bias=False),
                "conv1-refine": nn.Conv2d(3, W["conv1-refine"], 11, stride=2, padding=2),
                "conv2-refine": nn.Conv2d(W["conv1-refine"] + 1, W["conv2-refine"], 5, padding=2),
                "conv3-refine": nn.Conv2d(W["conv2-refine"], W["conv3-refine"], 5, padding=2),
                "conv4-refine": nn.Conv2d(W["conv3-refine"], W["conv4-refine"], 5, padding=2,
                                          groups=2),
                "conv5-refine": nn.Conv2d(W["conv4-refine"], 1, 3, padding=1),
            })
            self.lrn = lrn()
            self.pool3 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
            self.pool_refine = nn.MaxPool2d(2, stride=2, padding=1, ceil_mode=True)
            for name, layer in self.layers.items():
                fan_in = layer.weight[0].numel()
                gain = 2.0 if name not in ("fc-depth", "conv5-refine") else 1.0
                nn.init.normal_(layer.weight, 0.0, (gain / fan_in) ** 0.5)
                if layer.bias is not None:
                    nn.init.zeros_(layer.bias)
            with torch.no_grad():
                self.layers["upsample-global"].weight.fill_(1.0)
                # Start near the mean depth (~0.45 in depth / 10 units).
                self.layers["fc-depth"].bias.fill_(0.45)
                self.layers["fc-depth"].weight *= 0.1
                self.layers["conv5-refine"].bias.fill_(0.45)
                self.layers["conv5-refine"].weight *= 0.1

        def effective(self, name):
            """(weight, bias) as the exported Caffe layer holds them (PARAM_SCALE applied)."""
            layer = self.layers[name]
            w_scale, b_scale = PARAM_SCALE.get(name, (1.0, 1.0))
            bias = None if layer.bias is None else layer.bias * b_scale
            return layer.weight * w_scale, bias

        def conv(self, name, x):
            layer = self.layers[name]
            weight, bias = self.effective(name)
            return torch.nn.functional.conv2d(x, weight, bias, layer.stride, layer.padding,
                                              layer.dilation, layer.groups)

        def forward(self, x):
            L = self.layers
            relu = torch.relu
            conv = self.conv
            h = self.pool3(self.lrn(relu(conv("conv1", x))))
            h = self.lrn(relu(conv("conv2", h)))
            h = relu(conv("conv3", h))
            h = relu(conv("conv4", h))
            h = self.pool3(relu(conv("conv5", h)))
            h = relu(L["fc-main"](h.flatten(1)))
            depth = L["fc-depth"](h).reshape(-1, 1, *GLOBAL_HW)
            est = L["upsample-global"](mvn(depth))
            r = self.pool_refine(self.lrn(relu(conv("conv1-refine", x))))
            r = torch.cat([r, est], dim=1)
            r = relu(conv("conv2-refine", r))
            r = relu(conv("conv3-refine", r))
            r = relu(conv("conv4-refine", r))
            refine = 0.01 * conv("conv5-refine", r)     # power-refine: scale 0.01
            return refine, depth

    return DemoRefine()


# --------------------------------------------------------------------------------------------
# export: hand-written deploy prototxt + caffemodel

class Enum(str):
    """A protobuf text-format enum value (written without quotes)."""


def _fmt_value(value) -> str:
    if isinstance(value, Enum):
        return str(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


def _fmt_fields(fields, indent: int) -> list[str]:
    """fields: list of (key, value); a value that is a list of pairs is a nested message."""
    pad = "  " * indent
    lines = []
    for key, value in fields:
        if isinstance(value, list):
            lines.append(f"{pad}{key} {{")
            lines.extend(_fmt_fields(value, indent + 1))
            lines.append(f"{pad}}}")
        else:
            lines.append(f"{pad}{key}: {_fmt_value(value)}")
    return lines


def deploy_layers() -> list[tuple]:
    """(name, type, bottoms, tops, [(param_field, [(key, value), ...])]) in network order."""
    W = WIDTH
    lrn = [("lrn_param", [("local_size", 5), ("alpha", 0.0001), ("beta", 0.75)])]

    def conv(n, k, stride=None, pad=None, group=None):
        p = [("num_output", n)]
        if pad is not None:
            p.append(("pad", pad))
        p.append(("kernel_size", k))
        if stride is not None:
            p.append(("stride", stride))
        if group is not None:
            p.append(("group", group))
        return [("convolution_param", p)]

    def pool(k, s, pad=None):
        p = [("pool", Enum("MAX")), ("kernel_size", k), ("stride", s)]
        if pad is not None:
            p.append(("pad", pad))
        return [("pooling_param", p)]

    def deconv(n, k, s, group):
        return [("convolution_param", [("num_output", n), ("bias_term", False), ("pad", 0),
                                       ("kernel_size", k), ("group", group), ("stride", s)])]

    return [
        ("data", "Input", [], ["X"], [("input_param", [("shape", [
            ("dim", 1), ("dim", 3), ("dim", INPUT_HW[0]), ("dim", INPUT_HW[1])])])]),
        ("conv1", "Convolution", ["X"], ["conv1"], conv(W["conv1"], 11, stride=4)),
        ("relu1", "ReLU", ["conv1"], ["conv1"], []),
        ("norm1", "LRN", ["conv1"], ["norm1"], lrn),
        ("pool1", "Pooling", ["norm1"], ["pool1"], pool(3, 2)),
        ("conv2", "Convolution", ["pool1"], ["conv2"], conv(W["conv2"], 5, pad=2, group=2)),
        ("relu2", "ReLU", ["conv2"], ["conv2"], []),
        ("norm2", "LRN", ["conv2"], ["norm2"], lrn),
        ("conv3", "Convolution", ["norm2"], ["conv3"], conv(W["conv3"], 3, pad=1)),
        ("relu3", "ReLU", ["conv3"], ["conv3"], []),
        ("conv4", "Convolution", ["conv3"], ["conv4"], conv(W["conv4"], 3, pad=1, group=2)),
        ("relu4", "ReLU", ["conv4"], ["conv4"], []),
        ("conv5", "Convolution", ["conv4"], ["conv5"], conv(W["conv5"], 3, pad=1, group=2)),
        ("relu5", "ReLU", ["conv5"], ["conv5"], []),
        ("pool5", "Pooling", ["conv5"], ["pool5"], pool(3, 2)),
        ("fc-main", "InnerProduct", ["pool5"], ["fc-main"],
         [("inner_product_param", [("num_output", W["fc-main"])])]),
        ("relu6", "ReLU", ["fc-main"], ["fc-main"], []),
        ("fc-depth", "InnerProduct", ["fc-main"], ["fc-depth"],
         [("inner_product_param", [("num_output", GLOBAL_HW[0] * GLOBAL_HW[1])])]),
        ("reshape", "Reshape", ["fc-depth"], ["depth"], [("reshape_param", [("shape", [
            ("dim", 0), ("dim", 1), ("dim", GLOBAL_HW[0]), ("dim", GLOBAL_HW[1])])])]),
        ("mvnDepth-global", "MVN", ["depth"], ["depthMVN"], []),
        ("upsample-global", "Deconvolution", ["depthMVN"], ["est"], deconv(1, 2, 2, 1)),
        ("conv1-refine", "Convolution", ["X"], ["conv1-refine"],
         conv(W["conv1-refine"], 11, stride=2, pad=2)),
        ("relu1-refine", "ReLU", ["conv1-refine"], ["conv1-refine"], []),
        ("norm1-refine", "LRN", ["conv1-refine"], ["norm1-refine"], lrn),
        ("pool1-refine", "Pooling", ["norm1-refine"], ["pool1-refine"], pool(2, 2, pad=1)),
        ("concat", "Concat", ["pool1-refine", "est"], ["input-refine"],
         [("concat_param", [("axis", 1)])]),
        ("conv2-refine", "Convolution", ["input-refine"], ["conv2-refine"],
         conv(W["conv2-refine"], 5, pad=2, group=1)),
        ("relu2-refine", "ReLU", ["conv2-refine"], ["conv2-refine"], []),
        ("conv3-refine", "Convolution", ["conv2-refine"], ["conv3-refine"],
         conv(W["conv3-refine"], 5, pad=2)),
        ("relu3-refine", "ReLU", ["conv3-refine"], ["conv3-refine"], []),
        ("conv4-refine", "Convolution", ["conv3-refine"], ["conv4-refine"],
         conv(W["conv4-refine"], 5, pad=2, group=2)),
        ("relu4-refine", "ReLU", ["conv4-refine"], ["conv4-refine"], []),
        ("conv5-refine", "Convolution", ["conv4-refine"], ["depth-refine_"],
         conv(1, 3, pad=1, group=1)),
        ("power-refine", "Power", ["depth-refine_"], ["depth-refine"],
         [("power_param", [("power", 1.0), ("scale", 0.01), ("shift", 0.0)])]),
    ]


def deploy_prototxt(name: str) -> str:
    lines = [f"name: {_fmt_value(name)}"]
    for layer_name, layer_type, bottoms, tops, params in deploy_layers():
        fields = [("name", layer_name), ("type", layer_type)]
        fields += [("bottom", b) for b in bottoms] + [("top", t) for t in tops]
        fields += params
        lines += _fmt_fields([("layer", fields)], 0)
    return "\n".join(lines) + "\n"


def export_snapshot(state: dict, out_dir: Path, stem: str) -> tuple[Path, Path]:
    """Write ``stem.prototxt`` and ``stem.caffemodel``; state maps layer name -> [arrays]."""
    out_dir.mkdir(parents=True, exist_ok=True)
    prototxt = out_dir / f"{stem}.prototxt"
    caffemodel = out_dir / f"{stem}.caffemodel"
    prototxt.write_text(deploy_prototxt("demo refining_network norm_abs_global_only"),
                        encoding="utf-8")
    # Like Caffe's Net.save: every layer's definition, with its blobs where it has weights.
    net = caffe_proto.read_prototxt(prototxt)
    for layer in net.layer:
        for array in state.get(layer.name, []):
            blob = layer.blobs.add()
            blob.shape.dim.extend(int(d) for d in array.shape)
            blob.data.extend(np.asarray(array, np.float32).ravel().tolist())
    caffe_proto.write_caffemodel(net, caffemodel)
    return prototxt, caffemodel


def model_state(model) -> dict:
    """Layer name -> Caffe blobs (weights first, then bias), as numpy float32."""
    state = {}
    for name in model.layers:
        weight, bias = model.effective(name)
        blobs = [weight.detach().cpu().numpy().astype(np.float32)]
        if bias is not None:
            blobs.append(bias.detach().cpu().numpy().astype(np.float32))
        state[name] = blobs
    return state


def opencv_forward(prototxt: Path, caffemodel: Path, x: np.ndarray) -> np.ndarray:
    net = cv2.dnn.readNetFromCaffe(str(prototxt), str(caffemodel))
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    outs = []
    for sample in x:
        net.setInput(np.ascontiguousarray(sample[None], np.float32), "X")
        outs.append(np.array(net.forward("power-refine"), copy=True)[0])
    return np.stack(outs)


def verify_export(model, prototxt: Path, caffemodel: Path, x: np.ndarray) -> float:
    """Max |OpenCV - PyTorch| on x, relative to the output range; raises if above 1e-4."""
    torch = _torch()
    with torch.no_grad():
        ref = model(torch.from_numpy(x.astype(np.float32)))[0].numpy()
    got = opencv_forward(prototxt, caffemodel, x)
    rel = float(np.abs(got - ref).max() / max(np.ptp(ref), 1e-12))
    print(f"  verify {caffemodel.name}: max |opencv - torch| = {np.abs(got - ref).max():.3g}"
          f" ({rel:.2g} of the range {np.ptp(ref):.3g})", flush=True)
    if rel > 1e-4:
        raise RuntimeError(f"{caffemodel}: OpenCV output differs from PyTorch ({rel:.3g})")
    return rel


# --------------------------------------------------------------------------------------------
# evaluation, thesis metrics

def metrics_m(o_m: np.ndarray, g_m: np.ndarray) -> dict:
    g_f = np.maximum(g_m, EPS_DEPTH)
    o_f = np.maximum(o_m, EPS_DEPTH)
    ratio = np.maximum(o_f / g_f, g_f / o_f)
    return {"RMSE": float(np.sqrt(np.mean((o_m - g_m) ** 2))),
            "AbsRelDiff": float(np.mean(np.abs(o_m - g_m) / g_f)),
            "Threshold 1.25": float(np.mean(ratio < 1.25))}


def upsample_m(o2d: np.ndarray) -> np.ndarray:
    h, w = o2d.shape
    return scipy.ndimage.zoom(o2d.astype(np.float64), (GT_HW[0] / h, GT_HW[1] / w), order=3) * 10.0


def load_examples(colors_dir: Path, depths_dir: Path):
    xs, gts, stems = [], [], []
    for path in sorted(colors_dir.glob("*_colors.png")):
        stem = path.name[: -len("_colors.png")]
        rgb = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        gt = cv2.imread(str(depths_dir / f"{stem}_depth.png"), cv2.IMREAD_UNCHANGED)
        xs.append(preprocess(rgb))
        gts.append(gt.astype(np.float64) / 255.0 * 10.0)
        stems.append(stem)
    return np.stack(xs), gts, stems


def score(preds_2d, gts) -> dict:
    per = [metrics_m(upsample_m(p), g) for p, g in zip(preds_2d, gts)]
    return {k: float(np.mean([m[k] for m in per])) for k in per[0]}


def evaluate_snapshots(out_dir: Path, colors_dir: Path, depths_dir: Path, const_m: float):
    x, gts, stems = load_examples(colors_dir, depths_dir)
    rows = {}
    for proto in sorted(out_dir.glob("*.prototxt")):
        model_path = proto.with_suffix(".caffemodel")
        if model_path.exists():
            preds = opencv_forward(proto, model_path, x)[:, 0]
            rows[proto.stem] = score(preds, gts)
    rows[f"constant {const_m:.3f} m (training mean)"] = score(
        [np.full(OUTPUT_HW, const_m / 10.0)] * len(gts), gts)
    held_mean = float(np.mean([g.mean() for g in gts]))
    rows[f"constant {held_mean:.3f} m (held-out mean)"] = score(
        [np.full(OUTPUT_HW, held_mean / 10.0)] * len(gts), gts)
    print(f"\n{len(stems)} held-out scenes ({stems[0]} .. {stems[-1]})")
    print(f"{'predictor':45s} {'RMSE':>7s} {'AbsRel':>7s} {'d<1.25':>7s}")
    for name, m in rows.items():
        print(f"{name:45s} {m['RMSE']:7.3f} {m['AbsRelDiff']:7.3f} {m['Threshold 1.25']:7.3f}")
    return rows


# --------------------------------------------------------------------------------------------
# training

def gradient_loss(pred, target):
    """Mean |d pred - d target| over horizontal and vertical neighbour differences."""
    dx = (pred[..., :, 1:] - pred[..., :, :-1]) - (target[..., :, 1:] - target[..., :, :-1])
    dy = (pred[..., 1:, :] - pred[..., :-1, :]) - (target[..., 1:, :] - target[..., :-1, :])
    return dx.abs().mean() + dy.abs().mean()


def train(args) -> None:
    torch = _torch()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    t0 = time.time()
    data = training_data(args.cache, args.train_count)
    val = build_cache(args.cache, "val_64", range(VAL_SEED, VAL_SEED + 64))
    print(f"data ready in {time.time() - t0:.0f} s; training mean depth "
          f"{data['gt_mean_m'].mean():.4f} m", flush=True)

    x_all = torch.from_numpy(data["x"])
    y_all = torch.from_numpy(data["y"])
    g_all = torch.from_numpy(data["g"])
    model = make_model()
    opt = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=args.lr, total_steps=args.iters,
                                                pct_start=0.05, final_div_factor=50.0)
    val_x = torch.from_numpy(val["x"].astype(np.float32))
    val_y = torch.from_numpy(val["y"])

    def val_rmse():
        model.eval()
        with torch.no_grad():
            pred = torch.cat([model(val_x[i:i + 16])[0] for i in range(0, len(val_x), 16)])
        model.train()
        return float(((pred - val_y) ** 2).mean().sqrt()) * 10.0

    log = []
    start = time.time()
    n = len(x_all)
    snapshots = {}
    for it in range(1, args.iters + 1):
        idx = torch.from_numpy(rng.choice(n, args.batch, replace=False))
        xb = x_all[idx].float()
        yb = y_all[idx]
        gb = g_all[idx]
        xb, yb, gb = augment(rng, xb, yb, gb)
        refine, depth = model(xb)
        # Loss in metres: squared error of the refined output plus an auxiliary term on the
        # global output (the thesis trained the global network on its own first).
        loss = ((refine - yb) * 10).pow(2).mean() + 0.5 * ((depth - gb) * 10).pow(2).mean()
        # Gradient term: L1 of the difference of horizontal / vertical finite differences (m),
        # so that depth edges (the objects' outlines) are not averaged away.
        loss = loss + args.grad_weight * gradient_loss(refine * 10, yb * 10)
        # Relative term (|o - g| / g, the AbsRelDiff): squared metres alone neglect near depths.
        loss = loss + args.rel_weight * ((refine - yb).abs() / yb.clamp(min=EPS_DEPTH)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if it % 50 == 0 or it == 1:
            entry = {"iter": it, "loss": loss.item(), "elapsed_s": time.time() - start}
            if it % 200 == 0 or it in (1, args.early_iter):
                entry["val_rmse_m"] = val_rmse()
            log.append(entry)
            print(json.dumps(entry), flush=True)
        if it in (args.early_iter, args.iters):
            snapshots[it] = model_state(model)
            torch.save(model.state_dict(), args.cache / f"demo_refine_iter_{it}.pt")
    print(f"trained {args.iters} iterations in {(time.time() - start) / 60:.1f} min", flush=True)
    (args.cache / "train_log.json").write_text(json.dumps(log, indent=1))

    verify_x = val["x"][:4].astype(np.float32)
    for it, state in snapshots.items():
        stem = f"demo_refine_iter_{it}"
        model.load_state_dict(torch.load(args.cache / f"{stem}.pt"))
        model.eval()
        proto, weights = export_snapshot(state, args.out, stem)
        verify_export(model, proto, weights, verify_x)
    (args.cache / "train_mean.txt").write_text(f"{data['gt_mean_m'].mean():.6f}\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-count", type=int, default=2500,
                        help="training scenes (seeds 0..N-1)")
    parser.add_argument("--iters", type=int, default=3200)
    parser.add_argument("--early-iter", type=int, default=200,
                        help="iteration of the early snapshot")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--grad-weight", type=float, default=2.0,
                        help="weight of the gradient-matching loss term")
    parser.add_argument("--rel-weight", type=float, default=2.0,
                        help="weight of the relative (AbsRelDiff) loss term")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/depth_eval_demo_cache"))
    parser.add_argument("--out", type=Path, default=REPO / "examples" / "snapshots")
    parser.add_argument("--colors", type=Path, default=REPO / "examples" / "colors")
    parser.add_argument("--depths", type=Path, default=REPO / "examples" / "depths")
    parser.add_argument("--eval-only", action="store_true",
                        help="only score the snapshots in --out on the examples")
    parser.add_argument("--train-mean", type=float, default=None,
                        help="constant baseline in metres (default: from the cache)")
    args = parser.parse_args(argv)
    if not args.eval_only:
        train(args)
    if args.colors.is_dir() and any(args.colors.glob("*_colors.png")):
        mean = args.train_mean
        if mean is None:
            mean_file = args.cache / "train_mean.txt"
            mean = float(mean_file.read_text()) if mean_file.exists() else 4.0
        evaluate_snapshots(args.out, args.colors, args.depths, mean)
    return 0


if __name__ == "__main__":
    sys.exit(main())
