"""Nodes: ZS^2 zero-shot video from an image model -- Dependency Noise (a NOISE, and a MODEL patch
for the plain KSampler) and Temporal Momentum Attention (a MODEL patch).

Thin adapters over :mod:`..samplers.dependency_noise` and :mod:`..attention.temporal_momentum` (whose
ComfyUI attention protocols are adapted in :mod:`.comfy_bridge.attention`)
(pure torch); every ComfyUI call goes through :mod:`.comfy_bridge`. Paper: "ZS^2: Zero-Shot Video
Sampling from Image Diffusion Models" (arXiv 2407.21475), Sec. 3.1 / 4.1; exact algorithm and
defaults: docs/algorithms.md section 3.

Frames: for image models (SD1.x/SD2.x/SDXL UNets; Flux, SD3 and other DiT image models) the latent
batch ``[F, C, H, W]`` is one video whose frames are the batch; for video latents ``[B, C, T, H, W]``
frames are axis 2.
"""
from __future__ import annotations

import torch

import uuid

from ..samplers import dependency_noise as dn
from ..samplers.frame_schedule import parse_frame_schedule
from . import comfy_bridge as bridge
from . import registry
from .errors import NodeError, naming, prefixed

WRAPPER_KEY = "training_free_video.zs2_dependency_noise"
TMA_WRAPPER_KEY = "training_free_video.zs2_temporal_momentum"
TEXT_TOKENS = ("keep", "average")

_FRAMES_NOTE = ("Frames are the latent batch for image models ([F, C, H, W], e.g. Empty Latent Image with batch_size "
                "= frames; also [F, C, 1, H, W] latents of one picture frame such as Qwen-Image's) and axis 2 "
                "for video latents ([B, C, T, H, W]).")


# --------------------------------------------------------------------------- shared inputs

NOISE_INPUTS = {
    "kl_lambda": ("FLOAT", {"default": 0.01, "min": 0.0, "max": 100.0, "step": 0.001, "round": 0.0001,
                            "tooltip": "lambda: target KL divergence between consecutive frames' noise (dependency "
                                       "model; paper 0.01, which gives alpha 0.984, frame-to-frame correlation "
                                       "~0.99). Lower = more similar frames (a still video as lambda -> 0 with "
                                       "enough linear_search), higher = more independent noise (>= ~2: i.i.d.)."}),
    "random_search": ("INT", {"default": 10, "min": 1, "max": 1000,
                              "tooltip": "Random-search phase: N(0, I) candidates drawn per frame; the one whose KL "
                                         "to the previous frame is closest to lambda is kept (paper 10)."}),
    "linear_search": ("INT", {"default": 15, "min": 0, "max": 1000,
                              "tooltip": "Linear-search phase: iterations of the search for the mixing weight alpha "
                                         "per frame (paper 15). With 15, alpha stays <= 0.984; raise it to let "
                                         "small lambda reach alpha closer to 1."}),
    "noise_model": (list(dn.NOISE_MODELS), {"default": "dependency",
                                            "tooltip": "dependency: ZS^2's KL-controlled noise (uses lambda and the "
                                                       "searches). mixed: sqrt(alpha)*shared + sqrt(1-alpha)*own "
                                                       "per frame. progressive: each frame = sqrt(alpha)*previous + "
                                                       "sqrt(1-alpha)*fresh (PYoCo baselines, use alpha)."}),
    "alpha": ("FLOAT", {"default": 0.9, "min": 0.0, "max": 1.0, "step": 0.001,
                        "tooltip": "Shared-noise weight of the mixed and progressive models (ignored by "
                                   "dependency): 0 = independent frames, 1 = identical frames."}),
}


_LAMBDA_SCHEDULE = ("STRING", {"default": "", "multiline": False,
                                "tooltip": "Optional per-frame lambda_i (ZS^2 Algorithm 1 indexes lambda by frame): "
                                           "comma-separated targets for frames 2, 3, ..., F (F - 1 values; the last "
                                           "repeats if shorter, extra values are ignored), e.g. '0.01, 0.01, 0.1' "
                                           "for a jump at frame 4, or a linear ramp 'start:end' from frame 2 to "
                                           "frame F, e.g. '0.005:0.05' (motion grows over the clip). Empty = "
                                           "kl_lambda for every frame. Dependency model only."})


NOISE_OPTIONAL = {"kl_lambda_schedule": _LAMBDA_SCHEDULE}


NESTED_SUPPORTED = ("Dependency Noise supports image-model latents [frames, C, H, W] and video latents "
                    "[B, C, T, H, W].")


