#!/usr/bin/env python3
"""Synthetic indoor RGB-D scenes for the demo snapshot (a small numpy ray caster).

Each scene is a box-shaped room (floor, four walls, ceiling) seen from a camera standing
inside it and looking roughly at a wall, with a few boxes and spheres in it.  Surfaces carry
checker, stripe, noise or plain textures in random colours and are lit by one point light
(Lambertian shading, distance falloff, hard shadows), a weak light at the camera and an ambient
term, so brightness and texture scale both carry depth cues.  The camera uses the NYU Depth v2
colour intrinsics of a 640 x 480 sensor, scaled to the output size.

Depth is the z-depth (distance along the optical axis) in metres, clipped to [0.039, 10] like
the thesis' NYU data.  ``write_scene`` stores a scene in the thesis layout: ``<stem>_colors.png``
(RGB) and ``<stem>_depth.png`` (8-bit, pixel = depth_m / 10 * 255).

Usage::

    python tools/synth_scenes.py OUT_COLORS_DIR OUT_DEPTHS_DIR --count N --seed S [--size 420x320]

writes scenes ``S .. S+N-1`` named ``%05d`` of their seed.  This is a development tool; the
``depth_eval`` package never imports it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

# NYU Depth v2 colour camera (640 x 480).
NYU_SIZE = (640, 480)
NYU_FX, NYU_FY = 518.8579, 519.4696
NYU_CX, NYU_CY = 325.5824, 253.7362

DEPTH_MIN, DEPTH_MAX = 0.039, 10.0
_EPS = 1e-4
_FAR = 1e6


# --------------------------------------------------------------------------------------------
# geometry helpers

def _rows_times(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """``x @ m`` for row vectors x (N x 3 or 3) and a 3 x 3 m, without BLAS (whose thread pool
    only costs time at this size on a busy machine)."""
    return np.einsum("...i,ij->...j", x, m)


def _rot_y(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rot_x(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def _hit_box(origin, dirs, center, half, yaw, want_normals=True):
    """Ray / yaw-rotated box hit from outside: (t, world normals or None), t = inf if missed."""
    rot = _rot_y(yaw)                       # box frame -> world
    p = _rows_times(origin - center, rot).T  # world -> box frame (x @ R == R^T x for rows)
    d = _rows_times(dirs, rot).T
    d = np.where(np.abs(d) < 1e-12, 1e-12, d)
    inv = 1.0 / d
    if p.ndim == 1:
        p = p[:, None]
    t1 = (-half[:, None] - p) * inv
    t2 = (half[:, None] - p) * inv
    tnear = np.minimum(t1, t2)
    t_in = tnear.max(axis=0)
    t_out = np.maximum(t1, t2).min(axis=0)
    hit = (t_in <= t_out) & (t_in > _EPS)
    t = np.where(hit, t_in, np.inf)
    if not want_normals:
        return t, None
    normal_local = np.where(tnear == t_in, -np.sign(d), 0.0).T
    return t, _rows_times(normal_local, rot.T)


def _hit_sphere(origin, dirs, center, radius):
    """Ray / sphere from outside.  Returns t (inf where missed)."""
    oc = origin - center
    a = np.einsum("ij,ij->i", dirs, dirs)
    b = np.einsum("ij,ij->i", oc, dirs) if oc.ndim == 2 else np.einsum("ij,j->i", dirs, oc)
    c = np.einsum("ij,ij->i", oc, oc) - radius**2 if oc.ndim == 2 else oc @ oc - radius**2
    disc = b * b - a * c
    ok = disc >= 0
    sq = np.sqrt(np.where(ok, disc, 0.0))
    t0 = (-b - sq) / a
    t1 = (-b + sq) / a
    t = np.where(t0 > _EPS, t0, np.where(t1 > _EPS, t1, np.inf))
    return np.where(ok, t, np.inf)


def _occluded(points, light, objects):
    """True where the segment point -> light is blocked by an object."""
    to_light = light - points
    blocked = np.zeros(len(points), dtype=bool)
    for obj in objects:
        if obj["kind"] == "box":
            t, _ = _hit_box(points, to_light, obj["center"], obj["half"], obj["yaw"], False)
        else:
            t = _hit_sphere(points, to_light, obj["center"], obj["radius"])
        blocked |= (t > 1e-3) & (t < 1.0 - 1e-3)
    return blocked


# --------------------------------------------------------------------------------------------
# textures

def _random_colour(rng: np.random.Generator) -> np.ndarray:
    hue = rng.uniform(0, 360)
    sat = rng.uniform(0.1, 0.8)
    val = rng.uniform(0.45, 1.0)
    hsv = np.array([[[hue / 2.0, sat * 255, val * 255]]], dtype=np.float32)
    rgb = cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)[0, 0]
    return rgb.astype(np.float64) / 255.0


def _make_texture(rng: np.random.Generator, scale_range) -> dict:
    kind = rng.choice(["checker", "stripes", "noise", "plain"], p=[0.35, 0.25, 0.25, 0.15])
    c1 = _random_colour(rng)
    c2 = np.clip(c1 * rng.uniform(0.5, 0.9) + rng.uniform(-0.15, 0.15, 3), 0, 1)
    if rng.random() < 0.3:
        c2 = _random_colour(rng)
    tex = {"kind": kind, "c1": c1, "c2": c2, "scale": rng.uniform(*scale_range),
           "angle": rng.uniform(0, np.pi)}
    if kind == "noise":
        tex["grid"] = rng.random((16, 16))
    return tex


def _value_noise(grid, u, v):
    n = grid.shape[0]
    u = np.mod(u, n)
    v = np.mod(v, n)
    i0 = np.floor(u).astype(int)
    j0 = np.floor(v).astype(int)
    fu = u - i0
    fv = v - j0
    fu = fu * fu * (3 - 2 * fu)
    fv = fv * fv * (3 - 2 * fv)
    i1 = (i0 + 1) % n
    j1 = (j0 + 1) % n
    top = grid[i0, j0] * (1 - fu) + grid[i1, j0] * fu
    bot = grid[i0, j1] * (1 - fu) + grid[i1, j1] * fu
    return top * (1 - fv) + bot * fv


def _shade_texture(tex: dict, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    s = tex["scale"]
    kind = tex["kind"]
    if kind == "checker":
        m = (np.floor(u / s) + np.floor(v / s)) % 2
    elif kind == "stripes":
        w = u * np.cos(tex["angle"]) + v * np.sin(tex["angle"])
        m = np.floor(w / s) % 2
    elif kind == "noise":
        m = 0.6 * _value_noise(tex["grid"], u / s, v / s) + 0.4 * _value_noise(
            tex["grid"].T, 2.7 * u / s + 3.1, 2.7 * v / s + 1.7)
    else:
        m = np.zeros_like(u)
    m = m[:, None]
    return tex["c1"] * (1 - m) + tex["c2"] * m


# --------------------------------------------------------------------------------------------
# scene

def _sample_scene(rng: np.random.Generator) -> dict:
    room_w = rng.uniform(3.0, 7.0)
    room_d = rng.uniform(4.0, 9.5)
    room_h = rng.uniform(2.4, 3.3)
    cam_z = rng.uniform(0.1, min(1.5, room_d - 3.0))
    cam = np.array([rng.uniform(-0.3, 0.3) * room_w, rng.uniform(1.0, 1.7), cam_z])
    yaw = np.deg2rad(rng.uniform(-30, 30))
    pitch = np.deg2rad(rng.uniform(-18, 6))
    roll = np.deg2rad(rng.uniform(-3, 3))
    rot = _rot_y(yaw) @ _rot_x(pitch) @ _rot_z(roll)   # camera -> world

    objects = []
    n_obj = int(rng.integers(2, 7))
    for _ in range(200):
        if len(objects) >= n_obj:
            break
        if rng.random() < 0.55:
            half = np.array([rng.uniform(0.15, 0.8), rng.uniform(0.15, 0.9),
                             rng.uniform(0.15, 0.7)])
            on_floor = rng.random() < 0.8
            y = half[1] if on_floor else rng.uniform(half[1] + 0.3, room_h - half[1] - 0.05)
            reach = np.linalg.norm(half[[0, 2]])
            obj = {"kind": "box", "half": half, "yaw": rng.uniform(0, np.pi / 2), "reach": reach,
                   "center": np.array([rng.uniform(-room_w / 2 + half[0], room_w / 2 - half[0]), y,
                                       rng.uniform(cam_z + 1.0, room_d - half[2])])}
        else:
            radius = rng.uniform(0.15, 0.6)
            on_floor = rng.random() < 0.6
            y = radius if on_floor else rng.uniform(radius + 0.3, room_h - radius - 0.05)
            obj = {"kind": "sphere", "radius": radius, "reach": radius,
                   "center": np.array([rng.uniform(-room_w / 2 + radius, room_w / 2 - radius), y,
                                       rng.uniform(cam_z + 1.0, room_d - radius)])}
        if y + (obj["half"][1] if obj["kind"] == "box" else obj["radius"]) > room_h:
            continue
        if np.linalg.norm((obj["center"] - cam)[[0, 2]]) < obj["reach"] + 0.8:
            continue
        if any(np.linalg.norm((obj["center"] - o["center"])[[0, 2]]) < obj["reach"] + o["reach"]
               and abs(obj["center"][1] - o["center"][1]) < 1.5 for o in objects):
            continue
        obj["texture"] = _make_texture(rng, (0.05, 0.35))
        objects.append(obj)

    light = np.array([rng.uniform(-0.4, 0.4) * room_w, room_h - rng.uniform(0.1, 0.6),
                      rng.uniform(0.5, room_d - 0.5)])
    return {
        "room": (room_w, room_h, room_d), "cam": cam, "rot": rot, "objects": objects,
        "room_textures": [_make_texture(rng, (0.2, 1.0)) for _ in range(6)],
        "light": light, "light_power": rng.uniform(4.0, 10.0),
        "ambient": rng.uniform(0.06, 0.16), "headlight": rng.uniform(0.4, 1.0),
    }


def render_scene(seed: int, height: int = 320, width: int = 420):
    """Render synthetic indoor scene number ``seed``.

    Parameters
    ----------
    seed : int
        Scene number; the same seed always gives the same scene (at any size).
    height, width : int
        Output size in pixels (default 320 x 420, the thesis ground-truth size).

    Returns
    -------
    rgb : ndarray, uint8, height x width x 3
        The colour image, RGB order.
    depth_m : ndarray, float32, height x width
        z-depth in metres, clipped to [0.039, 10].
    """
    rng = np.random.default_rng(int(seed))
    sc = _sample_scene(rng)
    room_w, room_h, room_d = sc["room"]
    cam, rot = sc["cam"], sc["rot"]

    fx = NYU_FX * width / NYU_SIZE[0]
    fy = NYU_FY * height / NYU_SIZE[1]
    cx = NYU_CX * width / NYU_SIZE[0]
    cy = NYU_CY * height / NYU_SIZE[1]
    us, vs = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    cam_dirs = np.stack([(us - cx) / fx, -(vs - cy) / fy, np.ones_like(us)], -1).reshape(-1, 3)
    # cam_dirs have z = 1 in the camera frame, so the ray parameter t is the z-depth.
    dirs = _rows_times(cam_dirs, rot.T)
    n = len(dirs)

    # Room: the ray leaves the box through the nearest face ahead of it.
    lo = np.array([-room_w / 2, 0.0, 0.0])
    hi = np.array([room_w / 2, room_h, room_d])
    with np.errstate(divide="ignore"):
        bound = np.where(dirs > 0, hi, lo)
        t_axes = np.where(np.abs(dirs) > 1e-12, (bound - cam) / dirs, np.inf)
    axis = np.argmin(t_axes, axis=1)
    t = t_axes[np.arange(n), axis]
    positive = dirs[np.arange(n), axis] > 0
    surface = axis * 2 + positive            # 0..5: -x, +x, floor, ceiling, back, front wall
    normals = np.zeros((n, 3))
    normals[np.arange(n), axis] = np.where(positive, -1.0, 1.0)

    for k, obj in enumerate(sc["objects"]):
        if obj["kind"] == "box":
            t_obj, n_obj = _hit_box(cam, dirs, obj["center"], obj["half"], obj["yaw"])
        else:
            t_obj = _hit_sphere(cam, dirs, obj["center"], obj["radius"])
            n_obj = None
        closer = t_obj < t
        t = np.where(closer, t_obj, t)
        surface = np.where(closer, 6 + k, surface)
        if obj["kind"] == "box":
            normals[closer] = n_obj[closer]
        else:
            p = cam + dirs[closer] * t_obj[closer, None]
            normals[closer] = (p - obj["center"]) / obj["radius"]

    points = cam + dirs * t[:, None]

    # Texture colour per surface.
    albedo = np.empty((n, 3))
    room_uv = {0: (2, 1), 1: (2, 1), 2: (0, 2), 3: (0, 2), 4: (0, 1), 5: (0, 1)}
    for sid in np.unique(surface):
        m = surface == sid
        p = points[m]
        if sid < 6:
            a, b = room_uv[int(sid)]
            albedo[m] = _shade_texture(sc["room_textures"][sid], p[:, a], p[:, b])
            continue
        obj = sc["objects"][sid - 6]
        local = p - obj["center"]
        if obj["kind"] == "box":
            local = _rows_times(local, _rot_y(obj["yaw"]))
            nl = _rows_times(normals[m], _rot_y(obj["yaw"]))
            face = np.argmax(np.abs(nl), axis=1)
            u = np.where(face == 0, local[:, 2], local[:, 0])
            v = np.where(face == 1, local[:, 2], local[:, 1])
        else:
            u = np.arctan2(local[:, 0], local[:, 2]) * obj["radius"]
            v = local[:, 1]
        albedo[m] = _shade_texture(obj["texture"], u, v)

    # Lighting: point light with falloff and shadows, a weak light at the camera, ambient.
    to_light = sc["light"] - points
    dist2 = np.einsum("ij,ij->i", to_light, to_light)
    lam = np.clip(np.einsum("ij,ij->i", normals, to_light) / np.sqrt(dist2), 0, None)
    lam = np.where(_occluded(points, sc["light"], sc["objects"]), 0.0, lam)
    direct = sc["light_power"] * lam / (1.0 + dist2)
    view = cam - points
    vdist2 = np.einsum("ij,ij->i", view, view)
    head = sc["headlight"] * np.clip(
        np.einsum("ij,ij->i", normals, view) / np.sqrt(vdist2), 0, None) / (0.5 + 0.15 * vdist2)
    light = sc["ambient"] + direct + head
    colour = 1.0 - np.exp(-1.4 * albedo * light[:, None])   # soft highlight roll-off
    colour = colour ** (1 / 2.2)
    rgb = np.round(colour * 255).astype(np.uint8).reshape(height, width, 3)
    depth = np.clip(t, DEPTH_MIN, DEPTH_MAX).astype(np.float32).reshape(height, width)
    return rgb, depth


def encode_depth(depth_m: np.ndarray) -> np.ndarray:
    """The thesis' 8-bit depth encoding: uint8(round(clip(depth_m, 0, 10) / 10 * 255))."""
    return np.round(np.clip(depth_m, 0.0, 10.0) / 10.0 * 255.0).astype(np.uint8)


