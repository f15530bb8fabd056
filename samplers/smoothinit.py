"""Forward-Inversion, SmoothInit and Fast-SmoothInit noise initialisers (pure torch).

Source: "The Blessing of Smooth Initialization for Video Diffusion Models" (Sec. 3.2,
Thm 3.2; Sec. 3.3, Eq. 6; Sec. 3.4; App. A.3) with the released code's facts collected in
docs/algorithms.md section 1 (the 50-step grid for the one DDIM step, ``w2 = 1``, the exact
Fast-SmoothInit momentum rule, the last iterate vs the mean). Everything works in ComfyUI's sigma
space (docs/algorithms.md section 0, :mod:`.sigma_space`) on **unit noise** through the model's own
``noise_scaling``, so the same code serves EPS, v-prediction, EDM and flow (CONST) models.

Conventions:

* ``denoise(x, sigma, cfg) -> x0_hat`` is ComfyUI's CFG-guided denoised prediction (cfg == 1 is
  the conditional pass alone: one model call). This module never runs an unconditional pass
  itself: it only passes the cfg values through.
* ``noise`` is unit noise ``[B, ...]`` (N(0, I) for a fresh start); the result is unit noise of the
  same shape and dtype, ready to be scaled by the sampler exactly like the original noise.
* ``sigma_a`` is the sampler's start noise level (``sigma_max`` for a full denoise) and
  ``sigma_b = grid_sigma_below(sigma_table, sigma_a, grid_steps)`` one step of a ``grid_steps``
  schedule below it (default 50, the code's t 999 -> 979), both in the model's sigma units.
* ``latent`` (optional, ``[B, ...]``) is the clean latent the sampler adds the noise to (img2img,
  ComfyUI's processed ``latent_image``); ``None`` means zeros (an empty latent).
* No renormalisation and no clipping of the result anywhere (the released code).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

from .sigma_space import ddim_step, grid_sigma_below, unit_to_x, x_to_unit

Denoiser = Callable[[Tensor, object, float], Tensor]

NOISE_TYPES = ("uniform", "gaussian", "truncated_gaussian")
METHODS = ("forward_inversion", "smoothinit", "fast_smoothinit")

_OOM = getattr(torch, "OutOfMemoryError", None) or torch.cuda.OutOfMemoryError


# --------------------------------------------------------------------------- presets and cost

@dataclass(frozen=True)
class Preset:
    """One row of the paper's settings table (App. A.3 = the released scripts; docs/algorithms.md section 1.4).

    ``method`` is one of :data:`METHODS`; ``K`` the number of Forward-Inversion evaluations;
    ``sigma_sm`` the perturbation scale (unit-noise units); ``noise_type`` the perturbation law;
    ``gamma_m`` / ``gamma_decay`` the Fast-SmoothInit momentum and noise decay (unused otherwise).
    """
    method: str
    K: int
    sigma_sm: float = 0.0
    noise_type: str = "gaussian"
    gamma_m: float = 0.0
    gamma_decay: float = 0.0


PRESETS: dict[str, Preset] = {
    "Forward-Inversion": Preset("forward_inversion", 1),
    "SmoothInit-30": Preset("smoothinit", 30, 0.025, "uniform"),
    "Fast-SmoothInit-10": Preset("fast_smoothinit", 10, 0.05, "gaussian", 0.05, 0.05),
    "Fast-SmoothInit-30": Preset("fast_smoothinit", 30, 0.1, "gaussian", 0.01, 0.25),
    # Latte-like DiT models tolerate less drift from the base noise: gamma_m = 0.95 (paper App. A.3)
    "Fast-SmoothInit-10 DiT-safe": Preset("fast_smoothinit", 10, 0.05, "gaussian", 0.95, 0.05),
    "Fast-SmoothInit-30 DiT-safe": Preset("fast_smoothinit", 30, 0.1, "gaussian", 0.95, 0.25),
}
CUSTOM = "custom"


def model_calls(cfg: float) -> int:
    """Model evaluations of one ``denoise`` call: 1 when ``cfg == 1`` exactly (ComfyUI skips the
    unconditional pass), else 2."""
    return 1 if float(cfg) == 1.0 else 2


def nfe(K: int, cfg: float, inversion_cfg: float = 1.0) -> int:
    """Model evaluations (NFE, per sample) of an initialiser with ``K`` Forward-Inversion
    evaluations: ``K * (calls(cfg) + calls(inversion_cfg))`` with calls(w) = 1 if w == 1 else 2.

    Forward-Inversion is ``K = 1``. With the defaults ``cfg = 7.5, inversion_cfg = 1`` this is
    ``3 K`` (the paper's floor ``(2N + 3K) / 2N`` for N CFG sampling steps after it).
    """
    return int(K) * (model_calls(cfg) + model_calls(inversion_cfg))


def sampling_nfe(steps: int, cfg: float) -> int:
    """NFE of plain DDIM/Euler sampling with ``steps`` steps (one ``denoise`` call per step)."""
    return int(steps) * model_calls(cfg)


def preset_nfe(preset: str | Preset, cfg: float = 7.5, inversion_cfg: float = 1.0) -> int:
    """:func:`nfe` of a preset (a name from :data:`PRESETS` or a :class:`Preset`)."""
    p = PRESETS[preset] if isinstance(preset, str) else preset
    return nfe(p.K, cfg, inversion_cfg)


# --------------------------------------------------------------------------- validation

def validate(*, K: int | None = None, sigma_sm: float | None = None,
             noise_type: str | None = None, gamma_m: float | None = None, gamma_decay: float | None = None,
             grid_steps: int | None = None, chunk_size: int | None = None, cfg: float | None = None,
             inversion_cfg: float | None = None, noise: Tensor | None = None,
             noise_name: str = "noise") -> None:
    """Raise ``ValueError("<input> ...")`` naming the input for any bad parameter given (None = unchecked).

    Rules: ``K >= 1``; ``sigma_sm >= 0`` and finite; ``noise_type`` in :data:`NOISE_TYPES`;
    ``0 <= gamma_m <= 1``; ``0 <= gamma_decay < 1``; ``grid_steps >= 2``; ``chunk_size >= 1``;
    finite cfg values; ``noise`` finite (no NaN/inf).
    """
    if K is not None and (int(K) != K or int(K) < 1):
        raise ValueError(f"K must be an integer >= 1 (got {K}); K is the number of "
                         f"Forward-Inversion evaluations (1 = plain Forward-Inversion).")
    if sigma_sm is not None and (not math.isfinite(float(sigma_sm)) or float(sigma_sm) < 0):
        raise ValueError(f"sigma_sm must be a finite number >= 0 (got {sigma_sm}); "
                         f"it scales the unit perturbation, use 0 for none.")
    if noise_type is not None and noise_type not in NOISE_TYPES:
        raise ValueError(f"noise_type must be one of {', '.join(NOISE_TYPES)} (got {noise_type!r}).")
    if gamma_m is not None and not (0.0 <= float(gamma_m) <= 1.0):
        raise ValueError(f"gamma_m must be in [0, 1] (got {gamma_m}); 0 feeds each output "
                         f"back as the next input, 0.95 stays close to the base noise.")
    if gamma_decay is not None and not (0.0 <= float(gamma_decay) < 1.0):
        raise ValueError(f"gamma_decay must be in [0, 1) (got {gamma_decay}).")
    if grid_steps is not None and int(grid_steps) < 2:
        raise ValueError(f"grid_steps must be >= 2 (got {grid_steps}); the one DDIM step "
                         f"is one step of a grid_steps-step schedule (default 50).")
    if chunk_size is not None and int(chunk_size) < 1:
        raise ValueError(f"chunk_size must be >= 1 (got {chunk_size}).")
    for name, v in (("cfg", cfg), ("inversion_cfg", inversion_cfg)):
        if v is not None and not math.isfinite(float(v)):
            raise ValueError(f"{name} must be finite (got {v}).")
    if noise is not None and not bool(torch.isfinite(noise).all()):
        bad = int((~torch.isfinite(noise)).sum())
        raise ValueError(f"the incoming {noise_name} contains {bad} NaN/inf values; "
                         f"check the noise source feeding this node.")


# --------------------------------------------------------------------------- pieces

def perturbation(shape, noise_type: str, generator: torch.Generator, dtype: torch.dtype = torch.float32) -> Tensor:
    """One perturbation ``n`` of ``shape`` on the CPU, drawn from ``generator``.

    ``uniform``: U[-sqrt 3, sqrt 3] (mean 0, variance 1); ``gaussian``: N(0, 1);
    ``truncated_gaussian``: N(0, 1) clipped to [-1, 1] as in the released code (docs/algorithms.md section 1.2;
    mean 0, variance ``E[min(z^2, 1)] = 1 - 2 phi(1) ~= 0.516``, so it is a weaker perturbation
    than the other two at the same ``sigma_sm``).
    Raises ValueError for an unknown ``noise_type``.
    """
    if noise_type == "uniform":
        u = torch.rand(shape, generator=generator, dtype=torch.float32)
        return ((u * 2.0 - 1.0) * math.sqrt(3.0)).to(dtype)
    if noise_type == "gaussian":
        return torch.randn(shape, generator=generator, dtype=torch.float32).to(dtype)
    if noise_type == "truncated_gaussian":
        return torch.randn(shape, generator=generator, dtype=torch.float32).clamp_(-1.0, 1.0).to(dtype)
    raise ValueError(f"perturbation: noise_type must be one of {', '.join(NOISE_TYPES)} (got {noise_type!r})")


def inversion_sigmas(sigma_table: Tensor, sigma_a, grid_steps: int = 50) -> tuple[float, float]:
    """``(sigma_a, sigma_b)`` of Forward-Inversion: ``sigma_b`` is one step of a ``grid_steps``-step
    schedule below ``sigma_a`` on the model's ascending ``sigma_table`` ``[T]`` (docs/algorithms.md section 1.1;
    at sigma_max, T = 1000, grid_steps = 50: table index 999 -> 979). Model sigma units.
    Raises ValueError if ``grid_steps < 2`` or ``sigma_a <= 0``."""
    sa = float(sigma_a)
    if not sa > 0:
        raise ValueError(f"inversion_sigmas: sigma_a must be > 0 (got {sa})")
    sb = float(grid_sigma_below(sigma_table, sa, grid_steps))
    return sa, sb


def grid_schedule(sigma_table: Tensor, steps: int, final_zero: bool = True) -> Tensor:
    """A ``steps``-step descending schedule read off the ascending ``sigma_table`` ``[T]`` at
    evenly spaced positions from its top (like ComfyUI's ``simple`` scheduler), float32
    ``[steps + 1]`` ending in 0 (or ``[steps]`` without the 0 when ``final_zero`` is False)."""
    table = torch.as_tensor(sigma_table, dtype=torch.float32).flatten()
    n = table.numel()
    stride = n / float(steps)
    sig = [float(table[n - 1 - int(i * stride)]) for i in range(int(steps))]
    if final_zero:
        sig.append(0.0)
    return torch.tensor(sig, dtype=torch.float32)


def _check_sigmas(sigma_a, sigma_b) -> tuple[float, float]:
    sa, sb = float(sigma_a), float(sigma_b)
    if not (sa > 0 and sb > 0) or not (math.isfinite(sa) and math.isfinite(sb)):
        raise ValueError(f"sigma_a and sigma_b must be finite and > 0 (got {sa}, {sb})")
    if sb >= sa:
        raise ValueError(f"sigma_b ({sb}) must be below sigma_a ({sa})")
    return sa, sb


def _compute_dtype(t: Tensor) -> torch.dtype:
    """float32, or float64 for float64 inputs (never half precision for the arithmetic)."""
    return torch.promote_types(t.dtype, torch.float32) if t.is_floating_point() else torch.float32


def _repeat_batch(t: Optional[Tensor], times: int) -> Optional[Tensor]:
    if t is None or times == 1:
        return t
    return t.repeat((times,) + (1,) * (t.ndim - 1))


# --------------------------------------------------------------------------- Forward-Inversion

def forward_inversion(denoise: Denoiser, model_sampling, noise: Tensor, sigma_a, sigma_b,
                      cfg: float = 7.5, inversion_cfg: float = 1.0, latent: Optional[Tensor] = None,
                      max_denoise: bool = True) -> Tensor:
    """Forward-Inversion ``f_s`` on unit noise (paper Sec. 3.2, Thm 3.2; docs/algorithms.md section 1.1).

    ``x = noise_scaling(sigma_a, noise, latent)``; one DDIM step ``sigma_a -> sigma_b`` with the
    prediction at CFG ``cfg`` (w1), then one DDIM-inversion step ``sigma_b -> sigma_a`` with the
    prediction at CFG ``inversion_cfg`` (w2) evaluated at the start point; back to unit noise.
    Cost: ``calls(cfg) + calls(inversion_cfg)`` model evaluations (see :func:`nfe`).

    Args:
        denoise: ``denoise(x, sigma, cfg) -> x0`` (shape of ``x``).
        model_sampling: anything with ComfyUI's ``noise_scaling``.
        noise: unit noise ``[B, ...]``. Any batch works: the K perturbations of SmoothInit are
            passed stacked along dim 0.
        sigma_a, sigma_b: start level and the level one grid step below (model sigma units,
            ``0 < sigma_b < sigma_a``; see :func:`inversion_sigmas`).
        cfg, inversion_cfg: w1 and w2 (paper 7.5 and 1.0).
        latent: ``[B, ...]`` clean latent the noise is added to (None = zeros).
        max_denoise: ComfyUI's max_denoise flag for the start (True at sigma_max: EPS scaling
            ``sqrt(1 + sigma^2)``).
    Returns:
        unit noise ``[B, ...]`` with ``noise``'s dtype.
    Raises:
        ValueError: for non-positive/misordered sigmas.
    """
    sa, sb = _check_sigmas(sigma_a, sigma_b)
    cdt = _compute_dtype(noise)
    n = noise.to(cdt)
    lat = None if latent is None else latent.to(cdt)
    x = unit_to_x(model_sampling, n, sa, lat, max_denoise)
    y = ddim_step(x, denoise(x, sa, float(cfg)).to(cdt), sa, sb)
    z = ddim_step(y, denoise(y, sb, float(inversion_cfg)).to(cdt), sb, sa)
    return x_to_unit(model_sampling, z, sa, lat, max_denoise).to(noise.dtype)


# --------------------------------------------------------------------------- SmoothInit

def smoothinit(denoise: Denoiser, model_sampling, noise: Tensor, sigma_a, sigma_b, cfg: float = 7.5,
               inversion_cfg: float = 1.0, K: int = 30, sigma_sm: float = 0.025,
               noise_type: str = "uniform", generator: Optional[torch.Generator] = None,
               chunk_size: int = 1, latent: Optional[Tensor] = None, max_denoise: bool = True,
               on_oom: Optional[Callable[[int], None]] = None) -> Tensor:
    """SmoothInit (paper Sec. 3.3, Eq. 6): ``mean_{k=1..K} f_s(noise + sigma_sm * n_k)``
    (docs/algorithms.md section 1.2).

    The ``n_k`` are fresh perturbations (:func:`perturbation`) drawn from ``generator`` in order
    ``k = 0..K-1``, one tensor of ``noise.shape`` each, on the CPU (so the result does not depend
    on the device or on ``chunk_size``). The K evaluations are independent and run batched:
    ``chunk_size`` of them are stacked along dim 0 into one ``denoise`` call of batch
    ``chunk_size * B``. On ``torch.OutOfMemoryError`` the chunk is halved (``on_oom(new_chunk)``
    is called, e.g. to empty caches) and the same perturbations are retried; at chunk 1 the
    error propagates.

    Args: as :func:`forward_inversion`, plus
        K: number of perturbations (>= 1). sigma_sm: perturbation scale (>= 0).
        noise_type: one of :data:`NOISE_TYPES`. generator: CPU ``torch.Generator`` (None: seed 0).
        chunk_size: perturbations per model call (>= 1).
    Returns:
        unit noise ``[B, ...]``, dtype of ``noise``. Cost: :func:`nfe` ``(K, cfg, inversion_cfg)``
        model evaluations per sample.
    Raises:
        ValueError: bad K, sigma_sm, noise_type, chunk_size, non-finite noise or sigmas.
    """
    validate(K=K, sigma_sm=sigma_sm, noise_type=noise_type, chunk_size=chunk_size, noise=noise)
    _check_sigmas(sigma_a, sigma_b)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    K, chunk = int(K), max(1, min(int(chunk_size), int(K)))
    cdt = _compute_dtype(noise)
    base = noise.to(cdt)
    lat = None if latent is None else latent.to(cdt)
    acc = torch.zeros_like(base)
    pending: deque[Tensor] = deque()
    done = 0
    while done < K:
        need = min(chunk, K - done)
        while len(pending) < need:
            pending.append(perturbation(noise.shape, noise_type, g).to(device=base.device, dtype=cdt))
        inputs = torch.cat([base + float(sigma_sm) * pending[i] for i in range(need)], dim=0)
        try:
            out = forward_inversion(denoise, model_sampling, inputs, sigma_a, sigma_b, cfg, inversion_cfg,
                                    _repeat_batch(lat, need), max_denoise)
        except _OOM:
            if need == 1:
                raise
            del inputs
            chunk = max(1, need // 2)
            if on_oom is not None:
                on_oom(chunk)
            continue
        acc += out.to(cdt).reshape((need,) + tuple(base.shape)).sum(0)
        for _ in range(need):
            pending.popleft()
        done += need
    return (acc / K).to(noise.dtype)


# --------------------------------------------------------------------------- Fast-SmoothInit

def fast_smoothinit(denoise: Denoiser, model_sampling, noise: Tensor, sigma_a, sigma_b, cfg: float = 7.5,
                    inversion_cfg: float = 1.0, K: int = 10, sigma_sm: float = 0.05, gamma_m: float = 0.05,
                    gamma_decay: float = 0.05, generator: Optional[torch.Generator] = None,
                    latent: Optional[Tensor] = None, max_denoise: bool = True,
                    noise_type: str = "gaussian") -> Tensor:
    """Fast-SmoothInit, the released code's rule (docs/algorithms.md section 1.3; paper Sec. 3.4), j = 0..K-1::

        tmp_{-1} = tmp_0 = noise
        tmp_j = (1 - gamma_m) r_{j-1} + gamma_m (1 - gamma_m) tmp_{j-1} + gamma_m^2 tmp_{j-2}   (j >= 1)
        r_j   = f_s(tmp_j + sigma_sm * (1 - gamma_decay)^(j+1) * n_j)
        result = r_{K-1}                                   (the last iterate, not a mean)

    ``n_j`` are fresh gaussian perturbations drawn from ``generator`` in order j (one tensor of
    ``noise.shape`` each, CPU). ``gamma_m = 0`` feeds each output back as the next input;
    ``gamma_m -> 1`` stays near ``noise``. Sequential by definition (K ``f_s`` calls).

    Args: as :func:`forward_inversion`, plus K (>= 1), sigma_sm (>= 0), gamma_m in [0, 1],
        gamma_decay in [0, 1), generator (None: seed 0), noise_type (default gaussian, the code's).
    Returns: unit noise ``[B, ...]``, dtype of ``noise``; cost :func:`nfe` ``(K, cfg, inversion_cfg)``.
    Raises: ValueError for bad parameters or non-finite noise.
    """
    validate(K=K, sigma_sm=sigma_sm, noise_type=noise_type, gamma_m=gamma_m,
             gamma_decay=gamma_decay, noise=noise)
    _check_sigmas(sigma_a, sigma_b)
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    gm, gd = float(gamma_m), float(gamma_decay)
    cdt = _compute_dtype(noise)
    eps = noise.to(cdt)
    lat = None if latent is None else latent.to(cdt)
    tmp_prev2 = tmp_prev = eps  # tmp_{j-2}, tmp_{j-1}
    tmp = eps                   # tmp_j
    r = None
    for j in range(int(K)):
        if j >= 1:
            tmp = (1.0 - gm) * r + gm * (1.0 - gm) * tmp_prev + gm * gm * tmp_prev2
            tmp_prev2, tmp_prev = tmp_prev, tmp
        n_j = perturbation(noise.shape, noise_type, g).to(device=eps.device, dtype=cdt)
        r = forward_inversion(denoise, model_sampling, tmp + float(sigma_sm) * (1.0 - gd) ** (j + 1) * n_j,
                              sigma_a, sigma_b, cfg, inversion_cfg, lat, max_denoise).to(cdt)
    return r.to(noise.dtype)


# --------------------------------------------------------------------------- dispatcher

def resolve(preset: str, K: int = 30, sigma_sm: float = 0.025, noise_type: str = "uniform",
            gamma_m: float = 0.05, gamma_decay: float = 0.05, method: str | None = None) -> Preset:
    """The settings to run: ``PRESETS[preset]``, or for ``preset == "custom"`` the given values
    with ``method`` (one of :data:`METHODS`). Raises ValueError for an unknown preset/method."""
    if preset != CUSTOM:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose one of "
                             f"{', '.join(list(PRESETS) + [CUSTOM])}.")
        return PRESETS[preset]
    if method not in METHODS:
        raise ValueError(f"a custom preset needs method in {', '.join(METHODS)} (got {method!r}).")
    if method == "forward_inversion":
        return Preset(method, 1)
    return Preset(method, int(K), float(sigma_sm), noise_type, float(gamma_m), float(gamma_decay))


def optimise_noise(settings: Preset, denoise: Denoiser, model_sampling, noise: Tensor, sigma_a, sigma_b,
                   cfg: float = 7.5, inversion_cfg: float = 1.0, generator: Optional[torch.Generator] = None,
                   chunk_size: int = 1, latent: Optional[Tensor] = None, max_denoise: bool = True,
                   on_oom: Optional[Callable[[int], None]] = None) -> Tensor:
    """Run the initialiser ``settings`` (a :class:`Preset`, see :func:`resolve`) on unit ``noise``
    ``[B, ...]``; returns unit noise of the same shape/dtype. Cost :func:`nfe` ``(settings.K, ...)``."""
    if settings.method == "forward_inversion":
        validate(noise=noise)
        return forward_inversion(denoise, model_sampling, noise, sigma_a, sigma_b, cfg, inversion_cfg,
                                 latent, max_denoise)
    if settings.method == "smoothinit":
        return smoothinit(denoise, model_sampling, noise, sigma_a, sigma_b, cfg, inversion_cfg, settings.K,
                          settings.sigma_sm, settings.noise_type, generator, chunk_size, latent, max_denoise,
                          on_oom)
    if settings.method == "fast_smoothinit":
        return fast_smoothinit(denoise, model_sampling, noise, sigma_a, sigma_b, cfg, inversion_cfg, settings.K,
                               settings.sigma_sm, settings.gamma_m, settings.gamma_decay, generator, latent,
                               max_denoise, settings.noise_type)
    raise ValueError(f"unknown method {settings.method!r}")
