"""NI-VSDS: noise-invariant video score distillation sampling (I4VGen's static-video animation).

Pure torch (no ``comfy`` import). Source: "I4VGen: Image as Free Stepping Stone for Text-to-Video
Generation", Sec. 3.2 and Algorithm 1, with the numbers the paper text lost taken from the official
code as recorded in docs/algorithms.md section 2 (which overrides the paper).

Everything is in ComfyUI's sigma space (docs/algorithms.md section 0), so one function serves EPS,
v-prediction, EDM and flow (CONST) video models: the model_sampling's ``noise_scaling`` builds the
noisy latent, :func:`~.sigma_space.eps_from_x0` turns the CFG denoised prediction into the predicted
unit noise, and :func:`~.sigma_space.one_minus_alphabar` gives the SDS weight.

The update is the plain denoiser residual (no model Jacobian)::

    eps_hat - eps* = a(sigma) / b(sigma) * (z - x0_hat)

so each iteration moves the static latent ``z`` toward the video model's denoised prediction of its
noisy version: the score-distillation gradient of the model's likelihood of ``z`` under the prompt.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Union

import torch
from torch import Tensor

from .sigma_space import (Denoiser, ModelSamplingLike, eps_from_x0, one_minus_alphabar, scaling_coefficients,
                          unit_to_x)

#: AnimateDiff's NI-VSDS step sizes in the official code (10, 10, 10, then 1 for every later update).
DEFAULT_STEP_SIZES: tuple[float, ...] = (10.0, 10.0, 10.0, 1.0)
#: Fraction of the sampling schedule spent on NI-VSDS (official AnimateDiff and LaVie setting).
DEFAULT_P: float = 0.6
#: Largest allowed update gain (see :func:`update_gains`): above 2 an update leaves the latent farther
#: from the model's denoised prediction than it was, and the iteration diverges.
MAX_GAIN: float = 2.0


class DivergingStepSizeError(ValueError):
    """A step size whose NI-VSDS update gain exceeds :data:`MAX_GAIN` (see :func:`update_gains`): the latent
    would diverge. Raised by :func:`ni_vsds` before any model call."""


def parse_step_sizes(text: Union[str, Sequence[float]], name: str = "step_sizes") -> tuple[float, ...]:
    """Parse a comma-separated list of NI-VSDS step sizes, e.g. ``"10,10,10,1"``.

    Spaces and semicolons are accepted as separators too; a trailing comma is ignored. A sequence of
    numbers is accepted as is (validated the same way).

    Returns:
        The step sizes ``eta_1, eta_2, ...`` as floats (the last value is repeated for every later
        update, see :func:`step_size_at`).
    Raises:
        ValueError: naming ``name`` when the list is empty, an entry is not a number, or an entry
            is negative, NaN or infinite.
    """
    if isinstance(text, str):
        parts = [p for p in text.replace(";", ",").replace(" ", ",").split(",") if p.strip() != ""]
        values = []
        for p in parts:
            try:
                values.append(float(p))
            except ValueError:
                raise ValueError(f"{name}: '{p.strip()}' in '{text}' is not a number; give comma-separated "
                                 f"step sizes such as '10,10,10,1'") from None
    else:
        try:
            values = [float(v) for v in text]
        except (TypeError, ValueError):
            raise ValueError(f"{name}: {text!r} is not a list of numbers; give step sizes such as "
                             f"'10,10,10,1'") from None
    if not values:
        raise ValueError(f"{name}: no step size given; use e.g. '10,10,10,1' (AnimateDiff) or '1' (LaVie)")
    for v in values:
        if v != v or v in (float("inf"), float("-inf")):
            raise ValueError(f"{name}: step size {v} is not finite")
        if v < 0:
            raise ValueError(f"{name}: step size {v} is negative; step sizes must be >= 0")
    return tuple(values)


def step_size_at(step_sizes: Sequence[float], i: int) -> float:
    """Step size of update ``i`` (0-based): ``step_sizes[i]``, the last value repeating after the end."""
    return float(step_sizes[min(i, len(step_sizes) - 1)])


def num_updates(num_sigmas: int, p: float) -> int:
    """Number of NI-VSDS updates for a schedule of ``num_sigmas = N + 1`` sigmas (N steps).

    ``tau = int(N * p) + 1`` (docs/algorithms.md section 2.3), capped at ``N``: for every ``p < 1`` the cap
    never binds; at ``p = 1`` the official code's ``timesteps[:tau]`` slice also stops at the ``N``
    steps' starting noise levels (the terminal sigma, usually 0, is never used).

    Raises:
        ValueError: if ``p`` is outside ``(0, 1]`` or the schedule has fewer than 2 sigmas.
    """
    p = float(p)
    if not (0.0 < p <= 1.0):
        raise ValueError(f"p: {p} is outside (0, 1]; it is the fraction of the sampling schedule spent on "
                         f"NI-VSDS (default {DEFAULT_P})")
    if int(num_sigmas) < 2:
        raise ValueError(f"sigmas: the schedule has {int(num_sigmas)} sigma(s); NI-VSDS needs at least 2 "
                         f"(one sampling step); use more steps or a longer SIGMAS")
    n = int(num_sigmas) - 1
    return min(int(n * p) + 1, n)


def update_gains(model_sampling: ModelSamplingLike, sigmas: Tensor, step_sizes: Sequence[float],
                 tau: int) -> list[float]:
    """Gain of each NI-VSDS update: the fraction of the way to the denoised prediction it moves ``z``.

    With ``x = a z + b eps*`` and ``eps_hat = (x - a x0_hat) / b`` the update is
    ``z <- z - eta (1 - alphabar) (eps_hat - eps*) = z + g (x0_hat - z)`` with
    ``g = eta (1 - alphabar(sigma)) a(sigma) / b(sigma) = eta a b / (a^2 + b^2)`` (at most ``eta / 2``,
    reached where ``a = b``: sigma 1 on EPS models, 0.5 on flow models). ``g <= 1`` moves part of the way,
    ``1 < g < 2`` overshoots but still contracts, ``g > 2`` (:data:`MAX_GAIN`) leaves ``z`` farther from
    ``x0_hat`` than it started and repeated updates diverge. The official 10, 10, 10, 1 are tuned for a
    25-step DDIM schedule, whose first sigmas are high (SD1.5: gains 0.85, 1.06, 1.30, 0.16); on a
    10-step schedule the third update has gain 2.7 (measured on the toy world: docs/algorithms.md section 2.3,
    README *Evidence*).

    Args:
        model_sampling: the model's model_sampling (gives ``a``, ``b`` by its ``noise_scaling``).
        sigmas: the descending schedule, ``[N + 1]``, in the model's sigma units.
        step_sizes: ``eta_1, eta_2, ...`` (the last repeats).
        tau: number of updates (:func:`num_updates`).
    Returns:
        ``tau`` floats, the gain of each update.
    """
    sig = torch.as_tensor(sigmas).detach().flatten().to(device="cpu", dtype=torch.float64)
    like = torch.zeros((), dtype=torch.float32)
    gains = []
    for i in range(int(tau)):
        a, b = scaling_coefficients(model_sampling, float(sig[i]), like)
        a, b = float(a), float(b)
        gains.append(step_size_at(step_sizes, i) * a * b / (a * a + b * b))
    return gains


@dataclass(frozen=True)
class Settings:
    """NI-VSDS's parameters (I4VGen Algorithm 1 with the official defaults): the sampling ``cfg``, the
    fraction ``p`` of the schedule and the step sizes ``eta_1, eta_2, ...`` (the last repeats). Build it
    from a node's inputs with :meth:`from_inputs` (which checks them)."""
    cfg: float = 7.5
    p: float = DEFAULT_P
    step_sizes: tuple[float, ...] = DEFAULT_STEP_SIZES

    @classmethod
    def from_inputs(cls, cfg, p, step_sizes: Union[str, Sequence[float]]) -> "Settings":
        """Checked settings. Raises ValueError naming the input: ``step_sizes`` that are not non-negative
        finite numbers (:func:`parse_step_sizes`), ``p`` outside (0, 1], a non-finite ``cfg``."""
        cfg, p = float(cfg), float(p)
        if not (0.0 < p <= 1.0):
            raise ValueError(f"p: {p} is outside (0, 1]; it is the fraction of the sampling schedule spent on "
                             f"NI-VSDS (default {DEFAULT_P})")
        if cfg != cfg or cfg in (float("inf"), float("-inf")):
            raise ValueError(f"cfg: {cfg} is not finite")
        return cls(cfg, p, parse_step_sizes(step_sizes, name="step_sizes"))


