"""SD1.5-format ``.safetensors`` checkpoints with random weights, written through ComfyUI's own model
classes so that ``CheckpointLoaderSimple`` recognises and loads them as SD1.5 (docs/comfyui.md, Models
for tests).

* ``size="tiny"`` (tests): a one-level UNet with the SD1.5 shapes the detector keys on
  (``model_channels`` 320, ``context_dim`` 768, conv ``proj_in``), the FULL-size CLIP-L text encoder
  (so ``CLIPTextEncode`` runs the real tokenizer and text model) and a TAESD VAE
  (``first_stage_model.taesd_*`` keys). About 290 MB in fp16; a step on 8 frames at 64 px takes
  well under a second on CPU.
* ``size="full"`` (the end-to-end run): the real SD1.5 UNet (860 M parameters), CLIP-L and the SD
  VAE (AutoencoderKL, 84 M): a 2.1 GB fp16 file indistinguishable in layout from
  ``v1-5-pruned-emaonly.safetensors`` except for its random weights.

Needs ComfyUI imported (``comfy_harness.boot()`` or the ComfyUI process itself). Never write these
files into the repository.
"""
from __future__ import annotations

import contextlib
from pathlib import Path

import torch

# UNet configs as ComfyUI's SD15 model config expects them (comfy/supported_models.py SD15 +
# comfy/model_detection.py for the depth lists).
_SD15_COMMON = {
    "context_dim": 768, "model_channels": 320, "use_linear_in_transformer": False,
    "adm_in_channels": None, "use_temporal_attention": False, "use_temporal_resblock": False,
    "use_spatial_transformer": True, "legacy": False, "in_channels": 4, "out_channels": 4,
    "image_size": 32, "num_heads": 8, "num_head_channels": -1,
}
SD15_UNET_FULL = dict(_SD15_COMMON, **{
    "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4],
    "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "transformer_depth_middle": 1,
})
SD15_UNET_TINY = dict(_SD15_COMMON, **{
    "num_res_blocks": [1], "channel_mult": [1],
    "transformer_depth": [1], "transformer_depth_output": [1, 1],
    "transformer_depth_middle": 1,
})
SD_VAE_DDCONFIG = {"double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3,
                   "ch": 128, "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [],
                   "dropout": 0.0}


def init_random(module: torch.nn.Module, seed: int) -> None:
    """Deterministic random weights for modules built with ComfyUI's ops (which skip init):
    norm scales 1 and biases 0, other vectors 0, matrices/kernels N(0, 1/fan_in)."""
    g = torch.Generator().manual_seed(seed)
    norm_types = (torch.nn.GroupNorm, torch.nn.LayerNorm)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 0:
                p.fill_(1.0)
            elif p.ndim == 1:
                lname = name.lower()
                is_norm_scale = name.endswith(("weight", "gamma")) and any(
                    k in lname for k in ("norm", "ln_", ".ln", "in_layers.0", "out_layers.0", "out.0"))
                p.fill_(1.0) if is_norm_scale else p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype) / p[0].numel() ** 0.5)
        for mod in module.modules():
            if isinstance(mod, norm_types):
                if getattr(mod, "weight", None) is not None:
                    mod.weight.fill_(1.0)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()


def _sd15_model(size: str, variant: str = "sd15"):
    """ComfyUI's SD1.5 model (``variant="sd15"``) or SD1.5 InstructPix2Pix model (``"ip2p"``: the UNet
    takes 8 input channels, noise + the concatenated image latent, as ``instruct-pix2pix-00-22000``;
    ComfyUI's detector picks ``SD15_instructpix2pix`` by ``in_channels`` 8), float32 on the CPU."""
    import comfy.model_base
    import comfy.supported_models
    if size not in ("tiny", "full"):
        raise ValueError(f"size must be 'tiny' or 'full', got {size!r}")
    unet = dict(SD15_UNET_TINY if size == "tiny" else SD15_UNET_FULL)
    if variant == "sd15":
        cfg = comfy.supported_models.SD15(unet)
    elif variant == "ip2p":
        unet["in_channels"] = 8
        cfg = comfy.supported_models.SD15_instructpix2pix(unet)
    else:
        raise ValueError(f"variant must be 'sd15' or 'ip2p', got {variant!r}")
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    if variant == "ip2p":
        assert isinstance(model, comfy.model_base.SD15_instructpix2pix)
    return cfg, model


