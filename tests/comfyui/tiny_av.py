"""Tiny random-weight audio+video models of ComfyUI's real classes (ComfyUI 0.33.0 and later).

- :func:`tiny_minimax_h3`: ``comfy.supported_models.MiniMaxH3`` -> ``model_base.MiniMaxH3``
  (``ModelType.FLOW_AV``, ``model_sampling.ModelSamplingAV`` with video shift 12, audio shift 3:
  ``audio_scale`` 4), the real ``MiniMaxH3Model`` DiT at hidden 48, one block. Latent: the nested
  ``MiniMaxH3AV`` pair video ``[1, 24, T, H/16, W/16]`` + audio ``[1, 32, 2, T_a]`` (``EmptyMiniMaxH3LatentAV``).
- :func:`tiny_ltxav`: ``comfy.supported_models.LTXAV`` -> ``model_base.LTXAV`` (flow, ``ModelSamplingFlux``),
  the real ``LTXAVModel`` at 2 heads x 16, one block, text connectors of one layer. Latent: video
  ``[1, 128, T, H/32, W/32]`` + audio ``[1, 8, T_a, 16]`` joined by ``LTXVConcatAVLatent``.
- :func:`tiny_ltx_audio_vae`: the real LTX-2 audio VAE (``comfy.sd.VAE`` detects it from the state dict and
  builds ``AudioVAE`` from the metadata config, as ``LTXVAudioVAELoader`` does): 8 latent channels x 16
  frequency bins, 25 latents a second, with a tiny vocoder (16 kHz).
- :func:`tiny_ltx_video_vae`: the real LTX causal video VAE (``VideoVAE`` from a metadata config): 128
  latent channels, 32x spatial, 8x causal temporal, base width 8 (``LTXVImgToVideoInplace`` encodes with it).

Weights: ComfyUI's ops leave them uninitialised; matrices N(0, 1/fan_in), every norm scale 1, biases 0
(``comfy_harness._init_dit_weights``), buffers set explicitly. Everything runs on CPU in float32.
Feature detection, not versions: :func:`av_missing_reason` says what this ComfyUI lacks.
"""
from __future__ import annotations

import json

import torch

import comfy_harness as H

_CACHE: dict = {}

TINY_MINIMAX_H3 = {
    "image_model": "minimax_h3", "hidden_size": 48, "num_layers": 1, "token_refiner_num_layers": 1,
    "num_attention_heads": 2, "attention_head_dim": 24, "ffn_hidden_size": 64, "latents_dim": 24,
    "audio_latents_dim": 32, "text_dim": 32, "timestep_input_dim": 32, "time_embed_hidden_size": 48,
    "time_embed_dim": 24, "rope_inv_freq_len": 4}
MINIMAX_TEXT_DIM = TINY_MINIMAX_H3["text_dim"]

TINY_LTXAV = {
    "image_model": "ltxav", "num_layers": 1, "attention_head_dim": 16, "num_attention_heads": 2,
    "cross_attention_dim": 32, "audio_attention_head_dim": 16, "audio_num_attention_heads": 2,
    "audio_cross_attention_dim": 32, "caption_channels": 32, "use_keyframes_abs_pos_embedding": False,
    "connector_attention_head_dim": 16, "connector_num_attention_heads": 2, "connector_num_layers": 1}
LTXAV_TEXT_DIM = TINY_LTXAV["caption_channels"]


def av_missing_reason() -> str | None:
    """None when the booted ComfyUI has the audio+video model families (MiniMax H3, LTXAV, nested
    latents), else the sentence a test skips with (e.g. ComfyUI 0.3.64 has none of them)."""
    import comfy.model_base
    import comfy.supported_models
    missing = [name for name, ok in (
        ("comfy.nested_tensor", _has_module("comfy.nested_tensor")),
        ("ModelType.FLOW_AV", hasattr(comfy.model_base.ModelType, "FLOW_AV")),
        ("supported_models.MiniMaxH3", hasattr(comfy.supported_models, "MiniMaxH3")),
        ("supported_models.LTXAV", hasattr(comfy.supported_models, "LTXAV"))) if not ok]
    if missing:
        return ("this ComfyUI has no audio+video latents (" + ", ".join(missing) + " missing); MiniMax H3 "
                "and LTX-2 audio+video need a ComfyUI with them (0.33.0 has them)")
    return None


