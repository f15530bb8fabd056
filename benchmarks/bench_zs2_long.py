"""Benchmark: ZS^2 Long Video (chunks) -- 32 frames in chunks of 8 vs one batch of 32, real ComfyUI.

Same tiny random-weight SD1.5-architecture UNet (ComfyUI's own classes), same conds, the README's
chain (Temporal Momentum Attention 0.98 -> Dependency Noise (KSampler) -> [ZS^2 Long Video (chunks)])
and a plain KSampler (euler, CFG 7.5). Each configuration runs in its own subprocess (fresh
allocator, so memory numbers do not leak between them), after a warm-up run on 2 frames:

* peak memory: the process's peak resident set (VmHWM, reset through ``/proc/self/clear_refs`` right
  before sampling) minus its resident set at that moment -- what the sampling itself adds;
* the largest tensor any torch op creates during sampling (a TorchDispatchMode pass; activations
  grow with the frames per model call);
* the most frames in one model call (frames per CFG half, counted by a DIFFUSION_MODEL wrapper);
* wall and CPU time of the sampling.

Configurations alternate (chunked, batch, chunked, ...) for ``--reps`` rounds; medians are reported
and the ratios chunked / batch are measured in this one run.

Usage::

    python benchmarks/bench_zs2_long.py [--frames 32] [--chunk 8] [--size 16] [--steps 3] [--reps 2] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _status_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def worker(args) -> dict:
    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    sys.path.insert(0, str(REPO / "tests" / "comfyui"))
    from torch.utils._python_dispatch import TorchDispatchMode

    from comfy_harness import boot, pack_module, sd15_conds, tiny_sd15
    pack = boot()
    import comfy.patcher_extension
    import comfy.utils
    import nodes
    comfy.utils.set_progress_bar_enabled(False)
    zs2 = pack_module(pack, "nodes.zs2")
    long = pack_module(pack, "nodes.zs2_long")

    frames_per_call = []
    base = tiny_sd15("EPS", seed=0)

    def probe(executor, *a, **kw):
        to = a[5] if len(a) > 5 else kw.get("transformer_options", {})
        frames_per_call.append(a[0].shape[0] // max(len(to.get("cond_or_uncond", [0])), 1))
        return executor(*a, **kw)

    base.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "bench.probe", probe)
    pos, neg = sd15_conds(0)
    with torch.inference_mode():
        m = zs2.TemporalMomentumAttention().patch(base, 0.98)[0]
        m = zs2.DependencyNoiseModelPatch().patch(m, 0.01, 10, 15, "dependency", 0.9)[0]
        if args.worker == "chunked":
            m = long.ZS2LongVideo().patch(m, args.chunk)[0]

    def run(frames):
        lat = {"samples": torch.zeros(frames, 4, args.size, args.size)}
        with torch.inference_mode():
            return nodes.KSampler().sample(m, 0, args.steps, 7.5, "euler", "normal", pos, neg, lat)[0]["samples"]

    run(2)                                                   # warm-up (lazy inits, allocator pools)
    frames_per_call.clear()
    Path("/proc/self/clear_refs").write_text("5")            # reset the peak RSS (VmHWM) to the current RSS
    rss0 = _status_kb("VmRSS")
    w0, c0 = time.perf_counter(), time.process_time()
    out = run(args.frames)
    wall, cpu = time.perf_counter() - w0, time.process_time() - c0
    peak = _status_kb("VmHWM")
    result = {"wall": wall, "cpu": cpu, "peak_mb": max(peak - rss0, 0) / 1024, "max_frames": max(frames_per_call),
              "calls": len(frames_per_call), "frames_evaluated": sum(frames_per_call),
              "shape": list(out.shape), "finite": bool(torch.isfinite(out).all())}
    if args.max_tensor:
        class MaxTensor(TorchDispatchMode):
            biggest = 0

            def __torch_dispatch__(self, func, types, a=(), kw=None):
                o = func(*a, **(kw or {}))
                for t in (o if isinstance(o, (tuple, list)) else (o,)):
                    if isinstance(t, torch.Tensor):
                        MaxTensor.biggest = max(MaxTensor.biggest, t.numel() * t.element_size())
                return o

        with MaxTensor():
            run(args.frames)
        result["max_tensor_mb"] = MaxTensor.biggest / 2 ** 20
    return result


def spawn(kind: str, args) -> dict:
    cmd = [sys.executable, __file__, "--worker", kind, "--frames", str(args.frames), "--chunk", str(args.chunk),
           "--size", str(args.size), "--steps", str(args.steps), "--threads", str(args.threads)]
    if not args.max_tensor:
        cmd.append("--no-max-tensor")
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=str(REPO))
    if r.returncode != 0:
        raise SystemExit(f"worker {kind} failed:\n{r.stderr[-4000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=32)
    ap.add_argument("--chunk", type=int, default=8)
    ap.add_argument("--size", type=int, default=16, help="latent height = width (16 = 128 px images)")
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads per worker (default 1: steadier timings)")
    ap.add_argument("--no-max-tensor", dest="max_tensor", action="store_false",
                    help="skip the (slower) largest-tensor pass")
    ap.add_argument("--worker", choices=["chunked", "batch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return

    runs = {"chunked": [], "batch": []}
    for _ in range(args.reps):
        for kind in ("chunked", "batch"):
            runs[kind].append(spawn(kind, args))
    med = {k: dict(v[0]) for k, v in runs.items()}
    for k, v in runs.items():
        med[k].update({key: statistics.median(r[key] for r in v) for key in ("wall", "cpu", "peak_mb")})
    c, b = med["chunked"], med["batch"]
    print(f"ZS^2 Long Video: {args.frames} frames x 4 x {args.size} x {args.size} latent, KSampler euler "
          f"{args.steps} steps CFG 7.5 with TMA + Dependency Noise, tiny SD1.5 UNet, {args.threads} thread(s), "
          f"median of {args.reps} runs per configuration (one subprocess each)")
    print(f"  {'':22s} {'chunks of ' + str(args.chunk):>16s} {'one batch':>12s} {'ratio':>8s}")
    rows = [("peak RSS added (MB)", "peak_mb", ".1f"), ("largest tensor (MB)", "max_tensor_mb", ".2f"),
            ("frames per model call", "max_frames", "d"), ("model calls", "calls", "d"),
            ("frames evaluated", "frames_evaluated", "d"), ("wall time (s)", "wall", ".2f"),
            ("CPU time (s)", "cpu", ".2f")]
    for label, key, fmt in rows:
        if key not in c:
            continue
        print(f"  {label:22s} {format(c[key], fmt):>16s} {format(b[key], fmt):>12s} {c[key] / b[key]:>7.3f}x")
    assert c["shape"] == b["shape"] == [args.frames, 4, args.size, args.size] and c["finite"] and b["finite"]
    assert c["max_frames"] <= args.chunk


if __name__ == "__main__":
    main()
