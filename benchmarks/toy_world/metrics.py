"""Per-item measurements of the toy-world benchmark (pure torch, no comfy import).

Pictures: ``picture_rows`` -- one dict per picture (judged class, colour, shape, reject flag,
template score, centroid, area, mean foreground RGB), the columns of the committed CSV.

Videos: ``video_row`` -- one dict per video [F, 3, 64, 64]. Consistency AND motion, so that a still
video is not rewarded:

* consistency: ``acc`` (share of frames judged the prompted class), ``all_correct`` (every frame),
  ``same_class`` (share of adjacent pairs judged the same class, rejects never equal), ``reject``
  (share of frames with no shape);
* motion: ``net_disp`` (centroid distance first -> last frame, px), ``path`` (sum of the adjacent
  centroid jumps, px), ``jump`` (mean adjacent jump), ``smooth`` (mean norm of the centroid's second
  difference, px: 0 for a constant velocity, large for a jittering object);
* quality: ``size_drift`` (|sqrt(area_last) - sqrt(area_first)| / sqrt(area_first)), ``colour_drift``
  (largest RGB distance of a frame's mean foreground colour from the first frame's), ``flicker``
  (mean absolute pixel change between adjacent frames after shifting the earlier frame by the
  object's centroid motion, i.e. the change the motion does not explain; 0 for a rigid translation
  and for a still video);
* ``mean_cx``, ``mean_cy`` (for the diversity across seeds: the spread of a prompt's videos).

Frames the judge rejects ("no shape") have no centroid: the motion numbers use the frames that hold a
shape, in order, joining the path across the rejected frames (a video with gaps is kept); a video
has no net displacement / path / jump below 2 shape frames and no roughness below 3 (nan).

Derived per-video numbers (``derived``; the report computes them from the committed CSV columns, so
older CSVs need no rerun):

* ``same_shapes``: share of adjacent pairs judged the same class among the pairs where BOTH frames
  hold a shape (nan without such a pair); ``same_class`` counts a rejected frame as inconsistent, so it
  mixes consistency with the reject rate (``reject``, reported on its own);
* ``rough_step``: roughness per unit motion, ``smooth / jump`` (mean 2nd-difference norm over mean step
  norm): 0 for a constant velocity, about sqrt(3) = 1.73 for independent random positions (Var of a
  2nd difference is 6 sigma^2, of a step 2 sigma^2), so a row with less motion is not called smoother.
"""
from __future__ import annotations

import math

import torch

from . import world as W


