"""ZS^2 noise priors for zero-shot video: the dependency noise model and PYoCo's mixed and
progressive noise models.

Pure torch (no ``comfy`` import). Source: ZS^2 ("ZS^2: Zero-Shot Video Sampling from Image
Diffusion Models"), Sec. 3 / 3.1, Algorithm 1 and appendix D Listing 1, as fixed in
docs/algorithms.md section 3.1.

All functions return *unit* noise (each frame's marginal is N(0, I)), float32, on the CPU (or the
``device`` given), drawn from the given ``torch.Generator`` only (never the global RNG), so the same
generator seed gives the same tensor. Frames are laid out as ``[batches, frames, *frame_shape]``
(the listing's layout); :func:`latent_noise` maps this onto ComfyUI latents:

* image-model latents ``[F, C, H, W]``: one video whose frames are the batch;
* video latents ``[B, C, T, H, W]``: ``B`` videos with frames along axis 2.

Dependency noise model (docs/algorithms.md section 3.1): frame 1 ~ N(0, I); for every later frame ``i``
``eps_i = sqrt(alpha) * eps_{i-1} + sqrt(1 - alpha) * eps_tilde`` where ``eps_tilde`` and ``alpha``
minimise ``|KL(cand, eps_{i-1}) - lambda|`` with

* ``KL(q, p) = mean(exp(p) * (p - q))`` over one sample's elements, i.e.
  ``torch.kl_div(cand, prev, log_target=True)`` taken elementwise and averaged per sample (the
  listing's scalar reduction over the whole batch is a bug);
* random phase: ``random_search`` i.i.d. N(0, I) candidates, the first strictly lowest error wins;
* linear phase (``linear_search`` iterations, listing semantics): ``alpha = 0.1``, ``step = 0.1``
  (float32, as the listing's tensors); the error at ``alpha`` is compared with the best so far:
  if ``<=`` it becomes the best and ``alpha += step``; otherwise ``alpha -= 0.8 * step`` and
  ``step *= 0.2``. A trial ``alpha`` outside ``[0, 1]`` is rejected (in the listing its error is
  NaN, so the comparison fails) and the returned ``alpha`` is clamped to ``[0, 1]`` (the listing
  can return an ``alpha > 1`` and hence NaN noise).

Because a candidate ``sqrt(a) * p + sqrt(1 - a) * z`` is linear in ``p`` and ``z``, its per-sample
KL mean is exactly ``(1 - sqrt(a)) * mean(exp(p) * p) - sqrt(1 - a) * mean(exp(p) * z)``; the code
evaluates it in this closed form (two reductions per frame instead of one per trial), which is what
makes 16 frames x 4 x 64 x 64 take milliseconds.

With the defaults (lambda = 0.01, 10 + 15 iterations) and a 4 x 64 x 64 frame the search lands at
alpha = 0.984 (adjacent-frame correlation about 0.99). Smaller lambda raises the correlation, larger
lambda lowers it (lambda >= ~2 gives nearly i.i.d. noise). With 15 linear iterations alpha cannot
pass 0.984 (the float32 grid point 1.0000001 is rejected); more linear iterations let lambda -> 0
approach a still video (alpha -> 1).

Per-frame targets (ZS^2 Algorithm 1 indexes lambda by frame): ``kl_lambda`` may also be a sequence
``[lambda_2, ..., lambda_F]`` (one target per frame after the first) or a
:class:`~.frame_schedule.FrameSchedule` resolved to ``F - 1`` values; frame ``i`` is then searched
against ``lambda_i`` exactly as the scalar search does against ``lambda``. A scalar gives the same
result as before (every frame searched against that one value).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from .frame_schedule import FrameSchedule, parse_frame_schedule

NOISE_MODELS = ("dependency", "mixed", "progressive")
_LOG2_E = 1.4426950408889634


@dataclass(frozen=True)
class Settings:
    """The noise model's parameters (ZS^2 Sec. 3.1, Algorithm 1; PYoCo's mixed / progressive models):
    the keyword arguments of :func:`latent_noise`. Defaults are the paper's. Build it from a node's inputs
    with :meth:`from_inputs` (which checks them)."""
    noise_model: str = "dependency"
    kl_lambda: float | FrameSchedule = 0.01
    random_search: int = 10
    linear_search: int = 15
    alpha: float = 0.9

    @classmethod
    def from_inputs(cls, kl_lambda, random_search, linear_search, noise_model, alpha,
                    kl_lambda_schedule: str = "") -> "Settings":
        """Checked settings from the nodes' inputs; a non-empty ``kl_lambda_schedule`` (per-frame lambda_i,
        :func:`~.frame_schedule.parse_frame_schedule`) replaces ``kl_lambda``.

        Raises:
            ValueError naming the input and the allowed range: ``kl_lambda`` < 0 or not finite,
            ``random_search`` < 1, ``linear_search`` < 0, an unknown ``noise_model``, ``alpha`` outside
            [0, 1], or a malformed ``kl_lambda_schedule``.
        """
        kl_lambda, alpha = float(kl_lambda), float(alpha)
        if not (0.0 <= kl_lambda < float("inf")):
            raise ValueError(f"kl_lambda must be a finite number >= 0, got {kl_lambda}.")
        if int(random_search) < 1:
            raise ValueError(f"random_search must be >= 1, got {random_search}.")
        if int(linear_search) < 0:
            raise ValueError(f"linear_search must be >= 0, got {linear_search}.")
        if noise_model not in NOISE_MODELS:
            raise ValueError(f"noise_model must be one of {list(NOISE_MODELS)}, got {noise_model!r}.")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}.")
        schedule = parse_frame_schedule(kl_lambda_schedule, input_name="kl_lambda_schedule", minimum=0.0,
                                        what="lambda_i")
        return cls(noise_model, kl_lambda if schedule is None else schedule, int(random_search),
                   int(linear_search), alpha)

    def kwargs(self) -> dict:
        """The settings as :func:`latent_noise`'s keyword arguments."""
        return {"noise_model": self.noise_model, "kl_lambda": self.kl_lambda, "random_search": self.random_search,
                "linear_search": self.linear_search, "alpha": self.alpha}


