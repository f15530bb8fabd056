"""Nodes: Forward-Inversion / SmoothInit / Fast-SmoothInit noise, the KSampler model patch, and
Save Noise / Load Noise.

Thin adapters over :mod:`..samplers.smoothinit` (pure torch); every ComfyUI call goes through
:mod:`.comfy_bridge`. Paper: "The Blessing of Smooth Initialization for Video Diffusion Models"
(Sec. 3.2-3.4, App. A.3); exact algorithm and defaults: docs/algorithms.md section 1.

Two forms of the same initialiser, giving the same noise for the same seed, conds and schedule:

* NOISE nodes for ``SamplerCustomAdvanced``: ``generate_noise(latent)`` takes the unit noise of
  the incoming NOISE and optimises it at ``sigma_a = sigmas[0]`` of the optional SIGMAS input (the
  sampler's schedule; unconnected: ``sigma_max``, max_denoise) inside a ``CFGGuider.sample`` of the
  node's own MODEL and conds; returns CPU unit noise.
* "SmoothInit (KSampler)": a MODEL patch (SAMPLER_SAMPLE wrapper) so any sampler node starts from
  the optimised noise, using the sampler's own conds, seed and ``sigmas[0]``.
"""
from __future__ import annotations

import contextvars
import hashlib
import json
import os

import logging

import torch

from ..samplers import smoothinit as si
from ..samplers.freeinit import keep_given
from . import comfy_bridge as bridge
from . import registry
from .errors import NodeError, naming

# Set while one of our optimisations runs, so a SmoothInit-patched MODEL fed to a NOISE node (or
# nested sampling inside the optimisation) does not optimise again.
_ACTIVE: contextvars.ContextVar[bool] = contextvars.ContextVar("tfv_smoothinit_active", default=False)

NESTED_SUPPORTED = ("Forward-Inversion / SmoothInit / Fast-SmoothInit support image-model latents [frames, C, H, W], "
                    "video latents [B, C, T, H, W] and audio+video latents.")
_AV_NOTE = ("Audio+video latents (MiniMax H3, LTX-2): both streams' noise is optimised together through the joint "
            "model call (the DDIM step and inversion in the sampler's space, where MiniMax H3 carries its audio on the "
            "video schedule), each stream keeps its shape; the noise is a nested noise like RandomNoise's. A noise "
            "mask (in-place first image: LTXVImgToVideoInplace, Wan22ImageToVideoLatent; Set Latent Noise Mask) keeps "
            "its given frames' noise unchanged.")

_SEED_MIX = 0x9E3779B97F4A7C15  # decorrelates the perturbations from a RandomNoise of the same seed


def perturbation_generator(seed) -> torch.Generator:
    """CPU generator of the K perturbations for a sampler seed (None -> 0). Mixed so that it never
    reproduces the base noise that ComfyUI draws from ``manual_seed(seed)``."""
    s = 0 if seed is None else int(seed)
    return torch.Generator().manual_seed((s * 6364136223846793005 + _SEED_MIX) % (2 ** 64))


# --------------------------------------------------------------------------- shared inputs

OPTIONAL_SIGMAS = {"sigmas": ("SIGMAS", {"tooltip": "Optional: the SIGMAS your sampler uses (connect the same "
                                                     "scheduler output). The noise is then optimised at sigmas[0] "
                                                     "with ComfyUI's own noise scaling, exactly as SmoothInit "
                                                     "(KSampler) does - needed for schedules that start below "
                                                     "sigma_max (ddim_uniform, denoise < 1, img2img). Unconnected: a "
                                                     "full denoise from the model's sigma_max."})}


FOLLOW_SAMPLER_CFG = 0.0  # SmoothInit (KSampler) cfg sentinel: w1 = the sampler's own CFG


def _cfg_inputs(follow_sampler: bool = False) -> dict:
    if follow_sampler:
        cfg = ("FLOAT", {"default": FOLLOW_SAMPLER_CFG, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                         "tooltip": "w1: CFG of the DDIM step sigma_a -> sigma_b. 0 (default) = follow the sampler's "
                                    "own CFG (the KSampler's cfg, as the official code uses the sampling guidance "
                                    "scale); any other value is used as given (paper 7.5). w1 > inversion_cfg injects "
                                    "the prompt (the injection is proportional to w1 - inversion_cfg), so following a "
                                    "sampler at CFG 1 (distilled few-step models, BasicGuider) stops with an error: "
                                    "set cfg there (e.g. 3.5). 2 model calls per step (1 if exactly 1)."})
    else:
        cfg = ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                         "tooltip": "w1: CFG of the DDIM step sigma_a -> sigma_b (paper 7.5; set it to your sampling "
                                    "CFG, as the official code does). w1 > inversion_cfg injects the prompt. 2 model "
                                    "calls per step (1 if exactly 1)."})
    return {
        "cfg": cfg,
        "inversion_cfg": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                                    "tooltip": "w2: CFG of the DDIM-inversion step back to sigma_a (released code: 1.0 = "
                                               "one conditional call). Equal to cfg makes Forward-Inversion ~ identity."}),
        "grid_steps": ("INT", {"default": 50, "min": 2, "max": 1000,
                               "tooltip": "sigma_b is one step of a grid_steps-step schedule below sigma_a (released code: "
                                          "50, i.e. t 999 -> 979), independent of your sampler's step count."}),
    }


