"""Build the toy-world SD1.5 checkpoint (``toy_world_sd15.safetensors``) in the cache, if missing.

    python -m benchmarks.toy_world.build            # from the repository root; builds what is missing
    python -m benchmarks.toy_world.build --force    # rebuild everything

Cache: ``$TOY_WORLD_CACHE``, else ``~/.cache/training_free_video/toy_world/`` (never the repository).
Stages (each cached, so an interrupted build resumes):

1. ``embeddings.pt``: ComfyUI's SD1.5 CLIP-L (``sd1_clip.SD1ClipModel``) with fixed random weights
   (``checkpoints.init_random``, rounded to fp16 as stored); the 12 captions and the empty caption are
   encoded by loading a checkpoint with that text encoder through ComfyUI
   (``load_state_dict_guess_config`` + ``encode_from_tokens``): exactly what ``CLIPTextEncode`` gives.
2. ``ae.pt``: TAESD (``comfy.taesd.taesd.TAESD``, 8x down, 4 latent channels) trained as an
   autoencoder on the toy pictures; its ``vae_scale`` / ``vae_shift`` are then set so that ComfyUI's
   ``VAEEncode`` + SD1.5 ``process_latent_in`` (x 0.18215) give latents of mean 0, std 1.
3. ``unet.pt``: a one-level SD1.5 UNet (ComfyUI's ``SD15`` config: model_channels 320, context_dim
   768, conv proj_in; no middle block, one cross-attention transformer in and one out) trained with
   the SD1.5 schedule (1000 scaled-linear betas 0.00085..0.012, EPS loss, 10 % empty captions) on
   latents made exactly as ComfyUI makes them; weights are an EMA.
4. ``toy_world_sd15.safetensors`` via ``BaseModel.state_dict_for_saving`` (SD1.5 layout), then
   verified: ``CheckpointLoaderSimple`` loads it, ``CLIPTextEncode`` reproduces the embeddings,
   and KSampler (DDIM 50, CFG 7.5) + VAEDecode pictures are judged (``meta.json``).
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
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
if str(REPO / "tests" / "comfyui") not in sys.path:
    sys.path.insert(0, str(REPO / "tests" / "comfyui"))

from benchmarks.toy_world import world as W  # noqa: E402

CKPT_NAME = "toy_world_sd15.safetensors"
SEED = 20260
# UNet: the SD1.5 detector keys (model_channels 320, context_dim 768, conv proj_in) + one level.
TOY_UNET = {
    "context_dim": 768, "model_channels": 320, "use_linear_in_transformer": False,
    "adm_in_channels": None, "use_temporal_attention": False, "use_temporal_resblock": False,
    "use_spatial_transformer": True, "legacy": False, "in_channels": 4, "out_channels": 4,
    "image_size": 8, "num_heads": 8, "num_head_channels": -1,
    "num_res_blocks": [1], "channel_mult": [1],
    "transformer_depth": [1], "transformer_depth_output": [0, 1], "transformer_depth_middle": -2,
}
AE_STEPS, AE_BATCH, AE_LR, AE_CROP = 1200, 8, 1e-3, 48
UNET_STEPS, UNET_BATCH, UNET_LR, UNET_WARMUP = 1200, 16, 5e-4, 50
POOL = 2048             # pictures encoded once for the UNet's training
EMA_DECAY = 0.995
P_EMPTY = 0.10


def cache_dir() -> Path:
    return Path(os.environ.get("TOY_WORLD_CACHE") or Path.home() / ".cache" / "training_free_video" / "toy_world")


def checkpoint_path() -> Path:
    return cache_dir() / CKPT_NAME


def _log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ------------------------------------------------------------------------------------ models
def make_unet():
    import comfy.model_base
    import comfy.supported_models
    cfg = comfy.supported_models.SD15(dict(TOY_UNET))
    cfg.set_inference_dtype(torch.float32, None)
    return comfy.model_base.BaseModel(cfg, model_type=comfy.model_base.ModelType.EPS, device="cpu")


def init_unet(dm: torch.nn.Module, seed: int) -> None:
    """Random init (norm scales 1) with the layers that end a residual branch at zero (the usual
    diffusion-UNet init: each block starts as the identity)."""
    import checkpoints as ck
    ck.init_random(dm, seed)
    with torch.no_grad():
        for name, p in dm.named_parameters():
            if name.startswith("out.2.") or ".out_layers.3." in name or ".proj_out." in name:
                p.zero_()


def make_taesd():
    import comfy.taesd.taesd
    return comfy.taesd.taesd.TAESD(latent_channels=4)


def make_clip_sd(seed: int) -> dict:
    """SD1.5 CLIP-L with fixed random weights, rounded to fp16 (as stored), ``clip_l.*`` keys."""
    import checkpoints as ck
    import comfy.supported_models
    cfg = comfy.supported_models.SD15(dict(TOY_UNET))
    clip = cfg.clip_target().clip(device="cpu", dtype=torch.float32, model_options={})
    ck.init_random(clip, seed)
    sd = {k: (v.detach().half() if v.is_floating_point() and "position_ids" not in k else v.detach())
          for k, v in clip.state_dict().items()}
    del clip
    return sd


def checkpoint_state_dict(unet_sd: dict | None, clip_sd: dict, vae_sd: dict | None) -> dict:
    """The SD1.5-layout tensors (``model.diffusion_model.*``, ``cond_stage_model.*``,
    ``first_stage_model.*``); UNet and VAE fp32, text encoder fp16."""
    model = make_unet()
    if unet_sd is not None:
        model.diffusion_model.load_state_dict(unet_sd)
    if vae_sd is None:
        vae_sd = make_taesd().state_dict()
    import checkpoints as ck
    sd = ck.model_state_dict_for_saving(model, dict(clip_sd), dict(vae_sd))
    return {k: v.detach().contiguous() for k, v in sd.items()}


# ------------------------------------------------------------------------------------ stage 1
def build_embeddings(clip_seed: int = SEED + 1) -> dict:
    import comfy.sd
    clip_sd = make_clip_sd(clip_seed)
    sd = checkpoint_state_dict(None, clip_sd, None)
    _model, clip, _vae, _ = comfy.sd.load_state_dict_guess_config(sd, output_vae=False, output_clip=True)
    emb = {}
    for text in ("",) + W.CAPTIONS:
        cond = clip.encode_from_tokens(clip.tokenize(text), return_pooled=False)
        emb[text] = cond.float().cpu()
    return {"clip_sd": clip_sd, "embeddings": emb}


# ------------------------------------------------------------------------------------ stage 2
def _cosine(step: int, total: int, warmup: int, floor: float = 0.05) -> float:
    if step < warmup:
        return (step + 1) / warmup
    t = (step - warmup) / max(1, total - warmup)
    return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t))


def train_ae(seed: int = SEED + 2, steps: int = AE_STEPS) -> dict:
    import checkpoints as ck
    torch.manual_seed(seed)
    ae = make_taesd()
    ck.init_random(ae, seed)
    with torch.no_grad():  # each residual Block starts as the identity (last conv of its branch 0)
        for name, p in ae.named_parameters():
            if ".conv.4." in name:
                p.zero_()
    params = list(ae.taesd_encoder.parameters()) + list(ae.taesd_decoder.parameters())
    opt = torch.optim.AdamW(params, lr=AE_LR, weight_decay=0.0)
    g = torch.Generator().manual_seed(seed)
    t0 = time.process_time()
    losses = []
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = AE_LR * _cosine(step, steps, 30)
        x = W.sample(AE_BATCH, g).images
        # random 32x32 crops: the autoencoder is convolutional (bounded receptive field), so crops
        # teach it the same local code at a quarter of the cost of whole pictures
        oy, ox = (int(v) for v in torch.randint(0, W.SIZE - AE_CROP + 1, (2,), generator=g) // 8 * 8)
        x = x[:, :, oy:oy + AE_CROP, ox:ox + AE_CROP]
        with torch.autocast("cpu", dtype=torch.bfloat16):  # mixed precision: fp32 weights, 2x faster on CPU
            z = ae.taesd_encoder(x)
            # robust to small latent errors: noise at 5 % of the latent's own scale
            z = z + 0.05 * z.detach().float().std() * torch.randn(z.shape, generator=g)
            rec = ae.taesd_decoder(z).float()
        loss = (rec - x).abs().mean() + (rec - x).pow(2).mean() + 1e-4 * z.pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(float(loss.detach()))
        if step % 50 == 0 or step == steps - 1:
            _log(f"ae step {step} loss {sum(losses[-50:]) / len(losses[-50:]):.4f}")
    cpu = time.process_time() - t0
    ae.eval()
    with torch.no_grad():
        xs = W.sample(256, torch.Generator().manual_seed(seed + 100)).images
        e = ae.taesd_encoder(xs)
        # ComfyUI: VAEEncode -> TAESD.encode = encoder(x)/vae_scale + vae_shift; process_in x 0.18215
        scale = float(e.std()) * 0.18215
        shift = -float(e.mean()) / scale
        ae.vae_scale.fill_(scale)
        ae.vae_shift.fill_(shift)
        rec = ae.taesd_decoder(e).clamp(0, 1)
        acc = float((W.judge(rec).labels == W.judge(xs).labels).float().mean())
        mae = float((rec - xs).abs().mean())
    _log(f"ae done: cpu {cpu:.0f}s, recon MAE {mae:.4f}, judge agreement on reconstructions {acc:.3f}")
    return {"state_dict": {k: v.detach().clone() for k, v in ae.state_dict().items()},
            "cpu_s": cpu, "recon_mae": mae, "recon_judge_acc": acc, "losses": losses}


def encode_latents(ae, images: torch.Tensor) -> torch.Tensor:
    """Model-space latents of pictures [N, 3, 64, 64] in [0, 1], as ComfyUI's VAEEncode (TAESD,
    ``process_input`` x*2-1) followed by SD1.5 ``process_latent_in`` (x 0.18215) computes them."""
    import comfy.latent_formats
    return comfy.latent_formats.SD15().process_in(ae.encode(images * 2.0 - 1.0))


def decode_latents(ae, latents: torch.Tensor) -> torch.Tensor:
    """Inverse path: ``process_latent_out`` then TAESD decode and ComfyUI's ``process_output``."""
    import comfy.latent_formats
    x = ae.decode(comfy.latent_formats.SD15().process_out(latents))
    return ((x + 1) / 2).clamp(0, 1)


