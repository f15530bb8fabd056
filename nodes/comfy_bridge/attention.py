"""ComfyUI bridge: attention patches and what attends across the batch (TMA, SmoothInit batching).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from ...attention.temporal_momentum import momentum_spec, temporal_momentum
from ..errors import naming
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


# --------------------------------------------------------------------------- Temporal Momentum Attention
# ComfyUI's two attention protocols (a UNet attn1 patch, a DiT attention override) adapted to the pure
# averaging of attention/temporal_momentum.py (ZS^2 Eq. 2): frames per CFG chunk (cond_or_uncond),
# AnimateDiff-Evolved's ad_params for per-frame momenta, the override's positional arguments.

def call_momentum(momentum, frames: int, transformer_options: dict | None):
    """The momentum for one model call whose chunks hold ``frames`` frames each: the scalar itself,
    or ``[mu_1, ..., mu_F]`` of a schedule (:func:`momentum_spec`) at the frames' global indices
    under AnimateDiff-Evolved context windows (``transformer_options["ad_params"]["sub_idxs"]``,
    resolved to ``full_length``), else at frames ``1..F`` of the call."""
    if isinstance(momentum, float):
        return momentum
    ad = (transformer_options or {}).get("ad_params") or {}
    idxs = ad.get("sub_idxs")
    if idxs is not None and len(idxs) == frames:
        mus = momentum.resolve(max(int(ad.get("full_length") or 0), max(idxs) + 1))
        return [mus[int(k)] for k in idxs]
    return momentum.resolve(frames)


class TemporalMomentumPatch:
    """A UNet ``attn1_patch`` (``p(n, context_attn1, value_attn1, extra_options)``) implementing TMA.

    ``n``: the self-attention block's normed hidden states ``[B, tokens, C]`` (queries come from it,
    unchanged). ``context_attn1`` / ``value_attn1``: the tensors the K / V projections will read
    (ComfyUI passes ``n`` for both; an earlier patch may have replaced them; ``None`` means "``n``").
    Each is averaged over frames with Eq. 2 (if the same tensor is passed for both, once). Because
    the projections are affine and each row of weights sums to 1, this yields exactly ``K'``/``V'``.

    Frames: the batch is split into ``len(extra_options["cond_or_uncond"])`` consecutive chunks (CFG
    cond/uncond and area-cond chunks; frames per chunk = batch // chunks); each chunk is one video
    and is averaged on its own, so cond and uncond never mix. Under AnimateDiff-Evolved context
    windows a call holds only the window's frames, so the momentum average starts afresh at the
    window's first frame (``K'`` of that frame is its own ``K``) and runs over the window only.

    Tensors whose batch is not ``B`` (e.g. a batch-1 context shared by all frames) are left alone.

    ``momentum``: a scalar ``mu``, or a per-frame schedule (a ``FrameSchedule`` or a sequence
    ``[mu_1, mu_2, ...]``, the last value repeating) resolved at every call to the frames per chunk.
    Under AnimateDiff-Evolved context windows the values follow the *global* frame indices of the
    window's frames (``extra_options["ad_params"]["sub_idxs"]``, the schedule resolved to
    ``full_length``): window frame ``k >= 1`` uses ``mu`` of its global frame; the window's first
    frame still keeps its own ``K``. Core ComfyUI's context windows do not tell the call the video's
    length, so there the schedule runs over the window's own frames (as the average does).

    Raises:
        ValueError: a momentum outside ``[0, 1]``; the batch does not split into equal chunks.
    """

    #: Marker read by the pack's bridge: the patched model mixes the samples of its batch (the frames),
    #: so SmoothInit must not stack perturbations along the batch.
    tfv_attends_across_batch = True

    def __init__(self, momentum=0.98, node: str = ""):
        self.momentum = momentum_spec(momentum)
        self.node = node   # names the errors raised while sampling (the node's display name)

    def __repr__(self) -> str:
        return f"TemporalMomentumPatch(momentum={self.momentum})"

    def groups(self, batch: int, extra_options: dict) -> int:
        return _chunks(batch, extra_options)

    def _avg(self, t: Tensor | None, batch: int, groups: int, mu) -> Tensor | None:
        if t is None or t.shape[0] != batch:
            return t
        return temporal_momentum(t, mu, groups)

    def __call__(self, n: Tensor, context_attn1: Tensor | None, value_attn1: Tensor | None,
                 extra_options: dict, *args, **kwargs):
        with naming(self.node or "Temporal Momentum Attention"):
            return self._patch(n, context_attn1, value_attn1, extra_options)

    def _patch(self, n, context_attn1, value_attn1, extra_options):
        batch = n.shape[0]
        groups = self.groups(batch, extra_options)
        mu = call_momentum(self.momentum, batch // groups, extra_options)
        if context_attn1 is None:
            context_attn1 = n
        same = value_attn1 is context_attn1
        ctx = self._avg(context_attn1, batch, groups, mu)
        if same:
            val = ctx
        else:
            val = self._avg(value_attn1, batch, groups, mu)
        return n, ctx, val


def _chunks(batch: int, transformer_options: dict | None) -> int:
    """Number of consecutive cond/uncond (and area-cond) chunks of a model call's batch, from
    ``transformer_options["cond_or_uncond"]`` (1 when absent); each chunk holds one video's frames."""
    cou = transformer_options.get("cond_or_uncond") if transformer_options else None
    chunks = len(cou) if cou else 1
    if batch % chunks != 0:
        raise ValueError(f"batch {batch} does not split into {chunks} equal cond/uncond chunks ({list(cou)})")
    return chunks


