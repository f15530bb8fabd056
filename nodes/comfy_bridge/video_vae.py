"""ComfyUI bridge: video VAEs (I4VGen static video).

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

from typing import Callable

import torch

from .nested import NestedLatentError, is_nested_latent, nested_latent_shapes


def causal_video_frames_fn(vae) -> Callable[[int], int] | None:
    """The picture-frames -> latent-frames function of a causal 3-D video VAE, else None.

    ComfyUI's video VAEs (Wan 2.1/2.2, Hunyuan, LTXV, Mochi, Cosmos) set ``latent_dim = 3`` and
    ``downscale_ratio = (frames_fn, h, w)`` with e.g. ``frames_fn(n) = (n + 3) // 4`` (Wan,
    Hunyuan), ``(n + 7) // 8`` (LTXV), ``(n + 5) // 6`` (Mochi): latent frame 0 holds picture frame
    0 alone, each later latent frame 4 (8, 6) picture frames (docs/comfyui.md, Video VAEs). Image VAEs
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
    batch). Returns the raw video latent ``[1, C, T, H/s, W/s]`` (ComfyUI's LATENT samples).

    Raises: ValueError when the VAE does not
    give one video latent of ``latent_frames`` frames."""
    n = picture_frames_for(vae, latent_frames)
    clip = image[:1].repeat(n, 1, 1, 1)
    out = vae.encode(clip)
    if is_nested_latent(out):
        raise NestedLatentError(f"vae: the VAE encoded the still clip into a nested latent of streams "
                                f"{nested_latent_shapes(out)}; a static video needs a video VAE that gives one "
                                f"video latent [1, C, T, H, W].")
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