# ------------------------------------------------------------------------------------ stage 3
@torch.no_grad()
def ddim_sample(model, emb: dict, labels: torch.Tensor, cfg: float, steps: int, seed: int) -> torch.Tensor:
    """Deterministic DDIM (eta 0) with CFG in ComfyUI's sigma space, for training-time checks only
    (the benchmark samples with ComfyUI's KSampler)."""
    ms = model.model_sampling
    sig = ms.sigmas
    idx = torch.linspace(len(sig) - 1, 0, steps).round().long()
    sigmas = torch.cat([sig[idx], torch.zeros(1)])
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(len(labels), 4, 8, 8, generator=g) * sigmas[0]
    cond = torch.cat([emb[W.CAPTIONS[int(k)]] for k in labels])
    unc = emb[""].expand(len(labels), -1, -1)
    for i in range(steps):
        s = sigmas[i].expand(len(labels))
        den = model.apply_model(torch.cat([x, x]), torch.cat([s, s]), c_crossattn=torch.cat([cond, unc]))
        dc, du = den.chunk(2)
        d = du + cfg * (dc - du)
        eps = (x - d) / sigmas[i]
        x = d + eps * sigmas[i + 1]
    return x


def eval_model(model, ae, emb, cfg: float = 7.5, per_class: int = 4, seed: int = 7, steps: int = 50) -> float:
    labels = torch.arange(W.N_CLASSES).repeat_interleave(per_class)
    lat = ddim_sample(model, emb, labels, cfg, steps, seed)
    with torch.no_grad():
        img = decode_latents(ae, lat)
    return float((W.judge(img).labels == labels).float().mean())