def picture_rows(images: torch.Tensor, labels: torch.Tensor) -> list[dict]:
    """One dict per picture [N, 3, 64, 64] prompted with class ``labels`` [N]."""
    v = W.judge(images)
    rows = []
    for i in range(len(labels)):
        rows.append({
            "prompt": int(labels[i]), "judged": int(v.labels[i]), "colour": int(v.colour[i]), "shape": int(v.shape[i]),
            "correct": int(v.labels[i] == labels[i]), "colour_ok": int(v.colour[i] == labels[i] // 3),
            "shape_ok": int(v.shape[i] == labels[i] % 3), "reject": int(v.reject[i]),
            "score": round(float(v.score[i]), 4), "cx": _r(v.cx[i]), "cy": _r(v.cy[i]), "area": int(v.area[i]),
            "r": round(float(v.rgb[i, 0]), 4), "g": round(float(v.rgb[i, 1]), 4), "b": round(float(v.rgb[i, 2]), 4),
        })
    return rows


def _r(x) -> float:
    x = float(x)
    return x if math.isnan(x) else round(x, 3)


def shift(img: torch.Tensor, dx: float, dy: float) -> torch.Tensor:
    """Picture [3, H, W] translated by (dx, dy) pixels (bilinear; the border filled with the
    background colour)."""
    _, h, w = img.shape
    theta = torch.tensor([[[1.0, 0.0, -2 * dx / w], [0.0, 1.0, -2 * dy / h]]])
    grid = torch.nn.functional.affine_grid(theta, [1, 3, h, w], align_corners=False)
    bg = W.BACKGROUND[:, None, None]
    out = torch.nn.functional.grid_sample((img - bg)[None], grid, mode="bilinear", padding_mode="zeros",
                                          align_corners=False)[0]
    return out + bg


def video_row(frames: torch.Tensor, label: int) -> dict:
    """Measurements of one video [F, 3, 64, 64] prompted with class ``label``."""
    frames = frames.float().clamp(0, 1)
    v = W.judge(frames)
    f = frames.shape[0]
    lab = v.labels
    same = ((lab[1:] == lab[:-1]) & (lab[1:] >= 0)).float()
    c = torch.stack([v.cx, v.cy], 1)                                   # [F, 2], nan without a shape
    ok = ~torch.isnan(c[:, 0]) & ~v.reject            # motion only from frames that hold a shape
    cv = c[ok]
    nan = float("nan")
    steps = (cv[1:] - cv[:-1]).norm(dim=1) if len(cv) >= 2 else torch.zeros(0)
    second = (cv[2:] - 2 * cv[1:-1] + cv[:-2]).norm(dim=1) if len(cv) >= 3 else torch.zeros(0)
    size = v.area.float().sqrt()
    flick = []
    for t in range(f - 1):
        if ok[t] and ok[t + 1]:
            d = c[t + 1] - c[t]
            prev = shift(frames[t], float(d[0]), float(d[1]))
        else:
            prev = frames[t]
        flick.append(float((frames[t + 1] - prev).abs().mean()))
    fg = ~v.reject
    colour_drift = float((v.rgb[fg] - v.rgb[fg][:1]).norm(dim=1).max()) if int(fg.sum()) >= 2 else nan
    return derived({
        "prompt": int(label), "frames": f,
        "labels": "|".join(str(int(x)) for x in lab),
        "acc": round(float((lab == label).float().mean()), 4),
        "all_correct": int(bool((lab == label).all())),
        "same_class": round(float(same.mean()), 4) if f > 1 else nan,
        "reject": round(float(v.reject.float().mean()), 4),
        "net_disp": _r((cv[-1] - cv[0]).norm()) if len(cv) >= 2 else nan,
        "path": _r(steps.sum()) if len(cv) >= 2 else nan,
        "jump": _r(steps.mean()) if len(cv) >= 2 else nan,
        "smooth": _r(second.mean()) if len(cv) >= 3 else nan,
        "size_drift": _r((size[-1] - size[0]).abs() / size[0].clamp(min=1)) if bool(fg[0] and fg[-1]) else nan,
        "colour_drift": _r(colour_drift),
        "flicker": round(sum(flick) / len(flick), 5) if flick else nan,
        "mean_cx": _r(cv[:, 0].mean()) if len(cv) else nan,
        "mean_cy": _r(cv[:, 1].mean()) if len(cv) else nan,
    })


def same_shapes(labels) -> float:
    """Share of adjacent frame pairs judged the same class among pairs where both frames hold a shape
    (judged class >= 0); ``labels`` is a list of ints or the CSV's "a|b|c" string. nan without such a pair."""
    if isinstance(labels, str):
        labels = [int(x) for x in labels.split("|")] if labels else []
    pairs = [(a, b) for a, b in zip(labels[:-1], labels[1:]) if a >= 0 and b >= 0]
    return round(sum(a == b for a, b in pairs) / len(pairs), 4) if pairs else float("nan")


def roughness_per_step(smooth: float, jump: float) -> float:
    """``smooth / jump``: roughness per unit motion (nan when either is nan or the object never moves)."""
    smooth, jump = float(smooth), float(jump)
    if math.isnan(smooth) or math.isnan(jump) or jump <= 0:
        return float("nan")
    return round(smooth / jump, 4)


def derived(row: dict) -> dict:
    """``row`` with ``same_shapes`` and ``rough_step`` (see the module docstring) from its columns."""
    out = dict(row)
    out["same_shapes"] = same_shapes(row["labels"])
    out["rough_step"] = roughness_per_step(row["smooth"], row["jump"])
    return out


def diversity(rows: list[dict]) -> float:
    """Spread of videos across seeds: for each prompt, the mean distance (px) of its videos' mean
    centroids from their average; averaged over prompts with >= 2 videos (nan if none)."""
    by = {}
    for r in rows:
        if not (math.isnan(r["mean_cx"]) or math.isnan(r["mean_cy"])):
            by.setdefault(r["prompt"], []).append((r["mean_cx"], r["mean_cy"]))
    spreads = []
    for pts in by.values():
        if len(pts) >= 2:
            p = torch.tensor(pts)
            spreads.append(float((p - p.mean(0)).norm(dim=1).mean()))
    return sum(spreads) / len(spreads) if spreads else float("nan")