def _has_module(name: str) -> bool:
    import importlib.util
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _patcher(model):
    import comfy.model_patcher
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def tiny_minimax_h3(seed: int = 0):
    """A tiny MiniMax H3 ModelPatcher: ``model_base.MiniMaxH3`` (FLOW_AV; ComfyUI's own
    ``ModelSamplingAV`` from the model config: shift 12, audio_shift 3, so ``audio_scale`` 4). Batch 1
    only (the real DiT's limit). Sample with ``minimax_conds`` and ``minimax_latent``."""
    import comfy.supported_models
    cfg = comfy.supported_models.MiniMaxH3(dict(TINY_MINIMAX_H3))
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    H._init_dit_weights(model.diffusion_model, seed)
    with torch.no_grad():  # rope inverse frequencies: a buffer ComfyUI leaves empty (the checkpoint fills it)
        n = model.diffusion_model.rope.inv_freq.shape[0]
        model.diffusion_model.rope.inv_freq.copy_(1.0 / 10000.0 ** (torch.arange(n, dtype=torch.float32) / n))
    return _patcher(model)


def tiny_ltxav(seed: int = 0):
    """A tiny LTX-2 audio+video ModelPatcher: ``model_base.LTXAV`` with the real ``LTXAVModel`` (flow,
    ComfyUI's ``ModelSamplingFlux``). Sample with ``ltxav_conds`` and ``ltxav_latent``."""
    import comfy.supported_models
    cfg = comfy.supported_models.LTXAV(dict(TINY_LTXAV))
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    H._init_dit_weights(model.diffusion_model, seed)
    return _patcher(model)


def _text_conds(dim: int, seed: int, tokens: int, extra: dict):
    g = torch.Generator().manual_seed(seed)
    return ([[torch.randn(1, tokens, dim, generator=g), dict(extra)]],
            [[torch.randn(1, tokens, dim, generator=g), dict(extra)]])


def minimax_conds(seed: int = 0, tokens: int = 6):
    """(positive, negative) MiniMax H3 text conditioning ``[1, tokens, 32]`` (the tiny text_dim)."""
    return _text_conds(MINIMAX_TEXT_DIM, seed, tokens, {})


def ltxav_conds(seed: int = 0, tokens: int = 6, frame_rate: float = 25.0):
    """(positive, negative) LTXAV text conditioning ``[1, tokens, 32]`` with ``frame_rate``
    (as LTXVConditioning sets it)."""
    return _text_conds(LTXAV_TEXT_DIM, seed, tokens, {"frame_rate": frame_rate})


def _result(out):
    return out.result if hasattr(out, "result") else out


def minimax_latent(width: int = 64, height: int = 64, length: int = 5) -> dict:
    """``EmptyMiniMaxH3LatentAV``'s latent: at 64x64, 5 frames: video ``[1, 24, 2, 4, 4]`` + audio
    ``[1, 32, 2, 8]``."""
    import comfy_extras.nodes_minimax_h3 as mm
    return _result(mm.EmptyMiniMaxH3LatentAV.execute(width, height, length))[0]


def ltxav_latent(width: int = 64, height: int = 64, length: int = 9, audio_vae=None,
                 frame_rate: float = 25.0) -> dict:
    """``EmptyLTXVLatentVideo`` + ``LTXVEmptyLatentAudio`` (the tiny audio VAE's) joined by
    ``LTXVConcatAVLatent``: at 64x64, 9 frames, 25 fps: video ``[1, 128, 2, 2, 2]`` + audio ``[1, 8, 9, 16]``."""
    import comfy_extras.nodes_lt as lt
    import comfy_extras.nodes_lt_audio as la
    video = _result(lt.EmptyLTXVLatentVideo.execute(width, height, length, 1))[0]
    audio = _result(la.LTXVEmptyLatentAudio.execute(length, frame_rate, 1, audio_vae or tiny_ltx_audio_vae()))[0]
    return concat_av(video, audio)


def concat_av(video: dict, audio: dict) -> dict:
    """ComfyUI's ``LTXVConcatAVLatent`` on two latent dicts."""
    import comfy_extras.nodes_lt as lt
    return _result(lt.LTXVConcatAVLatent.execute(video, audio))[0]


