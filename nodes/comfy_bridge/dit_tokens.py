"""ComfyUI bridge: where a frame's own image tokens sit in a DiT image model's attention calls (TMA's
``text_tokens`` = keep averages those only).

Part of the one package that touches ComfyUI internals (see ``__init__``). Layouts per family, read
from ComfyUI 0.3.64 and 0.33.x (``n``: the tokens of one self/joint attention call; ``n_img``:
``ceil(H / p) * ceil(W / p)`` image tokens of one frame, ``p`` the model's patch size, times ``T`` for
Qwen-Image's ``[B, C, T, H, W]`` latents):

- ``text_first`` (Flux, Flux 2 and Klein: the Flux class; Chroma; Qwen-Image, Qwen-Image 2512 and
  Edit): ``[text (c_crossattn tokens), image, reference images]`` in double and single blocks.
- ``image_last`` (SD3 MMDiT): ``[context (+ registers), image]``; its x-only self-attention is all image.
- ``image_first`` (HiDream): ``[image, text]`` in both block types. HiDream E1 (edit) appends its
  ``image_cond`` to the latent along the width before splitting rows into tokens, so the image tokens
  are rows of ``ceil((W + W_ref) / p)`` tokens whose first ``ceil(W / p)`` are the target's own (a grid,
  see ``temporal_momentum``); with an odd ``W / p`` remainder the one token straddling both is the target's.
- ``krea2`` (Krea 2 SingleStreamDiT): ``[text, image, reference images]`` in every block; its text
  fusion adapter's self-attention is text only (over ``B x text`` samples of the stacked text
  layers, or over the text tokens), and a ``[B, C, T, H, W]`` latent is ``B * T`` samples.
- ``nextdit`` (Lumina 2, Z-Image): no shape rule places the image alone, so the call's index in the
  model's fixed order of attention calls gives the phase, and the phase's own rule the tokens:
  context-refiner calls (``len(context_refiner)`` of them, then Z-Image Omni's siglip refiner when
  reference images are given) hold caption (siglip) tokens only; noise-refiner calls hold the
  image (after any reference images); the main layers hold ``[caption, (siglip,) (references,) image]``.
  0.33.x (``NextDiT.embed_all``): every token group is padded to ``pad_tokens_multiple`` (Z-Image 32)
  with pad tokens, the frame's image is the *last* ``n_img + pad`` tokens and its own tokens the first
  ``n_img`` of those; the caption mask is not used. 0.3.64: ``[caption (cap_len), image, zeros]`` with
  ``cap_len`` the caption mask's ones (``attention_mask``) or ``num_tokens``; noise-refiner calls are
  the image alone. Each call's token count is checked against the phase; a mismatch is an error.
"""
from __future__ import annotations

from typing import Callable

from .attention import dit_image_model_family
from .models import diffusion_model