def _common_inputs() -> dict:
    """The NOISE nodes' first inputs: the base noise, the model and conds, and the CFG pair."""
    return {
        "noise": ("NOISE", {"tooltip": "The base noise to optimise: any NOISE source (RandomNoise, "
                                       "Dependency Noise, Load Noise, ...)."}),
        "model": ("MODEL", {"tooltip": "The diffusion model used for the DDIM and inversion steps (the same model "
                                       "you sample with). Not modified."}),
        "positive": ("CONDITIONING", {"tooltip": "Positive conditioning (the prompt whose semantics are injected); "
                                                 "use the sampler's."}),
        "negative": ("CONDITIONING", {"tooltip": "Negative conditioning for the CFG of the DDIM step; use the "
                                                 "sampler's."}),
        **_cfg_inputs(),
    }


def _k_input(default: int) -> dict:
    return {"K": ("INT", {"default": default, "min": 1, "max": 1000,
                          "tooltip": "Number of Forward-Inversion evaluations (custom preset only). NFE = K x "
                                     "(calls(cfg) + calls(inversion_cfg)) = 3K with cfg != 1 and inversion_cfg = 1."})}


def _sigma_sm_input(default: float) -> dict:
    return {"sigma_sm": ("FLOAT", {"default": default, "min": 0.0, "max": 10.0, "step": 0.005, "round": 0.0001,
                                   "tooltip": "Scale of the perturbation added to the unit noise before each "
                                              "Forward-Inversion (custom preset only; >= 0)."})}


def _noise_type_input() -> dict:
    return {"noise_type": (list(si.NOISE_TYPES), {"default": "uniform",
                           "tooltip": "Perturbation law (custom SmoothInit only): uniform U[-sqrt3, sqrt3] (unit "
                                      "variance), gaussian N(0,1), truncated_gaussian N(0,1) clipped to [-1, 1]."})}


def _momentum_inputs() -> dict:
    return {
        "gamma_m": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 1.0, "step": 0.01, "round": 0.0001,
                              "tooltip": "Momentum (custom Fast-SmoothInit only): 0 feeds each output back as the next "
                                         "input; 0.95 stays close to the base noise (DiT-safe)."}),
        "gamma_decay": ("FLOAT", {"default": 0.05, "min": 0.0, "max": 0.99, "step": 0.01, "round": 0.0001,
                                  "tooltip": "Perturbation decay per iteration (custom Fast-SmoothInit only): "
                                             "iteration j uses sigma_sm * (1 - gamma_decay)^(j+1)."}),
    }


def _chunk_input() -> dict:
    return {"chunk_size": ("INT", {"default": 0, "min": 0, "max": 256,
                                   "tooltip": "SmoothInit perturbations per batched model call (0 = auto: 1 on CPU, 4 on a GPU; "
                                              "halved automatically on out-of-memory). A model that attends across "
                                              "the batch (Temporal Momentum Attention, an AnimateDiff motion model) "
                                              "and a 4-D latent with batch > 1 (frames as batch) always run one "
                                              "perturbation per call, so perturbations never mix. Same result for "
                                              "any value."})}


_NFE_NOTE = ("Cost: K x (calls(cfg) + calls(inversion_cfg)) model calls before sampling, where calls(w) = 2, or 1 "
             "when w is exactly 1; with cfg 7.5 and inversion_cfg 1 that is 3K (Forward-Inversion 3, "
             "Fast-SmoothInit-10 30, SmoothInit-30 / Fast-SmoothInit-30 90, vs 100 for 50-step CFG sampling). "
             "One progress bar over all model calls; Cancel interrupts it.")


# --------------------------------------------------------------------------- validation helpers

def _cond_batches(conds) -> set[int]:
    sizes = set()
    for c in conds or []:
        t = c[0] if isinstance(c, (list, tuple)) else (c.get("cross_attn") if isinstance(c, dict) else None)
        if isinstance(t, torch.Tensor) and t.ndim >= 1:
            sizes.add(int(t.shape[0]))
    return sizes


def _check_cond_batch(node: str, latent_batch: int, positive, negative) -> None:
    for name, conds in (("positive", positive), ("negative", negative)):
        for b in _cond_batches(conds):
            if b > 1 and b != latent_batch:
                raise NodeError(node, f"the latent has batch {latent_batch} but the {name} conditioning has batch "
                                      f"{b}; use a latent with batch {b}, or conditioning with batch 1 (shared).")


def _validate(settings: si.Preset, grid_steps: int, cfg: float, inversion_cfg: float,
              chunk_size: int | None = None) -> None:
    si.validate(K=settings.K, sigma_sm=settings.sigma_sm, noise_type=settings.noise_type,
                gamma_m=settings.gamma_m, gamma_decay=settings.gamma_decay, grid_steps=grid_steps, cfg=cfg,
                inversion_cfg=inversion_cfg)
    if chunk_size is not None and int(chunk_size) < 0:
        raise ValueError(f"chunk_size must be >= 0 (0 = auto), got {chunk_size}.")


