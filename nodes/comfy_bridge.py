"""The one module that touches ComfyUI internals.

Everything else in the pack talks to ComfyUI through the functions here: model calls with CFG
(always through ComfyUI's ``CFGGuider`` so ControlNet, area/mask conds, hooks, PREDICT_NOISE
wrappers and AnimateDiff-Evolved's ``sampling_function`` patch all apply), ``model_sampling``,
model patches and wrappers, progress bars, previews, interruption and ComfyUI's folders.
Public extension points only (shared COMFY.md). The core (``samplers/``, ``attention/``) stays
pure torch and receives a ``denoise(x, sigma, cfg) -> x0`` callable plus the model_sampling.
"""
from __future__ import annotations

import contextlib
import contextvars
import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

import comfy.model_management
import comfy.model_sampling
import comfy.patcher_extension
import comfy.sample
import comfy.samplers
import comfy.utils
import folder_paths
import latent_preview

WrappersMP = comfy.patcher_extension.WrappersMP
InterruptedError_ = comfy.model_management.InterruptProcessingException

# Set while run_in_sampling runs one of our own loops: the pack's noise-replacing wrappers
# (Dependency Noise (KSampler), SmoothInit (KSampler)) on that MODEL then pass the noise through, so
# a NOISE node's base noise or NI-VSDS's fixed eps* is never swapped or optimised a second time.
_OWN_LOOP: contextvars.ContextVar[bool] = contextvars.ContextVar("tfv_own_sampling_loop", default=False)


# --------------------------------------------------------------------------- model facts

def model_sampling(model) -> Any:
    """The (possibly object-patched, e.g. ModelSamplingSD3 shift) model_sampling of a MODEL."""
    return model.get_model_object("model_sampling")


def sigma_table(ms) -> torch.Tensor:
    """The model's ascending table of training sigmas (``[1000]`` for SD and discrete flow)."""
    return ms.sigmas.detach().float().cpu()


def calculate_sigmas(model, scheduler: str, steps: int) -> torch.Tensor:
    """ComfyUI's schedule ``[steps + 1]`` (last 0) for a MODEL, CPU float32."""
    return comfy.samplers.calculate_sigmas(model_sampling(model), scheduler, steps).cpu()


SCHEDULERS = comfy.samplers.SCHEDULER_NAMES


def is_max_denoise(ms, sigmas: torch.Tensor) -> bool:
    """ComfyUI's ``Sampler.max_denoise`` rule: sigmas[0] at (rel 1e-5) or above sigma_max."""
    max_sigma = float(ms.sigma_max)
    s0 = float(sigmas[0])
    return math.isclose(max_sigma, s0, rel_tol=1e-05) or s0 > max_sigma


def intermediate_device() -> torch.device:
    return comfy.model_management.intermediate_device()


def throw_if_interrupted() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


def diffusion_model(model) -> torch.nn.Module:
    """The network inside a MODEL (UNet, Wan DiT, ...)."""
    return model.get_model_object("diffusion_model")


# --------------------------------------------------------------------------- model calls

class ModelCalls:
    """Counts model calls (NFE: 2 per CFG call, 1 when cfg == 1), drives one progress bar over
    all of them and checks ComfyUI's interrupt before every call."""

    def __init__(self, total_nfe: int):
        self.total = max(int(total_nfe), 1)
        self.nfe = 0
        self.pbar = comfy.utils.ProgressBar(self.total)

    def before(self) -> None:
        throw_if_interrupted()

    def after(self, n: int) -> None:
        self.nfe += n
        self.pbar.update_absolute(min(self.nfe, self.total), self.total)


