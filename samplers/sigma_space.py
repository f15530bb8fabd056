"""ComfyUI's sampling space: one convention for EPS, v-prediction, EDM and flow models.

Pure torch (no ``comfy`` import). Source: docs/algorithms.md section 0.

Every function works on ComfyUI's sampling variable ``x`` and noise level ``sigma`` in the
model's own sigma units (VE sigmas for EPS/V/EDM models, e.g. SD1.5 sigma_max = 14.6146; flow
sigmas in [0, 1] for CONST models such as Wan, Hunyuan, LTXV, SD3, Flux), never on timestep
indices.

A *model_sampling* here is anything with ComfyUI's ``noise_scaling(sigma, noise, latent_image,
max_denoise=False)`` method (ComfyUI's ``model_sampling`` objects, or the analytic spaces in
:mod:`.gaussian_mixture`); it is linear in ``noise`` and ``latent_image``:
``noise_scaling(s, n, x0) = b(s) * n + a(s) * x0`` with

========================  ==========================  ===============================
model_sampling            a(sigma), b(sigma)          x_T of a pure-noise start
========================  ==========================  ===============================
EPS / V_PREDICTION / EDM  1, sigma                    eps * sqrt(1 + sigma_max^2)
CONST (flow)              1 - sigma, sigma            eps at sigma = 1
========================  ==========================  ===============================

A *denoiser* is a callable ``denoise(x, sigma, cfg) -> x0_hat``: ComfyUI's denoised prediction
with classifier-free guidance ``x0_uncond + cfg * (x0_cond - x0_uncond)`` (cfg == 1: the
conditional pass alone).
"""
from __future__ import annotations

from typing import Callable, Protocol, Union

import torch
from torch import Tensor

SigmaLike = Union[Tensor, float]
Denoiser = Callable[[Tensor, SigmaLike, float], Tensor]


class ModelSamplingLike(Protocol):
    """What the core needs of ComfyUI's ``model_sampling`` object."""

    def noise_scaling(self, sigma: Tensor, noise: Tensor, latent_image: Tensor, max_denoise: bool = False) -> Tensor:
        ...


def _sigma(sigma: SigmaLike, like: Tensor) -> Tensor:
    return torch.as_tensor(sigma, dtype=torch.float32, device=like.device).reshape(())


def ddim_step(x: Tensor, x0: Tensor, sigma: SigmaLike, sigma_next: SigmaLike) -> Tensor:
    """One deterministic DDIM step (eta = 0) from ``sigma`` to ``sigma_next``, in either direction.

    ``x_next = x + (sigma_next - sigma) * (x - x0) / sigma`` (docs/algorithms.md section 0.3). This is
    ComfyUI's Euler step: exactly DDIM for EPS models in this space and exactly the rectified-flow
    Euler step for CONST models. With ``sigma_next > sigma`` it is one DDIM-inversion step (the
    model evaluated at the starting point, as diffusers' ``DDIMInverseScheduler``).

    Args:
        x: ``[B, ...]`` sample at ``sigma``.
        x0: ``[B, ...]`` denoised prediction ``denoise(x, sigma, cfg)``.
        sigma, sigma_next: noise levels in the model's sigma units; ``sigma > 0``.
    Returns:
        ``[B, ...]`` sample at ``sigma_next``, dtype of ``x``.
    Raises:
        ValueError: if ``sigma <= 0`` (the step divides by it).
    """
    s = float(sigma)
    if s <= 0:
        raise ValueError(f"ddim_step: sigma must be > 0, got {s}")
    return x + ((float(sigma_next) - s) / s) * (x - x0)


def scaling_coefficients(model_sampling: ModelSamplingLike, sigma: SigmaLike, like: Tensor,
                         max_denoise: bool = False) -> tuple[Tensor, Tensor]:
    """``(a, b)`` with ``noise_scaling(sigma, n, x0) = a * x0 + b * n`` (0-dim float32 tensors).

    Read off the model's own ``noise_scaling`` (it is linear), so any ComfyUI model_sampling works.
    """
    s = _sigma(sigma, like)
    one = torch.ones((1,), dtype=torch.float32, device=like.device)
    zero = torch.zeros((1,), dtype=torch.float32, device=like.device)
    b = model_sampling.noise_scaling(s, one, zero.clone(), max_denoise).reshape(())
    a = model_sampling.noise_scaling(s, zero.clone(), one, max_denoise).reshape(())
    return a.float(), b.float()


