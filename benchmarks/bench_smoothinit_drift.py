"""Fast-SmoothInit's drift, iteration by iteration, on the analytic Gaussian-mixture world (issue 24 item 3).

`bench_smoothinit_table.py` (flow, sampling CFG 1) gives Fast-SmoothInit-30 a higher class accuracy than plain
noise (0.51 -> 0.65) and a larger Frechet distance to the class distributions (0.009 -> 0.070): the samples
over-concentrate. This script runs the same world, noise and seeds and records after each Fast-SmoothInit
iteration j (the iterate r_j, which is what ``fast_smoothinit`` with K = j + 1 returns: the perturbations
are drawn in order j and their scale (1 - gamma_decay)^(j + 1) does not depend on K):

* the unit noise's standard deviation (all entries; N(0, I): 1) and mean norm / E||N(0, I_D)||;
* its low-frequency energy: each D-dim noise viewed as the tiny video [1, T, H, W] of the FreeInit rows,
  energy of its 3-D FFT at normalised frequency radius <= 0.25 (FreeInit's d_s = d_t = 0.25), over the
  energy N(0, I) has there (N(0, I): 1);
* the energy along the class means' span (what Forward-Inversion injects: Thm 3.2) over N(0, I)'s, and the
  mean coordinate along the prompted class's direction (mu_c - mean of the mu, unit length; N(0, I): 0);
* the distance travelled from the start noise, RMS per entry;
* at a few iterations: class accuracy and Frechet distance after the same 50-step DDIM sampling.

The pack's ``samplers.smoothinit.fast_smoothinit`` is run unchanged. Run (1 thread, ~1 min):
``OMP_NUM_THREADS=1 PYTHONPATH=<folder holding training_free_video> python benchmarks/bench_smoothinit_drift.py`` (``--space eps`` for the EPS world).
"""
from __future__ import annotations

import argparse
import dataclasses
import math

import torch

from training_free_video.benchmarks.bench_smoothinit_table import video_shape
from training_free_video.samplers import smoothinit as si
from training_free_video.samplers.gaussian_mixture import (EpsModelSampling, FlowModelSampling,
                                                           GaussianMixtureWorld, sample_ddim)


def low_frequency_mask(thw: tuple[int, int, int], radius: float = 0.25) -> torch.Tensor:
    """Boolean [T, H, W] mask of the 3-D FFT bins with normalised frequency radius <= ``radius``."""
    f = torch.meshgrid(*[torch.fft.fftfreq(n, dtype=torch.float64) for n in thw], indexing="ij")
    return (f[0] ** 2 + f[1] ** 2 + f[2] ** 2).sqrt() <= radius