def make_denoiser(guider, extra_args: dict) -> Callable:
    """``denoise(x, sigma, cfg) -> x0`` (CFG-guided denoised latent, ``x``'s shape and dtype)
    through a CFGGuider that is inside ``sample()`` (conds processed, model loaded).

    ``sigma`` is a float or 0-dim tensor in the model's sigma units; cfg == 1 is one conditional
    model call (ComfyUI's ``sampling_function`` skips the uncond pass), otherwise two. Runs under
    ``torch.no_grad()``.
    """
    model_options = extra_args.get("model_options", {})
    seed = extra_args.get("seed", None)

    def denoise(x: torch.Tensor, sigma, cfg: float) -> torch.Tensor:
        old = guider.cfg
        guider.cfg = float(cfg)
        try:
            s = torch.full((x.shape[0],), float(sigma), device=x.device, dtype=torch.float32)
            # No autograd graph in the pack's own loops, also when a script calls a node outside
            # ComfyUI's executor (which runs nodes under inference_mode): SmoothInit-30 kept every
            # call's graph alive there (> 5 GB).
            with torch.no_grad():
                out = guider(x, s, model_options=model_options, seed=seed)
        finally:
            guider.cfg = old
        return out

    return denoise


@dataclass
class SamplingContext:
    """What an initialiser or NI-VSDS needs, inside ComfyUI's ``sample()``.

    noise: unit noise ``[B, C, ...]`` on the model's device; latent_image: the processed latent
    (zeros for an empty latent); sigmas: the schedule on the device; max_denoise: ComfyUI's rule.
    """
    guider: Any
    extra_args: dict
    model_sampling: Any
    sigmas: torch.Tensor
    noise: torch.Tensor
    latent_image: torch.Tensor
    max_denoise: bool
    model_patcher: Any = None
    extras: dict = field(default_factory=dict)

    def denoiser(self) -> Callable:
        return make_denoiser(self.guider, self.extra_args)

    def process_latent_out(self, x: torch.Tensor) -> torch.Tensor:
        return self.guider.inner_model.process_latent_out(x.to(torch.float32))


def run_in_sampling(model, positive, negative, cfg: float, latent: torch.Tensor, noise: torch.Tensor,
                    sigmas: torch.Tensor, fn: Callable[[SamplingContext], Any], seed: int | None = None,
                    denoise_mask: torch.Tensor | None = None) -> Any:
    """Run ``fn(ctx)`` inside ``CFGGuider.sample`` of ``model`` with these conds, and return its result.

    This is how the NOISE nodes and NI-VSDS get ComfyUI's full model handling (loading, ControlNet,
    hooks, cleanup) around their own loop: a custom KSAMPLER whose sampler function calls ``fn``.
    ``latent``/``noise``: ``[B, C, ...]`` (CPU is fine), ``sigmas``: ``[N+1]``.
    """
    guider = comfy.samplers.CFGGuider(model)
    guider.set_conds(positive, negative)
    guider.set_cfg(cfg)
    result: dict = {}

    def sampler_function(model_k, x, sigmas_dev, extra_args=None, callback=None, disable=None, **kw):
        g = model_k.inner_model
        ms = g.inner_model.model_sampling
        ctx = SamplingContext(guider=g, extra_args=extra_args or {}, model_sampling=ms, sigmas=sigmas_dev,
                              noise=model_k.noise, latent_image=model_k.latent_image,
                              max_denoise=is_max_denoise(ms, sigmas_dev), model_patcher=model)
        result["out"] = fn(ctx)
        return x

    token = _OWN_LOOP.set(True)
    try:
        guider.sample(noise, latent, comfy.samplers.KSAMPLER(sampler_function), sigmas,
                      denoise_mask=denoise_mask, disable_pbar=True, seed=seed)
    finally:
        _OWN_LOOP.reset(token)
    return result["out"]


# --------------------------------------------------------------------------- patches