def _check_shape(shape: Sequence[int], name: str) -> tuple[int, int, tuple[int, ...]]:
    shape = tuple(int(s) for s in shape)
    if len(shape) < 3 or any(s < 1 for s in shape):
        raise ValueError(f"{name}: shape must be (batches, frames, *frame_shape) with positive sizes, got {shape}")
    return shape[0], shape[1], shape[2:]


def _check_alpha(alpha: float, name: str) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"{name}: alpha must be in [0, 1], got {alpha}")
    return alpha


def _linear_search(a_pp: np.ndarray, a_pz: np.ndarray, bound: np.ndarray, kl_lambda: float,
                   iterations: int) -> np.ndarray:
    """The linear phase of Listing 1 for a batch: returns alpha ``[B]`` float32 clamped to [0, 1].

    ``KL(alpha) = (1 - sqrt(alpha)) * a_pp - sqrt(1 - alpha) * a_pz`` (float64); ``bound`` is the
    random phase's best error. ``alpha``/``step`` are float32 like the listing's tensors.
    """
    alpha = np.full(a_pp.shape, 0.1, dtype=np.float32)
    step = np.full(a_pp.shape, 0.1, dtype=np.float32)
    bound = bound.astype(np.float64)
    for _ in range(iterations):
        a64 = alpha.astype(np.float64)
        valid = (a64 >= 0.0) & (a64 <= 1.0)
        a_ok = np.clip(a64, 0.0, 1.0)
        err = np.abs((1.0 - np.sqrt(a_ok)) * a_pp - np.sqrt(1.0 - a_ok) * a_pz - kl_lambda)
        better = valid & (err <= bound)
        alpha = np.where(better, alpha + step, alpha - np.float32(0.8) * step).astype(np.float32)
        step = np.where(better, step, step * np.float32(0.2)).astype(np.float32)
        bound = np.where(better, err, bound)
    return np.clip(alpha, np.float32(0.0), np.float32(1.0)).astype(np.float32)