def ni_vsds(denoise: Denoiser, model_sampling: ModelSamplingLike, z: Tensor, eps_star: Tensor, sigmas: Tensor,
            cfg: float, p: float = DEFAULT_P, step_sizes: Union[str, Sequence[float]] = DEFAULT_STEP_SIZES,
            callback: Optional[Callable[[dict], None]] = None) -> Tensor:
    """Animate a static video latent with NI-VSDS (docs/algorithms.md section 2.3).

    For the first ``tau = int(N * p) + 1`` noise levels of the descending schedule (``N`` =
    ``len(sigmas) - 1`` steps; see :func:`num_updates`), with one fixed unit noise ``eps*``::

        x       = noise_scaling(sigma, eps*, z)          # the same eps* every iteration
        x0_hat  = denoise(x, sigma, cfg)                 # the video model with the sampling CFG
        eps_hat = (x - a(sigma) * x0_hat) / b(sigma)     # sigma_space.eps_from_x0
        z       = z - eta_i * (1 - alphabar(sigma)) * (eps_hat - eps*)

    ``eta_i`` is ``step_sizes[i]`` (the last value repeats); no normalisation, no model Jacobian.

    The noisy latent is ``noise_scaling(sigma, eps*, z, max_denoise=False)``, i.e. ``z + sigma * eps*``
    for EPS/V/EDM models and ``(1 - sigma) * z + sigma * eps*`` for flow models, also at ``sigma_max``.
    This is the choice that matches the official code: its ``scheduler.add_noise(z, eps*, t)`` is
    ``sqrt(alphabar) z + sqrt(1 - alphabar) eps*``, which in ComfyUI's VE space is exactly
    ``z + sigma * eps*`` at every t. ComfyUI's ``max_denoise`` scaling ``eps * sqrt(1 + sigma^2)`` is its
    convention for a pure-noise start (no signal), not the forward process of a given latent.

    Args:
        denoise: ``denoise(x, sigma, cfg) -> x0_hat``, ``x`` of ``z``'s shape, sigma in the model's
            units (see :mod:`.sigma_space`).
        model_sampling: the model's model_sampling (ComfyUI's object or an analytic twin).
        z: the static video latent ``[B, C, ...]`` in the model's (processed) latent space:
            frames-as-batch ``[F, C, H, W]`` or a native video latent ``[B, C, T, H, W]``.
        eps_star: unit Gaussian noise ``eps*`` of ``z``'s shape, drawn once by the caller (per frame).
        sigmas: ``[N + 1]`` descending sampling schedule in the model's sigma units (last usually 0).
        cfg: classifier-free guidance scale of the denoiser calls (the sampling CFG).
        p: fraction of the schedule in ``(0, 1]``; default 0.6.
        step_sizes: ``eta_1, eta_2, ...`` (floats >= 0) or a string for :func:`parse_step_sizes`;
            default ``10, 10, 10, 1`` (AnimateDiff). LaVie: ``1``.
        callback: called after every update with a dict ``{"i", "tau", "sigma", "eta", "weight",
            "x0", "z"}`` (``z`` is the updated latent).
    Returns:
        The animated latent, ``z``'s shape, dtype and device (a new tensor; inputs are not modified).
    Raises:
        ValueError: ``p`` outside ``(0, 1]``; unparsable or negative step sizes; fewer than 2 sigmas;
            a sigma ``<= 0`` among the first ``tau``, or a schedule that is not descending;
            ``eps_star`` of another shape than ``z``.
        DivergingStepSizeError (a ValueError): a step size whose update gain (see :func:`update_gains`)
            exceeds :data:`MAX_GAIN`, i.e. an update that would make the latent diverge. The official step
            sizes at p 0.6 on SD1.5 are refused at 2-10 ``ddim_uniform`` steps (10 steps: gain 2.74) and at 3-10
            ``normal`` steps (10: 2.07); from 11 steps on the highest gain is 1.80 / 1.89 or less.
    """
    sig = torch.as_tensor(sigmas).detach().flatten().to(device="cpu", dtype=torch.float64)
    tau = num_updates(sig.numel(), p)
    etas = parse_step_sizes(step_sizes)
    if tuple(eps_star.shape) != tuple(z.shape):
        raise ValueError(f"eps_star: shape {tuple(eps_star.shape)} differs from the latent's {tuple(z.shape)}")
    if bool((sig[1:] > sig[:-1]).any()):
        raise ValueError(f"sigmas: the schedule must be descending (high to low noise), got "
                         f"{[round(float(s), 4) for s in sig]}")
    if bool((sig[:tau] <= 0).any()):
        raise ValueError(f"sigmas: the first {tau} sigmas must be > 0 for NI-VSDS, got "
                         f"{[round(float(s), 4) for s in sig[:tau]]}")
    gains = update_gains(model_sampling, sig, etas, tau)
    worst = max(range(tau), key=lambda i: gains[i])
    if gains[worst] > MAX_GAIN:
        raise DivergingStepSizeError(
            f"step_sizes: update {worst + 1} of {tau} (eta {step_size_at(etas, worst):g} at sigma "
            f"{float(sig[worst]):.4g}) has gain {gains[worst]:.2f} > {MAX_GAIN:g}: it moves the latent "
            f"{gains[worst]:.2f} times the way to the model's denoised prediction, overshooting it, and the "
            f"latent diverges (gains of all updates: {[round(g, 2) for g in gains]}). The official "
            f"'10,10,10,1' assume a 25-step DDIM schedule, whose first sigmas are high. Fix: give NI-VSDS its "
            f"own longer schedule (steps 25; it need not match the sampler's) or smaller step sizes, "
            f"e.g. '1' (LaVie)")

    z = z.clone()
    eps_star = eps_star.to(device=z.device, dtype=z.dtype)
    for i in range(tau):
        sigma = float(sig[i])
        eta = step_size_at(etas, i)
        x = unit_to_x(model_sampling, eps_star, sigma, latent=z, max_denoise=False)
        x0 = denoise(x, sigma, cfg)
        eps_hat = eps_from_x0(model_sampling, x, x0.to(x.dtype), sigma)
        weight = one_minus_alphabar(model_sampling, sigma, z)
        z = z - (eta * weight).to(device=z.device, dtype=z.dtype) * (eps_hat - eps_star)
        if callback is not None:
            callback({"i": i, "tau": tau, "sigma": sigma, "eta": eta, "weight": float(weight), "x0": x0, "z": z})
    return z