def add_sampler_noise_wrapper(model, key: str, fn: Callable[[SamplingContext], torch.Tensor]):
    """Clone ``model`` with a SAMPLER_SAMPLE wrapper that replaces the initial unit noise of every
    sampler node (KSampler, KSamplerAdvanced, SamplerCustom[Advanced]) by ``fn(ctx)``.

    All-zero noise (KSamplerAdvanced ``add_noise = disable``, second stages) is left alone, and so
    is the noise of the pack's own loops (:func:`run_in_sampling`). The input MODEL is not mutated.
    Arguments the wrapper does not use (any ComfyUI adds later) are passed on to the executor.
    """
    def wrapper(executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        # ComfyUI 0.3.64: sampler.sample(guider, sigmas, extra_args, callback, noise, latent_image=None,
        # denoise_mask=None, disable_pbar=False); anything else is passed on untouched
        latent_image = args[0] if args else kwargs.get("latent_image")
        if (not _OWN_LOOP.get() and noise is not None and torch.count_nonzero(noise) > 0
                and sigmas.shape[-1] > 1):
            ms = guider.inner_model.model_sampling
            ctx = SamplingContext(guider=guider, extra_args=extra_args, model_sampling=ms, sigmas=sigmas,
                                  noise=noise, latent_image=latent_image,
                                  max_denoise=is_max_denoise(ms, sigmas), model_patcher=guider.model_patcher)
            noise = fn(ctx).to(device=noise.device, dtype=noise.dtype)
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, key, wrapper)
    return m


# OUTER_SAMPLE's positional arguments after ``noise`` (ComfyUI 0.3.64 CFGGuider.outer_sample):
# latent_image, sampler, sigmas, denoise_mask, callback, disable_pbar, seed
_OUTER_SAMPLE_SAMPLER_INDEX = 1
_OUTER_SAMPLE_SEED_INDEX = 6


def add_outer_noise_wrapper(model, key: str, fn: Callable[[torch.Tensor, int | None], torch.Tensor]):
    """Clone ``model`` with an OUTER_SAMPLE wrapper that replaces the unit noise (CPU, before the
    model loads) by ``fn(noise, seed)`` for every sampler node; all-zero noise and the noise of the
    pack's own loops (:func:`run_in_sampling`) are left alone. Arguments the wrapper does not use
    are passed on to the executor unchanged."""
    def wrapper(executor, noise, *args, **kwargs):
        if "seed" in kwargs:
            seed = kwargs["seed"]
        else:
            seed = args[_OUTER_SAMPLE_SEED_INDEX] if len(args) > _OUTER_SAMPLE_SEED_INDEX else None
        if not _OWN_LOOP.get() and noise is not None and torch.count_nonzero(noise) > 0:
            noise = fn(noise, seed).to(device=noise.device, dtype=noise.dtype)
        return executor(noise, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, key, wrapper)
    return m


# --------------------------------------------------------------------------- chunked sampling (ZS^2 long videos)

def own_loop_active() -> bool:
    """True while :func:`run_in_sampling` runs one of the pack's own loops (NI-VSDS, NOISE nodes)."""
    return _OWN_LOOP.get()


def add_sampler_wrappers(model, key: str, sampler_sample: Callable | None = None,
                         predict_noise: Callable | None = None, outermost: bool = False):
    """Clone ``model`` with a SAMPLER_SAMPLE wrapper ``sampler_sample(executor, guider, sigmas,
    extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)`` (every sampler node ends
    there, model loaded and conds processed) and/or a PREDICT_NOISE wrapper ``predict_noise(executor,
    x, timestep, model_options, seed)`` (every CFG model call; ``model_options`` is the sampler's
    ``extra_args["model_options"]``). ``outermost``: the SAMPLER_SAMPLE wrapper runs before every
    SAMPLER_SAMPLE wrapper already on the model (ComfyUI runs them in the order they were added), so
    e.g. chunking sees the noise before SmoothInit (KSampler) does, whichever was applied first.
    The input MODEL is not mutated."""
    m = model.clone()
    if sampler_sample is not None:
        m.add_wrapper_with_key(WrappersMP.SAMPLER_SAMPLE, key, sampler_sample)
        if outermost:   # the clone owns its wrapper dicts (ModelPatcher.clone copies them)
            w = m.wrappers[WrappersMP.SAMPLER_SAMPLE]
            m.wrappers[WrappersMP.SAMPLER_SAMPLE] = {key: w[key], **{k: v for k, v in w.items() if k != key}}
    if predict_noise is not None:
        m.add_wrapper_with_key(WrappersMP.PREDICT_NOISE, key, predict_noise)
    return m