def make_noise(node: str, shape, seed: int, settings: dn.Settings) -> torch.Tensor:
    """Unit noise (CPU float32) of ``shape`` for ``seed`` -- the single function both Dependency Noise
    nodes use, so they give identical noise for the same seed and settings. Runs inside sampling, so a
    bad latent is reported as ``node``'s error here (:class:`.errors.NodeError`)."""
    try:
        return dn.latent_noise(tuple(shape), int(seed), **settings.kwargs())
    except ValueError as e:
        raise NodeError(node, f"latent: {e}") from None


# --------------------------------------------------------------------------- NOISE node

class DependencyNoiseGenerator:
    """A ComfyUI NOISE: ``generate_noise(input_latent)`` -> CPU unit noise with the shape and dtype
    of ``input_latent["samples"]``, a pure function of (seed, settings, shape). ``batch_index``
    is ignored: the frames of one video are generated together."""

    def __init__(self, node: str, seed: int, settings: dn.Settings):
        self.node, self.seed, self.settings = node, int(seed), settings

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        with naming(self.node):
            bridge.refuse_nested_latent("the sampler's latent", samples, NESTED_SUPPORTED)
        return make_noise(self.node, samples.shape, self.seed, self.settings).to(dtype=samples.dtype)


@registry.node(registry.Spec(
    id="DependencyNoise", display_name="Dependency Noise", method="ZS2", function="get_noise",
    inputs={"noise_seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                                   "tooltip": "Seed of the noise (its own CPU generator; the same seed and settings "
                                              "always give the same noise)."}),
            **NOISE_INPUTS},
    optional=NOISE_OPTIONAL,
    outputs=(("NOISE", "noise",
              "Temporally correlated unit noise for SamplerCustomAdvanced (each frame marginally N(0, I))."),),
    description=("ZS^2 dependency noise model (Sec. 3.1, Algorithm 1): frame 1 is N(0, I) and every next frame is "
                 "sqrt(alpha)*previous + sqrt(1-alpha)*candidate, with the candidate (random search) and alpha "
                 "(linear search) chosen so the KL divergence to the previous frame is closest to lambda (or "
                 "lambda_i per frame with kl_lambda_schedule). Also the PYoCo mixed and progressive models. "
                 "Cost: no model calls (0 NFE). " + _FRAMES_NOTE),
    aliases=registry.ZS2_TERMS + ("dependency noise", "correlated noise", "video noise", "pyoco", "mixed noise",
                                  "progressive noise", "noise init", "consistency")))
class DependencyNoise:
    def get_noise(self, noise_seed, kl_lambda, random_search, linear_search, noise_model, alpha,
                  kl_lambda_schedule=""):
        settings = dn.Settings.from_inputs(kl_lambda, random_search, linear_search, noise_model, alpha,
                                           kl_lambda_schedule)
        return (DependencyNoiseGenerator(self.NODE_NAME, noise_seed, settings),)


# --------------------------------------------------------------------------- KSampler form

def _seed_from_noise(noise: torch.Tensor) -> int:
    """A deterministic seed when a sampler passes none: derived from the incoming noise itself."""
    flat = noise.detach().reshape(-1)[:64].to(torch.float64).cpu()
    return int((flat * 1e6).round().abs().sum().item()) % (2 ** 63)


@registry.node(registry.Spec(
    id="DependencyNoiseModelPatch", display_name="Dependency Noise (KSampler)", method="ZS2", function="patch",
    inputs={"model": ("MODEL", {"tooltip": "The model to patch: every sampler node using the patched model (KSampler, "
                                           "KSamplerAdvanced, SamplerCustom[Advanced]) replaces its initial noise by "
                                           "the noise model below, drawn from the sampler's own seed. The input "
                                           "MODEL is not modified."}),
            **NOISE_INPUTS},
    optional=NOISE_OPTIONAL,
    outputs=(("MODEL", "model",
              "A patched copy of the model whose samplers start from dependency (or mixed/progressive) noise; "
              "same noise as the Dependency Noise node for the same seed and settings."),),
    description=("Dependency Noise for the plain KSampler graph: the sampler's initial unit noise is replaced "
                 "(before sampling, from the sampler's seed) by ZS^2 dependency noise or the PYoCo mixed / "
                 "progressive noise -- identical to the Dependency Noise NOISE node with the same seed and settings "
                 "(per-frame lambda_i via kl_lambda_schedule too). Noise that is "
                 "all zeros (KSamplerAdvanced add_noise disabled, later stages) is left alone. Cost: no extra model "
                 "calls (the sampler's NFE). " + _FRAMES_NOTE),
    aliases=registry.ZS2_TERMS + ("dependency noise", "correlated noise", "ksampler noise", "pyoco", "noise init",
                                  "consistency")))
