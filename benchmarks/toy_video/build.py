"""Build the toy video model: a tiny Wan 2.1 text-to-video DiT and a tiny Wan 2.1 VAE, in the cache.

    python -m benchmarks.toy_video.build            # from the repository root (ComfyUI's python,
                                                     # COMFYUI_PATH set); builds what is missing
    python -m benchmarks.toy_video.build --force    # rebuild everything
    python -m benchmarks.toy_video.build --small    # the smaller config (fewer steps)

Cache: ``$TOY_VIDEO_CACHE``, else ``~/.cache/training_free_video/toy_video/`` (never the repository).
Files written there (ComfyUI's own loaders read them):

* ``toy_video_wan21_vae.safetensors`` -- ``comfy.ldm.wan.vae.WanVAE`` at ``dim`` ``VAE_DIM`` (ComfyUI's
  ``VAELoader`` reads ``dim`` from ``decoder.head.0.gamma``; z_dim 16, 8x spatial, 4x temporal, causal).
  Trained as an autoencoder on toy videos in [-1, 1] (ComfyUI's ``process_input``) from a per-frame
  initialisation (``init_vae``: current-frame taps only, temporal resamplers copy the frame), first on
  one-frame clips (stage file ``vae_image.pt``), then on full 17-frame clips (``vae.pt``); after each
  phase its ``conv1`` / ``conv2`` are rescaled per channel so that ComfyUI's Wan 2.1 ``process_latent_in``
  (``(x - latents_mean) / latents_std``) gives latents of mean 0, std 1 per channel, and the round trip
  of fresh 17-frame videos is checked (``check_vae``: judge agreement, reject rate, roughness per unit
  step, path length; the costs in meta.json include these checks and the ones every 100 steps).
* ``toy_video_wan21_t2v.safetensors`` -- ``comfy.ldm.wan.model.WanModel`` (t2v) at ``DIT`` (ComfyUI's
  ``UNETLoader`` detects ``WAN21_T2V``: dim from ``head.modulation``, heads dim/128, layers counted),
  trained with flow matching (``x = (1 - sigma) x0 + sigma n``, v = n - x0, ComfyUI's CONST) on
  latents made by the VAE above, sigma drawn half uniform and half from the shift-8 schedule the
  Wan workflows sample with (ModelSamplingSD3 shift 8), 10 % empty prompts, 10 % of the steps on one-frame
  clips (latent frame 0, the first picture: Wan is trained on images too; I4VGen's anchor is a one-frame
  clip); weights an EMA.
* ``conditioning.pt`` -- the text conditioning: a fixed random ``[1, TOKENS, 4096]`` tensor per caption
  (seeded) and one for the empty prompt. Wan's text encoder (UMT5-XXL) cannot be made tiny, so the
  benchmark passes these tensors as CONDITIONING instead of running ``CLIPTextEncode``.
* ``meta.json`` -- the config, costs (process CPU seconds per stage, 1 thread) and checks.

Stages are cached, so an interrupted build resumes. Seeded: the same seed gives the same model.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
for p in (REPO, REPO / "tests" / "comfyui"):
    if str(p) not in sys.path:
        sys.path.insert(0, str(p))

from benchmarks.toy_video import videos as V  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402
from benchmarks.toy_world.build import _cosine, _log  # noqa: E402

SEED = 24024
VAE_NAME = "toy_video_wan21_vae.safetensors"
DIT_NAME = "toy_video_wan21_t2v.safetensors"
VAE_DIM = 8
TOKENS = 4
TEXT_DIM = 4096
DIT = {"dim": 128, "ffn_dim": 512, "num_layers": 4}   # 1 head of 128 (ComfyUI: heads = dim // 128)
SHIFT = 8.0
CONFIGS = {  # steps per stage; "small" is the fallback when CPU time is short
    "full": {"vae_image_steps": 800, "vae_video_steps": 500, "vae_image_batch": 16, "vae_batch": 2,
             "vae_frames": V.FRAMES, "vae_crop": 48, "pool": 1024, "dit_steps": 4000, "dit_batch": 16},
    "small": {"vae_image_steps": 500, "vae_video_steps": 300, "vae_image_batch": 16, "vae_batch": 2,
              "vae_frames": V.FRAMES, "vae_crop": 48, "pool": 512, "dit_steps": 2000, "dit_batch": 16},
}
VAE_LR, VAE_VIDEO_LR, DIT_LR, EMA_DECAY, P_EMPTY, P_IMAGE, P_STILL = 2e-3, 1e-3, 5e-4, 0.995, 0.10, 0.10, 0.15


def cache_dir() -> Path:
    return Path(os.environ.get("TOY_VIDEO_CACHE") or Path.home() / ".cache" / "training_free_video" / "toy_video")


# ------------------------------------------------------------------------------------ models
def make_vae():
    import comfy.ldm.wan.vae
    return comfy.ldm.wan.vae.WanVAE(dim=VAE_DIM, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                    temperal_downsample=[False, True, True], image_channels=3, conv_out_channels=3)


def init_vae(vae: torch.nn.Module, seed: int) -> None:
    """N(0, 1/fan_in) kernels, zero biases, RMS-norm gammas 1; the last conv of each residual branch 0
    (every residual block starts as the identity or its shortcut). Temporally the VAE starts as a
    per-frame image autoencoder: every causal 3-tap convolution has weight only on its current-frame tap
    (the last one; fan_in counts that tap alone), the encoder's temporal downsamplers (``time_conv``,
    taps [previous, a, b], stride 2) copy the latest frame b, and the decoder's temporal upsamplers
    (``time_conv``: 2 x channels, one half per output frame) copy the current frame into both halves.
    A latent frame t then codes picture 4t, and the decoder starts as sample-and-hold; training on
    full clips teaches the in-between frames."""
    import comfy.ldm.wan.vae as WV
    g = torch.Generator().manual_seed(seed)
    time_convs = {}
    for name, m in vae.named_modules():
        if isinstance(m, WV.Resample) and hasattr(m, "time_conv"):
            time_convs[name + ".time_conv.weight"] = m.mode
    with torch.no_grad():
        for name, p in vae.named_parameters():
            if name.endswith("gamma"):
                p.fill_(1.0)
            elif p.ndim <= 1:
                p.zero_()
            elif name in time_convs:                       # [c_out, c, 3, 1, 1]
                p.zero_()
                c = p.shape[1]
                eye = torch.eye(c)
                p[:, :, -1, 0, 0] = eye if time_convs[name] == "downsample3d" else torch.cat([eye, eye])
            elif ".residual.6." in name:
                p.zero_()
            elif p.ndim == 5 and p.shape[2] > 1:           # causal 3-tap conv: current-frame tap only
                p.zero_()
                p[:, :, -1] = torch.randn(p[:, :, -1].shape, generator=g) / p[0, :, -1].numel() ** 0.5
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)


def make_dit_model():
    """ComfyUI's WAN21_T2V model (model_base.WAN21, flow/CONST) with the toy DiT, fp32 on the CPU."""
    import comfy.supported_models
    cfg = comfy.supported_models.WAN21_T2V({
        "image_model": "wan2.1", "model_type": "t2v", "patch_size": (1, 2, 2), "in_dim": 16, "out_dim": 16,
        "dim": DIT["dim"], "ffn_dim": DIT["ffn_dim"], "freq_dim": 256, "text_dim": TEXT_DIM, "text_len": 512,
        "num_heads": DIT["dim"] // 128, "num_layers": DIT["num_layers"], "window_size": (-1, -1),
        "qk_norm": True, "cross_attn_norm": True, "eps": 1e-6})
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    import comfy.model_sampling  # noqa: F401
    model.model_sampling.set_parameters(shift=SHIFT, multiplier=1000)
    return model


