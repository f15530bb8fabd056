"""The toy world: 64x64 RGB pictures of one coloured shape on a plain background, and its judge.

Pure torch, no ``comfy`` import. Everything is seeded (``torch.Generator``): the same seed gives the
same pictures, bit for bit.

* 12 classes: ``COLOURS`` x ``SHAPES``; the caption of class ``k`` is ``"a <colour> <shape>"``
  (``caption(k)``), class index ``k = colour * 3 + shape``.
* ``render(colour, shape, cx, cy, r)`` draws anti-aliased shapes (signed distance, 1 px ramp) on the
  background ``BACKGROUND``; ``sample(n, generator)`` draws classes, positions and sizes uniformly.
* ``judge(images)`` classifies decoded pictures by image statistics (foreground = pixels far from the
  background colour; colour = nearest reference to the mean foreground RGB; shape: an upright
  triangle holds its mass low (vertical skewness of the foreground < -``TRIANGLE_SKEW``, -0.57 for a
  sharp triangle, 0 for circles and squares), else circle or square by which template of the same
  area at the same centroid overlaps the foreground more (IoU); position = foreground centroid in
  pixels). Moments and templates rather than a bounding box keep it robust to the blur and stray
  pixels of decoded pictures. A picture with too little foreground gets class -1 (judged wrong for
  every prompt).
* Reject option ("no shape", class -1): the judged shape's template (same area, at the centroid) must
  match the foreground with IoU >= ``MATCH_MIN``, the mean foreground colour must lie within
  ``COLOUR_MAX`` of the segment from the background to its reference colour (a blend of the two, as
  anti-aliased and blurred edges are) and the foreground must not exceed ``MAX_AREA``; uniform noise, shapeless blobs, two objects and smeared frames
  fail one of them. ``Verdict.score`` is that IoU, ``Verdict.reject`` the flag.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

SIZE = 64
COLOURS = ("red", "green", "blue", "yellow")
SHAPES = ("circle", "square", "triangle")
N_CLASSES = len(COLOURS) * len(SHAPES)
RGB = torch.tensor([[0.90, 0.10, 0.10],   # red
                    [0.10, 0.75, 0.15],   # green
                    [0.15, 0.25, 0.90],   # blue
                    [0.95, 0.85, 0.10]])  # yellow
BACKGROUND = torch.tensor([0.93, 0.93, 0.90])
R_MIN, R_MAX = 12.0, 20.0         # shape "radius" in pixels (circle radius, half side, circumradius)
MARGIN = 2.0                      # pixels kept free between the shape and the border


def caption(k: int) -> str:
    """Caption of class ``k`` (0..11): ``"a <colour> <shape>"``."""
    if not 0 <= k < N_CLASSES:
        raise ValueError(f"class index must be in 0..{N_CLASSES - 1}, got {k}")
    return f"a {COLOURS[k // len(SHAPES)]} {SHAPES[k % len(SHAPES)]}"


CAPTIONS = tuple(caption(k) for k in range(N_CLASSES))


def _extent(shape: int, r: torch.Tensor):
    """Half extents (left/right, top, bottom) of a shape of size ``r`` around its centre."""
    if shape == 2:  # upright equilateral triangle with circumradius r
        return r * math.sqrt(3) / 2, r, r / 2
    return r, r, r


def _signed_distance(shape: torch.Tensor, cx, cy, r, xs, ys):
    """Signed distance in pixels (negative inside) for a batch; xs, ys: [1, H, W] pixel centres."""
    dx = xs - cx[:, None, None]
    dy = ys - cy[:, None, None]
    rr = r[:, None, None]
    circle = torch.sqrt(dx ** 2 + dy ** 2) - rr
    square = torch.maximum(dx.abs(), dy.abs()) - rr
    # upright triangle, vertices at angle -90, 30, 150 deg (y down): three half planes
    half = rr / 2  # inradius of an equilateral triangle with circumradius r
    planes = []
    for ang in (90.0, 210.0, 330.0):  # outward normals (y down: 90 deg points down)
        a = math.radians(ang)
        planes.append(dx * math.cos(a) + dy * math.sin(a) - half)
    triangle = torch.stack(planes).amax(0)
    s = shape[:, None, None]
    return torch.where(s == 0, circle, torch.where(s == 1, square, triangle))


def render(colour: torch.Tensor, shape: torch.Tensor, cx: torch.Tensor, cy: torch.Tensor,
           r: torch.Tensor) -> torch.Tensor:
    """Pictures [N, 3, 64, 64] in [0, 1] of shape ``shape[i]`` (0 circle, 1 square, 2 triangle) in colour
    ``colour[i]`` centred at (``cx``, ``cy``) pixels with size ``r`` pixels."""
    colour, shape = torch.as_tensor(colour).long(), torch.as_tensor(shape).long()
    cx, cy, r = (torch.as_tensor(v, dtype=torch.float32) for v in (cx, cy, r))
    coords = torch.arange(SIZE, dtype=torch.float32) + 0.5
    ys, xs = coords[None, :, None], coords[None, None, :]
    sd = _signed_distance(shape, cx, cy, r, xs, ys)
    alpha = (0.5 - sd).clamp(0, 1)[:, None]                         # [N, 1, H, W]
    fg = RGB[colour][:, :, None, None]
    return alpha * fg + (1 - alpha) * BACKGROUND[None, :, None, None]


@dataclass
class Batch:
    images: torch.Tensor   # [N, 3, 64, 64] in [0, 1]
    labels: torch.Tensor   # [N] class index
    cx: torch.Tensor       # [N] centroid x in pixels (of the shape's area)
    cy: torch.Tensor       # [N] centroid y in pixels
    r: torch.Tensor        # [N] size in pixels


def sample(n: int, generator: torch.Generator, labels: torch.Tensor | None = None) -> Batch:
    """``n`` random pictures (classes uniform unless ``labels`` is given, sizes in [R_MIN, R_MAX],
    positions uniform such that the whole shape is inside with ``MARGIN`` pixels to spare)."""
    if labels is None:
        labels = torch.randint(0, N_CLASSES, (n,), generator=generator)
    labels = torch.as_tensor(labels).long()
    colour, shape = labels // len(SHAPES), labels % len(SHAPES)
    r = R_MIN + (R_MAX - R_MIN) * torch.rand(n, generator=generator)
    u = torch.rand(n, 2, generator=generator)
    cx = torch.empty(n)
    cy = torch.empty(n)
    for i in range(n):
        hx, top, bottom = _extent(int(shape[i]), r[i])
        lo_x, hi_x = MARGIN + hx, SIZE - MARGIN - hx
        lo_y, hi_y = MARGIN + top, SIZE - MARGIN - bottom
        cx[i] = lo_x + (hi_x - lo_x) * u[i, 0]
        cy[i] = lo_y + (hi_y - lo_y) * u[i, 1]
    images = render(colour, shape, cx, cy, r)
    # the triangle's area centroid is its circumcentre, the same point as the others' centre
    return Batch(images, labels, cx, cy, r)


# --------------------------------------------------------------------------------------- judge
FG_THRESHOLD = 0.25      # max-channel distance to the background that makes a pixel foreground
MIN_AREA = 40            # pixels; less foreground than this is "no shape" (class -1)
TRIANGLE_SKEW = 0.28     # half the size of an upright triangle's vertical skewness (-0.57, y down: mass low)
MATCH_MIN = 0.70         # template IoU below which a picture holds "no shape" (calibration: tables.md)
MAX_AREA = 2400          # pixels; more foreground than the largest shape (1600) by half is "no shape"
COLOUR_MAX = 0.15        # RGB distance of the mean foreground to its background-to-colour segment
_AREA_PER_R2 = (math.pi, 4.0, 3 * math.sqrt(3) / 4)  # circle, square, triangle area / r^2


@dataclass
class Verdict:
    labels: torch.Tensor   # [N] class index, -1 when no shape was found
    colour: torch.Tensor   # [N] colour index (-1: none)
    shape: torch.Tensor    # [N] shape index (-1: none)
    cx: torch.Tensor       # [N] foreground centroid x in pixels (nan: none)
    cy: torch.Tensor       # [N] centroid y in pixels (nan: none)
    area: torch.Tensor     # [N] foreground pixels
    score: torch.Tensor | None = None        # [N] IoU of the judged shape's template with the foreground
    colour_dist: torch.Tensor | None = None  # [N] RGB distance of the mean foreground to its colour
    reject: torch.Tensor | None = None       # [N] bool: no shape (too little foreground, no template match)
    rgb: torch.Tensor | None = None          # [N, 3] mean foreground RGB


def judge(images: torch.Tensor, reject: bool = True) -> Verdict:
    """Classify pictures [N, 3, H, W] (or [N, H, W, 3], ComfyUI's IMAGE layout) in [0, 1].

    ``reject``: pictures whose judged shape's template matches the foreground with IoU < ``MATCH_MIN``
    or whose mean foreground colour is farther than ``COLOUR_MAX`` from every reference colour get
    class -1 ("no shape") as well as those with less than ``MIN_AREA`` foreground pixels."""
    if images.ndim != 4:
        raise ValueError(f"judge: images must be [N, 3, H, W] or [N, H, W, 3], got {tuple(images.shape)}")
    if images.shape[1] != 3 and images.shape[-1] == 3:
        images = images.permute(0, 3, 1, 2)
    images = images.float().clamp(0, 1)
    n, _, h, w = images.shape
    dist = (images - BACKGROUND[None, :, None, None]).abs().amax(1)            # [N, H, W]
    mask = dist > FG_THRESHOLD
    area = mask.flatten(1).sum(1)
    ys = torch.arange(h, dtype=torch.float32)[None, :, None] + 0.5
    xs = torch.arange(w, dtype=torch.float32)[None, None, :] + 0.5
    m = mask.float()
    denom = area.clamp(min=1).float()
    cx = (m * xs).flatten(1).sum(1) / denom
    cy = (m * ys).flatten(1).sum(1) / denom
    mean_rgb = (images * m[:, None]).flatten(2).sum(2) / denom[:, None]        # [N, 3]
    colour = torch.cdist(mean_rgb, RGB).argmin(1)
    # colour test, blind to anti-aliasing/blur (edge pixels mix the colour with the background): the
    # distance of the mean foreground to the segment from the background (30 % of the way) to its colour
    d = RGB[colour] - BACKGROUND
    t = (((mean_rgb - BACKGROUND) * d).sum(1) / d.pow(2).sum(1)).clamp(0.3, 1.0)
    colour_dist = (mean_rgb - BACKGROUND - t[:, None] * d).norm(dim=1)
    vy = (m * (ys - cy[:, None, None]) ** 2).flatten(1).sum(1) / denom
    skew = (m * (ys - cy[:, None, None]) ** 3).flatten(1).sum(1) / denom / vy.clamp(min=1e-6) ** 1.5
    iou = []
    for s in (0, 1, 2):  # circle, square and triangle templates of the same area at the centroid
        r = (area.float() / _AREA_PER_R2[s]).sqrt()
        t = render(torch.zeros(n, dtype=torch.long), torch.full((n,), s), cx, cy, r)
        tm = (t - BACKGROUND[None, :, None, None]).abs().amax(1) > 0.5
        iou.append((tm & mask).flatten(1).sum(1).float() / (tm | mask).flatten(1).sum(1).float().clamp(min=1))
    shape = torch.where(skew < -TRIANGLE_SKEW, 2, torch.where(iou[1] > iou[0], 1, 0)).long()
    score = torch.stack(iou, 1).gather(1, shape[:, None])[:, 0]
    none = area < MIN_AREA
    if reject:
        none = none | (area > MAX_AREA) | (score < MATCH_MIN) | (colour_dist > COLOUR_MAX)
    shape = torch.where(none, torch.full_like(shape, -1), shape)
    labels = torch.where(none, torch.full_like(shape, -1), colour * len(SHAPES) + shape)
    colour = torch.where(none, torch.full_like(colour, -1), colour)
    nan = torch.full_like(cx, float("nan"))
    small = area < MIN_AREA
    return Verdict(labels, colour, shape, torch.where(small, nan, cx), torch.where(small, nan, cy), area,
                   score, colour_dist, none, mean_rgb)


def blobs(n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` pictures [N, 3, 64, 64] that hold no shape of the world: in turn a 2.5:1 ellipse, two
    separate discs, a smooth random blob (low-pass noise thresholded) and a ring, each in one of the
    world's colours (so only the shape test can reject them)."""
    coords = torch.arange(SIZE, dtype=torch.float32) + 0.5
    ys, xs = coords[:, None], coords[None, :]
    out = []
    for i in range(n):
        u = torch.rand(6, generator=generator)
        cx, cy = 22 + 20 * float(u[0]), 22 + 20 * float(u[1])
        kind = i % 4
        if kind == 0:
            a, b = 18 + 4 * float(u[2]), (18 + 4 * float(u[2])) / 2.5
            if u[3] < 0.5:
                a, b = b, a
            alpha = (1 - ((xs - cx) / a) ** 2 - ((ys - cy) / b) ** 2).mul(a * b / 2).clamp(0, 1)
        elif kind == 1:
            r = 8 + 3 * float(u[2])
            d1 = ((xs - 16) ** 2 + (ys - 16 - 30 * float(u[3])) ** 2).sqrt()
            d2 = ((xs - 48) ** 2 + (ys - 48 + 30 * float(u[4])) ** 2).sqrt()
            alpha = (r + 0.5 - torch.minimum(d1, d2)).clamp(0, 1)
        elif kind == 2:
            z = torch.randn(1, 1, 8, 8, generator=generator)
            z = torch.nn.functional.interpolate(z, size=(SIZE, SIZE), mode="bicubic", align_corners=False)[0, 0]
            alpha = ((z - z.quantile(0.7)) * 4).clamp(0, 1)
        else:
            d = ((xs - cx) ** 2 + (ys - cy) ** 2).sqrt()
            alpha = (1 - (d - 13).abs() / 4).clamp(0, 1) * 1.0
            alpha = ((alpha - 0.25) * 4).clamp(0, 1)
        c = RGB[int(u[5] * 3.999)]
        out.append(alpha[None] * c[:, None, None] + (1 - alpha[None]) * BACKGROUND[:, None, None])
    return torch.stack(out)


def judge_accuracy(n: int = 1200, seed: int = 1234) -> dict:
    """The judge's accuracy on ``n`` fresh pictures from the generator: class, colour, shape accuracy
    and the mean absolute centroid error in pixels."""
    g = torch.Generator().manual_seed(seed)
    out = {"n": 0, "class": 0.0, "colour": 0.0, "shape": 0.0, "pos_err_px": 0.0}
    correct = [0, 0, 0]
    err = 0.0
    for start in range(0, n, 200):
        b = sample(min(200, n - start), g)
        v = judge(b.images)
        correct[0] += int((v.labels == b.labels).sum())
        correct[1] += int((v.colour == b.labels // len(SHAPES)).sum())
        correct[2] += int((v.shape == b.labels % len(SHAPES)).sum())
        err += float(((v.cx - b.cx) ** 2 + (v.cy - b.cy) ** 2).sqrt().nansum())
        out["n"] += len(b.labels)
    out["class"], out["colour"], out["shape"] = (c / out["n"] for c in correct)
    out["pos_err_px"] = err / out["n"]
    return out