class DependencyNoiseModelPatch:
    def patch(self, model, kl_lambda, random_search, linear_search, noise_model, alpha, kl_lambda_schedule=""):
        node = self.NODE_NAME
        settings = dn.Settings.from_inputs(kl_lambda, random_search, linear_search, noise_model, alpha,
                                           kl_lambda_schedule)

        def fn(noise: torch.Tensor, seed):
            s = _seed_from_noise(noise) if seed is None else int(seed)
            return make_noise(node, noise.shape, s, settings)

        return (bridge.add_outer_noise_wrapper(model, WRAPPER_KEY, fn, node=node, supported=NESTED_SUPPORTED),)


# --------------------------------------------------------------------------- Temporal Momentum Attention

def check_tma_model(model) -> str:
    """How TMA patches this MODEL: ``"unet"`` (SD1.x/SD2.x/SDXL: an attn1 patch on every UNet
    self-attention) or ``"dit"`` (Flux, Flux 2, SD3, Qwen-Image, Lumina 2, Z-Image, HiDream, Chroma, Krea 2: an attention
    override); a clear ValueError (naming the input ``model``) for anything else (video UNets, video DiTs
    such as Wan)."""
    dm = bridge.diffusion_model(model)
    kind = type(dm).__name__
    if any(type(m).__name__ == "SpatialVideoTransformer" for m in dm.modules()):
        raise ValueError(f"model: this {kind} has temporal transformer layers (an SVD-style video UNet); "
                         "Temporal Momentum Attention is for image models (SD1.x/SD2.x/SDXL UNets, Flux, SD3, ...) "
                         "that sample the frames of a video as the batch. Remove this node for this model.")
    if bridge.unet_self_attention_keys(model):
        return "unet"
    if bridge.dit_image_model_family(model) is not None:
        return "dit"
    raise ValueError(f"model: this {kind} has no UNet self-attention (BasicTransformerBlock attn1) and is not "
                     "a supported DiT image model, so Temporal Momentum Attention cannot apply. It supports "
                     "SD1.x/SD2.x/SDXL UNets and the DiT image models Flux, Flux 2 (Klein), SD3, Qwen-Image, Lumina 2, "
                     "Z-Image, HiDream, Chroma and Krea 2 (frames as the batch); DiT video models (Wan, Hunyuan, LTXV, ...) already attend across "
                     "frames: remove this node for them.")


_MODELS = "Flux, Flux 2, SD3, Qwen-Image, Lumina 2, Z-Image, HiDream, Chroma, Krea 2"


@registry.node(registry.Spec(
    id="TemporalMomentumAttention", display_name="Temporal Momentum Attention", method="ZS2", function="patch",
    inputs={
        "model": ("MODEL", {"tooltip": "An image model: SD1.x / SD2.x / SDXL (UNet) or a DiT image model (Flux, "
                                       "Flux 2, SD3, Qwen-Image, Lumina 2, Z-Image, HiDream, Chroma, Krea 2); frames "
                                       "are the latent batch. Not modified (a patched copy is returned)."}),
        "momentum": ("FLOAT", {"default": 0.98, "min": 0.0, "max": 1.0, "step": 0.001,
                               "tooltip": "mu of Eq. 2: frame i attends to keys/values K'_i = mu*K'_(i-1) + "
                                          "(1-mu)*K_i (K'_1 = K_1). 0 = plain self-attention (frames "
                                          "independent), 1 = every frame attends to frame 1 (Text2Video-Zero "
                                          "cross-frame attention), paper 0.98. Under AnimateDiff-Evolved context "
                                          "windows each model call holds one window's frames, so the average runs "
                                          "over that window only and restarts at its first frame."}),
    },
    optional={
        "momentum_schedule": ("STRING", {"default": "", "multiline": False,
                                         "tooltip": "Optional per-frame mu_i (Eq. 2 indexed by frame: K'_i = "
                                                    "mu_i*K'_(i-1) + (1-mu_i)*K_i): comma-separated values for "
                                                    "frames 1, 2, ..., F (F values; mu_1 is unused since K'_1 = "
                                                    "K_1; the last value repeats if shorter, extra values are "
                                                    "ignored), e.g. '0, 0.98, 0.98, 0.9', or a linear ramp "
                                                    "'start:end' from frame 1 to frame F, e.g. '0.9:0.99'. "
                                                    "Resolved to the frames of each model call; under "
                                                    "AnimateDiff-Evolved context windows and ZS^2 Long Video "
                                                    "(chunks) by global frame index. "
                                                    "Empty = momentum for every frame."}),
        "text_tokens": (list(TEXT_TOKENS), {"default": "keep",
                                            "tooltip": "DiT joint text-image attention (" + _MODELS + "): "
                                                       "'keep' averages only each frame's own image tokens (Eq. 2: "
                                                       "the frames' keys/values) and leaves the text tokens, which "
                                                       "differ per frame after the first block, to each frame, and "
                                                       "reference-image tokens (Kontext, Qwen-Image Edit, HiDream "
                                                       "E1, Z-Image Omni) and pad tokens untouched; 'average' "
                                                       "averages every token of the call (text and references "
                                                       "too, as this node did before). No effect on UNets."}),
    },
    outputs=(("MODEL", "model",
              "A patched copy of the model whose every self-attention (UNet attn1; DiT self/joint attention) uses"
              " temporal momentum keys and values across the frames of the batch."),),
    description=("ZS^2 Temporal Momentum Attention (Sec. 4.1, Eq. 2) on every self-attention, at every step: "
                 "each frame keeps its own queries and attends to a momentum average of the keys/values of the "
                 "frames up to it (same cost as self-attention). SD1.x/SD2.x/SDXL UNets: every attn1. DiT image "
                 "models (" + _MODELS + "): every self/joint attention (the "
                 "projected, RoPE'd keys/values; in joint text-image attention each frame's image tokens only, "
                 "text_tokens 'average' for all; text-to-image cross-attention is left alone), with a warning in "
                 "the log/console when a later attention patch replaced this one. Frames are grouped "
                 "per CFG branch (cond and uncond never mix); fp16/bf16 activations are averaged in float32 frame "
                 "by frame (two frames of extra memory). With "
                 "AnimateDiff-Evolved context windows only the window's frames are in a model call, so the average "
                 "runs over the window and starts afresh at its first frame. momentum_schedule gives a momentum "
                 "mu_i per frame (Eq. 2 indexed by frame). Cost: no extra model calls (the sampler's NFE). One "
                 "frame = unchanged model. Raises an error on other "
                 "models (Wan and other DiT video models already attend across frames)."),
    aliases=registry.ZS2_TERMS + ("tma", "momentum attention", "temporal attention", "cross-frame attention",
                                  "consistency", "flicker")))
