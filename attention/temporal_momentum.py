"""Temporal Momentum Attention (TMA), ZS^2 Sec. 4.1 Eq. 2. Pure torch (no ``comfy`` import).

Source: "ZS^2: Zero-Shot Video Sampling from Image Diffusion Models", Sec. 4.1, Eq. 2, as stated in
ALGORITHMS.md section 3 (both appendix listings are wrong: the loop blends only frame i-1, the
einsum ``"ff,fbnc->fbnc"`` takes the diagonal; this module implements Eq. 2).

In every self-attention layer frame ``i`` keeps its own queries ``Q_i`` but attends to momentum
keys and values over the frames before it::

    K'_1 = K_1,    K'_i = mu * K'_{i-1} + (1 - mu) * K_i        (same for V)
    K'_i = mu^(i-1) K_1 + sum_{j=2..i} (1 - mu) mu^(i-j) K_j

``mu = 0`` is plain self-attention, ``mu = 1`` is cross-frame attention to frame 1
(Text2Video-Zero). The weights of each row sum to 1 and the K/V projections are affine, so
averaging the attention block's (normed) input hidden states over frames *before* the K/V
projections gives exactly ``K'``, ``V'``: :class:`TemporalMomentumPatch` does that in a UNet
``attn1_patch`` at the cost of one ``[F, F] @ [F, tokens * channels]`` product per layer (no
``frames x frames x tokens`` tensor is ever built) and the attention itself is unchanged
self-attention cost.

Frames are grouped: per CFG chunk (ComfyUI batches the cond and uncond passes, and area conds,
as consecutive chunks of the batch, listed in ``cond_or_uncond``; each chunk holds the frames of
one video) so cond and uncond frames never mix.
"""
from __future__ import annotations

import torch
from torch import Tensor


def _check_momentum(momentum: float) -> float:
    mu = float(momentum)
    if not 0.0 <= mu <= 1.0:
        raise ValueError(f"temporal momentum: momentum must be in [0, 1], got {mu}")
    return mu


def momentum_weights(frames: int, momentum: float, dtype: torch.dtype = torch.float32,
                     device: torch.device | str | None = None) -> Tensor:
    """The lower-triangular ``[F, F]`` matrix ``W`` with ``K' = W @ K`` over frames (Eq. 2).

    ``W[i, 0] = mu^i`` and ``W[i, j] = (1 - mu) * mu^(i - j)`` for ``1 <= j <= i`` (0-based), else 0.
    Every row sums to 1. ``mu = 0`` gives the identity exactly, ``mu = 1`` ones in column 0 and
    zeros elsewhere exactly. Built in float64 (powers of mu near 1 are exact enough), then cast.

    Raises:
        ValueError: ``frames < 1`` or ``momentum`` outside ``[0, 1]``.
    """
    frames = int(frames)
    if frames < 1:
        raise ValueError(f"temporal momentum: frames must be >= 1, got {frames}")
    mu = _check_momentum(momentum)
    i = torch.arange(frames, dtype=torch.float64).unsqueeze(1)
    j = torch.arange(frames, dtype=torch.float64).unsqueeze(0)
    lag = (i - j).clamp(min=0.0)
    powers = torch.pow(torch.tensor(mu, dtype=torch.float64), lag)   # 0^0 = 1
    w = torch.where(j == 0, powers, (1.0 - mu) * powers)
    w = torch.where(j <= i, w, torch.zeros((), dtype=torch.float64))
    return w.to(dtype=dtype, device=device)


def temporal_momentum(x: Tensor, momentum: float, groups: int = 1) -> Tensor:
    """Eq. 2 along the batch axis of ``x`` ``[G * F, ...]``: ``G`` consecutive groups of ``F`` frames
    (e.g. the CFG chunks of a ComfyUI batch), each averaged on its own.

    Vectorised: one ``[F, F] @ [G, F, prod(...)]`` product (never a ``F x F x tokens`` tensor).
    ``mu = 0`` returns ``x`` itself; ``mu = 1`` returns every frame equal to its group's first
    frame (exact copies); one frame per group returns ``x`` itself.

    Args:
        x: ``[G * F, ...]`` any float dtype; the result has ``x``'s dtype/device.
        momentum: ``mu`` in ``[0, 1]``.
        groups: ``G >= 1``; must divide ``x.shape[0]``.
    Raises:
        ValueError: ``momentum`` outside ``[0, 1]``, or ``groups`` not dividing the batch.
    """
    mu = _check_momentum(momentum)
    groups = int(groups)
    b = x.shape[0]
    if groups < 1 or b % groups != 0:
        raise ValueError(f"temporal momentum: batch of {b} cannot be split into {groups} equal groups of frames")
    frames = b // groups
    if frames == 1 or mu == 0.0:
        return x
    xg = x.reshape(groups, frames, -1)
    if mu == 1.0:
        return xg[:, :1].expand(groups, frames, xg.shape[-1]).reshape(x.shape)
    w = momentum_weights(frames, mu, dtype=x.dtype, device=x.device)
    return torch.matmul(w, xg).reshape(x.shape)