def write_scene(rgb: np.ndarray, depth_m: np.ndarray, colors_path, depth_path) -> None:
    """Write a scene: the RGB image as a colour PNG and the depth in the thesis 8-bit encoding."""
    colors_path, depth_path = Path(colors_path), Path(depth_path)
    colors_path.parent.mkdir(parents=True, exist_ok=True)
    depth_path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(colors_path), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR),
                       [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {colors_path}")
    if not cv2.imwrite(str(depth_path), encode_depth(depth_m), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {depth_path}")


def _parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(x) for x in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must be WIDTHxHEIGHT, got {text!r}") from None
    if w < 8 or h < 8:
        raise argparse.ArgumentTypeError("size too small")
    return w, h


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("colors_dir", type=Path, help="output folder for <stem>_colors.png")
    parser.add_argument("depths_dir", type=Path, help="output folder for <stem>_depth.png")
    parser.add_argument("--count", type=int, default=12, help="number of scenes (default 12)")
    parser.add_argument("--seed", type=int, default=0, help="first scene seed (default 0)")
    parser.add_argument("--size", type=_parse_size, default=(420, 320),
                        help="WIDTHxHEIGHT (default 420x320)")
    args = parser.parse_args(argv)
    width, height = args.size
    for seed in range(args.seed, args.seed + args.count):
        rgb, depth = render_scene(seed, height=height, width=width)
        stem = f"{seed:05d}"
        write_scene(rgb, depth, args.colors_dir / f"{stem}_colors.png",
                    args.depths_dir / f"{stem}_depth.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