def with_transformer_option(extra_args: dict, key: str, value) -> dict:
    """A copy of a sampler's ``extra_args`` whose ``model_options["transformer_options"][key]`` is
    ``value`` (every model call of a sampler run with it sees the value; the original is untouched)."""
    mo = dict(extra_args.get("model_options", {}))
    to = dict(mo.get("transformer_options", {}))
    to[key] = value
    mo["transformer_options"] = to
    ea = dict(extra_args)
    ea["model_options"] = mo
    return ea


def transformer_option(model_options: dict, key: str, default=None):
    """``model_options["transformer_options"][key]`` (e.g. in a PREDICT_NOISE wrapper), else ``default``."""
    return model_options.get("transformer_options", {}).get(key, default)


def _controls(cond: dict):
    c = cond.get("control")
    seen = set()
    while c is not None and id(c) not in seen:
        seen.add(id(c))
        yield c
        c = getattr(c, "previous_controlnet", None)


@contextlib.contextmanager
def conds_frame_slice(guider, frames: int, start: int, end: int):
    """Inside ``CFGGuider.sample``: narrow every per-frame conditioning of ``guider`` to the frames
    ``start .. end - 1`` of an ``frames``-frame video (frames as the batch) for the duration of the
    block, then restore it.

    Per-frame means a batch of exactly ``frames``: model conds (e.g. InstructPix2Pix / inpainting
    ``concat`` latents, batched text conds) and ControlNet / T2I-Adapter hint images (one control
    image per frame). Anything with batch 1 is shared by all frames and left alone. Without this,
    ComfyUI would repeat/truncate them to the chunk's batch, i.e. give every chunk the first frames'
    conditioning."""
    undo = []
    try:
        for conds in getattr(guider, "conds", {}).values():
            for cond in conds or []:
                mc = cond.get("model_conds", {})
                for name, c in list(mc.items()):
                    t = getattr(c, "cond", None)
                    if isinstance(t, torch.Tensor) and t.ndim >= 1 and t.shape[0] == frames and hasattr(c, "_copy_with"):
                        undo.append((mc.__setitem__, (name, c)))
                        mc[name] = c._copy_with(t[start:end])
                for ctrl in _controls(cond):
                    hint = getattr(ctrl, "cond_hint_original", None)
                    if isinstance(hint, torch.Tensor) and hint.ndim >= 1 and hint.shape[0] == frames:
                        undo.append((setattr, (ctrl, "cond_hint_original", hint)))
                        ctrl.cond_hint_original = hint[start:end]
                        ctrl.cond_hint = None              # rebuilt from the sliced hint at the next call
                        if hasattr(ctrl, "control_input"):
                            ctrl.control_input = None      # T2I-Adapter's cached features
        yield
    finally:
        for fn, args in reversed(undo):
            fn(*args)
            if fn is setattr:
                args[0].cond_hint = None
                if hasattr(args[0], "control_input"):
                    args[0].control_input = None


def add_attn1_patch(model, patch: Callable):
    """Clone ``model`` and register ``patch(n, context_attn1, value_attn1, extra_options)`` on every
    UNet self-attention (``transformer_options["patches"]["attn1_patch"]``)."""
    m = model.clone()
    m.set_model_attn1_patch(patch)
    return m


ATTENTION_OVERRIDE_KEY = "optimized_attention_override"


def attention_override(model) -> Callable | None:
    """The MODEL's ``transformer_options["optimized_attention_override"]`` (None when unset)."""
    return model.model_options.get("transformer_options", {}).get(ATTENTION_OVERRIDE_KEY)