def model_state_dict_for_saving(model, clip_sd: dict | None = None, vae_sd: dict | None = None) -> dict:
    """``BaseModel.state_dict_for_saving`` of ``model`` (a ``comfy.model_base.BaseModel``) with the
    text encoder and VAE state dicts: the checkpoint layout (``model.diffusion_model.*``,
    ``cond_stage_model.*``, ``first_stage_model.*``). Where the method takes the UNet state dict
    first (ComfyUI 0.33.0; ``ModelPatcher.state_dict_for_saving`` passes it), the UNet's own
    ``state_dict()`` is passed (plain float weights: nothing to cast)."""
    import inspect
    params = list(inspect.signature(model.state_dict_for_saving).parameters)
    if params and params[0] == "unet_state_dict":
        return model.state_dict_for_saving(model.diffusion_model.state_dict(), clip_state_dict=clip_sd,
                                           vae_state_dict=vae_sd)
    return model.state_dict_for_saving(clip_state_dict=clip_sd, vae_state_dict=vae_sd)


def sd15_state_dict(size: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float16,
                    variant: str = "sd15") -> dict:
    """The checkpoint's tensors (``model.diffusion_model.*``, ``cond_stage_model.*``,
    ``first_stage_model.*``) in the SD1.5 checkpoint layout, via ComfyUI's ``state_dict_for_saving``.
    ``variant="ip2p"``: an InstructPix2Pix SD1.5 checkpoint (8 UNet input channels)."""
    cfg, model = _sd15_model(size, variant)
    init_random(model.diffusion_model, seed)

    clip_target = cfg.clip_target()
    clip = clip_target.clip(device="cpu", dtype=torch.float32, model_options={})
    init_random(clip, seed + 1)
    clip_sd = clip.state_dict()

    if size == "tiny":
        import comfy.taesd.taesd
        vae = comfy.taesd.taesd.TAESD(latent_channels=4)
    else:
        from comfy.ldm.models.autoencoder import AutoencoderKL
        vae = AutoencoderKL(ddconfig=dict(SD_VAE_DDCONFIG), embed_dim=4)
    init_random(vae, seed + 2)
    vae_sd = vae.state_dict()

    sd = model_state_dict_for_saving(model, clip_sd, vae_sd)
    out = {}
    for k, t in sd.items():
        t = t.detach()
        if t.is_floating_point() and "position_ids" not in k:
            t = t.to(dtype)
        out[k] = t.contiguous()
    del model, clip, vae
    return out


def write_sd15_checkpoint(path, size: str = "tiny", seed: int = 0, dtype: torch.dtype = torch.float16,
                          variant: str = "sd15") -> Path:
    """Write an SD1.5-format checkpoint with random weights to ``path`` (parent folders created);
    ``variant="ip2p"``: the InstructPix2Pix SD1.5 format (8 UNet input channels)."""
    import comfy.utils
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sd = sd15_state_dict(size, seed, dtype, variant)
    comfy.utils.save_torch_file(sd, str(path), metadata={"format": "pt",
                                                         "note": f"random {size} {variant} SD1.5 test weights"})
    return path