class TemporalMomentumAttention:
    def patch(self, model, momentum, momentum_schedule="", text_tokens="keep"):
        mu = float(momentum)
        if not 0.0 <= mu <= 1.0:
            raise ValueError(f"momentum must be in [0, 1], got {mu}.")
        if text_tokens not in TEXT_TOKENS:
            raise ValueError(f"text_tokens must be one of {list(TEXT_TOKENS)}, got {text_tokens!r}.")
        schedule = parse_frame_schedule(momentum_schedule, input_name="momentum_schedule", minimum=0.0,
                                        maximum=1.0, what="mu_i")
        mu_spec = mu if schedule is None else schedule
        if check_tma_model(model) == "unet":
            return (bridge.add_attn1_patch(model, bridge.TemporalMomentumPatch(mu_spec, node=self.NODE_NAME)),)
        return (tma_dit_patch(self.NODE_NAME, model, mu_spec, image_only=text_tokens == "keep"),)


def tma_dit_patch(node: str, model, mu_spec, image_only: bool = True):
    """The TMA attention override on a DiT image model (a patched clone of ``model``): only the
    frames' own image tokens are averaged when ``image_only`` (their place in each joint attention
    call comes from the bridge's per-family layout), and a check at sampling time warns (log and
    console, naming ``node``) when another node placed after this one replaced the override.

    Raises:
        ValueError (input ``text_tokens``): ``image_only`` on a model whose token split is not known.
    """
    span = bridge.dit_image_token_span(model) if image_only else None
    if image_only and span is None:
        raise ValueError(f"text_tokens: 'keep' needs to know which tokens of the joint attention are the "
                         f"frame's image tokens, and this model's ({bridge.diffusion_model(model).__class__.__name__}) "
                         "text/image token split is not known. Set text_tokens to 'average'.")
    info_key = f"{TMA_WRAPPER_KEY}.{uuid.uuid4().hex}"
    batch = bridge.dit_attention_batch(model)

    def make_info(x, context, conds):
        info = bridge.AttentionCallInfo(batch=batch(x))
        if span is not None:
            info.image_span = span(x, context, conds, info)
        return info

    warning = prefixed(node, "another attention patch placed after this node replaced its attention override, so "
                             "Temporal Momentum Attention is OFF in this sampling (the frames are sampled "
                             "independently). Fix: apply Temporal Momentum Attention after the other attention patch "
                             "(e.g. a Sage/Flash attention node), so its override calls the other one.")
    return bridge.add_checked_attention_override(
        model, lambda prev: bridge.TemporalMomentumAttentionOverride(mu_spec, prev, image_only=image_only,
                                                             info_key=info_key, node=node),
        key=TMA_WRAPPER_KEY, info_key=info_key, make_info=make_info, warning=warning)
