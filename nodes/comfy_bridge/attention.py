"""ComfyUI bridge: attention patches and what attends across the batch (TMA, SmoothInit batching).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

from typing import Callable

from .models import diffusion_model


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
