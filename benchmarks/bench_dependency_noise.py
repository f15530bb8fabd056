"""Benchmark: ZS^2 noise models on a 16-frame SD latent (16 x 4 x 64 x 64), pure torch, CPU.

Goal (issue 2): dependency noise (lambda 0.01, 10 random + 15 linear iterations) < 50 ms on this CPU.
Prints the median and best of ``--reps`` runs in wall-clock and process CPU time (CPU time is the
steadier number on a shared machine), plus the mixed/progressive models and plain ``torch.randn``
for scale.

Usage::

    python benchmarks/bench_dependency_noise.py [--frames 16] [--size 64] [--reps 20] [--threads 0]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

from training_free_video.samplers.dependency_noise import latent_noise

GOAL_MS = 50.0


def timed(fn, reps):
    fn()  # warm-up
    wall, cpu = [], []
    for _ in range(reps):
        w0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - w0) * 1e3)
        cpu.append((time.process_time() - c0) * 1e3)
    return wall, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--size", type=int, default=64, help="latent height = width")
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    shape = (args.frames, 4, args.size, args.size)
    print(f"latent {list(shape)} (frames as batch), torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = [
        ("dependency (lambda 0.01, 10+15)", lambda: latent_noise(shape, 1, "dependency", 0.01, 10, 15)),
        ("mixed (alpha 0.9)", lambda: latent_noise(shape, 1, "mixed", alpha=0.9)),
        ("progressive (alpha 0.9)", lambda: latent_noise(shape, 1, "progressive", alpha=0.9)),
        ("torch.randn (i.i.d., reference)", lambda: torch.randn(shape, generator=torch.Generator().manual_seed(1))),
    ]
    results = {}
    for name, fn in rows:
        wall, cpu = timed(fn, args.reps)
        results[name] = (statistics.median(wall), min(wall), statistics.median(cpu))
        print(f"  {name:34s} median {results[name][0]:7.2f} ms  best {results[name][1]:7.2f} ms  "
              f"(CPU time median {results[name][2]:7.2f} ms)")
    dep = results[rows[0][0]]
    verdict = "meets" if dep[0] < GOAL_MS else "MISSES"
    print(f"dependency noise: {dep[0]:.1f} ms median ({dep[1]:.1f} ms best) -> {verdict} the < {GOAL_MS:.0f} ms goal")


if __name__ == "__main__":
    main()
