"""Wall time of SmoothInit's initialisers in the real ComfyUI, against their NFE floors.

On one tiny SD1.5-architecture model with random weights (ComfyUI's own classes, CPU), made heavy
enough (wider channels, larger latent) that per-call overhead does not dominate, this times:
plain KSampler sampling (N steps, Euler = DDIM, CFG 7.5) vs the same sampling from the noise of
Forward-Inversion, SmoothInit-30 and Fast-SmoothInit-10 ("SmoothInit (KSampler)" patch, w1 = 7.5,
w2 = 1) and the paper's baseline FreeInit ("FreeInit (KSampler)" patch, 3 and 5 iterations, butterworth;
NFE floor ``iterations x``). Each ratio is printed next to its NFE floor ``(2N + 3K) / 2N`` (FI is K = 1), plus
SmoothInit-30 batched (4 perturbations per model call) vs unbatched (1 per call). ``--methods`` runs a subset.

All numbers come from this one run (interleaved repetitions, the minimum of each). Run:
``python benchmarks/bench_smoothinit_speed.py [--steps 50 --size 24 --channels 64 --reps 2]``.
Needs ComfyUI (``$COMFYUI_PATH`` or ``~/comfy/ComfyUI``).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comfyui"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--steps", type=int, default=50, help="sampling steps N (paper: 50)")
    p.add_argument("--size", type=int, default=24, help="latent height/width (24 = a 192 px image)")
    p.add_argument("--channels", type=int, default=64, help="UNet model_channels (tiny default 32)")
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--methods", nargs="+", default=None,
                   help="run only these rows (plain is always run), e.g. --methods FreeInit-3 FreeInit-5")
    p.add_argument("--frames", type=int, default=1, help="latent batch (frames as batch for FreeInit's FFT)")
    p.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", "1")),
                   help="torch threads (1 is the most stable on a shared machine)")
    args = p.parse_args()

    import torch
    torch.set_num_threads(args.threads)
    import comfy_harness as H
    pack = H.boot()
    import comfy.utils
    comfy.utils.set_progress_bar_enabled(False)  # no tqdm bars in the printed tables
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models
    import nodes
    si_nodes = H.pack_module(pack, "nodes.smoothinit")
    fi_nodes = H.pack_module(pack, "nodes.freeinit")
    fi_core = H.pack_module(pack, "samplers.freeinit")
    core = H.pack_module(pack, "samplers.smoothinit")

    unet = dict(H.TINY_SD15_UNET, model_channels=args.channels)
    cfg_m = comfy.supported_models.SD15(unet)
    cfg_m.set_inference_dtype(torch.float32, None)
    base = comfy.model_base.BaseModel(cfg_m, model_type=comfy.model_base.ModelType.EPS, device="cpu")
    H._init_weights(base.diffusion_model, 0)
    model = comfy.model_patcher.ModelPatcher(base, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    params = sum(p.numel() for p in base.diffusion_model.parameters())
    pos, neg = H.sd15_conds()
    latent = {"samples": torch.zeros(args.frames, 4, args.size, args.size)}
    N, W1, W2 = args.steps, 7.5, 1.0

    def patched(method, chunk=0):
        return si_nodes.SmoothInitModelPatch().patch(model, method, W1, W2, 50, 10, 0.05, "uniform", 0.05, 0.05,
                                                     chunk)[0]

    runs = {
        "plain": (model, 0),
        "Forward-Inversion": (patched("Forward-Inversion"), 1),
        "SmoothInit-30 (batched x4)": (patched("SmoothInit-30", 4), 30),
        "SmoothInit-30 (unbatched)": (patched("SmoothInit-30", 1), 30),
        "Fast-SmoothInit-10": (patched("Fast-SmoothInit-10"), 10),
        "FreeInit-3": (fi_nodes.FreeInitModelPatch().patch(model, 3, "butterworth", 0.25, 0.25, 4, 0.068)[0], -3),
        "FreeInit-5": (fi_nodes.FreeInitModelPatch().patch(model, 5, "butterworth", 0.25, 0.25, 4, 0.068)[0], -5),
        "FreeInit-3 coarse-to-fine": (fi_nodes.FreeInitModelPatch().patch(model, 3, "butterworth", 0.25, 0.25, 4,
                                                                          0.068, True)[0], -3),
    }
    if args.methods:
        unknown = set(args.methods) - set(runs)
        if unknown:
            raise SystemExit(f"unknown --methods {sorted(unknown)}; choose from {list(runs)}")
        runs = {k: v for k, v in runs.items() if k == "plain" or k in args.methods}

    def sample(m):
        t0, c0 = time.perf_counter(), time.process_time()
        with torch.inference_mode():
            out = nodes.KSampler().sample(m, 0, N, W1, "euler", "simple", pos, neg, latent)[0]["samples"]
        assert bool(torch.isfinite(out).all())
        return time.perf_counter() - t0, time.process_time() - c0

    # per-call costs, for context
    with torch.inference_mode():
        sample(model)                                             # warm-up (model load, kernels)
    one = {}
    for label, b in (("CFG call (batch 2)", 2), ("cond call (batch 1)", 1), ("4 perturbations, CFG (batch 8)", 8)):
        x = torch.randn(b, 4, args.size, args.size)
        ts = torch.full((b,), 999.0)
        ctx = pos[0][0].repeat(b, 1, 1)
        with torch.inference_mode():
            base.diffusion_model(x, ts, context=ctx)
            t0 = time.process_time()
            for _ in range(3):
                base.diffusion_model(x, ts, context=ctx)
        one[label] = (time.process_time() - t0) / 3

    wall = {k: float("inf") for k in runs}
    cpu = {k: float("inf") for k in runs}
    for _ in range(args.reps):
        for name, (m, _k) in runs.items():
            w, c = sample(m)
            wall[name], cpu[name] = min(wall[name], w), min(cpu[name], c)

    plain_w, plain_c = wall["plain"], cpu["plain"]
    print(f"Tiny SD1.5-architecture UNet, model_channels {args.channels} ({params / 1e6:.1f} M params), latent "
          f"{args.frames}x4x{args.size}x{args.size}, CPU, {args.threads} thread(s); KSampler euler (= DDIM) {N} steps, CFG {W1}; "
          f"initialisers w1 = {W1}, w2 = {W2}, grid_steps 50; best of {args.reps} interleaved runs.")
    for label, t in one.items():
        print(f"  one UNet {label}: {t * 1000:.0f} ms CPU")
    print("Wall time is what a user waits; on a shared machine it also counts other processes, so the process "
          "CPU time (this process alone; equal to wall time on an idle machine with these threads) is shown too.")
    print(f"\n| {'method':28s} | {'K':>3s} | {'init NFE':>8s} | {'NFE floor':>9s} | {'wall s':>7s} | {'wall ratio':>10s} | "
          f"{'CPU s':>7s} | {'CPU ratio':>9s} | {'CPU ratio/floor':>15s} |")
    print(f"|{'-' * 30}|{'-' * 5}|{'-' * 10}|{'-' * 11}|{'-' * 9}|{'-' * 12}|{'-' * 9}|{'-' * 11}|{'-' * 17}|")
    for name, (_m, K) in runs.items():
        if K < 0:   # FreeInit: -iterations; no initialiser, iterations (coarse-to-fine: shorter) passes
            c2f = "coarse" in name
            init, floor, K = 0, fi_core.nfe(-K, 2 * N, N, c2f) / (2 * N), "-"
        else:
            init = core.nfe(K, W1, W2) if K else 0
            floor = (2 * N + init) / (2 * N)
        rw, rc = wall[name] / plain_w, cpu[name] / plain_c
        print(f"| {name:28s} | {K or '-':>3} | {init:8d} | {floor:8.2f}x | {wall[name]:7.2f} | {rw:9.2f}x | "
              f"{cpu[name]:7.2f} | {rc:8.2f}x | {rc / floor:15.3f} |")
    for label, t in (("wall", wall), ("CPU", cpu)):
        if "SmoothInit-30 (batched x4)" not in t or "SmoothInit-30 (unbatched)" not in t:
            continue
        b, u, p0 = t["SmoothInit-30 (batched x4)"], t["SmoothInit-30 (unbatched)"], t["plain"]
        print(f"SmoothInit-30 batched vs unbatched ({label}): {b:.2f} s vs {u:.2f} s -> batched is {u / b:.2f}x as "
              f"fast (initialisation alone: {(u - p0) / max(b - p0, 1e-9):.2f}x).")
    print("Paper (RTX 4090, AnimateDiff, N = 50): Fast-SmoothInit-10 1.38x, SmoothInit-30 2.14x, "
          "Forward-Inversion 1.04x, FreeInit 2.05x of plain sampling (SmoothInit paper Table 1).")


if __name__ == "__main__":
    main()