def add_attention_override(model, make_override: Callable[[Callable | None], Callable]):
    """Clone ``model`` and set ``transformer_options["optimized_attention_override"]`` to
    ``make_override(previous)``: ComfyUI's ``wrap_attn`` then calls it as
    ``override(func, q, k, v, heads, *args, **kwargs)`` for every attention call that passes
    ``transformer_options`` (Flux, SD3/MMDiT, Qwen-Image, Lumina 2, HiDream, Chroma; SD UNets too).
    ``previous`` is an override already on the MODEL (another node's), which the new one must call
    instead of ``func`` so both apply. The input MODEL is not mutated."""
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    to[ATTENTION_OVERRIDE_KEY] = make_override(to.get(ATTENTION_OVERRIDE_KEY))
    return m


# DiT image models (frames = the latent batch) whose every attention call passes transformer_options
# in ComfyUI 0.3.64, so the attention override reaches all of them: (module, class); subclasses count
# (Chroma Radiance, Flux ControlNet). Video DiTs (Wan, Hunyuan video, LTXV, ...) are not listed.
_DIT_IMAGE_MODELS = (
    ("comfy.ldm.flux.model", "Flux"),
    ("comfy.ldm.chroma.model", "Chroma"),
    ("comfy.ldm.modules.diffusionmodules.mmdit", "MMDiT"),
    ("comfy.ldm.qwen_image.model", "QwenImageTransformer2DModel"),
    ("comfy.ldm.lumina.model", "NextDiT"),
    ("comfy.ldm.hidream.model", "HiDreamImageTransformer2DModel"),
)


def dit_image_model_family(model) -> str | None:
    """Class name of the supported DiT image model family of a MODEL (``"Flux"``, ``"MMDiT"`` for
    SD3, ``"Chroma"``, ``"QwenImageTransformer2DModel"``, ``"NextDiT"`` for Lumina 2,
    ``"HiDreamImageTransformer2DModel"``), or None (UNets, video DiTs, anything else)."""
    import importlib
    dm = diffusion_model(model)
    for module, name in _DIT_IMAGE_MODELS:
        try:
            cls = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):  # a ComfyUI without that model family
            continue
        if isinstance(dm, cls):
            return name
    return None
# AnimateDiff-Evolved registers its motion models as additional models under this key
# (animatediff/model_injection.py ModelPatcherHelper.ADE -> ModelPatcher.set_additional_models).
_ADE_KEY = "ADE"
_CROSS_BATCH_MARKER = "tfv_attends_across_batch"


def _iter_patch_objects(transformer_options: dict):
    patches = transformer_options.get("patches") or {}
    for v in patches.values():
        if isinstance(v, (list, tuple)):
            for p in v:
                yield p[1] if isinstance(p, tuple) and len(p) == 2 and callable(p[1]) else p
    replace = transformer_options.get("patches_replace") or {}
    for table in replace.values():
        if isinstance(table, dict):
            yield from table.values()
    override = transformer_options.get("optimized_attention_override")
    if override is not None:
        yield override


def model_attends_across_batch(model, model_options: dict | None = None) -> bool:
    """True when the MODEL mixes the samples of its batch, i.e. its batch is one video's frames:
    an AnimateDiff-Evolved motion model is attached (``additional_models["ADE"]``, or the
    ``motion_models`` of older ADE versions), or an attention patch carries the pack's
    ``tfv_attends_across_batch`` marker (Temporal Momentum Attention). ``model_options``: the
    sampling-time options (``extra_args["model_options"]``), searched too when given.
    Stacking independent samples along such a batch would change the result."""
    if model is not None:
        extra = getattr(model, "additional_models", None) or {}
        if extra.get(_ADE_KEY):
            return True
        if getattr(model, "motion_models", None):
            return True
    tables = []
    if model is not None:
        tables.append(getattr(model, "model_options", {}) or {})
    if model_options is not None:
        tables.append(model_options)
    for opts in tables:
        to = opts.get("transformer_options") or {}
        if any(getattr(p, _CROSS_BATCH_MARKER, False) for p in _iter_patch_objects(to)):
            return True
    return False


def unet_self_attention_keys(model) -> list[tuple]:
    """Module names of every UNet BasicTransformerBlock (empty for DiT models without them)."""
    from comfy.ldm.modules.attention import BasicTransformerBlock
    dm = diffusion_model(model)
    keys = []
    for name, mod in dm.named_modules():
        if isinstance(mod, BasicTransformerBlock):
            keys.append(name)
    return keys


