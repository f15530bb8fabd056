"""Spectral tools: FreeInit's 3-D low-pass filters and frequency mixing of latents, in pure torch.

Pure torch (no ``comfy`` import); nothing here knows about sigmas or models. Used by
:mod:`.freeinit` (which re-exports every name for its callers) and usable by any method that mixes
the low frequencies of one latent with the high frequencies of another.

Source: FreeInit (Wu et al. 2023, "FreeInit: Bridging Initialization Gap in Video Diffusion
Models", arXiv 2312.07537; its noise re-initialisation step), official code ``TianxingWu/FreeInit``
(``freeinit_utils.py``: ``*_low_pass_filter``, ``freq_mix_3d``) and diffusers
``src/diffusers/pipelines/free_init_utils.py`` (``_get_free_init_freq_filter``); the project's summary
is docs/algorithms.md section 4 and the method page docs/freeinit.md.

Shapes:

* a filter is float32 ``[T, H, W]`` on the CPU, defined on the *fftshifted* spectrum (DC at index
  ``N // 2`` of each axis); :func:`frequency_coordinates` gives the normalised frequency of each index,
  on the ``"reference"`` grid (``2 i / N - 1``, the reference code's) or the ``"centred"`` grid
  (``2 (i - N // 2) / N``, identical for even ``N``, centred on DC for odd ``N``);
* :func:`frequency_mix` works on ``[..., T, H, W]``; :func:`mix_latents` on ComfyUI latents, image-model
  ``[F, C, H, W]`` (frames as batch) or video ``[B, C, T, H, W]``, through :func:`to_video_layout` /
  :func:`from_video_layout` (``[B, C, T, H, W]`` with the frames on axis 2) and :func:`latent_thw`;
* :func:`mix_along_axis` is the 1-D form for a stream without a picture grid (audio): any shape, one
  axis mixed.

Errors are ``ValueError`` with a message naming the function or the expected latent layout.
"""
from __future__ import annotations

import torch
from torch import Tensor

FILTERS = ("butterworth", "gaussian", "ideal", "box")
GRIDS = ("centred", "reference")
DEFAULT_D_S = 0.25              # normalised spatial stop frequency (the reference's)
DEFAULT_D_T = 0.25              # normalised temporal stop frequency (the reference's)
DEFAULT_ORDER = 4               # butterworth order (the reference's)


# --------------------------------------------------------------------------- filters