def init_dit(dm: torch.nn.Module, seed: int) -> None:
    """N(0, 1/fan_in) matrices, zero biases, norm scales 1, the modulation tables 0; each block's
    output projections (self.o, cross.o, ffn.2) and the head 0 (every block starts as the identity)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in dm.named_parameters():
            if "norm" in name and name.endswith("weight") and p.ndim == 1:
                p.fill_(1.0)
            elif p.ndim <= 1 or "modulation" in name:
                p.zero_()
            elif name.endswith(("self_attn.o.weight", "cross_attn.o.weight", "ffn.2.weight", "head.head.weight")):
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)


def conditioning(seed: int = SEED + 1) -> dict:
    """{caption: [1, TOKENS, 4096]} fixed random text conditioning; "" is the empty prompt."""
    g = torch.Generator().manual_seed(seed)
    return {text: torch.randn(1, TOKENS, TEXT_DIM, generator=g) for text in ("",) + W.CAPTIONS}


# ------------------------------------------------------------------------------------ VAE
def to_vae(videos: torch.Tensor) -> torch.Tensor:
    """[N, F, 3, H, W] in [0, 1] -> the VAE's input [N, 3, F, H, W] in [-1, 1] (ComfyUI's process_input)."""
    return videos.permute(0, 2, 1, 3, 4) * 2.0 - 1.0


def from_vae(x: torch.Tensor) -> torch.Tensor:
    """The VAE's output [N, 3, F, H, W] -> [N, F, 3, H, W] in [0, 1] (ComfyUI's process_output)."""
    return ((x.permute(0, 2, 1, 3, 4) + 1) / 2).clamp(0, 1)


def _vae_loop(vae, opt, g, steps: int, batch, crop: int, seed: int, t0: float, lr: float = None) -> list:
    """``steps`` autoencoder steps on ``batch(step)`` videos; cosine learning rate from ``lr``."""
    lr = VAE_LR if lr is None else lr
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = lr * _cosine(step, steps, 15)
        b = batch(step)
        # crops at multiples of 8 px: the VAE is convolutional, crops teach the same local code for less
        oy, ox = (int(v) for v in torch.randint(0, W.SIZE - crop + 1, (2,), generator=g) // 8 * 8)
        x = to_vae(b.videos[..., oy:oy + crop, ox:ox + crop])
        z = vae.encode(x)
        z = z + 0.05 * z.detach().std() * torch.randn(z.shape, generator=g)
        rec = vae.decode(z)
        # the object covers ~5 % of the picture: weight its pixels (and a 2 px rim) 5x, or the
        # autoencoder settles on the background alone
        fg = ((x - (W.BACKGROUND * 2 - 1)[None, :, None, None, None]).abs().amax(1, keepdim=True) > 0.1).float()
        fg = torch.nn.functional.max_pool3d(fg, (1, 5, 5), stride=1, padding=(0, 2, 2))
        w = 1 + 4 * fg
        err = (rec - x).abs() + (rec - x).pow(2)
        loss = (w * err).mean() / w.mean() + 1e-4 * z.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(vae.parameters(), 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if (step + 1) % 100 == 0:
            with torch.no_grad():
                chk = check_vae(vae, seed + 300, n=8)
            _log(f"vae step {step + 1}: judge agreement {chk['recon_judge_acc']:.3f} (frame 0 "
                 f"{chk['recon_judge_acc_frame0']:.2f}), MAE {chk['recon_mae']:.4f}, reject {chk['recon_reject']:.2f}, "
                 f"roughness {chk['recon_rough']:.2f}, path {chk['recon_path']:.1f} (data {chk['data_path']:.1f})")
        if step % 25 == 0 or step == steps - 1:
            _log(f"vae step {step} loss {sum(losses[-25:]) / len(losses[-25:]):.4f} cpu {time.process_time() - t0:.0f}s")
    return losses


def train_vae(cfg: dict, seed: int = SEED + 2, phase: str = "image", state: dict | None = None) -> dict:
    """One VAE phase. ``image``: from the per-frame initialisation (``init_vae``), one-frame clips,
    ``vae_image_batch`` a step (the causal VAE codes a lone frame with its current-frame taps only, the
    weights every frame uses at the start: the spatial code at 2-D cost). ``video``: from ``state``, full
    ``vae_frames``-frame clips (the clip length sampled), ``vae_batch`` a step, a share ``P_STILL`` still
    (I4VGen's static video): the temporal taps and the temporal up/down-samplers learn the in-between
    frames. Each phase ends with the latent normalisation and the check (``check_vae``)."""
    torch.manual_seed(seed)
    vae = make_vae()
    if state is None:
        init_vae(vae, seed)
    else:
        vae.load_state_dict(state)
    video = phase == "video"
    lr = VAE_VIDEO_LR if video else VAE_LR
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed + (7 if video else 0))
    t0 = time.process_time()
    if video:
        steps = cfg["vae_video_steps"]
        batch = lambda step: V.sample(cfg["vae_batch"], g, frames=cfg["vae_frames"], p_still=P_STILL)  # noqa: E731
    else:
        steps = cfg["vae_image_steps"]
        batch = lambda step: V.sample(cfg["vae_image_batch"], g, frames=1)  # noqa: E731
    losses = _vae_loop(vae, opt, g, steps, batch, cfg["vae_crop"], seed, t0, lr=lr)
    cpu = time.process_time() - t0
    vae.eval()
    normalise_vae(vae, seed + 100)
    check = check_vae(vae, seed + 200)
    _log(f"vae {phase} phase done: cpu {cpu:.0f}s, {json.dumps(check)}")
    return {"state_dict": {k: v.detach().clone() for k, v in vae.state_dict().items()}, "cpu_s": cpu,
            "losses": losses, **check}


@torch.no_grad()
def normalise_vae(vae, seed: int, n: int = 32) -> None:
    """Rescale ``conv1`` (mean half) and ``conv2`` per latent channel so that Wan 2.1's
    ``process_latent_in`` gives mean 0, std 1 per channel on toy videos; the decoded videos are unchanged."""
    import comfy.latent_formats
    fmt = comfy.latent_formats.Wan21()
    mean_t, std_t = fmt.latents_mean.flatten(), fmt.latents_std.flatten()
    b = V.sample(n, torch.Generator().manual_seed(seed))
    z = torch.cat([vae.encode(to_vae(b.videos[i:i + 8])) for i in range(0, n, 8)])
    m, s = z.mean((0, 2, 3, 4)), z.std((0, 2, 3, 4))
    a = std_t / s                      # z' = a z + c has mean mean_t, std std_t
    c = mean_t - a * m
    w1, b1 = vae.conv1.weight, vae.conv1.bias          # [32, 32, 1, 1, 1]; the first 16 rows give mu
    w1[:16] *= a[:, None, None, None, None]
    b1[:16] = b1[:16] * a + c
    w2, b2 = vae.conv2.weight, vae.conv2.bias          # conv2(z) = W2 z + b2 with z = (z' - c) / a
    b2 -= (w2[:, :, 0, 0, 0] * (c / a)[None]).sum(1)
    w2 /= a[None, :, None, None, None]


@torch.no_grad()
def check_vae(vae, seed: int, n: int = 24) -> dict:
    """Round trip of fresh 17-frame videos: MAE, judge agreement per frame (and frame 0 alone), the motion
    check's measures (``toy_video.metrics.video_row``: reject rate, roughness per unit step, path length)
    of the reconstructions and of the rendered videos, latent stats in model space."""
    import comfy.latent_formats

    from benchmarks.toy_video import metrics as VM
    b = V.sample(n, torch.Generator().manual_seed(seed))
    z = torch.cat([vae.encode(to_vae(b.videos[i:i + 4])) for i in range(0, n, 4)])
    rec = torch.cat([from_vae(vae.decode(z[i:i + 4])) for i in range(0, n, 4)])
    lab = b.labels.repeat_interleave(b.videos.shape[1])
    judged = W.judge(rec.flatten(0, 1)).labels
    zin = comfy.latent_formats.Wan21().process_in(z)
    vae.train()
    first = W.judge(rec[:, 0]).labels == b.labels

    def motion(vids):
        rows = [VM.video_row(vids[i], int(b.labels[i])) for i in range(n)]
        mean = lambda k: float(torch.tensor([float(r[k]) for r in rows]).nanmean())  # noqa: E731
        return {"reject": mean("reject"), "rough": mean("rough"), "path": mean("path")}

    m_rec, m_ref = motion(rec), motion(b.videos)
    return {"recon_mae": float((rec - b.videos).abs().mean()), "recon_judge_acc": float((judged == lab).float().mean()),
            "recon_judge_acc_frame0": float(first.float().mean()),
            "recon_reject": m_rec["reject"], "recon_rough": m_rec["rough"], "recon_path": m_rec["path"],
            "data_rough": m_ref["rough"], "data_path": m_ref["path"],
            "latent_mean": float(zin.mean()), "latent_std": float(zin.std()), "latent_shape": list(z.shape[1:])}


# ------------------------------------------------------------------------------------ DiT
@torch.no_grad()
def encode_pool(vae, n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Model-space latents [n, 16, 5, 8, 8] of fresh moving videos (VAEEncode + process_latent_in)."""
    import comfy.latent_formats
    fmt = comfy.latent_formats.Wan21()
    g = torch.Generator().manual_seed(seed)
    lats, labs = [], []
    for i in range(0, n, 16):
        b = V.sample(min(16, n - i), g)
        lats.append(fmt.process_in(vae.encode(to_vae(b.videos))))
        labs.append(b.labels)
        if i % 256 == 0:
            _log(f"pool {i}/{n}")
    return torch.cat(lats), torch.cat(labs)


def train_dit(pool: torch.Tensor, labels: torch.Tensor, cond: dict, cfg: dict, seed: int = SEED + 3) -> dict:
    torch.manual_seed(seed)
    model = make_dit_model()
    dm = model.diffusion_model
    dm.requires_grad_(True)        # model_base turns gradients off for inference
    init_dit(dm, seed)
    ema = {k: v.detach().clone() for k, v in dm.state_dict().items()}
    opt = torch.optim.AdamW(dm.parameters(), lr=DIT_LR, weight_decay=0.01, betas=(0.9, 0.99))
    g = torch.Generator().manual_seed(seed)
    ctx_all = torch.cat([cond[c] for c in W.CAPTIONS])     # [12, T, 4096]
    empty = cond[""]
    steps, bs = cfg["dit_steps"], cfg["dit_batch"]
    t0 = time.process_time()
    losses = []
    dm.train()
    import comfy.model_management as mm
    in_training, mm.in_training = mm.in_training, True   # ComfyUI's own switch (its TrainLoraNode): the
    try:                                                  # differentiable RoPE instead of the fused kernel
        return _dit_loop(model, dm, ema, opt, g, ctx_all, empty, pool, labels, steps, bs, t0, losses)
    finally:
        mm.in_training = in_training


def _dit_loop(model, dm, ema, opt, g, ctx_all, empty, pool, labels, steps, bs, t0, losses) -> dict:
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = DIT_LR * _cosine(step, steps, 50)
        pick = torch.randint(0, len(pool), (bs,), generator=g)
        x0, lab = pool[pick], labels[pick]
        if float(torch.rand(1, generator=g)) < P_IMAGE:   # an image step: latent frame 0 alone is the
            x0 = x0[:, :, :1]                              # first picture (causal VAE), as Wan trains on images
        u = torch.rand(bs, generator=g)
        shifted = SHIFT * u / (1 + (SHIFT - 1) * u)
        sigma = torch.where(torch.rand(bs, generator=g) < 0.5, u, shifted).clamp(1e-3, 1.0)
        n = torch.randn(x0.shape, generator=g)
        s = sigma.view(-1, 1, 1, 1, 1)
        xt = (1 - s) * x0 + s * n
        ctx = ctx_all[lab].clone()
        ctx[torch.rand(bs, generator=g) < P_EMPTY] = empty
        den = model.apply_model(xt, sigma, c_crossattn=ctx)          # denoised = xt - sigma * v
        v = (xt - den) / s
        loss = (v - (n - x0)).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dm.parameters(), 1.0)
        opt.step()
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, val in dm.state_dict().items():
                ema[k].mul_(decay).add_(val.detach(), alpha=1 - decay)
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps - 1:
            _log(f"dit step {step} loss {sum(losses[-50:]) / len(losses[-50:]):.4f} "
                 f"lr {opt.param_groups[0]['lr']:.2e} cpu {time.process_time() - t0:.0f}s")
        if (step + 1) % 500 == 0:   # resumable snapshot
            torch.save({"state_dict": ema, "step": step + 1, "cpu_s": time.process_time() - t0},
                       cache_dir() / "dit_partial.pt")
    cpu = time.process_time() - t0
    return {"state_dict": ema, "cpu_s": cpu, "losses": losses}


