"""A table like the SmoothInit paper's Table 1, on the analytic Gaussian-mixture world.

Class accuracy (the sample's most likely class is the prompted one) and the Frechet distance to
the true class distribution (mean over classes) for plain sampling, Forward-Inversion,
SmoothInit-30, Fast-SmoothInit-10 and Fast-SmoothInit-30, each with its model-call count (NFE,
per sample: initialisation + sampling), and the paper's baseline FreeInit (3 and 5 iterations: that many
full sampling passes with the same sampler, butterworth d_s = d_t = 0.25; each D-dim sample is viewed
as a tiny video [1, T, H, W] with T * H * W = D for its 3-D FFT). The initialisers use w1 = 7.5, w2 = 1, grid_steps = 50
(docs/algorithms.md section 1); sampling afterwards is plain 50-step DDIM at the given CFG (the paper:
7.5). The "exact samples" row is the class distribution itself (the Bayes accuracy and the
finite-sample Frechet floor).

These check that the maths is implemented right (Thm 3.2: w1 > w2 injects the prompt's class);
they are not quality claims about real models. Run: ``python benchmarks/bench_smoothinit_table.py``.
"""
from __future__ import annotations

import argparse
import time

import torch

from training_free_video.samplers import freeinit as fi
from training_free_video.samplers import smoothinit as si
from training_free_video.samplers.gaussian_mixture import (EpsModelSampling, FlowModelSampling,
                                                           GaussianMixtureWorld, sample_ddim)

METHODS = ["plain", "Forward-Inversion", "SmoothInit-30", "Fast-SmoothInit-10", "Fast-SmoothInit-30"]
# FreeInit rows: name -> Settings (defaults: butterworth n 4, d_s = d_t = 0.25, min_signal 0.068)
FREEINIT = {"FreeInit-3": fi.Settings(iterations=3), "FreeInit-5": fi.Settings(iterations=5),
            "FreeInit-3 min_signal 0": fi.Settings(iterations=3, min_signal=0.0)}


def video_shape(dim: int) -> tuple[int, int, int]:
    """(T, H, W) with T * H * W = dim, as even as possible (8 -> 2 x 2 x 2)."""
    best = (dim, 1, 1)
    for t in range(1, dim + 1):
        for h in range(1, dim // t + 1):
            if dim % (t * h) == 0:
                cand = (t, h, dim // (t * h))
                if max(cand) - min(cand) < max(best) - min(best):
                    best = cand
    return best


def run(space: str, sample_cfg: float, args) -> list[tuple]:
    ms = EpsModelSampling() if space == "EPS" else FlowModelSampling(shift=args.shift)
    world = GaussianMixtureWorld.default(dim=args.dim, classes=args.classes, spread=args.spread, std=args.std,
                                         seed=args.world_seed)
    n = args.per_class * args.classes
    labels = torch.arange(n) % args.classes
    g = torch.Generator().manual_seed(args.seed)
    eps = torch.randn(n, args.dim, generator=g, dtype=torch.float64)
    denoise = world.denoiser(ms, labels)
    sa, sb = si.inversion_sigmas(ms.sigmas, ms.sigma_max, args.grid_steps)
    sigmas = si.grid_schedule(ms.sigmas, args.steps)

    def score(x0):
        acc = float((world.classify(x0) == labels).double().mean())
        fd = sum(world.frechet_distance(x0[labels == c], c) for c in range(args.classes)) / args.classes
        return acc, fd

    rows = []
    exact = world.sample_x0(labels, torch.Generator().manual_seed(args.seed + 1))
    rows.append(("exact samples", "-", "-") + score(exact) + (0.0,))
    for name in METHODS:
        t0 = time.perf_counter()
        if name == "plain":
            noise, init_nfe = eps, 0
        else:
            world.nfe = 0
            noise = si.optimise_noise(si.PRESETS[name], denoise, ms, eps, sa, sb, args.w1, args.w2,
                                      torch.Generator().manual_seed(args.seed + 2), chunk_size=1)
            init_nfe = world.nfe
            assert init_nfe == si.preset_nfe(name, args.w1, args.w2), (name, init_nfe)
        x0 = sample_ddim(denoise, ms, noise, sigmas, sample_cfg)
        total = init_nfe + si.sampling_nfe(args.steps, sample_cfg)
        rows.append((name, init_nfe, total) + score(x0) + (time.perf_counter() - t0,))
    if args.no_freeinit:
        return rows
    thw = video_shape(args.dim)
    vid = eps.reshape(n, 1, *thw)
    for name, st in FREEINIT.items():
        t0 = time.perf_counter()
        world.nfe = 0
        x0 = fi.free_init(lambda u, p: sample_ddim(denoise, ms, u, sigmas, sample_cfg), vid, ms, sigmas[0], st,
                          seed=args.seed + 3, max_denoise=True).reshape(n, args.dim)
        total = world.nfe
        assert total == fi.nfe(st.iterations, si.sampling_nfe(args.steps, sample_cfg)), (name, total)
        rows.append((name, 0, total) + score(x0) + (time.perf_counter() - t0,))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dim", type=int, default=8)
    p.add_argument("--classes", type=int, default=4)
    p.add_argument("--spread", type=float, default=0.15, help="std of the class means (overlap: smaller = harder)")
    p.add_argument("--std", type=float, default=0.5, help="within-class std")
    p.add_argument("--per-class", type=int, default=2000)
    p.add_argument("--steps", type=int, default=50, help="DDIM sampling steps after the initialiser")
    p.add_argument("--sample-cfg", type=float, nargs="+", default=[7.5, 1.0])
    p.add_argument("--w1", type=float, default=7.5)
    p.add_argument("--w2", type=float, default=1.0)
    p.add_argument("--grid-steps", type=int, default=50)
    p.add_argument("--shift", type=float, default=3.0, help="flow shift of the CONST world")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--no-freeinit", action="store_true", help="skip the FreeInit rows")
    args = p.parse_args()

    print(f"Analytic world: {args.classes} classes in {args.dim} dims, means ~ N(0, {args.spread}^2), "
          f"class std {args.std}, {args.per_class} samples per class; initialisers w1 = {args.w1}, "
          f"w2 = {args.w2}, grid_steps = {args.grid_steps}; sampling {args.steps}-step DDIM; FreeInit on samples "
          f"viewed as [1, T, H, W] = [1, {', '.join(map(str, video_shape(args.dim)))}].")
    for space in ("EPS", "flow"):
        for cfg in args.sample_cfg:
            print(f"\n{space} (x = {'x0 + sigma eps' if space == 'EPS' else '(1 - sigma) x0 + sigma eps'}), "
                  f"sampling CFG {cfg}")
            print(f"| {'method':24s} | {'init NFE':>8s} | {'total NFE':>9s} | {'class acc':>9s} | "
                  f"{'Frechet':>8s} | {'time s':>6s} |")
            print(f"|{'-' * 26}|{'-' * 10}|{'-' * 11}|{'-' * 11}|{'-' * 10}|{'-' * 8}|")
            for name, init_nfe, total, acc, fd, dt in run(space, cfg, args):
                print(f"| {name:24s} | {str(init_nfe):>8s} | {str(total):>9s} | {acc:9.4f} | {fd:8.4f} | "
                      f"{dt:6.2f} |")


if __name__ == "__main__":
    main()