def _frame_lambdas(kl_lambda, frames: int, name: str) -> list[float]:
    """``[lambda_2, ..., lambda_F]`` (``frames - 1`` floats) from a scalar, a sequence of exactly
    ``frames - 1`` values, or a ``FrameSchedule`` (anything with ``resolve(length)``)."""
    if hasattr(kl_lambda, "resolve"):
        lams = [float(v) for v in kl_lambda.resolve(frames - 1)]
    elif isinstance(kl_lambda, (int, float)) or (hasattr(kl_lambda, "ndim") and kl_lambda.ndim == 0):
        lams = [float(kl_lambda)] * (frames - 1)
    else:
        lams = [float(v) for v in kl_lambda]
        if len(lams) != frames - 1:
            raise ValueError(f"{name}: a per-frame kl_lambda needs one value per frame after the first "
                             f"({frames - 1} for {frames} frames), got {len(lams)}")
    for v in lams:
        if not (v >= 0.0 and v < float("inf")):
            raise ValueError(f"{name}: kl_lambda must be a finite number >= 0, got {v}")
    return lams


def dependency_noise(shape: Sequence[int], kl_lambda=0.01, random_search: int = 10,
                     linear_search: int = 15, generator: torch.Generator | None = None,
                     device: torch.device | str = "cpu", return_alpha: bool = False):
    """ZS^2 dependency noise (Sec. 3.1, Algorithm 1, Listing 1; fixes: docs/algorithms.md section 3.1).

    Args:
        shape: ``(batches, frames, *frame_shape)``, e.g. ``(1, 16, 4, 64, 64)``. Each of the
            ``batches`` videos is searched independently (vectorised over the batch).
        kl_lambda: target KL divergence ``lambda >= 0`` between consecutive frames (paper default
            0.01). Lower -> more similar frames, higher -> more independent frames. Per frame: a
            sequence ``[lambda_2, ..., lambda_F]`` of ``frames - 1`` values (frame ``i`` is searched
            against ``lambda_i``) or a ``FrameSchedule`` (resolved to ``frames - 1`` values).
        random_search: random-phase candidates per frame (``>= 1``; paper 10).
        linear_search: linear-phase iterations per frame (``>= 0``; paper 15).
        generator: CPU ``torch.Generator`` (the only source of randomness); ``None`` -> a fresh one.
        device: where the noise is drawn (the generator's device).
        return_alpha: also return the chosen ``alpha`` per frame ``[batches, frames]`` (float32;
            frame 1 has none and reports 0).

    Returns:
        Unit noise ``[batches, frames, *frame_shape]`` float32 (each frame's marginal is N(0, I)),
        and the alphas if ``return_alpha``.

    Raises:
        ValueError: bad shape, a ``kl_lambda`` value ``< 0`` or non-finite, a per-frame sequence
            whose length is not ``frames - 1``, ``random_search < 1`` or ``linear_search < 0``.
    """
    batches, frames, frame_shape = _check_shape(shape, "dependency_noise")
    lambdas = _frame_lambdas(kl_lambda, frames, "dependency_noise")
    random_search, linear_search = int(random_search), int(linear_search)
    if random_search < 1:
        raise ValueError(f"dependency_noise: random_search must be >= 1, got {random_search}")
    if linear_search < 0:
        raise ValueError(f"dependency_noise: linear_search must be >= 0, got {linear_search}")
    if generator is None:
        generator = torch.Generator(device=device)

    n = 1
    for s in frame_shape:
        n *= s
    out = torch.empty((batches, frames, n), dtype=torch.float32, device=device)
    alphas = torch.zeros((batches, frames), dtype=torch.float32, device=device)
    out[:, 0] = torch.randn((batches, n), generator=generator, dtype=torch.float32, device=device)
    rows = torch.arange(batches, device=device)

    for i in range(1, frames):
        kl_lambda = lambdas[i - 1]                                 # lambda_i of frame i + 1 (1-based)
        lam = torch.tensor(kl_lambda, dtype=torch.float64, device=device)
        prev = out[:, i - 1]                                       # [B, N]
        w = torch.exp2(prev * _LOG2_E)                             # exp(p) (exp2: no threading stall)
        a_pp = ((w * prev).sum(dim=1, dtype=torch.float64)) / n    # mean(exp(p) * p), [B]

        # Random phase: KL(cand, prev) = mean(exp(p) * p) - mean(exp(p) * cand).
        cands = torch.randn((random_search, batches, n), generator=generator, dtype=torch.float32, device=device)
        wc = torch.einsum("rbn,bn->rb", cands, w).to(torch.float64) / n
        err = (a_pp.unsqueeze(0) - wc - lam).abs()                 # [R, B]
        best_r = torch.argmin(err, dim=0)                          # first minimum == strict-< scan
        flat = best_r * batches + rows                             # (r, b) -> row of the [R * B] views
        bound = err.reshape(-1).index_select(0, flat)              # [B]
        z = cands.reshape(-1, n).index_select(0, flat)             # [B, N]
        a_pz = wc.reshape(-1).index_select(0, flat)                # mean(exp(p) * z), [B]

        # Linear phase (listing semantics: float32 alpha/step; out-of-range trials rejected). The
        # per-sample scalars live in small numpy arrays: same arithmetic, no per-op torch overhead.
        alpha = _linear_search(a_pp.cpu().numpy(), a_pz.cpu().numpy(), bound.cpu().numpy(),
                               kl_lambda, linear_search)
        alpha = torch.from_numpy(alpha).to(device)
        alphas[:, i] = alpha
        out[:, i] = alpha.sqrt().unsqueeze(1) * prev + (1.0 - alpha).sqrt().unsqueeze(1) * z

    out = out.reshape((batches, frames) + frame_shape)
    return (out, alphas) if return_alpha else out