def _ceil_div(a: int, b: int) -> int:
    return -(-int(a) // int(b))


def _patch(dm) -> tuple[int, int]:
    p = getattr(dm, "patch_size", None) or getattr(dm, "patch", None) or 2
    return (p[-2], p[-1]) if isinstance(p, (tuple, list)) else (p, p)


def _image_tokens(dm, x_shape, per_sample: bool = False) -> int:
    """Tokens of one frame's latent in a DiT: ``ceil(H / p) * ceil(W / p)`` (times the frames of a
    5-D latent unless ``per_sample``), ``p`` the model's patch size (ComfyUI pads the latent to a
    multiple of it)."""
    ph, pw = _patch(dm)
    n = _ceil_div(x_shape[-2], ph) * _ceil_div(x_shape[-1], pw)
    if len(x_shape) == 5 and not per_sample:
        n *= int(x_shape[2])
    return n


_IMAGE_TOKEN_LAYOUT = {
    "Flux": "text_first",
    "Chroma": "text_first",
    "QwenImageTransformer2DModel": "text_first",
    "MMDiT": "image_last",
    "HiDreamImageTransformer2DModel": "image_first",
    "SingleStreamDiT": "krea2",
    "NextDiT": "nextdit",
}


def _cannot_place(what: str, n: int) -> ValueError:
    return ValueError(f"cannot place {what} in an attention call of {n} tokens. "
                      "Set text_tokens to 'average' to average every token of joint attention.")


def _shape_span(layout: str, dm, x, context, conds) -> Callable:
    n_img = _image_tokens(dm, tuple(x.shape), per_sample=layout == "krea2")
    n_txt = int(context.shape[1]) if context is not None and context.ndim >= 2 else 0
    grid = None
    if layout == "image_first" and conds.get("image_cond") is not None:         # HiDream E1
        ph, pw = _patch(dm)
        ref_w = int(conds["image_cond"].shape[-1])
        rows, own = _ceil_div(x.shape[-2], ph), _ceil_div(x.shape[-1], pw)
        period = _ceil_div(int(x.shape[-1]) + ref_w, pw)
        n_img, grid = rows * period, (period, own)
    what = f"the {n_img} image tokens of a {list(x.shape)} latent ({layout.replace('_', ' ')}, {n_txt} text tokens)"

    def image_span(n: int):
        if layout == "krea2" and n in (n_txt, getattr(dm, "txtlayers", n_txt)):
            return 0, 0                                                    # text fusion: text only
        if n == n_img and layout != "krea2":
            start = 0
        elif layout in ("text_first", "krea2"):
            start = n_txt
        elif layout == "image_last":
            start = n - n_img
        else:
            start = 0
        if start < 0 or start + n_img > n:
            raise _cannot_place(what, n)
        return (start, start + n_img) if grid is None else (start, start + n_img) + grid
    return image_span


def _nextdit_span(dm, x, context, conds, info) -> Callable:
    n_img = _image_tokens(dm, tuple(x.shape))
    ph, pw = _patch(dm)
    refiners = len(dm.context_refiner)
    noise_refiners = len(dm.noise_refiner)
    if hasattr(dm, "embed_all"):                                           # 0.33.x: groups padded, image last
        mult = getattr(dm, "pad_tokens_multiple", None)

        def padded(k: int) -> int:
            return k + ((-k) % mult if mult else 0)

        img_len = padded(n_img)
        refs = conds.get("ref_latents") or []
        siglip = len(dm.siglip_refiner) if refs and getattr(dm, "siglip_refiner", None) is not None else 0
        ref_len = sum(padded((int(r.shape[-2]) // ph) * (int(r.shape[-1]) // pw)) for r in refs)
        text_calls = refiners + siglip
        # without reference images the caption is the context alone, padded (0.33.x ignores its mask)
        cap_len = None if refs or context is None else padded(int(context.shape[1]))
        what = (f"the {n_img} image tokens (+ {img_len - n_img} pad tokens, after {ref_len} reference-image tokens) "
                f"of a {list(x.shape)} latent (Lumina 2 / Z-Image)")

        def image_span(n: int):
            k = info.calls - 1
            if k < text_calls:
                if cap_len is not None and n != cap_len:
                    raise _cannot_place(what, n)
                return 0, 0                                                # caption / siglip refiner
            if k < text_calls + noise_refiners:
                fits = n == ref_len + img_len
            else:
                fits = n == cap_len + img_len if cap_len is not None else n > ref_len + img_len
            if not fits:
                raise _cannot_place(what, n)
            return n - img_len, n - img_len + n_img
        return image_span

    mask = conds.get("attention_mask")                                     # 0.3.64: [caption, image, zeros]
    if mask is not None:
        lens = {int(v) for v in mask.reshape(mask.shape[0], -1).sum(dim=1).tolist()}
        cap_len = lens.pop() if len(lens) == 1 else None
    else:
        tokens = conds.get("num_tokens")
        cap_len = int(tokens) if tokens is not None else (int(context.shape[1]) if context is not None else 0)
    what = f"the {n_img} image tokens of a {list(x.shape)} latent (Lumina 2, caption of {cap_len} tokens)"

    def image_span(n: int):
        k = info.calls - 1
        if k < refiners:
            return 0, 0                                                    # context refiner: caption only
        if k < refiners + noise_refiners:
            if n != n_img:
                raise _cannot_place(what, n)
            return 0, n_img
        if cap_len is None or n != cap_len + n_img:
            raise _cannot_place(what + " (captions of different lengths in one call)" if cap_len is None else what, n)
        return cap_len, cap_len + n_img
    return image_span


def dit_image_token_span(model) -> Callable | None:
    """For a supported DiT image model, ``span(x, context, conds=None, info=None) -> image_span``: given
    one model call's input latent ``x`` ``[B, C, (T,) H, W]``, ``c_crossattn`` ``context``
    ``[B, tokens, dim]`` (or None), the call's other model inputs ``conds`` (``image_cond``,
    ``attention_mask``, ``num_tokens``, ``ref_latents``) and its ``AttentionCallInfo`` ``info`` (Lumina
    2 / Z-Image read the call index from it), ``image_span(n_tokens)`` places the frame's own image
    tokens among the ``n_tokens`` tokens of a self/joint attention call: ``(start, stop)``, a grid
    ``(start, stop, period, width)`` (HiDream E1), ``(0, 0)`` for a call without them (text-only
    refiners). ``image_span`` raises ``ValueError`` when the call does not fit the layout (module
    docstring). None for models whose layout is not known (UNets, others)."""
    dm = diffusion_model(model)
    layout = _IMAGE_TOKEN_LAYOUT.get(dit_image_model_family(model) or "")
    if layout is None:
        return None

    def span(x, context, conds=None, info=None):
        conds = conds or {}
        if layout == "nextdit":
            return _nextdit_span(dm, x, context, conds, info)
        return _shape_span(layout, dm, x, context, conds)
    return span


def dit_attention_batch(model) -> Callable:
    """``batch(x)``: the batch of a DiT image model's attention calls that hold one frame per sample,
    for a model call on ``x``: ``x``'s batch; Krea 2 runs a ``[B, C, T, H, W]`` latent as ``B * T``
    samples."""
    krea2 = dit_image_model_family(model) == "SingleStreamDiT"

    def batch(x) -> int:
        if krea2 and x.ndim == 5:
            return int(x.shape[0]) * int(x.shape[2])
        return int(x.shape[0])
    return batch
