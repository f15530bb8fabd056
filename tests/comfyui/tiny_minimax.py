"""Tiny MiniMax H3 VAEs of ComfyUI's real classes and a test text-encoder stand-in (ComfyUI 0.33.0+).

``comfy.sd.VAE`` detects MiniMax H3's VAEs from state-dict keys but builds them at their fixed full size
(``MiniMaxH3VideoVAE()``: 2,604 M parameters, its ``ViT3DDecoder`` is 36 layers x 32 heads x 64 whatever
the weights; ``MiniMaxH3AudioVAE()``: 151 M). So the wrapper is built by ComfyUI's own detection on the
``meta`` device (no memory: sd.py sets the MiniMax H3 latent channels, latent dims, 17k+5 <-> 5k+2 frame
formulas, 16x spatial, 800 samples a latent, dtypes), then its ``first_stage_model`` is replaced by a
tiny instance of the SAME class (real encoder/decoder code, tiny widths) with random weights:

- video: ``MiniMaxH3VideoVAE(ch=32, ch_mult=(1, 1, 1, 1, 1, 1))`` (same 16x spatial / 4x temporal
  downsampling, clip length, tiling) with a ``ViT3DDecoder`` of 1 layer x 2 heads x 16; the real
  latent normalisation constants (``LATENTS_MEAN``/``STD``) and ImageNet pixel statistics;
- audio: ``MiniMaxH3AudioVAE(encoder_dim=4, latent_dim=32, decoder_dim=256)`` (same 800-sample hop,
  32 latent channels, stereo, 32 kHz), latent mean 0 / std 1.

Text: MiniMax H3's text encoder (Qwen3-VL 32B, with the images in the prompt) runs INSIDE
``MiniMaxH3ImageToVideo`` / ``MiniMaxH3ReferenceToVideo`` (``clip.tokenize`` + ``encode_from_tokens_scheduled``).
:class:`TestMiniMaxTextEncoder` is handed to those real nodes as their ``clip``: it returns random text
embeddings ``[1, 8, 32]`` (the tiny DiT's text_dim, as the Wan tests' random conditioning replaces
CLIPTextEncode), so everything else the nodes do (latent, keyframe / reference VAE encodes) is ComfyUI's.
"""
from __future__ import annotations

import torch

import tiny_av

_CACHE: dict = {}


def _wrap(detect_sd_keys: dict, tiny: torch.nn.Module):
    """``comfy.sd.VAE`` built by ComfyUI's detection on meta tensors, then given ``tiny`` (same class)."""
    import comfy.sd
    with torch.device("meta"):
        vae = comfy.sd.VAE(sd=detect_sd_keys)
    assert type(vae.first_stage_model) is type(tiny), (type(vae.first_stage_model), type(tiny))
    vae.first_stage_model = tiny.eval().to(vae.vae_dtype)
    vae.patcher = type(vae.patcher)(vae.first_stage_model, load_device=vae.device,
                                    offload_device=vae.patcher.offload_device)
    vae.size = None
    vae.model_size()
    vae.throw_exception_if_invalid()
    return vae


def _meta_keys(cls, keys) -> dict:
    with torch.device("meta"):
        sd = cls().state_dict()
    return {k: sd[k] for k in keys}


def minimax_h3_video_vae(seed: int = 5):
    """The real MiniMax H3 video VAE class at a tiny width in ComfyUI's ``comfy.sd.VAE`` wrapper:
    image ``[F, H, W, 3]`` (F = 1 or 17k+5, H, W multiples of 16) <-> latent ``[1, 24, 5k+2, H/16, W/16]``.
    Built once per session."""
    if "video" not in _CACHE:
        import comfy.ldm.minimax.vae as mv
        from checkpoints import init_random
        keys = _meta_keys(mv.MiniMaxH3VideoVAE,
                          ["decoder.transformer_blocks.0.scale1", "encoder.down.5.block.0.conv1.weight"])
        with torch.device("meta"):
            m = mv.MiniMaxH3VideoVAE(ch=32, ch_mult=(1, 1, 1, 1, 1, 1))
        m.to_empty(device="cpu")
        m.decoder = mv.ViT3DDecoder(patch_size=m.vae_ratio, patch_size_t=m.vae_ratio_t, in_channels=24,
                                    out_channels=3, num_layers=1, heads=2, dim_head=16)  # CPU: real rope buffer
        init_random(m, seed)
        with torch.no_grad():
            m.latents_mean.copy_(torch.tensor(mv.LATENTS_MEAN))
            m.latents_std.copy_(torch.tensor(mv.LATENTS_STD))
            m.pixel_mean.copy_(torch.tensor(mv.IMAGENET_MEAN).view(1, 3, 1, 1, 1))
            m.pixel_std.copy_(torch.tensor(mv.IMAGENET_STD).view(1, 3, 1, 1, 1))
            m.decoder.mask_token.zero_()
        vae = _wrap(keys, m)
        assert vae.latent_channels == 24
        _CACHE["video"] = vae
    return _CACHE["video"]


def minimax_h3_audio_vae(seed: int = 6):
    """The real MiniMax H3 audio VAE class at a tiny width in ``comfy.sd.VAE``: stereo 32 kHz waveform
    <-> latent ``[1, 32, 2, T]`` (40 latents a second). Built once per session."""
    if "audio" not in _CACHE:
        import comfy.ldm.minimax.audio_vae as ma
        from checkpoints import init_random
        keys = _meta_keys(ma.MiniMaxH3AudioVAE, ["pre_block.attn.zero_k_bias"])
        m = ma.MiniMaxH3AudioVAE(encoder_dim=4, latent_dim=32, decoder_dim=256)  # 7 upsamples: 256 -> 2 ch
        init_random(m, seed)
        with torch.no_grad():
            m.latents_mean.zero_()
            m.latents_std.fill_(1.0)
            for mod in m.modules():
                if isinstance(mod, ma.Snake1d):  # x + sin^2(alpha x) / alpha: alpha 1
                    mod.alpha.fill_(1.0)
                elif isinstance(mod, ma.CausalAttention):
                    mod.zero_k_bias.zero_()
        vae = _wrap(keys, m)
        assert vae.latent_channels == 32
        _CACHE["audio"] = vae
    return _CACHE["audio"]


class TestMiniMaxTextEncoder:
    """Test only: what ``MiniMaxH3ImageToVideo`` / ``MiniMaxH3ReferenceToVideo`` call on their ``clip``
    (``tokenize``, ``encode_from_tokens_scheduled``), returning random ``[1, 8, 32]`` text embeddings
    (seeded) instead of Qwen3-VL 32B hidden states; images / references given to ``tokenize`` are
    recorded in the class list ``seen`` (so a test can check the node passed them)."""

    seen: list = []  # every tokenize call's images / references (counts), across instances

    def __init__(self, seed: int):
        self.seed = seed

    def tokenize(self, text, **kwargs):
        TestMiniMaxTextEncoder.seen.append({"text": text, **{k: (len(v) if isinstance(v, (list, tuple)) else v)
                                                             for k, v in kwargs.items()}})
        return {"text": text}

    def encode_from_tokens_scheduled(self, tokens, **kwargs):
        return tiny_av.minimax_conds(seed=self.seed, tokens=8)[0]