def auto_chunk(chunk_size: int, noise_shape, device: torch.device | str | None = None,
               attends_across_batch: bool = False) -> int:
    """Perturbations per model call.

    A model that attends across its batch (Temporal Momentum Attention, an AnimateDiff-Evolved
    motion model: :func:`comfy_bridge.model_attends_across_batch`) would mix perturbations stacked
    along the batch, so it always gets 1, whatever the latent's batch size (even 1). So does a 4-D
    latent with batch > 1, which may be one video whose frames are the batch. Otherwise
    ``chunk_size`` if > 0, else (auto, 0) 1 on a CPU device (measured here: a 4-perturbation CFG
    batch costs 1.10x four single calls, so batching only loses) and 4 on an accelerator."""
    if attends_across_batch:
        return 1
    if len(noise_shape) == 4 and int(noise_shape[0]) > 1:
        return 1
    if int(chunk_size) > 0:
        return int(chunk_size)
    if device is not None and torch.device(device).type == "cpu":
        return 1
    return 4


# --------------------------------------------------------------------------- the optimisation

def optimise_in_context(ctx, node: str, settings: si.Preset, cfg: float, inversion_cfg: float, grid_steps: int,
                        chunk_size: int = 0) -> torch.Tensor:
    """Run the initialiser inside ComfyUI's sampling (``ctx``: :class:`comfy_bridge.SamplingContext`).

    sigma_a = ``ctx.sigmas[0]`` (sigma_max for a full denoise), sigma_b one ``grid_steps`` step below
    it on the model's sigma table; unit noise ``ctx.noise [B, ...]`` in, unit noise out (device of
    ctx.noise). Perturbations are seeded by the sampler's seed. One progress bar over the
    :func:`samplers.smoothinit.nfe` model calls, interrupt checked before each call.
    """
    ms = ctx.model_sampling
    noise = ctx.noise
    with naming(node):
        si.validate(noise=noise, noise_name="noise")
    B = int(noise.shape[0])
    if (float(cfg) != 1.0 or float(inversion_cfg) != 1.0) and not bridge.guider_applies_cfg(ctx.guider):
        raise NodeError(node, f"cfg / inversion_cfg: the sampler's guider ({type(ctx.guider).__name__}) "
                              f"{bridge.guider_rule(ctx.guider)}, so the DDIM step's cfg cannot be set. Use KSampler / "
                              f"CFGGuider with a negative prompt, or set cfg and inversion_cfg to 1.")
    conds = getattr(ctx.guider, "original_conds", {}) or {}
    _check_cond_batch(node, B, conds.get("positive"), conds.get("negative"))
    sigma_a, sigma_b = si.inversion_sigmas(bridge.sigma_table(ms), float(ctx.sigmas[0]), grid_steps)
    calls = bridge.ModelCalls(si.nfe(settings.K, cfg, inversion_cfg))
    inner = ctx.denoiser()

    def denoise(x, sigma, w):
        calls.before()
        out = inner(x, sigma, w)
        calls.after(si.model_calls(w) * max(1, int(x.shape[0]) // B))
        return out

    latent = ctx.latent_image
    if latent is not None and torch.count_nonzero(latent) == 0:
        latent = None
    shapes = ctx.stream_shapes
    # audio+video (packed [B, 1, N]): both streams' noise through the joint model call, one perturbation a call
    # (MiniMax H3's DiT takes batch 1); elementwise maths, so each stream keeps its shape
    attends = shapes is not None or bridge.model_attends_across_batch(ctx.model_patcher,
                                                                      ctx.extra_args.get("model_options"))
    token = _ACTIVE.set(True)
    try:
        out = si.optimise_noise(settings, denoise, ms, noise, sigma_a, sigma_b, cfg, inversion_cfg,
                                perturbation_generator(ctx.extra_args.get("seed")),
                                auto_chunk(chunk_size, tuple(noise.shape), noise.device, attends),
                                latent, ctx.max_denoise,
                                on_oom=lambda _c: bridge.soft_empty_cache())
    finally:
        _ACTIVE.reset(token)
    if not bool(torch.isfinite(out).all()):
        raise NodeError(node, f"the optimised noise is not finite (the model returned NaN/inf); "
                              f"check the model and conditioning.")
    # given frames (noise mask 0: in-place image, Set Latent Noise Mask) keep their noise
    out = keep_given(out, noise, ctx.denoise_mask).to(noise.dtype)
    if shapes is not None:
        logging.info("%s: optimised noise std per stream (video, audio): %s", node,
                     ", ".join(f"{v:.3f}" for v in bridge.stream_std(out, shapes)))
    return out


class OptimisedNoise:
    """A ComfyUI NOISE: ``generate_noise(input_latent)`` = the initialiser applied to the incoming
    NOISE's unit noise at ``sigmas[0]`` of the sampler's schedule when given (ComfyUI's noise scaling
    and max_denoise rule, as the KSampler patch), else at the model's sigma_max (full denoise).
    CPU, the latent's dtype and shape.

    Raises:
        ValueError (naming the node and input): ``sigmas`` with fewer than 2 entries.
    """

    def __init__(self, node: str, base_noise, model, positive, negative, settings: si.Preset, cfg: float,
                 inversion_cfg: float, grid_steps: int, chunk_size: int = 0, sigmas=None):
        if sigmas is not None:
            sigmas = torch.as_tensor(sigmas).detach().flatten().float().cpu()
            if sigmas.numel() < 2:
                raise NodeError(node, f"sigmas: the schedule has {sigmas.numel()} sigma(s); connect the sampler's "
                                      f"SIGMAS (at least 2 values) or leave the input unconnected for a full denoise.")
        self.sigmas = sigmas
        self.node, self.base_noise, self.model = node, base_noise, model
        self.positive, self.negative = positive, negative
        self.settings, self.cfg, self.inversion_cfg = settings, float(cfg), float(inversion_cfg)
        self.grid_steps, self.chunk_size = int(grid_steps), int(chunk_size)
        self.seed = getattr(base_noise, "seed", 0)

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        shapes = bridge.nested_latent_shapes(samples)
        base = self.base_noise.generate_noise(input_latent)
        if shapes is not None:
            if bridge.nested_latent_shapes(base) != shapes:
                raise NodeError(self.node, f"noise: the incoming NOISE has shape "
                                           f"{bridge.nested_latent_shapes(base) or tuple(base.shape)} but the latent is an "
                                           f"audio+video latent of streams {shapes}.")
            return self._optimise(input_latent, samples, base, shapes)
        if not isinstance(base, torch.Tensor):
            raise NodeError(self.node, f"noise: the incoming NOISE returned {type(base).__name__}, not a tensor.")
        with naming(self.node):
            si.validate(noise=base, noise_name="noise")
        if tuple(base.shape) != tuple(samples.shape):
            raise NodeError(self.node, f"noise: the incoming NOISE has shape {tuple(base.shape)} but the latent has "
                                       f"shape {tuple(samples.shape)}.")
        _check_cond_batch(self.node, int(samples.shape[0]), self.positive, self.negative)
        return self._optimise(input_latent, samples, base, None)

    def _optimise(self, input_latent: dict, samples, base, shapes):
        """The optimised noise, CPU, dtype of ``base``; a NestedTensor of the streams when ``shapes``."""
        if _ACTIVE.get():
            return base
        sigmas = self.sigmas
        if sigmas is None:
            sigmas = torch.tensor([float(bridge.model_sampling(self.model).sigma_max), 0.0], dtype=torch.float32)

        def fn(ctx):
            return optimise_in_context(ctx, self.node, self.settings, self.cfg, self.inversion_cfg,
                                       self.grid_steps, self.chunk_size)

        token = _ACTIVE.set(True)  # a SmoothInit-patched MODEL here must not optimise a second time
        try:
            out = bridge.run_in_sampling(self.model, self.positive, self.negative, self.cfg, samples, base, sigmas,
                                         fn, seed=self.seed, denoise_mask=input_latent.get("noise_mask"),
                                         allow_nested=shapes is not None)
        finally:
            _ACTIVE.reset(token)
        if shapes is not None:
            dtype = base.unbind()[0].dtype
            return bridge.as_nested(out.detach().to(device="cpu", dtype=dtype), shapes)
        return out.detach().to(device="cpu", dtype=base.dtype)


def _settings(preset: str, method: str | None, K=1, sigma_sm=0.0, noise_type="gaussian",
              gamma_m=0.0, gamma_decay=0.0) -> si.Preset:
    """The frozen :class:`samplers.smoothinit.Preset` a node's inputs ask for; ValueError naming ``preset``."""
    try:
        return si.resolve(preset, K, sigma_sm, noise_type, gamma_m, gamma_decay, method)
    except ValueError as e:
        raise ValueError(f"preset: {e}") from None


# --------------------------------------------------------------------------- NOISE nodes

@registry.node(registry.Spec(
    id="ForwardInversionNoise", display_name="Forward-Inversion Noise", method="SmoothInit", function="build",
    inputs=_common_inputs(),
    optional=OPTIONAL_SIGMAS,
    outputs=(("NOISE", "noise",
              "The Forward-Inversion noise f_s(noise) for SamplerCustomAdvanced (unit noise, same shape)."),),
    description=("Forward-Inversion (SmoothInit paper Sec. 3.2, Thm 3.2): one DDIM step sigma_a -> sigma_b at CFG "
                 "cfg, then one DDIM-inversion step back at CFG inversion_cfg, applied to the incoming noise; "
                 "injects the prompt's semantics into the initial noise. Starts at sigmas[0] of the optional "
                 "SIGMAS (connect your sampler's), else at the model's sigma_max (full denoise). Cost: calls(cfg) + calls(inversion_cfg) "
                 "= 3 model calls with cfg 7.5 and inversion_cfg 1. " + _AV_NOTE),
    aliases=registry.SMOOTHINIT_TERMS + ("forward inversion", "ddim inversion", "inversion noise")))
class ForwardInversionNoise:
    def build(self, noise, model, positive, negative, cfg, inversion_cfg, grid_steps, sigmas=None):
        s = si.PRESETS["Forward-Inversion"]
        _validate(s, grid_steps, cfg, inversion_cfg)
        return (OptimisedNoise(self.NODE_NAME, noise, model, positive, negative, s, cfg, inversion_cfg, grid_steps,
                               sigmas=sigmas),)


SMOOTHINIT_PRESETS = ["SmoothInit-30", si.CUSTOM]


@registry.node(registry.Spec(
    id="SmoothInitNoise", display_name="SmoothInit Noise", method="SmoothInit", function="build",
    inputs={**_common_inputs(),
            "preset": (SMOOTHINIT_PRESETS, {"default": "SmoothInit-30",
                                            "tooltip": "SmoothInit-30: K 30, sigma_sm 0.025, uniform (paper App. "
                                                       "A.3; 90 NFE with cfg 7.5, inversion_cfg 1). custom: use K, "
                                                       "sigma_sm, noise_type."}),
            **_k_input(30), **_sigma_sm_input(0.025), **_noise_type_input(), **_chunk_input()},
    optional=OPTIONAL_SIGMAS,
    outputs=(("NOISE", "noise",
              "The SmoothInit noise mean_k f_s(noise + sigma_sm n_k) for SamplerCustomAdvanced."),),
    description=("SmoothInit (SmoothInit paper Eq. 6): the mean of K Forward-Inversions of the incoming noise, each "
                 "with a fresh perturbation sigma_sm * n_k (seeded by the noise's seed). The K evaluations run "
                 "batched (chunk_size). Starts at sigmas[0] of the optional SIGMAS, else at sigma_max. " + _NFE_NOTE
                 + " " + _AV_NOTE),
    aliases=registry.SMOOTHINIT_TERMS + ("smoothinit noise", "smoothinit-30") + registry.VIDEO_TERMS))
class SmoothInitNoise:
    def build(self, noise, model, positive, negative, cfg, inversion_cfg, grid_steps, preset, K, sigma_sm,
              noise_type, chunk_size, sigmas=None):
        s = _settings(preset, "smoothinit", K, sigma_sm, noise_type)
        _validate(s, grid_steps, cfg, inversion_cfg, chunk_size)
        return (OptimisedNoise(self.NODE_NAME, noise, model, positive, negative, s, cfg, inversion_cfg, grid_steps,
                               chunk_size, sigmas=sigmas),)


FAST_SMOOTHINIT_PRESETS = ["Fast-SmoothInit-10", "Fast-SmoothInit-30", "Fast-SmoothInit-10 DiT-safe",
                           "Fast-SmoothInit-30 DiT-safe", si.CUSTOM]


@registry.node(registry.Spec(
    id="FastSmoothInitNoise", display_name="Fast-SmoothInit Noise", method="SmoothInit", function="build",
    inputs={**_common_inputs(),
            "preset": (FAST_SMOOTHINIT_PRESETS, {"default": "Fast-SmoothInit-10",
                                                 "tooltip": "Fast-SmoothInit-10: K 10, sigma_sm 0.05, gamma_m 0.05, "
                                                            "gamma_decay 0.05 (30 NFE). -30: K 30, 0.1, 0.01, 0.25 "
                                                            "(90 NFE). DiT-safe: gamma_m 0.95 for DiT video models "
                                                            "that tolerate less drift (Latte). custom: use K, "
                                                            "sigma_sm, gamma_m, gamma_decay."}),
            **_k_input(10), **_sigma_sm_input(0.05), **_momentum_inputs()},
    optional=OPTIONAL_SIGMAS,
    outputs=(("NOISE", "noise",
              "The Fast-SmoothInit noise (last iterate of the momentum loop) for SamplerCustomAdvanced."),),
    description=("Fast-SmoothInit (SmoothInit paper Sec. 3.4, the released code's momentum rule): K sequential "
                 "Forward-Inversions, each on a momentum mix of the previous output and inputs plus a decaying "
                 "perturbation; returns the last iterate. Starts at sigmas[0] of the optional SIGMAS, else at "
                 "sigma_max. " + _NFE_NOTE + " " + _AV_NOTE),
    aliases=registry.SMOOTHINIT_TERMS + ("fast smoothinit", "fast-smoothinit", "momentum") + registry.VIDEO_TERMS))
class FastSmoothInitNoise:
    def build(self, noise, model, positive, negative, cfg, inversion_cfg, grid_steps, preset, K, sigma_sm,
              gamma_m, gamma_decay, sigmas=None):
        s = _settings(preset, "fast_smoothinit", K, sigma_sm, "gaussian", gamma_m, gamma_decay)
        _validate(s, grid_steps, cfg, inversion_cfg)
        return (OptimisedNoise(self.NODE_NAME, noise, model, positive, negative, s, cfg, inversion_cfg, grid_steps,
                               sigmas=sigmas),)


# --------------------------------------------------------------------------- KSampler patch

def follow_sampler_cfg(node: str, guider, inversion_cfg: float, nfe: int) -> float:
    """w1 for ``cfg`` 0 ("follow the sampler"): the CFG the sampler's guider applies.

    Raises ValueError naming the node and the ``cfg`` input when that equals ``inversion_cfg`` (w2):
    Forward-Inversion's semantic injection is proportional to w1 - w2 (SmoothInit paper Sec. 3.2,
    Thm 3.2; docs/algorithms.md section 1.1: w1 = w2 makes f_s close to the identity), so following a sampler
    at CFG 1 -- distilled few-step models (Wan 2.2 lightx2v LoRA: 4 steps at CFG 1), guidance-distilled
    models under BasicGuider -- would cost ``nfe`` model calls and change nothing the paper intends.
    A guider with a negative but its own rule (DualCFGGuider, PerpNegGuider) has no single CFG to follow
    (w1 = 1); the message names that rule (:func:`comfy_bridge.guider_rule`).
    """
    w1 = bridge.sampler_cfg(guider)
    if abs(w1 - float(inversion_cfg)) > 1e-9:
        return w1
    if bridge.guider_applies_cfg(guider):
        why = (f"the sampler's CFG is {w1:g}, equal to inversion_cfg (w2 = {float(inversion_cfg):g}) -- typical of "
               f"a distilled few-step model sampled at CFG 1 (Wan 2.2 with the 4-step lightx2v LoRA)")
        fix = ("Set cfg to a value above inversion_cfg, e.g. the CFG the undistilled model is sampled with (Wan "
               "2.2 14B 3.5, Wan 2.1 6, the paper 7.5): the DDIM step then calls the model with your negative "
               "prompt, once per sampling, whatever CFG the sampler uses")
    else:
        why = (f"the sampler's guider ({type(guider).__name__}) {bridge.guider_rule(guider)}, so following it "
               f"gives w1 = 1 = inversion_cfg")
        fix = "Sample with KSampler / CFGGuider and a negative prompt and set cfg above inversion_cfg (e.g. 3.5)"
    raise NodeError(node, f"cfg is 0 (follow the sampler) but {why}. Forward-Inversion would then inject nothing "
                          f"(SmoothInit paper Thm 3.2: the semantic injection is proportional to w1 - w2) while costing "
                          f"{nfe} model calls. {fix}; or remove {node}.")


_CUSTOM_METHODS = {"SmoothInit (custom)": "smoothinit", "Fast-SmoothInit (custom)": "fast_smoothinit"}


PATCH_METHODS = list(si.PRESETS) + list(_CUSTOM_METHODS)


@registry.node(registry.Spec(
    id="SmoothInitModelPatch", display_name="SmoothInit (KSampler)", method="SmoothInit", function="patch",
    inputs={"model": ("MODEL", {"tooltip": "The model to patch; every sampler node using the patched model starts "
                                       "from the optimised noise. The input MODEL is not modified."}),
            "method": (PATCH_METHODS, {"default": "Fast-SmoothInit-10",
                                       "tooltip": "Forward-Inversion (3 NFE), SmoothInit-30 (90), Fast-SmoothInit-10 "
                                                  "(30), Fast-SmoothInit-30 (90), DiT-safe variants (gamma_m 0.95), "
                                                  "or a custom SmoothInit / Fast-SmoothInit using the parameters "
                                                  "below (NFE with cfg 7.5, inversion_cfg 1)."}),
            **_cfg_inputs(follow_sampler=True), **_k_input(10), **_sigma_sm_input(0.05), **_noise_type_input(),
            **_momentum_inputs(), **_chunk_input()},
    outputs=(("MODEL", "model",
              "A patched copy of the model: KSampler (and every other sampler node) optimises its initial noise "
              "with the chosen method, its own positive/negative conds, seed and first sigma."),),
    description=("Forward-Inversion / SmoothInit / Fast-SmoothInit for the plain KSampler graph: the sampler's "
                 "initial noise is optimised with the sampler's own conds, seed and CFG (cfg 0 = follow it) at its "
                 "first sigma (sigma_max at full denoise; img2img works too) before sampling. Same noise as the "
                 "NOISE nodes for the same seed, conds, cfg and SIGMAS. Noise that is all zeros (KSamplerAdvanced "
                 "add_noise disabled) is left alone. " + _NFE_NOTE + " " + _AV_NOTE),
    aliases=registry.SMOOTHINIT_TERMS + ("smoothinit ksampler", "model patch") + registry.VIDEO_TERMS))
class SmoothInitModelPatch:
    def patch(self, model, method, cfg, inversion_cfg, grid_steps, K, sigma_sm, noise_type, gamma_m, gamma_decay,
              chunk_size):
        node = self.NODE_NAME
        if method in _CUSTOM_METHODS:
            m = _CUSTOM_METHODS[method]
            # Fast-SmoothInit's perturbations are gaussian (released code); noise_type is SmoothInit's
            s = _settings(si.CUSTOM, m, K, sigma_sm, noise_type if m == "smoothinit" else "gaussian",
                          gamma_m, gamma_decay)
        else:
            s = _settings(method, None)
        _validate(s, grid_steps, cfg, inversion_cfg, chunk_size)
        cfg, inversion_cfg, grid_steps, chunk_size = float(cfg), float(inversion_cfg), int(grid_steps), int(chunk_size)
        follow = cfg == FOLLOW_SAMPLER_CFG

        def fn(ctx):
            if _ACTIVE.get():
                return ctx.noise
            w1 = follow_sampler_cfg(node, ctx.guider, inversion_cfg, si.nfe(s.K, inversion_cfg, inversion_cfg)) \
                if follow else cfg
            return optimise_in_context(ctx, node, s, w1, inversion_cfg, grid_steps, chunk_size)

        return (bridge.add_sampler_noise_wrapper(model, "training_free_video.smoothinit", fn, node=node,
                                                 supported=NESTED_SUPPORTED, allow_nested=True),)


# --------------------------------------------------------------------------- Save / Load Noise

NOISE_KEY = "noise"


def _streams_of(tensor) -> list[torch.Tensor]:
    """The streams of a noise: ``[tensor]``, or each stream of an audio+video NestedTensor."""
    return list(tensor.unbind()) if bridge.is_nested_latent(tensor) else [tensor]


class TensorNoise:
    """A NOISE that yields a fixed unit-noise tensor (``[B, C, ...]``, CPU), or an audio+video noise
    (a NestedTensor of its streams); errors on shape mismatch."""

    def __init__(self, tensor, seed: int = 0, node: str = "Load Noise", source: str = ""):
        self.streams = [t.detach().cpu() for t in _streams_of(tensor)]
        self.tensor = self.streams[0] if len(self.streams) == 1 else bridge.nested_of(self.streams)
        self.seed, self.node, self.source = int(seed), node, source

    def generate_noise(self, input_latent: dict) -> torch.Tensor:
        samples = input_latent["samples"]
        shapes = bridge.nested_latent_shapes(samples)
        if shapes is not None or len(self.streams) > 1:
            mine = [tuple(t.shape) for t in self.streams]
            if shapes != mine:
                raise NodeError(self.node, f"the noise {self.source} has stream shapes {mine} but the sampler's "
                                           f"latent has {shapes or tuple(samples.shape)}; use a latent of the same size, frame "
                                           f"count, audio length and batch as when the noise was saved.")
            return bridge.nested_of([t.to(dtype=s.dtype).clone() for t, s in zip(self.streams, samples.unbind())])
        if tuple(samples.shape) != tuple(self.tensor.shape):
            raise NodeError(self.node, f"the noise {self.source} has shape {tuple(self.tensor.shape)} but the "
                                       f"sampler's latent has shape {tuple(samples.shape)}; use a latent of the same size, frame "
                                       f"count and batch as when the noise was saved.")
        return self.tensor.to(dtype=samples.dtype).clone()


def _inside(root: str, path: str) -> bool:
    root_r, path_r = os.path.realpath(root), os.path.realpath(path)
    return os.path.commonpath([root_r, path_r]) == root_r


@registry.node(registry.Spec(
    id="TFVSaveNoise", display_name="Save Noise", method="SmoothInit", function="save",
    inputs={"noise": ("NOISE", {"tooltip": "The noise to compute and save (e.g. an expensive SmoothInit Noise)."}),
            "latent": ("LATENT", {"tooltip": "The latent you will sample (fixes the noise's shape: size, frames, "
                                             "batch)."}),
            "filename_prefix": ("STRING", {"default": "noise/smoothinit",
                                           "tooltip": "File name prefix inside ComfyUI's output folder (subfolders "
                                                      "allowed; paths outside the output folder are rejected)."})},
    outputs=(("NOISE", "noise",
              "The saved noise as a NOISE (computed once; feed it to SamplerCustomAdvanced)."),),
    description=("Computes the noise for this latent once and saves it as a .safetensors file (tensor 'noise', "
                 "unit noise of the latent's shape, with its seed) in ComfyUI's output folder, so an expensive "
                 "optimised noise can be reused and shared (an audio+video noise: one tensor per stream, 'noise.0' "
                 "video, 'noise.1' audio). Load it with Load Noise from the input folder. Cost: the "
                 "incoming NOISE's model calls, once (0 NFE for plain noise)."),
    output_node=True,
    aliases=("save noise", "export noise", "noise to file", "safetensors noise", "smoothinit", "cache noise")))
class SaveNoise:
    def save(self, noise, latent, filename_prefix):
        node = self.NODE_NAME
        prefix = str(filename_prefix).strip()
        norm = os.path.normpath(prefix) if prefix else ""
        if (not prefix or os.path.isabs(prefix) or norm == ".." or norm.startswith(".." + os.sep) or "\x00" in prefix
                or os.path.basename(norm) in ("", ".", "..")):
            raise ValueError(f"filename_prefix {filename_prefix!r} must be a relative name inside ComfyUI's "
                             f"output folder (no absolute paths, no '..').")
        out_dir = bridge.output_directory()
        folder = os.path.join(out_dir, os.path.dirname(norm))
        base = os.path.basename(norm)
        if not _inside(out_dir, folder):
            raise ValueError(f"filename_prefix {filename_prefix!r} points outside ComfyUI's output folder.")
        tensor = noise.generate_noise(latent)
        streams = _streams_of(tensor)
        for t in streams:
            si.validate(noise=t, noise_name="noise")
        os.makedirs(folder, exist_ok=True)
        counter = 1
        while os.path.exists(os.path.join(folder, f"{base}_{counter:05}_.safetensors")):
            counter += 1
        path = os.path.join(folder, f"{base}_{counter:05}_.safetensors")
        seed = int(getattr(noise, "seed", 0) or 0)
        from safetensors.torch import save_file
        if len(streams) == 1:   # video-only: one tensor "noise" (the 0.3.0 format)
            tensors, shape = {NOISE_KEY: tensor.detach().cpu().contiguous()}, list(tensor.shape)
        else:                   # audio+video: one tensor per stream, "noise.0" (video), "noise.1" (audio)
            tensors = {f"{NOISE_KEY}.{i}": t.detach().cpu().contiguous() for i, t in enumerate(streams)}
            shape = [list(t.shape) for t in streams]
        save_file(tensors, path, metadata={"format": "training_free_video.noise", "seed": str(seed),
                                           "shape": json.dumps(shape), "streams": str(len(streams))})
        rel = os.path.relpath(path, out_dir)
        return {"ui": {"text": [rel]}, "result": (TensorNoise(tensor, seed, node, rel),)}


def _noise_files() -> list[str]:
    root = bridge.input_directory()
    files = []
    for dirpath, _dirs, names in os.walk(root, followlinks=False):
        for n in names:
            if n.lower().endswith(".safetensors"):
                files.append(os.path.relpath(os.path.join(dirpath, n), root).replace(os.sep, "/"))
    return sorted(files)


def _resolve_input(node: str, name: str) -> str:
    root = bridge.input_directory()
    if not name or os.path.isabs(name):
        raise NodeError(node, f"noise_file {name!r} must be a file name inside ComfyUI's input folder.")
    path = os.path.join(root, name)
    if not _inside(root, path):
        raise NodeError(node, f"noise_file {name!r} points outside ComfyUI's input folder.")
    if not os.path.isfile(path):
        raise NodeError(node, f"noise_file {name!r} not found in ComfyUI's input folder ({root}); copy the "
                              f".safetensors written by Save Noise there.")
    return path


@registry.node(registry.Spec(
    id="TFVLoadNoise", display_name="Load Noise", method="SmoothInit", function="load",
    inputs={"noise_file": (_noise_files, {"tooltip": "A .safetensors noise written by Save Noise, placed in "
                                                   "ComfyUI's input folder."})},
    outputs=(("NOISE", "noise",
              "A NOISE that yields the saved tensor (errors if the sampler's latent has another shape)."),),
    description=("Loads a noise saved by Save Noise from ComfyUI's input folder, as a NOISE for "
                 "SamplerCustomAdvanced. No model calls (0 NFE)."),
    aliases=("load noise", "import noise", "noise from file", "safetensors noise", "smoothinit", "reuse noise")))
class LoadNoise:
    @classmethod
    def IS_CHANGED(cls, noise_file):
        try:
            path = _resolve_input(cls.NODE_NAME, noise_file)
        except ValueError:
            return float("nan")
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        return h.hexdigest()

    @classmethod
    def VALIDATE_INPUTS(cls, noise_file):
        try:
            _resolve_input(cls.NODE_NAME, noise_file)
        except ValueError as e:
            return str(e)
        return True

    def load(self, noise_file):
        node = self.NODE_NAME
        path = _resolve_input(node, noise_file)
        from safetensors import safe_open
        try:
            with safe_open(path, framework="pt", device="cpu") as f:
                meta = f.metadata() or {}
                keys = set(f.keys())
                if NOISE_KEY in keys:
                    tensor = f.get_tensor(NOISE_KEY)
                elif f"{NOISE_KEY}.0" in keys:   # audio+video: one tensor per stream
                    n = sum(1 for k in keys if k.startswith(NOISE_KEY + "."))
                    tensor = bridge.nested_of([f.get_tensor(f"{NOISE_KEY}.{i}") for i in range(n)])
                else:
                    raise ValueError(f"{noise_file!r} has no tensor named '{NOISE_KEY}'; it was not written by "
                                     f"Save Noise.")
        except ValueError:
            raise
        except Exception as e:  # not a safetensors file
            raise ValueError(f"cannot read {noise_file!r} as safetensors: {e}") from None
        for t in _streams_of(tensor):
            si.validate(noise=t, noise_name=f"noise in {noise_file!r}")
        try:
            seed = int(meta.get("seed", 0))
        except ValueError:
            seed = 0
        return (TensorNoise(tensor, seed, node, repr(noise_file)),)