def unit_to_x(model_sampling: ModelSamplingLike, noise: Tensor, sigma: SigmaLike,
              latent: Tensor | None = None, max_denoise: bool = False) -> Tensor:
    """Unit noise ``[B, ...]`` (N(0, I)) -> sample ``x`` at ``sigma`` around ``latent`` (default zeros).

    ``x = a(sigma) * latent + b(sigma) * noise`` via the model's ``noise_scaling`` (with
    ``max_denoise`` ComfyUI's EPS scaling uses ``sqrt(1 + sigma^2)``). Returns the dtype of ``noise``.
    """
    a, b = scaling_coefficients(model_sampling, sigma, noise, max_denoise)
    x = noise * b.to(noise.dtype)
    if latent is not None:
        x = x + a.to(noise.dtype) * latent.to(noise.dtype)
    return x


def x_to_unit(model_sampling: ModelSamplingLike, x: Tensor, sigma: SigmaLike,
              latent: Tensor | None = None, max_denoise: bool = False) -> Tensor:
    """Inverse of :func:`unit_to_x`: ``(x - a * latent) / b``. Shapes ``[B, ...]``."""
    a, b = scaling_coefficients(model_sampling, sigma, x, max_denoise)
    if latent is not None:
        x = x - a.to(x.dtype) * latent.to(x.dtype)
    return x / b.to(x.dtype)


def eps_from_x0(model_sampling: ModelSamplingLike, x: Tensor, x0: Tensor, sigma: SigmaLike) -> Tensor:
    """Predicted unit noise ``(x - a(sigma) * x0) / b(sigma)`` (docs/algorithms.md section 0.1)."""
    return x_to_unit(model_sampling, x, sigma, latent=x0, max_denoise=False)


def one_minus_alphabar(model_sampling: ModelSamplingLike, sigma: SigmaLike, like: Tensor | None = None) -> Tensor:
    """``1 - alphabar(sigma) = b^2 / (a^2 + b^2)`` (EPS: ``sigma^2 / (1 + sigma^2)``); 0-dim float32."""
    like = like if like is not None else torch.zeros(())
    a, b = scaling_coefficients(model_sampling, sigma, like)
    return b * b / (a * a + b * b)


def grid_sigma_below(sigma_table: Tensor, sigma: SigmaLike, grid_steps: int) -> Tensor:
    """The noise level one step of a ``grid_steps``-step schedule below ``sigma``.

    ``sigma_table`` is the model's ascending table of training sigmas (ComfyUI's
    ``model_sampling.sigmas``, 1000 entries for SD and for discrete flow models). ``sigma``'s
    fractional position in it is found by interpolation (in log sigma), moved down by
    ``len(sigma_table) / grid_steps`` positions, and read back. At ``sigma_max`` with 1000 entries
    and ``grid_steps = 50`` this is table index 999 -> 979, the official SmoothInit code's
    t 999 -> 979 (docs/algorithms.md section 1.1).

    Args:
        sigma_table: ``[T]`` ascending, positive.
        sigma: a noise level in the same units.
        grid_steps: >= 2.
    Returns:
        0-dim float32 tensor, strictly below ``sigma`` (clamped at the table's smallest entry).
    Raises:
        ValueError: if ``grid_steps < 2`` or the table is not 1-D with at least 2 entries.
    """
    if int(grid_steps) < 2:
        raise ValueError(f"grid_steps must be >= 2, got {grid_steps}")
    table = torch.as_tensor(sigma_table, dtype=torch.float64).flatten().cpu()
    if table.numel() < 2:
        raise ValueError("sigma_table needs at least 2 entries")
    log_t = table.clamp_min(1e-12).log()
    log_s = torch.tensor(float(sigma), dtype=torch.float64).clamp_min(1e-12).log()
    n = table.numel()
    idx = torch.arange(n, dtype=torch.float64)
    # fractional index of sigma in the ascending table (clamped to its ends)
    pos = float(_interp(log_s, log_t, idx))
    pos_b = max(pos - n / float(grid_steps), 0.0)
    sig_b = _interp(torch.tensor(pos_b, dtype=torch.float64), idx, log_t).exp()
    return sig_b.float()


def _interp(x: Tensor, xp: Tensor, fp: Tensor) -> Tensor:
    """1-D linear interpolation of ``fp(xp)`` at scalar ``x`` (``xp`` ascending), clamped."""
    x = x.clamp(xp[0], xp[-1])
    i = int(torch.searchsorted(xp, x.reshape(1), right=True).clamp(1, xp.numel() - 1))
    x_lo, x_hi, f_lo, f_hi = xp[i - 1], xp[i], fp[i - 1], fp[i]
    w = (x - x_lo) / (x_hi - x_lo) if float(x_hi - x_lo) != 0 else torch.zeros((), dtype=x.dtype)
    return f_lo + w * (f_hi - f_lo)
