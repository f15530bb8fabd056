"""ComfyUI bridge: nested (multi-stream) latents, e.g. LTX-2 audio+video.

Part of the one package that touches ComfyUI internals (see ``__init__``).

Newer ComfyUI (0.33.0) has latents made of several streams: a ``comfy.nested_tensor.NestedTensor``
(``is_nested`` True; ``unbind()`` gives e.g. the video latent ``[B, 128, T, H, W]`` and the audio
latent ``[B, 8, T_a, 16]`` of LTX-2). ``CFGGuider.sample`` packs it flat, ``[B, 1, N]`` (each stream
reshaped to ``[B, 1, -1]`` and concatenated, ``comfy.utils.pack_latents``), before any wrapper runs:
OUTER_SAMPLE gets the stream shapes as ``latent_shapes=[...]``, and inside sampling the model
(``guider.inner_model``) keeps them as ``latent_shapes``. ComfyUI 0.3.64 has neither; everything
here then answers "not nested". Detected by these features, never by version.
"""
from __future__ import annotations

from typing import Any


class NestedLatentError(ValueError):
    """A pack node got a nested (multi-stream) latent that it does not support."""


def is_nested_latent(samples: Any) -> bool:
    """True for a ComfyUI nested latent (``samples.is_nested``, e.g. LTX-2 audio+video); False for a
    plain tensor (``torch.Tensor.is_nested`` is False for ordinary tensors) and on ComfyUIs without
    nested latents."""
    return bool(getattr(samples, "is_nested", False)) and hasattr(samples, "unbind")


def nested_latent_shapes(samples: Any) -> list[tuple] | None:
    """The stream shapes of a nested latent (``[(B, C, T, H, W), (B, C_a, T_a, F_a)]`` for LTX-2),
    None for a plain tensor."""
    if not is_nested_latent(samples):
        return None
    return [tuple(int(s) for s in t.shape) for t in samples.unbind()]


def _multi(shapes) -> list[tuple] | None:
    if not isinstance(shapes, (list, tuple)):
        return None
    try:
        shapes = [tuple(int(s) for s in sh) for sh in shapes]
    except (TypeError, ValueError):
        return None
    return shapes if len(shapes) > 1 else None


def packed_latent_shapes(guider) -> list[tuple] | None:
    """Inside ``CFGGuider.sample`` (a SAMPLER_SAMPLE wrapper, a SAMPLER, a sampler function): the
    stream shapes when the latent being sampled is a packed nested latent (``[B, 1, N]``), else None.
    Read from ``guider.inner_model.latent_shapes`` (set by ``CFGGuider.inner_sample``)."""
    inner = getattr(guider, "inner_model", None)
    return _multi(getattr(inner, "latent_shapes", None))


def outer_sample_latent_shapes(args: tuple, kwargs: dict) -> list[tuple] | None:
    """In an OUTER_SAMPLE wrapper (``wrapper(executor, noise, *args, **kwargs)``): the stream shapes of
    a packed nested latent, else None (plain latents, and ComfyUIs that pass no ``latent_shapes``).
    ComfyUI 0.33.0's ``CFGGuider.sample`` passes them by keyword (``latent_shapes=[...]``); positional
    arguments past the seed are left alone (another wrapper's, or a later ComfyUI's)."""
    return _multi(kwargs.get("latent_shapes"))


def _describe(shapes) -> str:
    return " + ".join("[" + ", ".join(str(s) for s in sh) + "]" for sh in shapes)


def nested_latent_message(what: str, shapes, supported: str) -> str:
    """The error text for a nested latent: names the input, the stream shapes and what the node
    supports (the node's name is added in front by the pack's error convention, :mod:`..errors`)."""
    return (f"{what} is a nested latent of {len(shapes)} streams {_describe(shapes)} (an audio+video model "
            f"such as MiniMax H3 or LTX-2, which ComfyUI samples packed flat as [B, 1, N]); nested audio+video latents are not "
            f"supported. {supported} Remove this node for this model, or sample a video-only latent.")


def refuse_nested_latent(what: str, samples: Any, supported: str) -> None:
    """Raise :class:`NestedLatentError` (a ValueError naming the input ``what`` and what is
    ``supported``) if ``samples`` is a nested latent; do nothing for a plain tensor."""
    shapes = nested_latent_shapes(samples)
    if shapes is not None:
        raise NestedLatentError(nested_latent_message(what, shapes, supported))


def refuse_packed_latent(what: str, shapes, supported: str) -> None:
    """Raise :class:`NestedLatentError` if ``shapes`` (from :func:`packed_latent_shapes` or
    :func:`outer_sample_latent_shapes`) says the sampled latent is a packed nested latent."""
    shapes = _multi(shapes)
    if shapes is not None:
        raise NestedLatentError(nested_latent_message(what, shapes, supported))


# --------------------------------------------------------------------------- streams of a packed latent

def unpack_streams(packed, shapes) -> list:
    """The streams ``[video, audio, ...]`` of a packed nested latent ``[B, 1, N]`` (noise, latent, x0 or
    denoise mask, inside sampling), ComfyUI's own ``comfy.utils.unpack_latents`` (what its context windows
    use for per-modality FreeNoise). A denoise mask broadcast over fewer elements than the latent is
    expanded first. None stays None."""
    if packed is None:
        return None
    import comfy.utils
    import math
    n = sum(math.prod(int(v) for v in sh[1:]) for sh in shapes)
    if packed.shape[-1] != n:
        packed = packed.expand(packed.shape[:-1] + (n,)) if packed.shape[-1] == 1 else packed
    return list(comfy.utils.unpack_latents(packed, [tuple(sh) for sh in shapes]))


def pack_streams(streams: list):
    """The packed latent ``[B, 1, N]`` of ``streams`` (``comfy.utils.pack_latents``)."""
    import comfy.utils
    return comfy.utils.pack_latents(list(streams))[0]


def audio_time_axes(model_wrap, shapes) -> list[int]:
    """For each stream after the video: its time axis. MiniMax H3 (latent format ``MiniMaxH3AV``) keeps
    audio as ``[B, 32, 2 (stereo), T_a]`` (time last); LTX-2 as ``[B, 8, T_a, 16 (frequency)]``, time on
    axis 2 (the axis ComfyUI's context windows slice every modality on)."""
    inner = getattr(model_wrap, "inner_model", model_wrap)
    fmt = type(getattr(inner, "latent_format", None)).__name__
    axis = -1 if fmt.startswith("MiniMaxH3") else 2
    return [axis for _ in shapes[1:]]


def as_nested(packed, shapes):
    """A ``comfy.nested_tensor.NestedTensor`` of the streams of ``packed`` ``[B, 1, N]`` (what a NOISE
    returns for a nested latent, like ComfyUI's own RandomNoise)."""
    return nested_of(unpack_streams(packed, shapes))


def nested_of(streams: list):
    """A ``comfy.nested_tensor.NestedTensor`` of ``streams`` (``[video, audio, ...]``)."""
    import comfy.nested_tensor
    return comfy.nested_tensor.NestedTensor(tuple(streams))


def stream_std(x, shapes) -> list[float]:
    """Standard deviation of each stream of ``x`` (a NestedTensor, or packed ``[B, 1, N]`` with ``shapes``)."""
    streams = x.unbind() if is_nested_latent(x) else unpack_streams(x, shapes)
    return [float(t.detach().float().std()) for t in streams]