def mixed_noise(shape: Sequence[int], alpha: float, generator: torch.Generator | None = None,
                device: torch.device | str = "cpu") -> Tensor:
    """PYoCo's mixed noise model (ZS^2 Sec. 3): ``eps_i = sqrt(alpha) * shared + sqrt(1 - alpha) * ind_i``.

    Args:
        shape: ``(batches, frames, *frame_shape)``; one ``shared`` noise per video.
        alpha: in ``[0, 1]``; 0 = i.i.d. frames, 1 = identical frames.
        generator: CPU ``torch.Generator``.
    Returns:
        Unit noise ``[batches, frames, *frame_shape]`` float32.
    Raises:
        ValueError: bad shape or alpha outside ``[0, 1]``.
    """
    batches, frames, frame_shape = _check_shape(shape, "mixed_noise")
    alpha = _check_alpha(alpha, "mixed_noise")
    if generator is None:
        generator = torch.Generator(device=device)
    shared = torch.randn((batches, 1) + frame_shape, generator=generator, dtype=torch.float32, device=device)
    ind = torch.randn((batches, frames) + frame_shape, generator=generator, dtype=torch.float32, device=device)
    return alpha ** 0.5 * shared + (1.0 - alpha) ** 0.5 * ind


def progressive_noise(shape: Sequence[int], alpha: float, generator: torch.Generator | None = None,
                      device: torch.device | str = "cpu") -> Tensor:
    """PYoCo's progressive noise model (ZS^2 Sec. 3): ``eps_1 ~ N(0, I)``,
    ``eps_i = sqrt(alpha) * eps_{i-1} + sqrt(1 - alpha) * ind_i``.

    Args, Returns, Raises: as :func:`mixed_noise`.
    """
    batches, frames, frame_shape = _check_shape(shape, "progressive_noise")
    alpha = _check_alpha(alpha, "progressive_noise")
    if generator is None:
        generator = torch.Generator(device=device)
    ind = torch.randn((batches, frames) + frame_shape, generator=generator, dtype=torch.float32, device=device)
    out = torch.empty_like(ind)
    out[:, 0] = ind[:, 0]
    sa, sb = alpha ** 0.5, (1.0 - alpha) ** 0.5
    for i in range(1, frames):
        out[:, i] = sa * out[:, i - 1] + sb * ind[:, i]
    return out


