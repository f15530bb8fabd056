"""Benchmark: the papers' video claims measured on a tiny video model that learned motion (issue 24).

The model (``python -m benchmarks.toy_video.build``, cached outside the repository): a Wan 2.1 t2v DiT
and a Wan 2.1 VAE at toy widths, trained on toy-world videos of one shape moving smoothly, loaded with
ComfyUI's own ``UNETLoader`` and ``VAELoader``; ``ModelSamplingSD3`` shift 8 as the Wan workflows;
the prompts' CONDITIONING are the fixed tensors the model was trained with (``conditioning.pt``: Wan's
UMT5-XXL text encoder cannot be made tiny). Every video goes through the real ComfyUI with the shipped
node classes: EmptyHunyuanLatentVideo (64x64, 17 frames = 5 latent frames) -> the pack's nodes ->
KSampler (uni_pc, simple, ``--steps``, ``--cfg``) -> VAEDecode -> the toy-world judge.

Rows (``--rows``, ``;``-separated; default all): ``ROWS``. Video j has prompt VIDEO_ORDER[j % 12] and
KSampler seed ``--seed + j`` in every row, so rows are paired by video. Each (row, block of 12 videos)
is written to ``docs/toy_video/results/toy_video__<row>__v<lo>-<hi>.csv`` with a JSON sidecar;
``python -m benchmarks.toy_video.report`` writes ``docs/toy_video.md``.

    python benchmarks/bench_toy_video.py --videos 48
    python benchmarks/bench_toy_video.py --videos 48 --rows "plain;FreeInit 3 iterations"
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

from benchmarks.bench_toy_world import VIDEO_ORDER, call, file_sha, write_part  # noqa: E402
from benchmarks.toy_video import build as B  # noqa: E402
from benchmarks.toy_video import metrics as VM  # noqa: E402
from benchmarks.toy_video import videos as V  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402

RESULTS = REPO / "docs" / "toy_video" / "results"
SAMPLER, SCHEDULER = "uni_pc", "simple"
FREEINIT_ROWS = {"FreeInit 3 iterations": (3, False), "FreeInit 5 iterations": (5, False),
                 "FreeInit 3 iterations coarse-to-fine": (3, True)}
SMOOTHINIT_ROWS = ["Forward-Inversion", "SmoothInit-30", "Fast-SmoothInit-10"]
I4VGEN_ROWS = ["I4VGen (p 0.6, p_re 0.8)", "I4VGen: static anchor video (no animation)",
               "I4VGen: regeneration without NI-VSDS (p_re 0.8)"]
TRAINING = "training videos (rendered)"
ROUNDTRIP = "training videos through the VAE (VAEEncode + VAEDecode)"
ROWS = [TRAINING, ROUNDTRIP, "plain", *FREEINIT_ROWS, *SMOOTHINIT_ROWS, *I4VGEN_ROWS]


class ToyVideo:
    """The toy video model loaded through UNETLoader + ModelSamplingSD3 and VAELoader."""

    def __init__(self, shift: float = B.SHIFT):
        import checkpoints as ck
        d = B.cache_dir()
        if not (d / B.DIT_NAME).exists():
            raise SystemExit(f"no toy video model in {d}: run `python -m benchmarks.toy_video.build` first")
        with ck.registered_folder("diffusion_models", d), ck.registered_folder("vae", d):
            unet = call("UNETLoader", unet_name=B.DIT_NAME, weight_dtype="default")[0]
            self.vae = call("VAELoader", vae_name=B.VAE_NAME)[0]
        self.model = call("ModelSamplingSD3", model=unet, shift=shift)[0]
        cond = torch.load(d / "conditioning.pt")
        self.cond = [[[cond[c], {}]] for c in W.CAPTIONS]
        self.negative = [[cond[""], {}]]

    def empty(self, frames: int):
        return call("EmptyHunyuanLatentVideo", width=64, height=64, length=frames, batch_size=1)[0]

    def sample(self, model, label: int, seed: int, a, latent, denoise: float = 1.0):
        return call("KSampler", model=model, seed=seed, steps=a.steps, cfg=a.cfg, sampler_name=SAMPLER,
                    scheduler=SCHEDULER, positive=self.cond[label], negative=self.negative, latent_image=latent,
                    denoise=denoise)[0]

    def decode(self, latent) -> torch.Tensor:
        """[F, 3, 64, 64] in [0, 1] (VAEDecode gives [F, 64, 64, 3] for one video)."""
        img = call("VAEDecode", vae=self.vae, samples=latent)[0]
        return img.reshape(-1, 64, 64, 3).permute(0, 3, 1, 2).float().cpu()


def make_rows(toy: ToyVideo, a) -> list:
    """[(name, make(label, seed) -> latent, extra settings)]."""
    spec = []
    # the reference: a training video of the same prompt (its own seeded generator), rendered, no model;
    # returned as pictures [F, 3, 64, 64] instead of a latent
    def training(label, seed):
        return V.sample(1, torch.Generator().manual_seed(10_000 + seed), frames=a.frames, labels=[label]).videos[0]

    spec.append((TRAINING, training, {}))
    # the same videos through the VAE: the ceiling the decoder puts on every row
    spec.append((ROUNDTRIP, lambda label, seed: call("VAEEncode", vae=toy.vae,
                                                     pixels=training(label, seed).permute(0, 2, 3, 1))[0], {}))

    def plain(model):
        return lambda label, seed: toy.sample(model, label, seed, a, toy.empty(a.frames))

    spec.append(("plain", plain(toy.model), {}))
    for name, (iters, c2f) in FREEINIT_ROWS.items():
        m = call("TFVFreeInitModelPatch", model=toy.model, iterations=iters, coarse_to_fine=c2f)[0]
        spec.append((name, plain(m), {"iterations": iters, "coarse_to_fine": c2f}))
    for name in SMOOTHINIT_ROWS:
        m = call("SmoothInitModelPatch", model=toy.model, method=name, cfg=0.0)[0]
        spec.append((name, plain(m), {"method": name, "cfg": "follows the sampler"}))

    def i4vgen(name):
        def make(label, seed):
            anchor = toy.sample(toy.model, label, seed, a, toy.empty(1))           # one-frame clip
            static = call("I4VGenStaticVideoFromLatent", samples=anchor, frames=a.latent_frames, model=toy.model,
                          vae=toy.vae)[0]
            if "static anchor" in name:
                return static
            if "without NI-VSDS" not in name:
                static = call("NIVSDSAnimate", model=toy.model, positive=toy.cond[label], negative=toy.negative,
                              latent_image=static, seed=seed + 7, steps=a.steps, cfg=a.cfg, scheduler=SCHEDULER,
                              p=0.6, step_sizes="1")[0]
            return toy.sample(toy.model, label, seed + 13, a, static, denoise=0.8)
        return make

    for name in I4VGEN_ROWS:
        spec.append((name, i4vgen(name), {"p": 0.6, "step_sizes": "1", "p_re": 0.8}))
    return [s for s in spec if not a.rows or s[0] in a.rows]


def write_model_json(out: Path) -> None:
    """The build's costs and checks (the cache's meta.json) into ``out/model.json`` for the report."""
    meta = json.loads((B.cache_dir() / "meta.json").read_text())
    out.mkdir(parents=True, exist_ok=True)
    c = meta["cfg"]
    heads = meta["dit"]["dim"] // 128
    text = (f"A Wan 2.1 text-to-video DiT (`comfy.ldm.wan.model.WanModel`, dim {meta['dit']['dim']}, "
            f"{meta['dit']['num_layers']} layers, ffn {meta['dit']['ffn_dim']}, {heads} head{'s' if heads != 1 else ''}; "
            f"ComfyUI's UNETLoader detects WAN21_T2V) and a Wan 2.1 VAE (`comfy.ldm.wan.vae.WanVAE`, dim "
            f"{meta['vae_dim']}; VAELoader reads the dim from the state dict; 8x spatial, 4x temporal, causal), trained "
            f"here (`python -m benchmarks.toy_video.build`, config `{meta['config']}`, seed {meta['seed']}, "
            f"{meta['threads']} thread) on 64x64 videos of 17 frames in which one toy-world shape of one class and "
            f"colour moves at constant speed 0.8-2 px/frame on a straight or curved path. The VAE starts as a "
            f"per-frame image autoencoder (every causal 3-tap convolution has weight only on its current-frame tap; "
            f"the temporal downsamplers copy the latest frame, the temporal upsamplers copy the current frame into "
            f"both output frames: latent frame t codes picture 4t, decoded as sample-and-hold), is trained "
            f"{c['vae_image_steps']} steps on one-frame clips (batch {c['vae_image_batch']}) and then "
            f"{c['vae_video_steps']} steps on full {c['vae_frames']}-frame clips (batch {c['vae_batch']}), which teach "
            f"the in-between frames. Training cost (process CPU time, 1 thread): VAE one-frame phase "
            f"{meta['vae_image_cpu_s'] / 60:.1f} min + {c['vae_frames']}-frame phase {meta['vae_video_cpu_s'] / 60:.1f} "
            f"min, latent pool of {meta['pool']} videos {meta['pool_cpu_s'] / 60:.1f} min, DiT {meta['dit_steps']} "
            f"steps of {meta.get('dit_batch', 16)} {meta['dit_cpu_s'] / 60:.1f} min: {meta['train_cpu_min']} "
            f"CPU-minutes in all (budget 60). VAE round trip of 24 fresh 17-frame videos (the build's own check): "
            f"reconstruction MAE {meta['vae_recon_mae']:.3f}, judge agreement per frame "
            f"{meta['vae_recon_judge_acc']:.3f} (frame 0 alone {meta['vae_recon_judge_acc_frame0']:.2f}), reject rate "
            f"{meta['vae_recon_reject']:.2f}, roughness per unit step {meta['vae_recon_rough']:.2f} (rendered videos "
            f"{meta['vae_data_rough']:.2f}), path {meta['vae_recon_path']:.1f} px (rendered {meta['vae_data_path']:.1f} "
            f"px); after the one-frame phase alone (sample-and-hold): agreement {meta['vae_image_recon_judge_acc']:.3f}, "
            f"roughness {meta['vae_image_recon_rough']:.2f}. Text conditioning: fixed random "
            f"[1, {meta['tokens']}, 4096] tensors per caption (Wan's UMT5-XXL cannot be made tiny), passed as "
            f"CONDITIONING.")
    (out / "model.json").write_text(json.dumps({"meta": meta, "text": text}, indent=1) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", default="", help="';'-separated row names (default: all)")
    ap.add_argument("--videos", type=int, default=48)
    ap.add_argument("--first", type=int, default=0, help="first video index (to extend a run)")
    ap.add_argument("--frames", type=int, default=17, help="picture frames (4k + 1)")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--cfg", type=float, default=6.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(RESULTS))
    a = ap.parse_args()
    a.rows = [r for r in a.rows.split(";") if r]
    a.latent_frames = (a.frames - 1) // 4 + 1
    torch.set_num_threads(a.threads)
    from comfy_harness import boot
    boot()
    import comfyui_version
    toy = ToyVideo()
    settings = {"table": "toy_video", "dit_sha256_16": file_sha(B.cache_dir() / B.DIT_NAME),
                "vae_sha256_16": file_sha(B.cache_dir() / B.VAE_NAME), "sampler": SAMPLER, "scheduler": SCHEDULER,
                "steps": a.steps, "cfg": a.cfg, "frames": a.frames, "seed_base": a.seed, "shift": B.SHIFT,
                "comfyui": comfyui_version.__version__, "torch": torch.__version__.split("+")[0]}
    spec = make_rows(toy, a)
    out = Path(a.out)
    write_model_json(out)
    for b0 in range(a.first, a.first + a.videos, 12):            # block-major: rows stay paired if cut short
        block = [(VIDEO_ORDER[j % 12], a.seed + j, j) for j in range(b0, min(b0 + 12, a.first + a.videos))]
        for name, make, extra in spec:
            t0 = time.time()
            rows = []
            for label, seed, j in block:
                out_ = make(label, seed)
                img = out_ if isinstance(out_, torch.Tensor) else toy.decode(out_)
                rows.append(dict(method=name, video=j, seed=seed, **VM.video_row(img, label)))
            acc = sum(r["acc"] for r in rows) / len(rows)
            print(f"  {name}: videos {block[0][2]}-{block[-1][2]}, per-frame accuracy {acc:.3f} "
                  f"({time.time() - t0:.0f}s)", flush=True)
            write_part(out, "toy_video", name, f"v{block[0][2]}-{block[-1][2] + 1}", settings, rows,
                       time.time() - t0, extra)


if __name__ == "__main__":
    main()
