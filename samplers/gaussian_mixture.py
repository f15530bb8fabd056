"""The analytic world: a Gaussian-mixture data distribution with an exact denoiser.

Pure torch. Used by the tests and benchmarks to check that each algorithm does what its paper
claims (not as a quality claim about real models).

Data: class ``c`` ("the prompt") is one isotropic Gaussian ``N(mu_c, s_c^2 I)`` in ``D`` dims; the
unconditional distribution is the mixture over classes with weights ``w_c``. For a model_sampling
with ``x = a(sigma) * x0 + b(sigma) * eps`` (EPS: a = 1, b = sigma; flow/CONST: a = 1 - sigma,
b = sigma; see :mod:`.sigma_space`) the exact posterior mean is closed form::

    x | c ~ N(a mu_c, (a^2 s_c^2 + b^2) I)
    E[x0 | x, c] = mu_c + a s_c^2 / (a^2 s_c^2 + b^2) * (x - a mu_c)
    E[x0 | x]    = sum_c r_c(x) E[x0 | x, c],  r_c ∝ w_c N(x; a mu_c, (a^2 s_c^2 + b^2) I)

and the CFG denoiser is ``x0_uncond + cfg * (x0_cond - x0_uncond)`` exactly as ComfyUI's.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .sigma_space import scaling_coefficients


def sd_discrete_sigmas(n: int = 1000, linear_start: float = 0.00085, linear_end: float = 0.012) -> Tensor:
    """SD1.x's 1000 training sigmas (``scaled_linear`` betas), ascending, float32 ``[n]``."""
    betas = torch.linspace(linear_start ** 0.5, linear_end ** 0.5, n, dtype=torch.float64) ** 2
    alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
    return (((1 - alphas_cumprod) / alphas_cumprod) ** 0.5).float()


class EpsModelSampling:
    """Pure-torch twin of ComfyUI's EPS discrete model_sampling (``x = x0 + sigma * eps``)."""

    def __init__(self, sigmas: Tensor | None = None):
        self.sigmas = sd_discrete_sigmas() if sigmas is None else sigmas.float()
        self.sigma_min = self.sigmas[0]
        self.sigma_max = self.sigmas[-1]

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = torch.as_tensor(sigma, dtype=noise.dtype, device=noise.device)
        sigma = sigma.reshape(()) if sigma.numel() == 1 else sigma.reshape(sigma.shape[:1] + (1,) * (noise.ndim - 1))
        scale = torch.sqrt(1.0 + sigma ** 2) if max_denoise else sigma
        return noise * scale + latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent


class FlowModelSampling:
    """Pure-torch twin of ComfyUI's CONST discrete-flow model_sampling (``x = (1-s) x0 + s eps``)."""

    def __init__(self, shift: float = 1.0, timesteps: int = 1000):
        self.shift = float(shift)
        t = torch.arange(1, timesteps + 1, dtype=torch.float64) / timesteps
        self.sigmas = (self.shift * t / (1 + (self.shift - 1) * t)).float()
        self.sigma_min = self.sigmas[0]
        self.sigma_max = self.sigmas[-1]

    def noise_scaling(self, sigma, noise, latent_image, max_denoise=False):
        sigma = torch.as_tensor(sigma, dtype=noise.dtype, device=noise.device)
        sigma = sigma.reshape(()) if sigma.numel() == 1 else sigma.reshape(sigma.shape[:1] + (1,) * (noise.ndim - 1))
        return sigma * noise + (1.0 - sigma) * latent_image

    def inverse_noise_scaling(self, sigma, latent):
        return latent / (1.0 - sigma)


