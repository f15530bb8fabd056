"""Temporal Momentum Attention (TMA), ZS^2 Sec. 4.1 Eq. 2: the averaging itself. Pure torch (no ``comfy`` import);
ComfyUI's attention-patch protocols (``cond_or_uncond``, ``ad_params``, the override's arguments) are adapted in
``nodes/comfy_bridge/attention.py``.

Source: "ZS^2: Zero-Shot Video Sampling from Image Diffusion Models", Sec. 4.1, Eq. 2, as stated in
docs/algorithms.md section 3.2 (both appendix D listings are wrong: the loop blends only frame i-1, the
einsum ``"ff,fbnc->fbnc"`` takes the diagonal; this module implements Eq. 2).

In every self-attention layer frame ``i`` keeps its own queries ``Q_i`` but attends to momentum
keys and values over the frames before it::

    K'_1 = K_1,    K'_i = mu * K'_{i-1} + (1 - mu) * K_i        (same for V)
    K'_i = mu^(i-1) K_1 + sum_{j=2..i} (1 - mu) mu^(i-j) K_j

``mu = 0`` is plain self-attention, ``mu = 1`` is cross-frame attention to frame 1
(Text2Video-Zero). Eq. 2 and Fig. 4 index the momentum by frame: with a per-frame schedule
``[mu_1, ..., mu_F]`` the recursion is ``K'_i = mu_i K'_{i-1} + (1 - mu_i) K_i``; ``mu_1`` is unused
(``K'_1 = K_1``) and kept only so that value ``k`` belongs to frame ``k``. The weights of each row
sum to 1 and the K/V projections are affine, so averaging the attention block's (normed) input hidden states over frames *before* the K/V
projections gives exactly ``K'``, ``V'``: the pack's UNet ``attn1_patch`` (``nodes/comfy_bridge/attention.py``) does that at the cost of one ``[F, F] @ [F, tokens * channels]`` product per layer (no
``frames x frames x tokens`` tensor is ever built) and the attention itself is unchanged
self-attention cost.

On DiT image models (Flux, Flux 2, SD3/MMDiT, Qwen-Image, Lumina 2, Z-Image, HiDream, Chroma,
Krea 2) there is no such
hook before the projections; the pack's attention override (``nodes/comfy_bridge/attention.py``) instead averages the
projected (and RoPE'd) ``K``, ``V`` that reach the attention function. Eq. 2 is linear in ``K``
and ``V``, so this is the same equation. In joint text-image attention (Flux double and single
blocks, SD3 MMDiT, Qwen-Image, HiDream, Lumina 2 / Z-Image main layers, Krea 2) only the frame's own
image tokens are averaged by default:
after the first block the text tokens' keys/values differ per frame (the text stream has mixed with
each frame's image), and Eq. 2 is about the frames' own keys and values. The bridge tells the
override, per model call, where those tokens are (the ``tokens`` argument of :func:`temporal_momentum`).

Frames are grouped: per CFG chunk (ComfyUI batches the cond and uncond passes, and area conds,
as consecutive chunks of the batch, listed in ``cond_or_uncond``; each chunk holds the frames of
one video) so cond and uncond frames never mix.

Precision and memory: fp16/bf16 activations are averaged in float32, frame by frame (Eq. 2's
recursion as ``K'_i = K'_{i-1} + (1 - mu_i) (K_i - K'_{i-1})``, each step an affine combination
whose weights sum to exactly 1 by construction: rounding never scales ``K``), and cast back once
per frame: identical frames (the text tokens of one prompt, a still video) come back unchanged, bit
for bit. The working memory beyond the result is two frames' tokens in float32 (one frame's K and
V), never a full-size float32 copy of ``K``.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..samplers.frame_schedule import FrameSchedule


def _check_momentum(momentum: float) -> float:
    mu = float(momentum)
    if not 0.0 <= mu <= 1.0:
        raise ValueError(f"temporal momentum: momentum must be in [0, 1], got {mu}")
    return mu


def frame_momenta(momentum, frames: int):
    """``momentum`` for ``frames`` frames: a float (scalar mu, every frame) or the list
    ``[mu_1, ..., mu_F]`` of a per-frame schedule.

    ``momentum`` is a float, a sequence of exactly ``frames`` values, or a ``FrameSchedule``
    (anything with ``resolve(length)``), resolved to ``frames`` values. ``mu_1`` is unused (Eq. 2:
    ``K'_1 = K_1``); it is kept so that value ``k`` belongs to frame ``k``. A per-frame list whose
    ``mu_2..mu_F`` are all equal is returned as that float, so it equals the scalar exactly.

    Raises:
        ValueError: a value outside ``[0, 1]``, or a sequence whose length is not ``frames``.
    """
    if hasattr(momentum, "resolve"):
        mus = [float(v) for v in momentum.resolve(frames)]
    elif isinstance(momentum, (int, float)) or (hasattr(momentum, "ndim") and momentum.ndim == 0):
        return _check_momentum(momentum)
    else:
        mus = [float(v) for v in momentum]
        if len(mus) != frames:
            raise ValueError(f"temporal momentum: a per-frame momentum needs one value per frame "
                             f"({frames}), got {len(mus)}")
    mus = [_check_momentum(v) for v in mus]
    if len(set(mus[1:])) <= 1:
        return mus[1] if len(mus) > 1 else 0.0
    return mus


def momentum_spec(momentum):
    """A checked momentum for a patch: a float in ``[0, 1]``, or a per-frame schedule (a
    ``FrameSchedule``, or a sequence ``[mu_1, mu_2, ...]`` turned into one: the last value repeats)
    whose values are all in ``[0, 1]``; resolve it per call with :func:`call_momentum`.

    Raises:
        ValueError: a value outside ``[0, 1]``.
    """
    if isinstance(momentum, (int, float)):
        return _check_momentum(momentum)
    if not hasattr(momentum, "resolve"):
        momentum = FrameSchedule(tuple(float(v) for v in momentum))
    for v in momentum.values:
        _check_momentum(v)
    return momentum


def momentum_weights(frames: int, momentum, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> Tensor:
    """The lower-triangular ``[F, F]`` matrix ``W`` with ``K' = W @ K`` over frames (Eq. 2).

    Scalar ``mu``: ``W[i, 0] = mu^i`` and ``W[i, j] = (1 - mu) * mu^(i - j)`` for ``1 <= j <= i``
    (0-based), else 0. ``mu = 0`` gives the identity exactly, ``mu = 1`` ones in column 0 and zeros
    elsewhere exactly.

    Per frame (``momentum`` = ``[mu_1, ..., mu_F]`` or a ``FrameSchedule``, see
    :func:`frame_momenta`): the recursion ``K'_1 = K_1``, ``K'_i = mu_i K'_{i-1} + (1 - mu_i) K_i``
    unrolled, ``W[i, j] = c_j * prod_{k=j+1..i} mu_k`` (0-based) with ``c_0 = 1``,
    ``c_j = 1 - mu_j``; ``mu_1`` is unused.

    Every row sums to 1. Built in float64 (powers of mu near 1 are exact enough), then cast.

    Raises:
        ValueError: ``frames < 1``, a momentum outside ``[0, 1]`` or a per-frame list of the wrong length.
    """
    frames = int(frames)
    if frames < 1:
        raise ValueError(f"temporal momentum: frames must be >= 1, got {frames}")
    mu = frame_momenta(momentum, frames)
    if not isinstance(mu, float):
        m = torch.tensor(mu, dtype=torch.float64)
        i = torch.arange(frames).unsqueeze(1)
        j = torch.arange(frames).unsqueeze(0)
        # A[i, j] = mu_i below the diagonal, 1 elsewhere: its column-wise cumprod is prod_{k=j+1..i} mu_k.
        a = torch.where(i > j, m.unsqueeze(1).expand(frames, frames), torch.ones((), dtype=torch.float64))
        c = torch.cat([torch.ones(1, dtype=torch.float64), 1.0 - m[1:]])
        w = torch.cumprod(a, dim=0) * c.unsqueeze(0)
        w = torch.where(j <= i, w, torch.zeros((), dtype=torch.float64))
        return w.to(dtype=dtype, device=device)
    i = torch.arange(frames, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(frames, dtype=torch.float64).unsqueeze(0)
    lag = (i - j).clamp(min=0.0)
    powers = torch.pow(torch.tensor(mu, dtype=torch.float64), lag)   # 0^0 = 1
    w = torch.where(j == 0, powers, (1.0 - mu) * powers)
    w = torch.where(j <= i, w, torch.zeros((), dtype=torch.float64))
    return w.to(dtype=dtype, device=device)


def averaging_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype Eq. 2 is computed in for activations of ``dtype``: float32 for 16-bit floats
    (fp16, bf16), else ``dtype`` itself (float32, float64)."""
    if dtype.is_floating_point and torch.finfo(dtype).bits < 32:
        return torch.float32
    return dtype


def _token_span(tokens, length: int) -> tuple[int, int]:
    """``(start, stop)`` of ``tokens`` (a ``slice`` with step 1, or a ``(start, stop)`` pair; the first two
    values of a ``(start, stop, period, width)`` grid) on an axis of ``length`` tokens, clipped as Python
    slicing clips."""
    if isinstance(tokens, slice):
        if tokens.step not in (None, 1):
            raise ValueError(f"temporal momentum: token slice needs step 1, got {tokens.step}")
        start, stop, _ = tokens.indices(length)
    else:
        start, stop, _ = slice(int(tokens[0]), int(tokens[1])).indices(length)
    return start, max(start, stop)


def _token_grid(tokens, start: int, stop: int) -> tuple[int, int] | None:
    """``(period, width)`` of a grid selection ``(start, stop, period, width)`` (tokens ``start..stop`` in
    rows of ``period`` tokens, the first ``width`` of each row selected), or None for a plain span.

    Raises:
        ValueError: ``period`` does not divide the span, or ``width`` is not in ``[0, period]``."""
    if isinstance(tokens, slice) or len(tokens) == 2:
        return None
    period, width = int(tokens[2]), int(tokens[3])
    if period < 1 or (stop - start) % period != 0 or not 0 <= width <= period:
        raise ValueError(f"temporal momentum: a token grid needs rows of period {period} dividing the "
                         f"{stop - start} tokens {start}..{stop} and 0 <= width {width} <= period")
    return period, width


def _select_tokens(t: Tensor, dim: int, start: int, stop: int, grid) -> Tensor:
    """A view of ``t``'s tokens ``start..stop`` on axis ``dim`` (with ``grid = (period, width)``: those
    tokens as rows of ``period``, the first ``width`` of each row; the view then has one more axis)."""
    t = t.narrow(dim, start, stop - start)
    if grid is None:
        return t
    period, width = grid
    return t.unflatten(dim, ((stop - start) // period, period)).narrow(dim + 1, 0, width)


def temporal_momentum(x: Tensor, momentum: float, groups: int = 1, tokens=None, token_dim: int = 1) -> Tensor:
    """Eq. 2 along the batch axis of ``x`` ``[G * F, ...]``: ``G`` consecutive groups of ``F`` frames
    (e.g. the CFG chunks of a ComfyUI batch), each averaged on its own; optionally only the tokens
    ``tokens`` of axis ``token_dim`` (the others come back unchanged).

    Computed frame by frame, group by group, with Eq. 2's recursion
    ``K'_i = K'_{i-1} + (1 - mu_i) (K_i - K'_{i-1})`` (``torch.lerp``, ``K'_1 = K_1``): every step is an
    affine combination whose weights sum to exactly 1 whatever the rounding (nothing scales ``K``),
    so identical frames (a still video, a prompt's text tokens) come back unchanged bit for bit,
    ``mu_i = 1`` repeats ``K'_{i-1}`` exactly and ``mu_i = 0`` returns ``K_i`` exactly.
    fp16/bf16 inputs are averaged in float32 (:func:`averaging_dtype`) and cast back once per frame.
    Memory beyond the result (``x``'s shape and dtype): two frames of the averaged tokens in the
    averaging dtype (``K'_{i-1}`` and ``K_i``), never a full-size float32 copy and never a
    ``F x F x tokens`` tensor. ``mu = 0`` returns ``x`` itself; ``mu = 1`` returns every frame
    equal to its group's first frame (exact copies); one frame per group returns ``x`` itself.

    Args:
        x: ``[G * F, ...]`` any float dtype; the result has ``x``'s shape, dtype and device.
        momentum: ``mu`` in ``[0, 1]``, or per frame ``[mu_1, ..., mu_F]`` / a ``FrameSchedule``
            (:func:`frame_momenta`; the same schedule in every group).
        groups: ``G >= 1``; must divide ``x.shape[0]``.
        tokens: ``None`` (all of ``x``), or the tokens to average on axis ``token_dim`` of ``x``: a
            ``slice`` (step 1), ``(start, stop)``, or a grid ``(start, stop, period, width)``: the tokens
            ``start..stop`` read as rows of ``period`` tokens, of which the first ``width`` are averaged
            (an image whose rows also hold other tokens, e.g. HiDream E1's target and reference
            side by side); the other tokens are returned unchanged.
        token_dim: the token axis of ``x`` (``>= 1``), used with ``tokens``.
    Raises:
        ValueError: a momentum outside ``[0, 1]``, ``groups`` not dividing the batch, a bad
            ``token_dim`` or token grid.
    """
    groups = int(groups)
    b = x.shape[0]
    if groups < 1 or b % groups != 0:
        raise ValueError(f"temporal momentum: batch of {b} cannot be split into {groups} equal groups of frames")
    frames = b // groups
    mu = frame_momenta(momentum, frames)
    if frames == 1 or mu == 0.0:
        return x
    xg = x.unflatten(0, (groups, frames))                                         # a view
    if tokens is not None:
        if not 1 <= int(token_dim) < x.ndim:
            raise ValueError(f"temporal momentum: token_dim must be in [1, {x.ndim - 1}], got {token_dim}")
        start, stop = _token_span(tokens, x.shape[token_dim])
        grid = _token_grid(tokens, start, stop)
        if stop == start or (grid is not None and grid[1] == 0):
            return x
        xg = _select_tokens(xg, int(token_dim) + 1, start, stop, grid)
    out = x.clone()                                                               # the result
    og = out.unflatten(0, (groups, frames))
    if tokens is not None:
        og = _select_tokens(og, int(token_dim) + 1, start, stop, grid)
    if mu == 1.0:
        og[:, 1:] = xg[:, :1]
        return out
    mus = [mu] * frames if isinstance(mu, float) else mu
    acc = averaging_dtype(x.dtype)
    for g in range(groups):
        run = xg[g, 0].to(acc, copy=True)                                         # K'_1 = K_1, one frame
        frame = torch.empty_like(run)                                             # K_i, one frame
        for i in range(1, frames):
            w = 1.0 - float(mus[i])
            if w != 0.0:                                                          # mu_i = 1: K'_i = K'_{i-1}
                run.lerp_(frame.copy_(xg[g, i]), w)                               # K'_{i-1} + w (K_i - K'_{i-1})
            og[g, i].copy_(run)                                                   # cast once
        del run, frame
    return out


def temporal_momentum_recursive(x: Tensor, momentum: float, groups: int = 1) -> Tensor:
    """Reference: the explicit recursion of Eq. 2, ``K'_1 = K_1``, ``K'_i = mu K'_{i-1} + (1 - mu) K_i``,
    frame by frame in each group (slow, for tests); per frame ``mu_i`` in place of ``mu``. Same
    arguments as :func:`temporal_momentum`."""
    b = x.shape[0]
    if groups < 1 or b % groups != 0:
        raise ValueError(f"temporal momentum: batch of {b} cannot be split into {groups} equal groups of frames")
    frames = b // groups
    mu = frame_momenta(momentum, frames)
    mus = [mu] * frames if isinstance(mu, float) else mu
    xg = x.reshape(groups, frames, *x.shape[1:])
    out = [xg[:, 0]]
    for i in range(1, frames):
        out.append(mus[i] * out[-1] + (1.0 - mus[i]) * xg[:, i])
    return torch.stack(out, dim=1).reshape(x.shape)
