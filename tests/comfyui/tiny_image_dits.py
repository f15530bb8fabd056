"""Tiny random-weight DiT image models of the real ComfyUI classes for the TMA family tests: HiDream
(I1 / E1), Lumina 2 and Z-Image (NextDiT), Krea 2, Flux 2 (and Klein) and Qwen-Image (2512 has
Qwen-Image's architecture). Each builder returns a ModelPatcher on the CPU (float32, every norm
scale at 1, ``comfy_harness._init_dit_weights``); each ``*_conds`` returns ``(positive, negative)``
ComfyUI conditioning. Families missing from the tested ComfyUI raise :class:`Missing` with the
reason (detect the feature, never the version): tests skip with it.
"""
from __future__ import annotations

import torch

from comfy_harness import _init_dit_weights


class Missing(Exception):
    """The tested ComfyUI has no such model family (the message says what is absent)."""


def _patcher(model):
    import comfy.model_patcher
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def _build(config_name: str, unet_config: dict, seed: int, init=None):
    import comfy.supported_models
    cls = getattr(comfy.supported_models, config_name, None)
    if cls is None:
        raise Missing(f"this ComfyUI has no comfy.supported_models.{config_name}")
    cfg = cls(dict(unet_config))
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    _init_dit_weights(model.diffusion_model, seed)
    if init is not None:
        init(model.diffusion_model, seed)
    return _patcher(model)


def _randn(g, *shape):
    return torch.randn(*shape, generator=g)


# --------------------------------------------------------------------------- HiDream (I1, E1)

TINY_HIDREAM = {"image_model": "hidream", "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": 1,
                "num_single_layers": 1, "attention_head_dim": 16, "num_attention_heads": 2,
                "caption_channels": [12, 10], "text_emb_dim": 8, "num_routed_experts": 2,
                "num_activated_experts": 1, "axes_dims_rope": [4, 6, 6], "max_resolution": [16, 16],
                "llama_layers": [0, 1]}


def tiny_hidream(seed: int = 0):
    """HiDream I1's architecture (``comfy.supported_models.HiDream``: 1 double-stream and 1 single-stream
    block, hidden 32, 2 heads, MoE of 2 experts); E1 is the same model with ``concat_latent_image``."""
    return _build("HiDream", TINY_HIDREAM, seed)


def hidream_conds(seed: int = 0, t5_tokens: int = 5, llama_tokens: int = 4, image_cond=None):
    """(positive, negative): T5 ``[1, t5_tokens, 12]``, Llama ``[1, 2 layers, llama_tokens, 10]``, pooled
    ``[1, 8]``; with ``image_cond`` (a latent) as ``concat_latent_image`` in both (HiDream E1 edit)."""
    g = torch.Generator().manual_seed(seed)

    def one():
        d = {"pooled_output": _randn(g, 1, 8), "conditioning_llama3": _randn(g, 1, 2, llama_tokens, 10)}
        if image_cond is not None:
            d["concat_latent_image"] = image_cond
        return [[_randn(g, 1, t5_tokens, 12), d]]

    return one(), one()


# --------------------------------------------------------------------------- Lumina 2 / Z-Image (NextDiT)

TINY_LUMINA2 = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 32, "n_layers": 2,
                "n_refiner_layers": 1, "n_heads": 2, "n_kv_heads": 2, "multiple_of": 16,
                "ffn_dim_multiplier": 1.0, "norm_eps": 1e-5, "qk_norm": True, "cap_feat_dim": 12,
                "axes_dims": [4, 6, 6], "axes_lens": [64, 32, 32]}


def _nextdit_pad_tokens(dm, seed):
    g = torch.Generator().manual_seed(seed + 7)
    with torch.no_grad():
        for name in ("x_pad_token", "cap_pad_token", "siglip_pad_token"):
            p = getattr(dm, name, None)
            if p is not None:
                p.copy_(torch.randn(p.shape, generator=g))


def tiny_lumina2(seed: int = 0):
    """Lumina 2's architecture (``comfy.supported_models.Lumina2``, NextDiT: 1 context-refiner, 1
    noise-refiner and 2 main layers, hidden 32, 2 heads, caption features 12)."""
    return _build("Lumina2", TINY_LUMINA2, seed)


def tiny_z_image(seed: int = 0):
    """Z-Image's architecture (``comfy.supported_models.ZImage``: NextDiT with Z-Image's modulation,
    ``pad_tokens_multiple`` 32 for caption and image tokens, time scale 1000), layers as
    :func:`tiny_lumina2` at hidden 256 (2 heads of 128). Raises :class:`Missing` on a ComfyUI without Z-Image."""
    import comfy.supported_models
    if not hasattr(comfy.supported_models, "ZImage"):
        raise Missing("this ComfyUI has no comfy.supported_models.ZImage (Z-Image)")
    # Z-Image's time embedding is 256 wide and feeds min(dim, 256) modulation inputs: dim >= 256.
    cfg = dict(TINY_LUMINA2, dim=256, axes_dims=[32, 48, 48], z_image_modulation=True, time_scale=1000.0,
               pad_tokens_multiple=32)
    return _build("ZImage", cfg, seed, init=_nextdit_pad_tokens)