def sd15_lora_state_dict(size: str = "tiny", rank: int = 4, seed: int = 0, dtype: torch.dtype = torch.float16,
                         scale: float = 1.0) -> dict:
    """A LoRA in the common kohya ``.safetensors`` layout for the SD1.5 checkpoint of ``size``:
    ``lora_unet_<diffusers name>.lora_down.weight [rank, in]`` / ``.lora_up.weight [out, rank]`` /
    ``.alpha`` on every linear layer of the UNet's transformer blocks (attn1/attn2 q, k, v, out and
    the feed-forward), and ``lora_te_text_model_encoder_layers_<i>_self_attn_<q|k|v|out>_proj`` on the
    12 CLIP-L layers. The key names are the ones ComfyUI's ``comfy.lora`` maps for this UNet config;
    random weights (alpha = rank) give each patched layer a change of about ``scale`` times its own
    weight's size, so the LoRA visibly changes the model."""
    import comfy.lora
    _, model = _sd15_model(size)
    sd = model.state_dict()
    g = torch.Generator().manual_seed(seed + 7)
    out = {}

    def add(name: str, weight_shape):
        o, i = int(weight_shape[0]), int(weight_shape[1])
        down = torch.randn(rank, i, generator=g) / i ** 0.5
        up = torch.randn(o, rank, generator=g) * (scale / rank ** 0.5)
        out[f"{name}.lora_down.weight"] = down.to(dtype).contiguous()
        out[f"{name}.lora_up.weight"] = up.to(dtype).contiguous()
        out[f"{name}.alpha"] = torch.tensor(float(rank), dtype=dtype)

    for lora_key, unet_key in sorted(comfy.lora.model_lora_keys_unet(model, {}).items()):
        if not lora_key.startswith(("lora_unet_down_blocks", "lora_unet_mid_block", "lora_unet_up_blocks")):
            continue
        if "transformer_blocks" not in lora_key or not unet_key.endswith(".weight") or sd[unet_key].ndim != 2:
            continue
        add(lora_key, sd[unet_key].shape)
    for layer in range(12):
        for proj in ("q", "k", "v", "out"):
            add(f"lora_te_text_model_encoder_layers_{layer}_self_attn_{proj}_proj", (768, 768))
    del model
    return out


def write_sd15_lora(path, size: str = "tiny", rank: int = 4, seed: int = 0) -> Path:
    """Write ``sd15_lora_state_dict`` to ``path`` (loads through ``LoraLoader``)."""
    import comfy.utils
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comfy.utils.save_torch_file(sd15_lora_state_dict(size, rank, seed), str(path))
    return path


@contextlib.contextmanager
def registered_folder(folder_name: str, directory):
    """Temporarily add ``directory`` to ComfyUI's ``folder_paths`` search list for ``folder_name``
    (e.g. "checkpoints", "controlnet"), so loaders list and find files in it."""
    import folder_paths
    directory = str(directory)
    folder_paths.add_model_folder_path(folder_name, directory)
    try:
        yield directory
    finally:
        paths, exts = folder_paths.folder_names_and_paths[folder_name]
        if directory in paths:
            paths.remove(directory)
        folder_paths.filename_list_cache.pop(folder_name, None)


def controlnet_state_dict(seed: int = 0, dtype: torch.dtype = torch.float16, size: str = "tiny") -> dict:
    """An SD1.5 ControlNet (``control_model.*`` keys, the original .pth layout) with random weights
    (zero convs random too, so the control visibly changes the result) matching the UNet of
    ``sd15_state_dict(size)``; ``hint_channels`` 3 (an RGB control image)."""
    import comfy.cldm.cldm
    cfg = dict(SD15_UNET_TINY if size == "tiny" else SD15_UNET_FULL)
    cfg.pop("out_channels")
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=torch.float32, device="cpu", **cfg)
    init_random(net, seed + 3)
    return {f"control_model.{k}": (v.detach().to(dtype) if v.is_floating_point() else v.detach()).contiguous()
            for k, v in net.state_dict().items()}


def write_controlnet(path, seed: int = 0, dtype: torch.dtype = torch.float16, size: str = "tiny") -> Path:
    """Write ``controlnet_state_dict`` to ``path`` (loads through ``ControlNetLoader``)."""
    import comfy.utils
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    comfy.utils.save_torch_file(controlnet_state_dict(seed, dtype, size), str(path))
    return path