# --------------------------------------------------------------------------- folders

def output_directory() -> str:
    return folder_paths.get_output_directory()


def input_directory() -> str:
    return folder_paths.get_input_directory()


# --------------------------------------------------------------------------- latent layout, progress (I4VGen)

def latent_dimensions(model) -> int:
    """Spatial(-temporal) dims of the MODEL's latents: 2 for image models whose videos are frames as
    batch ``[F, C, H, W]`` (SD1.5 + AnimateDiff), 3 for native video latents ``[B, C, T, H, W]``
    (Wan, Hunyuan, LTXV); from ``latent_format.latent_dimensions``."""
    return int(getattr(model.get_model_object("latent_format"), "latent_dimensions", 2))


def latent_channels(model) -> int:
    """Latent channel count C of the MODEL's latent format (SD1.5: 4, Wan 2.1: 16)."""
    return int(model.get_model_object("latent_format").latent_channels)


def latent_format_name(model) -> str:
    """Class name of the MODEL's latent format (e.g. ``SD15``, ``Wan21``), for error messages."""
    return type(model.get_model_object("latent_format")).__name__


def process_latent_in(ctx: "SamplingContext", latent: torch.Tensor) -> torch.Tensor:
    """The model-space version of a raw latent inside ``sample()`` (``ctx.latent_image`` is left
    unshifted by ComfyUI when the latent is all zeros; this always applies the shift)."""
    return ctx.guider.inner_model.process_latent_in(latent)


def iteration_progress(model, total: int) -> Callable[[int, torch.Tensor], None]:
    """One progress bar of ``total`` iterations with latent previews (best effort).

    Returns ``update(i, latent)``: iteration ``i`` (0-based) is done; ``latent`` (model space,
    ``[B, C, ...]``) is shown as the preview when a previewer is configured.
    """
    total = max(int(total), 1)
    cb = None
    try:
        cb = latent_preview.prepare_callback(model, total)
    except Exception:  # previews are best-effort (no previewer configured)
        cb = None
    pbar = comfy.utils.ProgressBar(total) if cb is None else None

    state = {"cb": cb, "pbar": pbar}

    def update(i: int, latent: torch.Tensor) -> None:
        if state["cb"] is not None:
            try:
                state["cb"](min(int(i), total - 1), latent, latent, total)
                return
            except InterruptedError_:
                raise
            except Exception:  # a previewer that cannot decode this latent: keep the bar only
                state["cb"] = None
                state["pbar"] = comfy.utils.ProgressBar(total)
        state["pbar"].update_absolute(min(int(i) + 1, total), total)

    return update


# --------------------------------------------------------------------------- memory (SmoothInit)

def soft_empty_cache() -> None:
    """Free cached device memory (ComfyUI's ``soft_empty_cache``), e.g. after an out-of-memory."""
    comfy.model_management.soft_empty_cache()


def sampler_cfg(guider) -> float:
    """The CFG scale the sampler's guider applies: ``guider.cfg`` for a CFGGuider with a negative
    (KSampler's cfg), 1.0 for guiders with their own rule (BasicGuider, DualCFGGuider), whose model
    call does not depend on ``guider.cfg``."""
    return float(guider.cfg) if guider_applies_cfg(guider) else 1.0


def guider_applies_cfg(guider) -> bool:
    """True when ``guider.cfg`` really is the CFG scale of its model calls: a plain CFGGuider (or a
    subclass that keeps its ``predict_noise``) with a negative conditioning. False for BasicGuider
    (no negative: Flux-style), DualCFGGuider, PerpNeg and other guiders with their own rule."""
    pn = getattr(type(guider), "predict_noise", None)
    return (isinstance(guider, comfy.samplers.CFGGuider) and pn is comfy.samplers.CFGGuider.predict_noise
            and "negative" in getattr(guider, "original_conds", {}))


# --------------------------------------------------------------------------- video VAEs (I4VGen static video)