def train_unet(ae_sd: dict, emb: dict, seed: int = SEED + 3, steps: int = UNET_STEPS,
               eval_every: int = 600) -> dict:
    torch.manual_seed(seed)
    ae = make_taesd()
    ae.load_state_dict(ae_sd)
    ae.eval().requires_grad_(False)
    model = make_unet()
    dm = model.diffusion_model
    init_unet(dm, seed)
    ema = {k: v.detach().clone() for k, v in dm.state_dict().items()}
    opt = torch.optim.AdamW(dm.parameters(), lr=UNET_LR, weight_decay=0.01, betas=(0.9, 0.99))
    acp = 1.0 / (1.0 + model.model_sampling.sigmas.float() ** 2)         # [1000] SD1.5 alphas_cumprod
    g = torch.Generator().manual_seed(seed)
    cond_all = torch.cat([emb[c] for c in W.CAPTIONS])                   # [12, 77, 768]
    empty = emb[""]
    t0 = time.process_time()
    w0 = time.time()
    # a fixed pool of pictures encoded once (fp32, exactly ComfyUI's VAEEncode path); every step draws
    # fresh pictures from it with fresh timesteps and noise
    pool_lat, pool_lab = [], []
    with torch.no_grad():
        for _ in range(POOL // 128):
            b = W.sample(128, g)
            pool_lat.append(encode_latents(ae, b.images))
            pool_lab.append(b.labels)
    pool_lat, pool_lab = torch.cat(pool_lat), torch.cat(pool_lab)
    _log(f"latent pool {tuple(pool_lat.shape)}: mean {float(pool_lat.mean()):.3f} std {float(pool_lat.std()):.3f}, "
         f"cpu {time.process_time() - t0:.0f}s")
    losses, evals = [], []
    dm.train()
    for step in range(steps):
        for group in opt.param_groups:
            group["lr"] = UNET_LR * _cosine(step, steps, UNET_WARMUP)
        pick = torch.randint(0, len(pool_lat), (UNET_BATCH,), generator=g)
        x0, labels = pool_lat[pick], pool_lab[pick]
        t = torch.randint(0, 1000, (UNET_BATCH,), generator=g)
        eps = torch.randn(x0.shape, generator=g)
        a = acp[t].view(-1, 1, 1, 1)
        xt = a.sqrt() * x0 + (1 - a).sqrt() * eps
        ctx = cond_all[labels].clone()
        drop = torch.rand(UNET_BATCH, generator=g) < P_EMPTY
        ctx[drop] = empty
        with torch.autocast("cpu", dtype=torch.bfloat16):
            pred = dm(xt, t.float(), context=ctx)
        loss = (pred.float() - eps).pow(2).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(dm.parameters(), 1.0)
        opt.step()
        decay = min(EMA_DECAY, (1 + step) / (10 + step))
        with torch.no_grad():
            for k, v in dm.state_dict().items():
                ema[k].mul_(decay).add_(v.detach(), alpha=1 - decay) if v.is_floating_point() else ema[k].copy_(v)
        losses.append(float(loss.detach()))
        if step % 25 == 0 or step == steps - 1:
            _log(f"unet step {step} loss {sum(losses[-25:]) / len(losses[-25:]):.4f} "
                 f"lr {opt.param_groups[0]['lr']:.2e} cpu {time.process_time() - t0:.0f}s wall {time.time() - w0:.0f}s")
        if (step + 1) % eval_every == 0 and step + 1 < steps:
            live = {k: v.detach().clone() for k, v in dm.state_dict().items()}
            dm.load_state_dict(ema)
            dm.eval()
            acc = eval_model(model, ae, emb, per_class=2)
            dm.load_state_dict(live)
            dm.train()
            evals.append((step + 1, acc))
            _log(f"unet step {step + 1}: EMA DDIM-50 CFG 7.5 judge accuracy {acc:.3f} (24 samples)")
    cpu = time.process_time() - t0
    dm.load_state_dict(ema)
    dm.eval()
    acc = eval_model(model, ae, emb, per_class=4)
    evals.append((steps, acc))
    _log(f"unet done: cpu {cpu:.0f}s wall {time.time() - w0:.0f}s; EMA judge accuracy {acc:.3f} (48 samples)")
    return {"state_dict": ema, "cpu_s": cpu, "wall_s": time.time() - w0, "losses": losses, "evals": evals}


# ------------------------------------------------------------------------------------ stage 4
def verify_in_comfyui(path: Path, emb: dict, per_class: int = 4, seed: int = 0) -> dict:
    """Load the checkpoint with CheckpointLoaderSimple and sample with CLIPTextEncode + KSampler
    (DDIM 50, ddim_uniform, CFG 7.5) + VAEDecode; judge the pictures. The 12 prompts x ``per_class``
    pictures are one batch with one prompt per latent (a batched CONDITIONING)."""
    import checkpoints as ck
    import nodes
    with ck.registered_folder("checkpoints", path.parent):
        model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(path.name)[:3]
    max_emb_err = 0.0
    conds = []
    for text in ("",) + W.CAPTIONS:
        c = nodes.CLIPTextEncode().encode(clip, text)[0]
        conds.append(c)
        max_emb_err = max(max_emb_err, float((c[0][0].float() - emb[text]).abs().max()))
    labels = torch.arange(W.N_CLASSES).repeat(per_class)
    pos = [[torch.cat([conds[1 + int(k)][0][0] for k in labels]),
            {"pooled_output": torch.cat([conds[1 + int(k)][0][1]["pooled_output"] for k in labels])}]]
    neg = conds[0]
    lat = nodes.EmptyLatentImage().generate(64, 64, len(labels))[0]
    out = nodes.KSampler().sample(model, seed, 50, 7.5, "ddim", "ddim_uniform", pos, neg, lat)[0]
    v = W.judge(nodes.VAEDecode().decode(vae, out)[0])
    acc = float((v.labels == labels).float().mean())
    return {"comfyui_plain_accuracy": acc, "comfyui_samples": len(labels), "max_embedding_error": max_emb_err}


def build(force: bool = False, verify: bool = True) -> Path:
    from comfy_harness import boot
    boot()
    import comfy.utils
    d = cache_dir()
    d.mkdir(parents=True, exist_ok=True)
    meta_path = d / "meta.json"
    meta = json.loads(meta_path.read_text()) if meta_path.exists() and not force else {}
    meta["threads"] = torch.get_num_threads()
    if force or not (d / "embeddings.pt").exists():
        _log("stage 1: text embeddings")
        torch.save(build_embeddings(), d / "embeddings.pt")
    st1 = torch.load(d / "embeddings.pt")
    emb = st1["embeddings"]
    if force or not (d / "ae.pt").exists():
        _log("stage 2: TAESD autoencoder")
        r = train_ae()
        torch.save(r, d / "ae.pt")
        meta.update(ae_cpu_s=r["cpu_s"], ae_recon_mae=r["recon_mae"], ae_recon_judge_acc=r["recon_judge_acc"])
        meta_path.write_text(json.dumps(meta, indent=1))
    ae = torch.load(d / "ae.pt")
    if force or not (d / "unet.pt").exists():
        _log("stage 3: UNet")
        r = train_unet(ae["state_dict"], emb)
        torch.save(r, d / "unet.pt")
        meta.update(unet_cpu_s=r["cpu_s"], unet_wall_s=r["wall_s"], unet_evals=r["evals"],
                    unet_final_loss=sum(r["losses"][-50:]) / 50)
        meta_path.write_text(json.dumps(meta, indent=1))
    unet = torch.load(d / "unet.pt")
    path = checkpoint_path()
    if force or not path.exists():
        _log("stage 4: checkpoint")
        sd = checkpoint_state_dict(unet["state_dict"], st1["clip_sd"], ae["state_dict"])
        tmp = path.with_suffix(".tmp")
        comfy.utils.save_torch_file(sd, str(tmp), metadata={"format": "pt", "note": "toy-world SD1.5 (benchmarks/toy_world)"})
        tmp.replace(path)
        meta["judge"] = W.judge_accuracy(1200)
        if verify:
            meta.update(verify_in_comfyui(path, emb))
        meta_path.write_text(json.dumps(meta, indent=1))
        _log(f"wrote {path}: {json.dumps({k: v for k, v in meta.items() if k != 'unet_evals'})}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--force", action="store_true", help="rebuild every stage")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-verify", action="store_true")
    ap.add_argument("--verify-only", action="store_true",
                    help="judge accuracy + ComfyUI verification of the cached checkpoint, into meta.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    if a.verify_only:
        from comfy_harness import boot
        boot()
        meta_path = cache_dir() / "meta.json"
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        meta["judge"] = W.judge_accuracy(1200)
        meta.update(verify_in_comfyui(checkpoint_path(), torch.load(cache_dir() / "embeddings.pt")["embeddings"]))
        meta_path.write_text(json.dumps(meta, indent=1))
        print(json.dumps({k: v for k, v in meta.items() if k != "unet_evals"}, indent=1))
        return
    print(build(force=a.force, verify=not a.no_verify))


if __name__ == "__main__":
    main()