class GaussianMixtureWorld:
    """Classes ``c = 0..C-1`` with means ``mu [C, D]``, stds ``s [C]`` and weights ``w [C]``.

    Samples are flat ``[B, D]`` (other shapes ``[B, ...]`` are flattened to ``D``).
    """

    def __init__(self, means: Tensor, stds: Tensor | float = 0.5, weights: Tensor | None = None):
        self.means = means.double()
        C = self.means.shape[0]
        self.stds = torch.as_tensor(stds, dtype=torch.float64).expand(C).clone()
        self.weights = (torch.full((C,), 1.0 / C, dtype=torch.float64) if weights is None
                        else torch.as_tensor(weights, dtype=torch.float64) / float(torch.as_tensor(weights).sum()))
        self.nfe = 0  # model calls counted like ComfyUI: 2 per CFG call, 1 when cfg == 1

    @classmethod
    def default(cls, dim: int = 16, classes: int = 4, spread: float = 1.0, std: float = 0.5, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        means = torch.randn(classes, dim, generator=g, dtype=torch.float64) * spread
        return cls(means, std)

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample_x0(self, labels: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples ``[B, D]`` (float64) of the classes in ``labels [B]``."""
        z = torch.randn(labels.shape[0], self.dim, generator=generator, dtype=torch.float64)
        return self.means[labels] + self.stds[labels, None] * z

    def _posterior(self, x: Tensor, a: float, b: float) -> tuple[Tensor, Tensor]:
        """Per-class log-likelihood ``[B, C]`` of x and per-class posterior mean ``[B, C, D]``."""
        var = a * a * self.stds ** 2 + b * b                      # [C]
        diff = x[:, None, :] - a * self.means[None]               # [B, C, D]
        loglik = -0.5 * (diff ** 2).sum(-1) / var - 0.5 * self.dim * torch.log(2 * math.pi * var)
        gain = a * self.stds ** 2 / var                           # [C]
        post = self.means[None] + gain[None, :, None] * diff      # [B, C, D]
        return loglik, post

    def x0_cond(self, x: Tensor, sigma, labels: Tensor | None, model_sampling) -> Tensor:
        """Exact ``E[x0 | x_sigma, c]`` (``labels=None``: unconditional). ``x [B, ...]``."""
        shape, dtype = x.shape, x.dtype
        xf = x.reshape(shape[0], -1).double()
        a, b = scaling_coefficients(model_sampling, sigma, xf)
        loglik, post = self._posterior(xf, float(a), float(b))
        if labels is None:
            r = torch.softmax(loglik + self.weights.log()[None], dim=1)
            out = (r[:, :, None] * post).sum(1)
        else:
            labels = _labels_to_batch(labels, shape[0])
            out = post[torch.arange(shape[0]), labels]
        return out.to(dtype).reshape(shape)

    def denoiser(self, model_sampling, labels: Tensor):
        """``denoise(x, sigma, cfg) -> x0`` with CFG, counting model calls in ``self.nfe``."""
        def denoise(x: Tensor, sigma, cfg: float) -> Tensor:
            cond = self.x0_cond(x, sigma, labels, model_sampling)
            self.nfe += 1
            if float(cfg) == 1.0:
                return cond
            uncond = self.x0_cond(x, sigma, None, model_sampling)
            self.nfe += 1
            return uncond + float(cfg) * (cond - uncond)
        return denoise

    def classify(self, x0: Tensor) -> Tensor:
        """Most likely class of clean samples ``[B, ...]`` -> ``[B]``."""
        loglik, _ = self._posterior(x0.reshape(x0.shape[0], -1).double(), 1.0, 0.0)
        return (loglik + self.weights.log()[None]).argmax(1)

    def frechet_distance(self, samples: Tensor, label: int) -> float:
        """Frechet distance between the Gaussian fit of ``samples [N, D]`` and class ``label``."""
        x = samples.reshape(samples.shape[0], -1).double()
        mu = x.mean(0)
        cov = torch.cov(x.T)
        mu_t = self.means[label]
        var_t = float(self.stds[label]) ** 2
        # true covariance is var_t * I, so sqrt(cov @ cov_t) = sqrt(var_t) * sqrtm(cov)
        evals = torch.linalg.eigvalsh(cov).clamp_min(0)
        tr_sqrt = math.sqrt(var_t) * float(evals.sqrt().sum())
        return float(((mu - mu_t) ** 2).sum() + torch.trace(cov) + var_t * x.shape[1] - 2 * tr_sqrt)


def _labels_to_batch(labels: Tensor, batch: int) -> Tensor:
    """Labels ``[L]`` for a batch of ``batch`` samples: repeated when ``batch`` is a multiple of
    ``L`` (as ComfyUI repeats conds to the batch; SmoothInit stacks K perturbations along dim 0)."""
    n = labels.shape[0]
    if n == batch:
        return labels
    if n > 0 and batch % n == 0:
        return labels.repeat(batch // n)
    raise ValueError(f"GaussianMixtureWorld: {n} labels for a batch of {batch} (need a divisor of the batch)")


def sample_ddim(denoise, model_sampling, noise: Tensor, sigmas: Tensor, cfg: float,
                max_denoise: bool = True) -> Tensor:
    """Plain deterministic DDIM/Euler sampling from unit ``noise [B, ...]`` over ``sigmas`` (descending, last may be 0)."""
    from .sigma_space import ddim_step, unit_to_x
    x = unit_to_x(model_sampling, noise, sigmas[0], max_denoise=max_denoise)
    for i in range(len(sigmas) - 1):
        x0 = denoise(x, sigmas[i], cfg)
        x = x0 if float(sigmas[i + 1]) == 0 else ddim_step(x, x0, sigmas[i], sigmas[i + 1])
    return x