def causal_video_frames_fn(vae) -> Callable[[int], int] | None:
    """The picture-frames -> latent-frames function of a causal 3-D video VAE, else None.

    ComfyUI's video VAEs (Wan 2.1/2.2, Hunyuan, LTXV, Mochi, Cosmos) set ``latent_dim = 3`` and
    ``downscale_ratio = (frames_fn, h, w)`` with e.g. ``frames_fn(n) = (n + 3) // 4`` (Wan,
    Hunyuan), ``(n + 7) // 8`` (LTXV), ``(n + 5) // 6`` (Mochi): latent frame 0 holds picture frame
    0 alone, each later latent frame 4 (8, 6) picture frames (COMFY.md "Video VAEs"). Image VAEs
    (an int ``downscale_ratio``) and 3-D image VAEs (``not_video``) give None.
    """
    if vae is None or int(getattr(vae, "latent_dim", 2)) != 3 or bool(getattr(vae, "not_video", False)):
        return None
    ratio = getattr(vae, "downscale_ratio", None)
    if isinstance(ratio, (tuple, list)) and len(ratio) >= 1 and callable(ratio[0]):
        return ratio[0]
    return None


def vae_latent_channels(vae) -> int | None:
    """Latent channel count of a VAE (Wan 2.1: 16, SD: 4), None if unknown."""
    c = getattr(vae, "latent_channels", None)
    return None if c is None else int(c)


def picture_frames_for(vae, latent_frames: int) -> int:
    """The smallest number n of picture frames that a causal video VAE encodes into
    ``latent_frames`` latent frames (inverts ``frames_fn``: Wan/Hunyuan ``4 (T - 1) + 1``, LTXV
    ``8 (T - 1) + 1``, Mochi ``6 (T - 1) + 1``).

    Raises:
        ValueError: ``vae`` is not a causal video VAE, or no picture-frame count gives T.
    """
    fn = causal_video_frames_fn(vae)
    if fn is None:
        raise ValueError(f"{type(vae).__name__} is not a causal video VAE")
    t = int(latent_frames)
    lo, hi = 1, 1
    while int(fn(hi)) < t:  # frames_fn is non-decreasing: bracket, then bisect
        lo, hi = hi + 1, hi * 2
        if hi > 1 << 24:
            raise ValueError(f"no picture-frame count encodes into {t} latent frames")
    while lo < hi:
        mid = (lo + hi) // 2
        if int(fn(mid)) < t:
            lo = mid + 1
        else:
            hi = mid
    if int(fn(lo)) != t:
        raise ValueError(f"no picture-frame count encodes into exactly {t} latent frames "
                         f"({lo} picture frames give {int(fn(lo))})")
    return lo


def encode_still_clip(vae, image: torch.Tensor, latent_frames: int) -> torch.Tensor:
    """Encode a still clip: ``image`` ``[1, H, W, 3]`` (0..1) held for the picture-frame count that
    gives ``latent_frames`` latent frames, in ONE ``VAE.encode`` call (the frames are the IMAGE
    batch). Returns the raw video latent ``[1, C, T, H/s, W/s]`` (ComfyUI's LATENT samples)."""
    n = picture_frames_for(vae, latent_frames)
    clip = image[:1].repeat(n, 1, 1, 1)
    out = vae.encode(clip)
    if out.ndim != 5 or int(out.shape[2]) != int(latent_frames):
        raise ValueError(f"the VAE encoded {n} picture frames into a latent of shape {tuple(out.shape)}, not "
                         f"{int(latent_frames)} latent frames")
    return out


def decode_first_picture_frame(vae, latent: torch.Tensor) -> torch.Tensor:
    """Picture frame 0 of a raw video latent ``[1, C, T, H, W]`` (or an image latent ``[1, C, H, W]``,
    taken as one latent frame) as IMAGE ``[1, H*s, W*s, 3]``. A causal VAE decodes latent frame 0
    into picture frame 0 on its own, so only that latent frame is decoded."""
    x = latent[:1]
    if x.ndim == 4:
        x = x.unsqueeze(2)
    img = vae.decode(x[:, :, :1])
    return img.reshape((-1,) + tuple(img.shape[-3:]))[:1]


