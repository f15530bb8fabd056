#!/usr/bin/env python
"""FreeInit's audio treatment on audio+video latents, measured on tiny random-weight MiniMax H3 and LTX-2
(``tests/comfyui/tiny_av.py``: ComfyUI's real classes), issue 19 item 1.

For each seed: FreeInit Sampler (3 iterations, butterworth d_s = d_t = 0.25, min_signal 0.05) around euler,
4 steps simple, CFG 3, once with ``audio = keep initial noise`` and once with ``low-pass along time``. From the
three passes' outputs (the sampler space, recorded by a wrapper SAMPLER) it reports per mode:

* ``drift``: ||a_2 - a_1|| / ||a_1|| of the audio stream between the last two passes (does the audio settle
  as FreeInit iterates?);
* ``lowfreq``: share of the final audio's energy (mean removed) in the lowest quarter of temporal frequencies
  (what the low-pass keeps from pass to pass);
* ``std``: the final audio's standard deviation; ``video_drift``: the same drift for the video stream.

Paired differences (low-pass minus keep) get a mean, a 95 % t interval and a paired t-test p, Holm-corrected
over the claims printed. Random weights: these are mechanics (how each treatment moves the audio), not
perceived quality.

Measured (ComfyUI 0.33.0, CPU, n = 8 seeds per family; MiniMax H3 22 frames 64x64: video [1, 24, 7, 4, 4] + audio
[1, 32, 2, 37]; LTX-2 25 frames: video [1, 128, 4, 2, 2] + audio [1, 8, 25, 16]):

    family      mode                 drift   lowfreq  std     video_drift
    minimax_h3  keep initial noise   0.0086  0.2168   5.8632  1.4043
    minimax_h3  low-pass along time  1.1197  0.3429   6.1862  1.4040
    ltxav       keep initial noise   0.0450  0.2482   1.4214  1.2099
    ltxav       low-pass along time  1.1291  0.2466   1.4258  1.2078

Low-pass minus keep (95 % t interval, Holm over 8 claims): drift +1.11 [1.09, 1.14] (MiniMax), +1.08 [1.05, 1.12]
(LTX-2), both p < 1e-9; MiniMax lowfreq +0.126 [0.107, 0.145], std +0.32 [0.23, 0.42] (p 4e-4; the sampler space
carries MiniMax audio at 4x); LTX-2 lowfreq / std and both video drifts: no difference (p > 0.3). Chosen default:
keep initial noise -- the audio then stays put from pass to pass (drift 0.01-0.05) and follows the refined video
through the joint model, whereas the low-pass redraws the audio's high frequencies from fresh noise every pass
(drift above 1: a new soundtrack each pass) and shifts MiniMax's audio statistics; the video is unaffected either
way. Usage::

    COMFYUI_PATH=... python benchmarks/bench_av_freeinit_audio.py --seeds 8
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

import comfy_harness as H  # noqa: E402
import tiny_av  # noqa: E402

MODES = ("keep initial noise", "low-pass along time")


def _recorder():
    import comfy.samplers

    class Rec(comfy.samplers.Sampler):
        def __init__(self):
            self.inner, self.outs, self.shapes = comfy.samplers.sampler_object("euler"), [], None

        def max_denoise(self, model_wrap, sigmas):
            return self.inner.max_denoise(model_wrap, sigmas)

        def sample(self, model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs):
            out = self.inner.sample(model_wrap, sigmas, extra_args, callback, noise, *args, **kwargs)
            self.outs.append(out.detach().clone())
            self.shapes = model_wrap.inner_model.latent_shapes
            return out
    return Rec()


def _lowfreq_share(a: torch.Tensor, axis: int) -> float:
    x = a.movedim(axis, -1).float()
    x = x - x.mean(-1, keepdim=True)
    p = torch.fft.rfft(x, dim=-1).abs() ** 2
    k = max(1, math.ceil(p.shape[-1] / 4))
    return float(p[..., :k].sum() / p.sum().clamp_min(1e-12))


def run(family: str, seed: int, mode: str) -> dict:
    import comfy.samplers
    import comfy.utils
    import comfy_extras.nodes_custom_sampler as cs
    fi = H.pack_module(H.boot(), "nodes.freeinit")
    if family == "minimax_h3":
        model, (pos, neg), axis = tiny_av.tiny_minimax_h3(), tiny_av.minimax_conds(), -1
        latent = tiny_av.minimax_latent(64, 64, 22)
    else:
        model, (pos, neg), axis = tiny_av.tiny_ltxav(), tiny_av.ltxav_conds(), 2
        latent = tiny_av.ltxav_latent(64, 64, 25)
    rec = _recorder()
    sampler = fi.FreeInitSampler().get_sampler(rec, 3, "butterworth", 0.25, 0.25, 4, 0.05, False, mode)[0]
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(pos, neg)
    guider.set_cfg(3.0)
    sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", 4).cpu()
    H.sample_custom_advanced(cs.Noise_RandomNoise(seed), guider, sampler, sigmas, latent)
    passes = [comfy.utils.unpack_latents(o, rec.shapes) for o in rec.outs]
    (v1, a1), (v2, a2) = passes[-2][:2], passes[-1][:2]
    return {"drift": float((a2 - a1).norm() / a1.norm()), "video_drift": float((v2 - v1).norm() / v1.norm()),
            "lowfreq": _lowfreq_share(a2, axis), "std": float(a2.std())}


def _t_interval(d: list[float]) -> tuple[float, float, float, float]:
    from scipy import stats
    n = len(d)
    m = statistics.mean(d)
    s = statistics.stdev(d) if n > 1 else 0.0
    h = stats.t.ppf(0.975, n - 1) * s / math.sqrt(n) if n > 1 else float("nan")
    p = float(stats.ttest_1samp(d, 0.0).pvalue) if n > 1 and s > 0 else float("nan")
    return m, m - h, m + h, p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=8)
    args = ap.parse_args()
    H.boot()
    torch.set_num_threads(1)
    claims = []
    for family in ("minimax_h3", "ltxav"):
        rows = {m: [run(family, s, m) for s in range(args.seeds)] for m in MODES}
        for m in MODES:
            agg = {k: statistics.mean(r[k] for r in rows[m]) for k in rows[m][0]}
            print(f"{family:10s} {m:20s} n={args.seeds} " + " ".join(f"{k}={v:.4f}" for k, v in agg.items()))
        for k in ("drift", "lowfreq", "std", "video_drift"):
            d = [b[k] - a[k] for a, b in zip(rows[MODES[0]], rows[MODES[1]])]
            claims.append((family, k, *_t_interval(d)))
    ps = [c[-1] for c in claims]
    order = sorted(range(len(ps)), key=lambda i: ps[i])
    holm, running = [1.0] * len(ps), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, ps[i] * (len(ps) - rank)))
        holm[i] = running
    print("paired difference low-pass minus keep: mean [95% t interval], Holm p over", len(ps), "claims")
    for c, hp in zip(claims, holm):
        print(f"  {c[0]:10s} {c[1]:12s} {c[2]:+.4f} [{c[3]:+.4f}, {c[4]:+.4f}] p_holm={hp:.3g}")


if __name__ == "__main__":
    main()