def separate_av(latent: dict) -> tuple[dict, dict]:
    """ComfyUI's ``LTXVSeparateAVLatent``: (video latent dict, audio latent dict)."""
    import comfy_extras.nodes_lt as lt
    out = _result(lt.LTXVSeparateAVLatent.execute(latent))
    return out[0], out[1]


TINY_LTX_AUDIO_VAE_CONFIG = {
    "audio_vae": {
        "model": {"params": {
            "ddconfig": {"double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256,
                         "downsample_time": False, "in_channels": 2, "out_ch": 2, "ch": 8, "ch_mult": [1, 2, 4],
                         "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
                         "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"},
            "sampling_rate": 16000}},
        "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160}}},
    "vocoder": {"resblock_kernel_sizes": [3], "upsample_rates": [5, 4, 2, 2, 2],
                "upsample_kernel_sizes": [10, 8, 4, 4, 4], "resblock_dilation_sizes": [[1, 3, 5]],
                "upsample_initial_channel": 32, "stereo": True, "output_sample_rate": 16000}}


def _unit_statistics(module: torch.nn.Module) -> None:
    """Latent normalisation buffers of LTX VAEs (``per_channel_statistics``): mean 0, std 1."""
    with torch.no_grad():
        for name, b in module.named_buffers():
            if name.endswith("mean-of-means"):
                b.zero_()
            elif name.endswith("std-of-means"):
                b.fill_(1.0)


def tiny_ltx_audio_vae(seed: int = 3):
    """The real LTX-2 audio VAE at a tiny width (``comfy.sd.VAE(sd=..., metadata={"config": ...})``,
    the path ``LTXVAudioVAELoader`` takes): latent ``[B, 8, T_a, 16]``, ``LTXVAudioVAEDecode`` gives a
    stereo 16 kHz waveform. Built once per test session."""
    if "ltx_audio_vae" not in _CACHE:
        import comfy.ldm.lightricks.vae.audio_vae as audio_vae
        import comfy.sd
        from checkpoints import init_random
        meta = {"config": json.dumps(TINY_LTX_AUDIO_VAE_CONFIG)}
        m = audio_vae.AudioVAE(meta)
        init_random(m, seed)
        _unit_statistics(m)
        vae = comfy.sd.VAE(sd=m.state_dict(), metadata=meta)
        vae.throw_exception_if_invalid()
        assert vae.latent_channels == 8 and vae.first_stage_model.latent_frequency_bins == 16
        _CACHE["ltx_audio_vae"] = vae
    return _CACHE["ltx_audio_vae"]


TINY_LTX_VIDEO_VAE_CONFIG = {
    "dims": 3, "in_channels": 3, "out_channels": 3, "latent_channels": 128,
    "blocks": [["res_x", 1], ["compress_all", 1], ["compress_all", 1], ["compress_all", 1], ["res_x", 1]],
    "scaling_factor": 1.0, "norm_layer": "pixel_norm", "patch_size": 4, "latent_log_var": "uniform",
    "use_quant_conv": False, "causal_decoder": False, "encoder_base_channels": 8, "decoder_base_channels": 8}


def tiny_ltx_video_vae(seed: int = 4):
    """The real LTX causal video VAE (``VideoVAE``, what ``comfy.sd.VAE`` builds for an LTX checkpoint's
    ``vae.*`` keys, here from a metadata config as LTX-2 checkpoints carry it) at base width 8: 128
    latent channels, 32x spatial, 8x causal temporal (9 frames -> 2 latent frames). Built once per session."""
    if "ltx_video_vae" not in _CACHE:
        import comfy.ldm.lightricks.vae.causal_video_autoencoder as cva
        import comfy.sd
        from checkpoints import init_random
        m = cva.VideoVAE(version=0, config=dict(TINY_LTX_VIDEO_VAE_CONFIG))
        init_random(m, seed)
        _unit_statistics(m)
        with torch.no_grad():
            for name, b in m.named_buffers():
                if name.endswith("scale_shift_table"):
                    b.zero_()
        vae = comfy.sd.VAE(sd=m.state_dict(), metadata={"config": json.dumps({"vae": TINY_LTX_VIDEO_VAE_CONFIG})})
        vae.throw_exception_if_invalid()
        assert vae.latent_channels == 128
        _CACHE["ltx_video_vae"] = vae
    return _CACHE["ltx_video_vae"]


def release_cached_models() -> None:
    _CACHE.clear()