# --------------------------------------------------------------------------- multi-pass samplers (FreeInit)
# A SAMPLER that runs its inner sampler several times inside ONE ComfyUI sampling (model loaded once,
# conds processed once), and an OUTER_SAMPLE patch that wraps every sampler node's SAMPLER in it. The
# wrapper sits below every SAMPLER_SAMPLE wrapper and after every OUTER_SAMPLE noise swap, so noise
# edits of other patches (SmoothInit (KSampler), Dependency Noise (KSampler), AnimateDiff-Evolved)
# happen once, before the first pass, whatever order the patches were applied in.

@dataclass
class SamplerPasses:
    """One call of a multi-pass SAMPLER, inside ``CFGGuider.sample``.

    noise: the initial unit noise ``[B, C, ...]`` (model device) after every noise patch;
    latent_image: the processed input latent (zeros for an empty latent); sigmas: the schedule (device);
    max_denoise: ComfyUI's rule for sigmas[0]; seed: the sampler's seed (may be None);
    callback: the sampler node's ``callback(step, x0, x, total_steps)`` (progress bar + previews) or None.
    """
    inner: Any
    model_wrap: Any
    model_sampling: Any
    sigmas: torch.Tensor
    extra_args: dict
    callback: Any
    noise: torch.Tensor
    latent_image: torch.Tensor
    denoise_mask: Any
    disable_pbar: bool
    max_denoise: bool
    seed: int | None

    def run_pass(self, noise: torch.Tensor, callback=None, sigmas: torch.Tensor | None = None) -> torch.Tensor:
        """One full run of the inner sampler from unit ``noise`` over ``sigmas`` (default: the call's
        schedule); returns its output (model space, the clean latent when sigmas[-1] == 0)."""
        return self.inner.sample(self.model_wrap, self.sigmas if sigmas is None else sigmas, dict(self.extra_args),
                                 callback, noise, self.latent_image, self.denoise_mask, self.disable_pbar)


class MultiPassSampler(comfy.samplers.Sampler):
    """A ComfyUI SAMPLER wrapping ``inner``: ``sample(...)`` returns ``run(SamplerPasses)``."""

    def __init__(self, inner, run: Callable[[SamplerPasses], torch.Tensor], tag: str = ""):
        self.inner, self.run, self.tag = inner, run, tag

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        ms = model_wrap.inner_model.model_sampling
        md = (self.inner.max_denoise(model_wrap, sigmas) if hasattr(self.inner, "max_denoise")
              else is_max_denoise(ms, sigmas))
        call = SamplerPasses(inner=self.inner, model_wrap=model_wrap, model_sampling=ms, sigmas=sigmas,
                             extra_args=extra_args, callback=callback, noise=noise, latent_image=latent_image,
                             denoise_mask=denoise_mask, disable_pbar=disable_pbar, max_denoise=bool(md),
                             seed=extra_args.get("seed", None))
        return self.run(call)


def add_outer_sampler_wrapper(model, key: str, wrap: Callable[[Any], Any]):
    """Clone ``model`` with an OUTER_SAMPLE wrapper that replaces the SAMPLER of every sampler node
    (KSampler, KSamplerAdvanced, SamplerCustom[Advanced]) by ``wrap(sampler)``. The pack's own loops
    (:func:`run_in_sampling`: NOISE nodes, NI-VSDS) keep their sampler. The input MODEL is not mutated."""
    def wrapper(executor, noise, *args, **kwargs):
        i = _OUTER_SAMPLE_SAMPLER_INDEX
        if not _OWN_LOOP.get():
            if len(args) > i:
                args = args[:i] + (wrap(args[i]),) + args[i + 1:]
            elif "sampler" in kwargs:
                kwargs["sampler"] = wrap(kwargs["sampler"])
        return executor(noise, *args, **kwargs)

    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, key, wrapper)
    return m