def temporal_momentum_recursive(x: Tensor, momentum: float, groups: int = 1) -> Tensor:
    """Reference: the explicit recursion of Eq. 2, ``K'_1 = K_1``, ``K'_i = mu K'_{i-1} + (1 - mu) K_i``,
    frame by frame in each group (slow, for tests). Same arguments as :func:`temporal_momentum`."""
    mu = _check_momentum(momentum)
    b = x.shape[0]
    if groups < 1 or b % groups != 0:
        raise ValueError(f"temporal momentum: batch of {b} cannot be split into {groups} equal groups of frames")
    frames = b // groups
    xg = x.reshape(groups, frames, *x.shape[1:])
    out = [xg[:, 0]]
    for i in range(1, frames):
        out.append(mu * out[-1] + (1.0 - mu) * xg[:, i])
    return torch.stack(out, dim=1).reshape(x.shape)


class TemporalMomentumPatch:
    """A UNet ``attn1_patch`` (``p(n, context_attn1, value_attn1, extra_options)``) implementing TMA.

    ``n``: the self-attention block's normed hidden states ``[B, tokens, C]`` (queries come from it,
    unchanged). ``context_attn1`` / ``value_attn1``: the tensors the K / V projections will read
    (ComfyUI passes ``n`` for both; an earlier patch may have replaced them; ``None`` means "``n``").
    Each is averaged over frames with Eq. 2 (if the same tensor is passed for both, once). Because
    the projections are affine and each row of weights sums to 1, this yields exactly ``K'``/``V'``.

    Frames: the batch is split into ``len(extra_options["cond_or_uncond"])`` consecutive chunks (CFG
    cond/uncond and area-cond chunks; frames per chunk = batch // chunks); each chunk is one video
    and is averaged on its own, so cond and uncond never mix. Under AnimateDiff-Evolved context
    windows a call holds only the window's frames, so the momentum average starts afresh at the
    window's first frame (``K'`` of that frame is its own ``K``) and runs over the window only.

    Tensors whose batch is not ``B`` (e.g. a batch-1 context shared by all frames) are left alone.

    Raises:
        ValueError: the batch does not split into equal chunks.
    """

    #: Marker read by the pack's bridge: the patched model mixes the samples of its batch (the frames),
    #: so SmoothInit must not stack perturbations along the batch.
    tfv_attends_across_batch = True

    def __init__(self, momentum: float = 0.98):
        self.momentum = _check_momentum(momentum)

    def __repr__(self) -> str:
        return f"TemporalMomentumPatch(momentum={self.momentum})"

    def groups(self, batch: int, extra_options: dict) -> int:
        cou = extra_options.get("cond_or_uncond") if extra_options else None
        chunks = len(cou) if cou else 1
        if batch % chunks != 0:
            raise ValueError(f"Temporal Momentum Attention: batch {batch} does not split into "
                             f"{chunks} equal cond/uncond chunks ({list(cou)})")
        return chunks

    def _avg(self, t: Tensor | None, batch: int, groups: int) -> Tensor | None:
        if t is None or t.shape[0] != batch:
            return t
        return temporal_momentum(t, self.momentum, groups)

    def __call__(self, n: Tensor, context_attn1: Tensor | None, value_attn1: Tensor | None,
                 extra_options: dict, *args, **kwargs):
        batch = n.shape[0]
        groups = self.groups(batch, extra_options)
        if context_attn1 is None:
            context_attn1 = n
        same = value_attn1 is context_attn1
        ctx = self._avg(context_attn1, batch, groups)
        if same:
            val = ctx
        else:
            val = self._avg(value_attn1, batch, groups)
        return n, ctx, val
