"""Toy-world videos: one object of one class and colour moving smoothly (pure torch, no ``comfy``).

A video of ``FRAMES`` frames (64x64, the toy world's renderer ``world.render``) holds one shape of
size ``r`` in [``R_MIN``, ``R_MAX``] px (smaller than the picture world's 12-20 px so that there is room
to move) moving on a path of constant speed ``s`` in [``SPEED_MIN``, ``SPEED_MAX``] px/frame and constant
turn rate ``w`` in [-``TURN_MAX``, ``TURN_MAX``] rad/frame (``w`` = 0 a straight line, else an arc).
The path is placed uniformly where it stays inside the picture with ``world.MARGIN`` px to spare; when
the path does not fit, its speed is scaled down until it does. A share ``P_STILL`` of the videos
hold the object still (speed 0) so that a still clip (I4VGen's static video) is in the data.

Seeded by a ``torch.Generator``: the same seed gives the same videos, bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from benchmarks.toy_world import world as W

FRAMES = 17                     # picture frames: 5 latent frames of the Wan 2.1 VAE (4x temporal)
R_MIN, R_MAX = 9.0, 13.0
SPEED_MIN, SPEED_MAX = 0.8, 2.0  # px per frame
TURN_MAX = 0.10                  # rad per frame
P_STILL = 0.0


@dataclass
class VideoBatch:
    videos: torch.Tensor    # [N, F, 3, 64, 64] in [0, 1]
    labels: torch.Tensor    # [N] class index
    cx: torch.Tensor        # [N, F] centre x, px
    cy: torch.Tensor        # [N, F] centre y, px
    r: torch.Tensor         # [N] size, px
    speed: torch.Tensor     # [N] px per frame after fitting


def path(speed: float, turn: float, angle: float, frames: int) -> torch.Tensor:
    """Offsets [F, 2] (px) from the first position of a path with constant ``speed`` (px/frame) and
    turn rate ``turn`` (rad/frame) starting in direction ``angle`` (rad)."""
    t = torch.arange(frames - 1, dtype=torch.float64)
    a = angle + turn * t
    step = torch.stack([torch.cos(a), torch.sin(a)], 1) * speed
    return torch.cat([torch.zeros(1, 2, dtype=torch.float64), step.cumsum(0)]).float()


def sample(n: int, generator: torch.Generator, frames: int = FRAMES, labels: torch.Tensor | None = None,
           p_still: float = P_STILL) -> VideoBatch:
    """``n`` videos [N, F, 3, 64, 64]; classes uniform unless ``labels`` is given."""
    g = generator
    if labels is None:
        labels = torch.randint(0, W.N_CLASSES, (n,), generator=g)
    labels = torch.as_tensor(labels).long()
    colour, shape = labels // len(W.SHAPES), labels % len(W.SHAPES)
    u = torch.rand(n, 7, generator=g)
    r = R_MIN + (R_MAX - R_MIN) * u[:, 0]
    cxs, cys, speeds = [], [], []
    for i in range(n):
        hx, top, bottom = W._extent(int(shape[i]), r[i])
        lo = torch.tensor([W.MARGIN + hx, W.MARGIN + top])
        hi = torch.tensor([W.SIZE - W.MARGIN - hx, W.SIZE - W.MARGIN - bottom])
        room = hi - lo
        speed = 0.0 if u[i, 1] < p_still else SPEED_MIN + (SPEED_MAX - SPEED_MIN) * float(u[i, 2])
        turn = TURN_MAX * (2 * float(u[i, 3]) - 1)
        angle = 2 * math.pi * float(u[i, 4])
        off = path(speed, turn, angle, frames)
        ext = off.amax(0) - off.amin(0)
        fit = float((room / ext.clamp(min=1e-6)).min())
        if fit < 1:                       # too long for the picture: slow down until it fits
            off = off * fit
            speed *= fit
            ext = ext * fit
        start = lo - off.amin(0) + (room - ext) * u[i, 5:7]
        p = start + off
        cxs.append(p[:, 0])
        cys.append(p[:, 1])
        speeds.append(speed)
    cx, cy = torch.stack(cxs), torch.stack(cys)
    vids = W.render(colour.repeat_interleave(frames), shape.repeat_interleave(frames), cx.flatten(),
                    cy.flatten(), r.repeat_interleave(frames))
    return VideoBatch(vids.view(n, frames, 3, W.SIZE, W.SIZE), labels, cx, cy, r, torch.tensor(speeds))