def video_noise(noise_model: str, shape: Sequence[int], generator: torch.Generator | None = None,
                kl_lambda=0.01, random_search: int = 10, linear_search: int = 15,
                alpha: float = 0.9, device: torch.device | str = "cpu") -> Tensor:
    """One of :data:`NOISE_MODELS` on ``(batches, frames, *frame_shape)``; ``alpha`` is used by
    ``mixed``/``progressive``, ``kl_lambda``/``random_search``/``linear_search`` by ``dependency``
    (``kl_lambda`` a scalar, ``frames - 1`` per-frame values or a ``FrameSchedule``).

    Raises:
        ValueError: unknown ``noise_model`` (or the model's own argument errors).
    """
    if noise_model == "dependency":
        return dependency_noise(shape, kl_lambda, random_search, linear_search, generator, device=device)
    if noise_model == "mixed":
        return mixed_noise(shape, alpha, generator, device=device)
    if noise_model == "progressive":
        return progressive_noise(shape, alpha, generator, device=device)
    raise ValueError(f"video_noise: noise_model must be one of {NOISE_MODELS}, got {noise_model!r}")


def frames_layout(latent_shape: Sequence[int]) -> tuple[tuple[int, ...], str]:
    """Where the frames of a ComfyUI latent are: ``(noise_shape, kind)``.

    ``[F, C, H, W]`` (image models, frames = batch, one video) -> ``((1, F, C, H, W), "batch")``;
    ``[F, C, 1, H, W]`` with ``F > 1`` (image models with a 5-D latent of one picture frame, e.g.
    Qwen-Image: frames = batch, as Temporal Momentum Attention sees them) ->
    ``((1, F, C, 1, H, W), "batch")``;
    ``[B, C, T, H, W, ...]`` (video models, frame axis 2) -> ``((B, T, C, H, W, ...), "axis2")``.

    Raises:
        ValueError: a latent with fewer than 4 dimensions.
    """
    s = tuple(int(v) for v in latent_shape)
    if len(s) == 4 or (len(s) >= 5 and s[2] == 1 and s[0] > 1):
        return (1,) + s, "batch"
    if len(s) >= 5:
        return (s[0], s[2], s[1]) + s[3:], "axis2"
    raise ValueError(f"latent must be [F, C, H, W] (frames as batch) or [B, C, T, H, W], got shape {list(s)}")


def latent_noise(latent_shape: Sequence[int], seed: int, noise_model: str = "dependency",
                 kl_lambda=0.01, random_search: int = 10, linear_search: int = 15,
                 alpha: float = 0.9) -> Tensor:
    """Correlated unit noise for a ComfyUI latent, a pure function of its arguments.

    Args:
        latent_shape: ``[F, C, H, W]`` (image model: frames are the batch) or ``[B, C, T, H, W]``
            (video model: frames along axis 2).
        seed: seeds a fresh CPU ``torch.Generator`` (never the global RNG).
        noise_model, kl_lambda, random_search, linear_search, alpha: as :func:`video_noise`; a
            ``FrameSchedule`` ``kl_lambda`` is resolved to the latent's frames ``F - 1``.
    Returns:
        float32 CPU unit noise of shape ``latent_shape``.
    Raises:
        ValueError: bad latent shape or parameters.
    """
    noise_shape, kind = frames_layout(latent_shape)
    g = torch.Generator(device="cpu").manual_seed(int(seed) & 0xFFFF_FFFF_FFFF_FFFF)
    x = video_noise(noise_model, noise_shape, g, kl_lambda, random_search, linear_search, alpha)
    if kind == "batch":
        return x[0]
    return x.transpose(1, 2).contiguous()