def frequency_coordinates(n: int, grid: str = "centred") -> Tensor:
    """Normalised frequency of each index of an fftshifted axis of length ``n`` (float64 ``[n]``).

    ``reference``: ``2 i / n - 1`` (FreeInit / diffusers, exact for even ``n``); ``centred``:
    ``2 (i - n // 2) / n`` (zero at the DC bin for every ``n``; equal to ``reference`` for even ``n``).
    """
    i = torch.arange(int(n), dtype=torch.float64)
    if grid == "reference":
        return 2.0 * i / n - 1.0
    if grid == "centred":
        return 2.0 * (i - (n // 2)) / n
    raise ValueError(f"grid must be one of {list(GRIDS)}, got {grid!r}")


def low_pass_filter(thw: tuple[int, int, int], filter_type: str = "butterworth", d_s: float = DEFAULT_D_S,
                    d_t: float = DEFAULT_D_T, order: int = DEFAULT_ORDER, grid: str = "centred") -> Tensor:
    """FreeInit's 3-D low-pass filter on the fftshifted spectrum, float32 ``[T, H, W]`` (CPU).

    With ``d = ((d_s / d_t) * f_t)^2 + f_h^2 + f_w^2`` (``f`` from :func:`frequency_coordinates`;
    the reference names it ``d_square``), exactly as the official ``freeinit_utils.py`` and diffusers'
    ``_get_free_init_freq_filter``:

    - ``butterworth``: ``1 / (1 + (d / d_s^2)^order)``  (= ``1 / (1 + (|f| / d_s)^(2 order))``)
    - ``gaussian``: ``exp(-d / (2 d_s^2))``
    - ``ideal``: ``1 if d <= 2 d_s else 0`` (the reference's rule; a radius ``sqrt(2 d_s)`` = 0.71 at
      d_s 0.25, wider than the other filters' 0.25 cut-off)
    - ``box`` (official code only): ones on the bins ``[c - k, c + k)`` of each axis around its
      centre ``c = N // 2``, ``k_s = round((H // 2) * d_s)`` for height and width, ``k_t =
      round((T // 2) * d_t)`` for time. With ``grid="centred"`` an axis whose ``k`` rounds to 0
      keeps its DC bin (the reference would keep nothing at all; e.g. any ``T <= 5`` at d_t 0.25).

    Raises:
        ValueError: unknown ``filter_type``/``grid``, non-positive sizes, ``d_s``/``d_t`` not > 0.
    """
    T, H, W = (int(v) for v in thw)
    if min(T, H, W) < 1:
        raise ValueError(f"low_pass_filter: sizes must be >= 1, got {(T, H, W)}")
    if not (float(d_s) > 0 and float(d_t) > 0):
        raise ValueError(f"low_pass_filter: d_s and d_t must be > 0, got {d_s}, {d_t}")
    if filter_type == "box":
        mask = torch.zeros(T, H, W, dtype=torch.float32)
        ks = round(int(H // 2) * float(d_s))
        kt = round(T // 2 * float(d_t))

        def span(c: int, k: int) -> slice:
            if k == 0 and grid == "centred":
                return slice(c, c + 1)
            return slice(c - k, c + k)

        mask[span(T // 2, kt), span(H // 2, ks), span(W // 2, ks)] = 1.0
        return mask
    ft = frequency_coordinates(T, grid)[:, None, None]
    fh = frequency_coordinates(H, grid)[None, :, None]
    fw = frequency_coordinates(W, grid)[None, None, :]
    d = ((float(d_s) / float(d_t)) * ft) ** 2 + fh ** 2 + fw ** 2
    if filter_type == "butterworth":
        mask = 1.0 / (1.0 + (d / float(d_s) ** 2) ** int(order))
    elif filter_type == "gaussian":
        mask = torch.exp(-d / (2.0 * float(d_s) ** 2))
    elif filter_type == "ideal":
        mask = (d <= float(d_s) * 2).to(torch.float64)
    else:
        raise ValueError(f"low_pass_filter: filter_type must be one of {list(FILTERS)}, got {filter_type!r}")
    return mask.float()


# --------------------------------------------------------------------------- layout and mixing

def to_video_layout(x: Tensor, batch_frames: bool = True) -> Tensor:
    """``[B, C, T, H, W]`` view of a latent, the layout the 3-D FFT runs in (over ``T, H, W``).

    * ``batch_frames=True`` (the batch is one video's frames): image-model latents ``[F, C, H, W]``
      -> ``[1, C, F, H, W]``; 5-D latents of one picture frame per batch entry ``[F, C, 1, H, W]``
      with ``F > 1`` (Qwen-Image) -> ``[1, C, F, H, W]`` too (as Dependency Noise and Temporal
      Momentum Attention see them);
    * ``batch_frames=False`` (independent images): ``[B, C, H, W]`` -> ``[B, C, 1, H, W]`` (each image
      a one-frame video: 2-D FreeInit per image); ``[B, C, 1, H, W]`` as it is;
    * video latents ``[B, C, T, H, W]`` with ``T > 1`` as they are (frames on axis 2, per video).

    Raises:
        ValueError: for other ranks (e.g. audio latents).
    """
    if x.ndim == 5:
        if batch_frames and x.shape[2] == 1 and x.shape[0] > 1:
            return x.permute(2, 1, 0, 3, 4)
        return x
    if x.ndim == 4:
        if not batch_frames:
            return x.unsqueeze(2)
        return x.permute(1, 0, 2, 3).unsqueeze(0)
    raise ValueError(f"FreeInit needs an image-model latent [frames, C, H, W] or a video latent [B, C, T, H, W]; "
                     f"got a {x.ndim}-D latent of shape {tuple(x.shape)}")


def from_video_layout(v: Tensor, ndim: int, batch_frames: bool = True, shape=None) -> Tensor:
    """Inverse of :func:`to_video_layout` for a latent of rank ``ndim`` (and, for 5-D latents, its
    original ``shape``: a ``[F, C, 1, H, W]`` batch of frames comes back from ``[1, C, F, H, W]``)."""
    if ndim == 5:
        if shape is not None and batch_frames and int(shape[2]) == 1 and int(shape[0]) > 1:
            return v.permute(2, 1, 0, 3, 4)
        return v
    if not batch_frames:
        return v.squeeze(2)
    return v[0].permute(1, 0, 2, 3)


def latent_thw(shape, batch_frames: bool = True) -> tuple[int, int, int]:
    """``(T, H, W)`` of a latent shape in the layout of :func:`to_video_layout`: the size of the filter
    (:func:`low_pass_filter`) that :func:`mix_latents` needs for a latent of that shape.

    Raises:
        ValueError: a shape that is not 4-D or 5-D.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 5:
        if batch_frames and shape[2] == 1 and shape[0] > 1:
            return shape[0], shape[3], shape[4]
        return shape[2], shape[3], shape[4]
    if len(shape) == 4:
        return (shape[0] if batch_frames else 1), shape[2], shape[3]
    raise ValueError(f"FreeInit needs an image-model latent [frames, C, H, W] or a video latent [B, C, T, H, W]; "
                     f"got shape {shape}")


def frequency_mix(low: Tensor, high: Tensor, lpf: Tensor) -> Tensor:
    """Low frequencies of ``low``, high frequencies of ``high`` (official ``freq_mix_3d``).

    ``fftn`` over the last three dims ``(T, H, W)``, ``fftshift``, ``LPF * X_low + (1 - LPF) * X_high``,
    ``ifftshift``, ``ifftn``, real part. ``low``/``high``: ``[..., T, H, W]`` (same shape);
    ``lpf``: ``[T, H, W]``. Computed in float32 (float64 inputs stay float64); returns that dtype.

    Raises:
        ValueError: ``low`` and ``high`` differ in shape.
    """
    if low.shape != high.shape:
        raise ValueError(f"frequency_mix: shapes differ: {tuple(low.shape)} vs {tuple(high.shape)}")
    dtype = torch.float64 if low.dtype == torch.float64 else torch.float32
    dims = (-3, -2, -1)
    lpf = lpf.to(device=low.device, dtype=dtype)
    lo = torch.fft.fftshift(torch.fft.fftn(low.to(dtype), dim=dims), dim=dims)
    hi = torch.fft.fftshift(torch.fft.fftn(high.to(device=low.device, dtype=dtype), dim=dims), dim=dims)
    mixed = lo * lpf + hi * (1 - lpf)
    return torch.fft.ifftn(torch.fft.ifftshift(mixed, dim=dims), dim=dims).real


def mix_latents(low: Tensor, high: Tensor, lpf: Tensor, batch_frames: bool = True) -> Tensor:
    """:func:`frequency_mix` on latents in ComfyUI's layout (frames as batch or axis 2, or independent
    images with ``batch_frames=False``; see :func:`to_video_layout`), shape kept.

    On a device without the FFTs torch needs (some MPS builds) the mix runs on the CPU and the result
    returns to the device of ``low``. ``lpf``: ``[T, H, W]`` of :func:`latent_thw` (same ``batch_frames``).

    Raises:
        ValueError: from :func:`to_video_layout` (a latent that is not 4-D/5-D) or :func:`frequency_mix`.
    """
    lo, hi = to_video_layout(low, batch_frames), to_video_layout(high, batch_frames)
    try:
        v = frequency_mix(lo, hi, lpf)
    except (RuntimeError, NotImplementedError):
        if low.device.type == "cpu":
            raise
        v = frequency_mix(lo.cpu(), hi.cpu(), lpf).to(low.device)
    return from_video_layout(v, low.ndim, batch_frames, low.shape)


# --------------------------------------------------------------------------- one axis (audio)

def mix_along_axis(low: Tensor, high: Tensor, axis: int, filter_type: str = "butterworth",
                   d_s: float = DEFAULT_D_S, d_t: float = DEFAULT_D_T, order: int = DEFAULT_ORDER,
                   grid: str = "centred") -> Tensor:
    """Low frequencies of ``low``, high of ``high`` along axis ``axis`` only: the 1-D form of
    :func:`frequency_mix` for a stream without a picture grid (an audio latent's time axis).

    The filter is :func:`low_pass_filter` of ``(N, 1, 1)`` with the given parameters: every other axis
    has only its DC bin, so the cut-off is ``d_t`` (``d_s`` matters only to the ``ideal`` filter's
    radius). ``low``/``high``: same shape (``high`` is moved to ``low``'s device); returns that shape in
    ``low``'s dtype.

    Raises:
        ValueError: as :func:`low_pass_filter` and :func:`frequency_mix`.
    """
    lo = low.movedim(axis, -1)
    hi = high.to(device=low.device).movedim(axis, -1)
    t = int(lo.shape[-1])
    lpf = low_pass_filter((t, 1, 1), filter_type, d_s, d_t, order, grid)
    v = frequency_mix(lo.reshape(lo.shape + (1, 1)), hi.reshape(hi.shape + (1, 1)), lpf)
    return v.reshape(lo.shape).movedim(-1, axis).to(low.dtype)


__all__ = ["FILTERS", "GRIDS", "DEFAULT_D_S", "DEFAULT_D_T", "DEFAULT_ORDER", "frequency_coordinates",
           "low_pass_filter", "to_video_layout", "from_video_layout", "latent_thw", "frequency_mix", "mix_latents",
           "mix_along_axis"]