class AttentionCallInfo:
    """Facts about one model call that the pack's bridge hands to a
    :class:`TemporalMomentumAttentionOverride` through ``transformer_options[override.info_key]``
    (a fresh object per model call).

    ``image_span``: ``None`` (every token of a self/joint attention call is the frame's own, as in
    UNets), or ``image_span(n_tokens) -> tokens``: the frame's own image tokens among the
    ``n_tokens`` tokens of a self/joint attention call (text and reference-image tokens excluded), as
    ``(start, stop)`` or a grid ``(start, stop, period, width)`` (see :func:`temporal_momentum`);
    ``(a, a)`` for a call with no image tokens (a text-only refiner); it raises ``ValueError`` when it
    cannot place them. It may read ``calls`` (the call's index is ``calls - 1`` when it runs).
    ``batch``: the batch of the model's attention calls that hold one frame per sample (the latent
    batch; None: not checked); self-attention calls of another batch (e.g. Krea 2's text fusion over
    ``batch x text tokens`` samples) are not over frames and pass unchanged. ``calls``: how many
    attention calls reached the override in this model call (0 after the call: something replaced
    the override).
    """

    def __init__(self, image_span=None, batch: int | None = None):
        self.image_span = image_span
        self.batch = batch
        self.calls = 0


class TemporalMomentumAttentionOverride:
    """TMA as an attention-function override (``transformer_options["optimized_attention_override"]``),
    for DiT image models whose every attention call passes ``transformer_options`` (Flux, Flux 2,
    SD3/MMDiT, Qwen-Image, Lumina 2, Z-Image, HiDream, Chroma, Krea 2). Frames are the batch.

    Called as ``override(func, q, k, v, heads, *args, **kwargs)`` (``func``: the attention function
    the model chose, ``kwargs`` holding ``transformer_options``); returns ``func``'s result (or the
    ``previous`` override's) with ``k``, ``v`` replaced by Eq. 2's momentum averages ``K'``, ``V'``
    over the frames of each CFG chunk (``len(transformer_options["cond_or_uncond"])`` consecutive
    chunks of ``batch // chunks`` frames; cond and uncond never mix). Queries are untouched.

    Layouts (ComfyUI's attention functions): with ``skip_reshape=True`` (Flux, Lumina, Krea 2) ``q``, ``k``,
    ``v`` are ``[B, heads, tokens, dim_head]``; otherwise (SD3, Qwen-Image, HiDream) tokens are axis 1
    (``[B, tokens, heads * dim_head]``, SD3 passes ``v`` as ``[B, tokens, heads, dim_head]``).
    Only self / joint attention is averaged: ``q``, ``k``, ``v`` with the same batch and token count.
    Cross-attention (token counts differ), calls whose ``k``/``v`` batch differs from ``q``'s and calls
    whose batch is not the call info's ``batch`` (one frame per sample) are passed through unchanged.
    With call info (DiT families, none of which has cross-attention), a call whose ``k``/``v`` have
    more tokens than ``q`` is a KV-cache call (:meth:`kv_cache_call`): its first ``q``-count tokens are
    the call's own and are treated as above, the appended (cached) tokens pass unchanged.

    Tokens: with ``image_only`` (default) and an :class:`AttentionCallInfo` in
    ``transformer_options[info_key]`` whose ``image_span`` is set, only the frame's own image tokens
    ``image_span(n_tokens)`` are averaged; text (and reference-image) tokens of joint attention are
    passed unchanged. ``image_only=False``: every token of the call is averaged (the text tokens
    too). Without call info every token is averaged (UNet self-attention has image tokens only).
    Every call counts itself in the call info (``calls``), so the bridge can tell that the override
    still runs.

    Raises:
        ValueError: the batch does not split into equal chunks; ``image_span`` cannot place the
            image tokens.
    """

    #: Marker read by the pack's bridge (see :class:`TemporalMomentumPatch`).
    tfv_attends_across_batch = True

    def __init__(self, momentum=0.98, previous=None, image_only: bool = True, info_key: str | None = None,
                 node: str = ""):
        self.momentum = momentum_spec(momentum)
        self.node = node   # names the errors raised while sampling (the node's display name)
        self.previous = previous
        self.image_only = bool(image_only)
        self.info_key = info_key

    def __repr__(self) -> str:
        return (f"TemporalMomentumAttentionOverride(momentum={self.momentum}, "
                f"image_only={self.image_only})")

    @staticmethod
    def is_self_attention(q: Tensor, k: Tensor, v: Tensor, skip_reshape: bool = False) -> bool:
        """Self / joint attention: the same batch and token count (axis 2 with ``skip_reshape``,
        else axis 1) for ``q``, ``k`` and ``v``."""
        ax = 2 if skip_reshape else 1
        if min(q.ndim, k.ndim, v.ndim) <= ax:
            return False
        return q.shape[0] == k.shape[0] == v.shape[0] and q.shape[ax] == k.shape[ax] == v.shape[ax]

    @staticmethod
    def kv_cache_call(q: Tensor, k: Tensor, v: Tensor, ax: int) -> bool:
        """A self/joint attention call whose ``k``, ``v`` carry tokens appended after the call's own
        (ComfyUI's FluxKVCache appends the reference images' cached K, V to the text and image tokens
        of Flux 2 / Klein edits after the first step): same batch, more K/V than query tokens. Only
        recognised for DiT calls with call info (no DiT family TMA supports has cross-attention)."""
        if min(q.ndim, k.ndim, v.ndim) <= ax:
            return False
        return (q.shape[0] == k.shape[0] == v.shape[0] and k.shape[ax] == v.shape[ax] > q.shape[ax]
                and q.shape[:ax] == k.shape[:ax])

    def call_info(self, transformer_options: dict | None) -> AttentionCallInfo | None:
        """This override's :class:`AttentionCallInfo` for the current model call, or None."""
        if self.info_key is None or not transformer_options:
            return None
        return transformer_options.get(self.info_key)

    def average(self, q: Tensor, k: Tensor, v: Tensor, transformer_options: dict | None,
                skip_reshape: bool = False):
        """``(k', v')``: Eq. 2 over the frames of each chunk for self/joint attention (the frame's
        image tokens only when the call info places them and ``image_only``), else ``(k, v)``."""
        if self.momentum == 0.0:
            return k, v
        ax = 2 if skip_reshape else 1
        info = self.call_info(transformer_options)
        cached = info is not None and info.batch is not None and self.kv_cache_call(q, k, v, ax)
        if not cached and not self.is_self_attention(q, k, v, skip_reshape):
            return k, v
        if info is not None and info.batch is not None and q.shape[0] != info.batch:
            return k, v                                                           # not one frame per sample
        span = (0, int(q.shape[ax])) if cached else None                          # the call's own tokens
        if self.image_only and info is not None and info.image_span is not None:
            span = info.image_span(int(q.shape[ax]))
        groups = _chunks(q.shape[0], transformer_options)
        mu = call_momentum(self.momentum, q.shape[0] // groups, transformer_options)
        k2 = temporal_momentum(k, mu, groups, tokens=span, token_dim=ax)
        v2 = k2 if v is k else temporal_momentum(v, mu, groups, tokens=span, token_dim=ax)
        return k2, v2

    def __call__(self, func, *args, **kwargs):
        info = self.call_info(kwargs.get("transformer_options"))
        if info is not None:
            info.calls += 1
        # Every ComfyUI call site passes q, k, v positionally (wrap_attn forwards them as given).
        if len(args) >= 3:
            q, k, v = args[:3]
            # signature (q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, ...)
            skip = kwargs["skip_reshape"] if "skip_reshape" in kwargs else (len(args) > 6 and args[6])
            with naming(self.node or "Temporal Momentum Attention"):
                k, v = self.average(q, k, v, kwargs.get("transformer_options"), bool(skip))
            args = (q, k, v) + tuple(args[3:])
        if self.previous is not None:
            return self.previous(func, *args, **kwargs)
        return func(*args, **kwargs)