# ------------------------------------------------------------------------------------ files
def dit_state_dict(dit_sd: dict) -> dict:
    return {k: v.detach().float().contiguous() for k, v in dit_sd.items()}


def write_files(d: Path, dit_sd: dict | None, vae_sd: dict) -> tuple[Path, Path]:
    import comfy.utils
    vae_path, dit_path = d / VAE_NAME, d / DIT_NAME
    comfy.utils.save_torch_file({k: v.contiguous() for k, v in vae_sd.items()}, str(vae_path))
    if dit_sd is not None:
        comfy.utils.save_torch_file(dit_state_dict(dit_sd), str(dit_path))
    return dit_path, vae_path


def untrained_files(d: Path, seed: int = SEED) -> tuple[Path, Path]:
    """The build's files with initial (untrained) weights in ``d``: what the loader test loads in seconds."""
    d.mkdir(parents=True, exist_ok=True)
    vae = make_vae()
    init_vae(vae, seed)
    dm = make_dit_model().diffusion_model
    init_dit(dm, seed)
    torch.save(conditioning(), d / "conditioning.pt")
    return write_files(d, dm.state_dict(), vae.state_dict())


def build(cfg_name: str = "full", force: bool = False) -> dict:
    from comfy_harness import boot
    boot()
    cfg = CONFIGS[cfg_name]
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    meta_path = d / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and not force else {}
    meta.update(config=cfg_name, cfg=cfg, threads=torch.get_num_threads(), seed=SEED, vae_dim=VAE_DIM, dit=DIT,
                tokens=TOKENS)
    if force or not (d / "conditioning.pt").exists():
        torch.save(conditioning(), d / "conditioning.pt")
    cond = torch.load(d / "conditioning.pt")
    checks = ("recon_mae", "recon_judge_acc", "recon_judge_acc_frame0", "recon_reject", "recon_rough", "recon_path",
              "data_rough", "data_path", "latent_mean", "latent_std")
    if force or not (d / "vae_image.pt").exists():
        _log("stage 1a: Wan 2.1 VAE, one-frame clips from the per-frame initialisation")
        r = train_vae(cfg, phase="image")
        torch.save(r, d / "vae_image.pt")
        meta.update(vae_image_cpu_s=r["cpu_s"], **{f"vae_image_{k}": r[k] for k in checks})
        meta_path.write_text(json.dumps(meta, indent=1))
    if force or not (d / "vae.pt").exists():
        _log(f"stage 1b: Wan 2.1 VAE, {cfg['vae_frames']}-frame clips")
        r = train_vae(cfg, phase="video", state=torch.load(d / "vae_image.pt")["state_dict"])
        torch.save(r, d / "vae.pt")
        meta.update(vae_video_cpu_s=r["cpu_s"], **{f"vae_{k}": r[k] for k in checks})
        meta_path.write_text(json.dumps(meta, indent=1))
    vae_r = torch.load(d / "vae.pt")
    vae = make_vae()
    vae.load_state_dict(vae_r["state_dict"])
    vae.eval()
    if force or not (d / "pool.pt").exists():
        _log("stage 2: latent pool")
        t0 = time.process_time()
        pool, labels = encode_pool(vae, cfg["pool"], SEED + 4)
        torch.save({"latents": pool, "labels": labels, "cpu_s": time.process_time() - t0}, d / "pool.pt")
        meta.update(pool_cpu_s=time.process_time() - t0, pool=cfg["pool"])
        meta_path.write_text(json.dumps(meta, indent=1))
    pool = torch.load(d / "pool.pt")
    if force or not (d / "dit.pt").exists():
        _log("stage 3: Wan 2.1 DiT")
        r = train_dit(pool["latents"], pool["labels"], cond, cfg)
        torch.save(r, d / "dit.pt")
        meta.update(dit_cpu_s=r["cpu_s"], dit_final_loss=sum(r["losses"][-100:]) / 100, dit_steps=cfg["dit_steps"],
                    dit_batch=cfg["dit_batch"])
        meta_path.write_text(json.dumps(meta, indent=1))
    dit_r = torch.load(d / "dit.pt")
    dit_path, vae_path = write_files(d, dit_r["state_dict"], vae_r["state_dict"])
    meta["train_cpu_min"] = round(sum(meta.get(k, 0) for k in ("vae_image_cpu_s", "vae_video_cpu_s", "pool_cpu_s", "dit_cpu_s")) / 60, 1)
    meta_path.write_text(json.dumps(meta, indent=1))
    _log(f"wrote {dit_path} and {vae_path}: {json.dumps(meta)}")
    return meta


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="rebuild every stage")
    ap.add_argument("--small", action="store_true", help="the smaller config (fewer steps)")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    build("small" if a.small else "full", force=a.force)


if __name__ == "__main__":
    main()
