"""ComfyUI bridge: attention patches and what attends across the batch (TMA, SmoothInit batching).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

from typing import Callable

from .models import WrappersMP, diffusion_model


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
    ``transformer_options`` (Flux, Flux 2, SD3/MMDiT, Qwen-Image, Lumina 2, Z-Image, HiDream, Chroma,
    Krea 2; SD UNets too).
    ``previous`` is an override already on the MODEL (another node's), which the new one must call
    instead of ``func`` so both apply. The input MODEL is not mutated."""
    m = model.clone()
    to = m.model_options.setdefault("transformer_options", {})
    to[ATTENTION_OVERRIDE_KEY] = make_override(to.get(ATTENTION_OVERRIDE_KEY))
    return m


def _describe(obj) -> str:
    if obj is None:
        return "nothing"
    name = getattr(obj, "__qualname__", None) or type(obj).__qualname__
    module = getattr(obj, "__module__", None) or type(obj).__module__
    return f"{module}.{name}"


def add_checked_attention_override(model, make_override: Callable[[Callable | None], Callable], *, key: str,
                                   info_key: str, make_info: Callable, warning: str):
    """:func:`add_attention_override`, plus a check at sampling time that the override still runs.

    The clone also gets an APPLY_MODEL wrapper (under ``key``) that, around every model call, puts a
    fresh ``make_info(x, context, conds)`` (``x``: the model input latent ``[B, C, ...]``; ``context``:
    ``c_crossattn`` ``[B, tokens, dim]`` or None; ``conds``: the call's other model inputs, e.g.
    ``attention_mask``, ``ref_latents``, ``image_cond``) into a copy of the call's ``transformer_options``
    under ``info_key``; the override reads it there and counts its calls in ``info.calls``. When a
    model call ends with ``info.calls == 0``, no earlier call of the sampling run reached the
    override, and the override slot does not hold it (itself, or through a chain of ``.previous``
    overrides carrying the same ``info_key``), something placed after this node replaced it (e.g.
    another pack's attention patch that does not call the previous override): the wrapper logs
    ``warning`` (``logging.warning``, which ComfyUI prints to its console and keeps in its log),
    followed by what now holds ``transformer_options["optimized_attention_override"]``, once per
    sampling run (an OUTER_SAMPLE wrapper under ``key`` starts a run). A step that skips the
    transformer blocks (a cache such as TeaCache) after the override ran is not a replacement. The
    input MODEL is not mutated."""
    import logging
    state = {"warned": False, "ran": False}

    def outer_sample(executor, *args, **kwargs):
        state["warned"] = state["ran"] = False
        return executor(*args, **kwargs)

    def holds_ours(obj) -> bool:
        for _ in range(64):
            if obj is None:
                return False
            if getattr(obj, "info_key", None) == info_key:
                return True
            obj = getattr(obj, "previous", None)
        return False

    def apply_model(executor, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={},
                    **kwargs):
        to = dict(transformer_options or {})
        info = make_info(x, c_crossattn, kwargs)
        to[info_key] = info
        out = executor(x, t, c_concat, c_crossattn, control, to, **kwargs)
        if info.calls > 0:
            state["ran"] = True
        elif not state["ran"] and not state["warned"] and not holds_ours(to.get(ATTENTION_OVERRIDE_KEY)):
            state["warned"] = True
            logging.warning("%s (transformer_options['%s'] now holds %s)", warning, ATTENTION_OVERRIDE_KEY,
                            _describe(to.get(ATTENTION_OVERRIDE_KEY)))
        return out

    m = add_attention_override(model, make_override)
    m.add_wrapper_with_key(WrappersMP.OUTER_SAMPLE, key, outer_sample)
    m.add_wrapper_with_key(WrappersMP.APPLY_MODEL, key, apply_model)
    return m


# DiT image models (frames = the latent batch) whose every attention call passes transformer_options
# (ComfyUI 0.3.64 and 0.33.x; Krea 2 exists in 0.33.x only), so the attention override reaches all of
# them: (module, class); subclasses count (Chroma Radiance, Flux ControlNet, Flux 2 and Klein are the
# Flux class, Z-Image is NextDiT). Video DiTs (Wan, Hunyuan video, LTXV, ...) are not listed.
_DIT_IMAGE_MODELS = (
    ("comfy.ldm.flux.model", "Flux"),
    ("comfy.ldm.chroma.model", "Chroma"),
    ("comfy.ldm.modules.diffusionmodules.mmdit", "MMDiT"),
    ("comfy.ldm.qwen_image.model", "QwenImageTransformer2DModel"),
    ("comfy.ldm.lumina.model", "NextDiT"),
    ("comfy.ldm.hidream.model", "HiDreamImageTransformer2DModel"),
    ("comfy.ldm.krea2.model", "SingleStreamDiT"),
)


def dit_image_model_family(model) -> str | None:
    """Class name of the supported DiT image model family of a MODEL (``"Flux"`` also for Flux 2 and
    Klein, ``"MMDiT"`` for SD3, ``"Chroma"``, ``"QwenImageTransformer2DModel"``, ``"NextDiT"`` for
    Lumina 2 and Z-Image, ``"HiDreamImageTransformer2DModel"``, ``"SingleStreamDiT"`` for Krea 2), or
    None (UNets, video DiTs, anything else)."""
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