def noise_stats(u: torch.Tensor, eps: torch.Tensor, thw, lf_mask, basis: torch.Tensor, toward: torch.Tensor) -> dict:
    """Statistics of unit noise ``u`` [N, D] against N(0, I) (each ratio is 1 for N(0, I))."""
    n, d = u.shape
    e_norm = math.sqrt(2) * math.exp(math.lgamma((d + 1) / 2) - math.lgamma(d / 2))  # E||N(0, I_D)||
    spec = torch.fft.fftn(u.reshape(n, *thw), dim=(1, 2, 3), norm="ortho").abs() ** 2
    lf = float(spec[:, lf_mask].sum(1).mean()) / int(lf_mask.sum())  # N(0, I): 1 per bin
    proj = u @ basis                                                   # [N, k] coordinates in the means' span
    return {"std": float(u.std()), "norm": float(u.norm(dim=1).mean()) / e_norm, "lowfreq": lf,
            "class_span": float((proj ** 2).sum(1).mean()) / basis.shape[1],
            "moved": float((u - eps).pow(2).mean().sqrt()), "toward": float((u * toward).sum(1).mean())}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--space", choices=["flow", "eps"], default="flow")
    p.add_argument("--preset", default="Fast-SmoothInit-30")
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--spread", type=float, default=0.15)
    p.add_argument("--std", type=float, default=0.5)
    p.add_argument("--per-class", type=int, default=2000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--sample-cfg", type=float, default=1.0)
    p.add_argument("--w1", type=float, default=7.5)
    p.add_argument("--w2", type=float, default=1.0)
    p.add_argument("--grid-steps", type=int, default=50)
    p.add_argument("--shift", type=float, default=3.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--sigma-sm", type=float, default=None, help="override the preset's sigma_sm (0: no perturbation)")
    p.add_argument("--all-rows", action="store_true", help="print every iteration, not only --sample-at")
    p.add_argument("--sample-at", default="0,4,9,19,29", help="iterations j whose noise is also sampled")
    a = p.parse_args()
    torch.set_num_threads(1)

    # the world, noise and seeds of bench_smoothinit_table.run
    ms = EpsModelSampling() if a.space == "eps" else FlowModelSampling(shift=a.shift)
    world = GaussianMixtureWorld.default(dim=a.dim, classes=a.classes, spread=a.spread, std=a.std, seed=a.world_seed)
    n = a.per_class * a.classes
    labels = torch.arange(n) % a.classes
    eps = torch.randn(n, a.dim, generator=torch.Generator().manual_seed(a.seed), dtype=torch.float64)
    denoise = world.denoiser(ms, labels)
    sa, sb = si.inversion_sigmas(ms.sigmas, ms.sigma_max, a.grid_steps)
    sigmas = si.grid_schedule(ms.sigmas, a.steps)
    preset = si.PRESETS[a.preset]
    if a.sigma_sm is not None:
        preset = dataclasses.replace(preset, sigma_sm=a.sigma_sm)
    thw = video_shape(a.dim)
    lf_mask = low_frequency_mask(thw)
    basis = torch.linalg.qr(world.means.double().T - world.means.double().mean(0)[:, None])[0][:, :a.classes - 1]
    centred = world.means.double() - world.means.double().mean(0)
    toward = (centred / centred.norm(dim=1, keepdim=True))[labels]      # [N, D] unit direction of each prompt
    sample_at = {int(x) for x in a.sample_at.split(",") if int(x) < preset.K}

    def score(noise):
        x0 = sample_ddim(denoise, ms, noise, sigmas, a.sample_cfg)
        acc = float((world.classify(x0) == labels).double().mean())
        fd = sum(world.frechet_distance(x0[labels == c], c) for c in range(a.classes)) / a.classes
        return acc, fd

    print(f"Analytic world ({a.space}{', shift ' + str(a.shift) if a.space == 'flow' else ''}): {a.classes} "
          f"classes in {a.dim} dims (as [1, {', '.join(map(str, thw))}]), n = {n} noises; {a.preset} (K {preset.K}, "
          f"sigma_sm {preset.sigma_sm}, gamma_m {preset.gamma_m}, gamma_decay {preset.gamma_decay}), w1 {a.w1}, "
          f"w2 {a.w2}; samples: {a.steps}-step DDIM at CFG {a.sample_cfg}. Ratios are 1 for N(0, I).")
    print("| iteration | std | norm / E norm | low-freq. energy | class-span energy | toward the prompt | moved (RMS) "
          "| class acc | Frechet |")
    print("|---|---|---|---|---|---|---|---|---|")
    acc, fd = score(eps)
    st = noise_stats(eps, eps, thw, lf_mask, basis, toward)
    print(f"| start (N(0, I) draw) | {st['std']:.4f} | {st['norm']:.4f} | {st['lowfreq']:.3f} | "
          f"{st['class_span']:.3f} | {st['toward']:+.4f} | 0 | {acc:.4f} | {fd:.4f} |")
    for j in range(preset.K):
        r = si.fast_smoothinit(denoise, ms, eps, sa, sb, a.w1, a.w2, j + 1, preset.sigma_sm, preset.gamma_m,
                               preset.gamma_decay, torch.Generator().manual_seed(a.seed + 2))
        st = noise_stats(r, eps, thw, lf_mask, basis, toward)
        if j not in sample_at and not a.all_rows:
            continue
        acc, fd = score(r) if j in sample_at else (float("nan"), float("nan"))
        print(f"| {j} | {st['std']:.4f} | {st['norm']:.4f} | {st['lowfreq']:.3f} | {st['class_span']:.3f} | "
              f"{st['toward']:+.4f} | {st['moved']:.4f} | {acc:.4f} | {fd:.4f} |", flush=True)


if __name__ == "__main__":
    main()