def lumina2_conds(seed: int = 0, tokens: int = 6, neg_tokens: int | None = None, reference_latent=None):
    """(positive, negative): caption features ``[1, tokens, 12]`` (the negative ``neg_tokens`` long)
    with an all-ones ``attention_mask`` as ComfyUI's Lumina 2 / Z-Image text encoders give (no
    padding); with ``reference_latent`` both carry it as ``reference_latents`` (Z-Image Omni, 0.33.x)."""
    g = torch.Generator().manual_seed(seed)

    def one(n):
        d = {"attention_mask": torch.ones(1, n, dtype=torch.long)}
        if reference_latent is not None:
            d["reference_latents"] = [reference_latent]
        return [[_randn(g, 1, n, 12), d]]

    return one(tokens), one(tokens if neg_tokens is None else neg_tokens)


# --------------------------------------------------------------------------- Krea 2

TINY_KREA2 = {"image_model": "krea2", "features": 64, "tdim": 32, "txtdim": 16, "heads": 4, "kvheads": 2,
              "multiplier": 2, "layers": 2, "patch": 2, "channels": 16, "txtlayers": 3, "txtheads": 2,
              "txtkvheads": 2}


def _krea2_rms_zero_centered(dm, seed):
    # Krea 2's RMSNorm weight is (1 + scale): scale 0 is the unit norm (the harness set it to 1).
    with torch.no_grad():
        for name, p in dm.named_parameters():
            if name.endswith(".scale") or name.endswith("qnorm.scale") or name.endswith("knorm.scale"):
                p.zero_()


def tiny_krea2(seed: int = 0):
    """Krea 2's architecture (``comfy.supported_models.Krea2``, ``comfy.ldm.krea2`` SingleStreamDiT: 2
    single-stream blocks, hidden 64, 4 query heads / 2 KV heads, a text-fusion adapter over 3 text
    layers of dim 16). Raises :class:`Missing` on a ComfyUI without Krea 2."""
    return _build("Krea2", TINY_KREA2, seed, init=_krea2_rms_zero_centered)


def krea2_conds(seed: int = 0, tokens: int = 6):
    """(positive, negative): ``[1, tokens, 3 * 16]`` (the stacked text layers Krea 2 expects)."""
    g = torch.Generator().manual_seed(seed)
    return tuple([[_randn(g, 1, tokens, TINY_KREA2["txtlayers"] * TINY_KREA2["txtdim"]), {}]] for _ in range(2))


# --------------------------------------------------------------------------- Flux 2 (and Klein)

def tiny_flux2(seed: int = 0, klein: bool = False):
    """Flux 2's architecture (``comfy.supported_models.Flux2``: the Flux class with global modulation,
    SiLU MLP, no biases, patch 1 over 128 latent channels, text position ids on axis 3, reference
    images by index): 1 double and 1 single block, hidden 64, 2 heads. ``klein``: without the guidance
    embedding (the Klein templates use CFGGuider, no FluxGuidance). Raises :class:`Missing` without Flux 2."""
    import dataclasses
    import comfy.ldm.flux.model
    import comfy.supported_models
    if not hasattr(comfy.supported_models, "Flux2"):
        raise Missing("this ComfyUI has no comfy.supported_models.Flux2 (Flux 2)")
    fields = {f.name for f in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}
    cfg = {"image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None, "context_in_dim": 12,
           "hidden_size": 64, "mlp_ratio": 3.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1,
           "axes_dim": [8, 8, 8, 8], "theta": 2000, "patch_size": 1, "qkv_bias": False,
           "guidance_embed": not klein, "txt_ids_dims": [3], "global_modulation": True, "mlp_silu_act": True,
           "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0}
    cfg = {k: v for k, v in cfg.items() if k in fields or k == "image_model"}
    return _build("Flux2", cfg, seed)


def flux2_conds(seed: int = 0, tokens: int = 6, guidance: float | None = 4.0, reference_latent=None):
    """(positive, negative): text ``[1, tokens, 12]`` (ComfyUI's Flux 2 pads it to 512 tokens) with
    FluxGuidance's ``guidance``; with ``reference_latent`` (``[1, 128, h, w]``) as ``reference_latents``
    (Flux 2 / Klein image edit)."""
    g = torch.Generator().manual_seed(seed)

    def one():
        d = {} if guidance is None else {"guidance": guidance}
        if reference_latent is not None:
            d["reference_latents"] = [reference_latent]
        return [[_randn(g, 1, tokens, 12), d]]

    return one(), one()


def tiny_z_image_pixel(seed: int = 0):
    """Z-Image's pixel-space variant (``comfy.supported_models.ZImagePixelSpace``: NextDiTPixelSpace,
    the Z-Image backbone of :func:`tiny_z_image` on RGB patches of 8 pixels with a small MLP decoder).
    Its latent is the picture ``[B, 3, H, W]``. Raises :class:`Missing` without it."""
    import comfy.supported_models
    if not hasattr(comfy.supported_models, "ZImagePixelSpace"):
        raise Missing("this ComfyUI has no comfy.supported_models.ZImagePixelSpace (Z-Image pixel space)")
    cfg = dict(TINY_LUMINA2, image_model="zimage_pixel", patch_size=8, in_channels=3, dim=256,
               axes_dims=[32, 48, 48], z_image_modulation=True, time_scale=1000.0, pad_tokens_multiple=32,
               decoder_hidden_size=32, decoder_num_res_blocks=1, decoder_max_freqs=4, decoder_in_channels=192)
    return _build("ZImagePixelSpace", cfg, seed, init=_nextdit_pad_tokens)
