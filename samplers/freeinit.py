"""FreeInit: iterative low-frequency re-initialisation of the initial noise, in ComfyUI's sigma space.

Pure torch (no ``comfy`` import). Reference: FreeInit (Wu et al. 2023, arXiv 2312.07537), official
code ``TianxingWu/FreeInit`` (``freeinit_utils.py``, ``examples/AnimateDiff/animatediff/pipelines/
pipeline_animation.py`` L568-592) and diffusers ``src/diffusers/pipelines/free_init_utils.py``
(``FreeInitMixin``); ALGORITHMS.md section 4.

The algorithm (``iterations`` full sampling passes; pass 0 is plain sampling from the initial noise)::

    x0_0 = sample(eps_0)
    for p = 1 .. iterations - 1:
        z_p  = re-noise x0_{p-1} to the first sigma with the SAME initial noise eps_0
        eps_p = ifft( LPF * fft(z_p) + (1 - LPF) * fft(fresh_p) )     # 3-D FFT over (T, H, W)
        x0_p = sample(eps_p)
    return x0_{iterations - 1}

**Sigma space (ALGORITHMS.md section 0).** ComfyUI's samplers start from *unit* noise ``n`` that they
scale with ``noise_scaling(sigma_0, n, latent, max_denoise) = a * latent + b * n``. We re-noise the
pass result ``x0`` with the model's own ``noise_scaling`` (``z = a * x0 + b * eps_0``: EPS/V/EDM
``x0 + sqrt(1 + sigma_max^2) * eps_0`` at a full denoise, flow ``(1 - s) x0 + s eps_0``) and express
it as the unit noise ``u = (z - a * latent) / b`` that makes the sampler start exactly at ``z``. The
fresh noise is unit noise too. Mixing ``u`` with ``fresh`` is *exactly* mixing the start samples
``z`` and ``noise_scaling(sigma_0, fresh, latent)`` in the x domain (the filters are linear and
``LPF + HPF = 1``), so there is no choice to make between the two domains -- but mixing a raw
x-domain ``z`` with *unit* fresh noise would be wrong for EPS models, whose x_T has scale
``sqrt(1 + sigma^2)`` (14.6 on SD1.5): the high frequencies would be 14.6x too weak. diffusers mixes
in the VP space where ``z_T = sqrt(abar) x0 + sqrt(1 - abar) eps_0`` already has unit scale; our ``u``
equals it up to the factor ``sqrt(1 - abar_999) = 0.9976`` on ``eps_0`` (ComfyUI's ``max_denoise``
start has unit VP variance) -- the same convention ComfyUI uses for its own initial noise.

**Flow models and the signal floor.** At a flow model's first sigma 1.0, ``a = 0``: re-noising
discards ``x0`` entirely and FreeInit would only redraw the high frequencies of ``eps_0`` (nothing
of pass p carries to pass p + 1). The reference was built for SD's VP schedule, where the top
timestep keeps ``a / b = sqrt(abar_999) = 0.068`` of the result (its training-inference SNR gap
is FreeInit's premise). ``min_signal`` is a floor on that ratio: ``u = eps_0 + r * x0 - (a/b) * latent``
with ``r = max(a / b, min_signal)``, i.e. the result is re-noised at the SNR ``r^2`` and scaled to the
sampler's first sigma. The default 0.068 leaves SD-family models exactly on the reference rule (their
ratio is 0.0683) and gives flow models (Wan, Hunyuan, LTXV, SD3) and zero-terminal-SNR models the
same low-frequency signal as SD's t = 999; ``min_signal = 0`` is the literal first-sigma rule.

**Frequency grid.** The reference filters use the normalised frequency ``2 i / N - 1`` of index ``i``
on each fftshifted axis. For even ``N`` (all the reference ever ran: AnimateDiff 16 frames, 64 x 64)
that is exactly the frequency of the bin, zero at the DC bin ``N // 2``. For odd ``N`` fftshift puts DC
at ``(N - 1) / 2`` where ``2 i / N - 1 = -1 / N``: the filter is half a bin off centre, and for one
frame the DC bin is treated as the highest frequency (``-1``; the butterworth then passes 1.5e-5 of
it and FreeInit keeps nothing). Wan latents have odd frame counts (33 frames -> 9 latent frames). The
default ``grid="centred"`` measures ``2 (i - N // 2) / N`` from the DC bin: identical to the reference
for every even size, centred for odd sizes; ``grid="reference"`` is the literal formula. With one
frame (a single image, ``[1, C, H, W]``, or ``T = 1``) the time axis has only its DC bin, which the
centred grid passes, so FreeInit acts as 2-D (spatial) FreeInit on that frame.

**Frames** (:func:`to_video_layout`). Video latents ``[B, C, T, H, W]`` have their frames on axis 2.
For image models the batch holds the frames of one video (``[F, C, H, W]``, and ``[F, C, 1, H, W]``
latents of one picture frame per entry such as Qwen-Image's, as Dependency Noise and Temporal Momentum
Attention see them) only when the model attends across its batch (TMA, an AnimateDiff motion
module); the caller says so with ``batch_frames``. Otherwise the batch is independent images and each
is filtered on its own in 2-D: over a batch of independent images the temporal low-pass (d_t 0.25 at
4 frames keeps only the DC bin) would keep only the batch mean of the re-noised results, so every
image would start the next pass from the same low frequencies and converge to one composition.

**Coarse-to-fine sampling** (the official ``use_fast_sampling``, off by default): pass ``p`` runs
``max(1, int(N / iterations * (p + 1)))`` steps (:func:`pass_steps`), taken here from the sampler's
own N-step schedule at evenly spaced indices (:func:`pass_sigmas`); 3 iterations then cost 2x plain
sampling instead of 3x (consistent with the 2.05x the SmoothInit paper's Table 1 reports for FreeInit,
whose settings it does not state).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor

from .sigma_space import ModelSamplingLike, SigmaLike, scaling_coefficients

FILTERS = ("butterworth", "gaussian", "ideal", "box")
GRIDS = ("centred", "reference")
DEFAULT_ITERATIONS = 3          # diffusers' default (the official AnimateDiff example uses 5)
DEFAULT_D_S = 0.25
DEFAULT_D_T = 0.25
DEFAULT_ORDER = 4
# sqrt(abar_999) of SD's scaled_linear schedule is 1 / sqrt(1 + 14.6146^2) = 0.06826; rounded down so
# that SD-family models keep the reference's first-sigma rule exactly.
DEFAULT_MIN_SIGNAL = 0.068

_SEED_MIX = 0xF1EE1417D5A5C0DE  # decorrelates the fresh noise from a RandomNoise of a nearby seed


@dataclass(frozen=True)
class Settings:
    """FreeInit parameters (see :func:`validate` for ranges)."""
    iterations: int = DEFAULT_ITERATIONS
    filter_type: str = "butterworth"
    d_s: float = DEFAULT_D_S
    d_t: float = DEFAULT_D_T
    order: int = DEFAULT_ORDER
    min_signal: float = DEFAULT_MIN_SIGNAL
    grid: str = "centred"
    coarse_to_fine: bool = False


def validate(settings: Settings) -> Settings:
    """Check the parameters; return them normalised (ints, floats).

    Raises:
        ValueError naming the input: ``iterations`` < 1; ``filter_type`` not in
        :data:`FILTERS`; ``d_s`` or ``d_t`` outside (0, 1] (the reference returns an all-zero filter
        for 0, i.e. silently no FreeInit); ``order`` < 1; ``min_signal`` < 0 or not finite;
        ``grid`` not in :data:`GRIDS`.
    """
    s = settings
    try:
        iterations = int(s.iterations)
    except (TypeError, ValueError):
        raise ValueError(f"iterations must be an integer >= 1, got {s.iterations!r}.") from None
    if iterations != s.iterations or iterations < 1:
        raise ValueError(f"iterations must be an integer >= 1 (1 = plain sampling), got {s.iterations!r}.")
    if s.filter_type not in FILTERS:
        raise ValueError(f"filter must be one of {list(FILTERS)}, got {s.filter_type!r}.")
    for name, v in (("d_s", s.d_s), ("d_t", s.d_t)):
        v = float(v)
        if not (0.0 < v <= 1.0):
            raise ValueError(f"{name} must be in (0, 1] (normalised stop frequency; the reference "
                             f"0.25), got {v}. 0 would keep no low frequency at all.")
    if int(s.order) < 1:
        raise ValueError(f"order must be an integer >= 1 (butterworth order, reference 4), got {s.order}.")
    ms = float(s.min_signal)
    if not (0.0 <= ms < float("inf")):
        raise ValueError(f"min_signal must be a finite number >= 0, got {ms}.")
    if s.grid not in GRIDS:
        raise ValueError(f"grid must be one of {list(GRIDS)}, got {s.grid!r}.")
    return Settings(iterations, s.filter_type, float(s.d_s), float(s.d_t), int(s.order), ms, s.grid,
                    bool(s.coarse_to_fine))


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
    """``(T, H, W)`` of a latent shape in the layout of :func:`to_video_layout`."""
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
    returns to the device of ``low``.
    """
    lo, hi = to_video_layout(low, batch_frames), to_video_layout(high, batch_frames)
    try:
        v = frequency_mix(lo, hi, lpf)
    except (RuntimeError, NotImplementedError):
        if low.device.type == "cpu":
            raise
        v = frequency_mix(lo.cpu(), hi.cpu(), lpf).to(low.device)
    return from_video_layout(v, low.ndim, batch_frames, low.shape)


# --------------------------------------------------------------------------- re-noising

def renoise_ratio(model_sampling: ModelSamplingLike, sigma: SigmaLike, like: Tensor, max_denoise: bool,
                  min_signal: float = DEFAULT_MIN_SIGNAL) -> tuple[float, float]:
    """``(a / b, r)`` at the sampler's first sigma: the reference's signal ratio and the one used,
    ``r = max(a / b, min_signal)`` (see the module docstring)."""
    a, b = scaling_coefficients(model_sampling, sigma, like, max_denoise)
    ab = float(a) / float(b)
    return ab, max(ab, float(min_signal))


def renoised_unit_noise(model_sampling: ModelSamplingLike, sigma: SigmaLike, noise: Tensor, x0: Tensor,
                        latent: Tensor | None = None, max_denoise: bool = False,
                        min_signal: float = DEFAULT_MIN_SIGNAL) -> Tensor:
    """The pass result ``x0`` re-noised with the same unit ``noise``, as the sampler's unit noise.

    ``u = noise + r * x0 - (a / b) * latent`` with ``a, b`` from ``noise_scaling(sigma, ., ., max_denoise)``
    and ``r = max(a / b, min_signal)``; for ``r = a / b`` this is ``(noise_scaling(sigma, noise, x0) -
    a * latent) / b``, so the sampler's start ``noise_scaling(sigma, u, latent)`` is ``x0`` re-noised
    by the model's own forward process. Shapes ``[B, ...]``; float32 (float64 stays float64).
    """
    ab, r = renoise_ratio(model_sampling, sigma, noise, max_denoise, min_signal)
    dtype = torch.float64 if noise.dtype == torch.float64 else torch.float32
    u = noise.to(dtype) + r * x0.to(device=noise.device, dtype=dtype)
    if latent is not None and ab != 0.0:
        u = u - ab * latent.to(device=noise.device, dtype=dtype)
    return u


def reinit_noise(model_sampling: ModelSamplingLike, sigma: SigmaLike, noise: Tensor, x0: Tensor, fresh: Tensor,
                 lpf: Tensor, latent: Tensor | None = None, max_denoise: bool = False,
                 min_signal: float = DEFAULT_MIN_SIGNAL, batch_frames: bool = True) -> Tensor:
    """FreeInit's noise re-initialisation: the next pass's unit noise ``[B, ...]`` (dtype of ``noise``).

    Low frequencies of :func:`renoised_unit_noise` (``x0`` of the previous pass re-noised with the
    initial ``noise``), high frequencies of the unit noise ``fresh``; ``lpf`` from :func:`low_pass_filter`
    for :func:`latent_thw` of the latent (with the same ``batch_frames``, see :func:`to_video_layout`).
    """
    u = renoised_unit_noise(model_sampling, sigma, noise, x0, latent, max_denoise, min_signal)
    return mix_latents(u, fresh.to(device=noise.device), lpf, batch_frames).to(noise.dtype)


def pass_seed(seed: int | None, p: int) -> int:
    """Seed of the fresh noise of pass ``p`` (>= 1) for a sampler seed (None -> 0)."""
    s = 0 if seed is None else int(seed)
    return (s * 6364136223846793005 + _SEED_MIX + 1442695040888963407 * int(p)) % (2 ** 64)


def fresh_noise(shape, seed: int | None, p: int) -> Tensor:
    """Unit Gaussian noise (CPU float32) of pass ``p``, a pure function of ``(seed, p, shape)``."""
    g = torch.Generator().manual_seed(pass_seed(seed, p))
    return torch.randn(tuple(shape), generator=g, dtype=torch.float32)


# --------------------------------------------------------------------------- the loop

def free_init(sample: Callable[[Tensor, int], Tensor], noise: Tensor, model_sampling: ModelSamplingLike,
              sigma: SigmaLike, settings: Settings = Settings(), seed: int | None = 0,
              latent: Tensor | None = None, max_denoise: bool = False,
              on_reinit: Callable[[int, Tensor], None] | None = None, batch_frames: bool = True,
              mask: Tensor | None = None) -> Tensor:
    """Run FreeInit: ``settings.iterations`` full sampling passes, returning the last pass's result.

    Args:
        sample: ``sample(unit_noise, p) -> x0`` runs one full sampling pass (pass index ``p``) from
            unit noise ``[B, ...]`` and returns the clean latent ``[B, ...]`` (the sampler's output at
            sigma 0), in the space where ``model_sampling.noise_scaling`` applies.
        noise: the initial unit noise ``eps_0`` ``[F, C, H, W]`` (image model: frames as batch) or
            ``[B, C, T, H, W]`` (video model). It is re-used to re-noise every pass's result.
        sigma: the sampler's first sigma (model units); ``max_denoise``: ComfyUI's rule for it.
        latent: the sampler's (processed) input latent ``[B, ...]`` or None (empty latent).
        seed: the sampler's seed; pass p's fresh noise is :func:`fresh_noise` ``(seed, p)``.
        on_reinit: optional ``on_reinit(p, unit_noise)`` before pass ``p >= 1`` (for tests/logging).
            Coarse-to-fine sampling is up to ``sample`` (it runs pass p over :func:`pass_sigmas`).
        batch_frames: ``True``: the batch of an image-model latent (``[F, C, H, W]``, or ``[F, C, 1, H, W]``
            of one picture frame per entry, e.g. Qwen-Image) is one video's frames and the low-pass runs
            across it; ``False``: independent images, each filtered in 2-D on its own (for a model that
            does not attend across its batch: a temporal low-pass over independent images would keep
            only their batch mean at the low temporal frequencies, pulling them to one composition).
            Video latents with ``T > 1`` are filtered per video either way.
        mask: the sampler's denoise mask (broadcastable to ``noise``; 0 = given frame, e.g. an in-place
            first image) or None; given frames keep the initial noise in every pass (:func:`keep_given`).
    Returns:
        ``sample``'s result of the last pass. With ``iterations = 1`` exactly ``sample(noise, 0)``.
    Cost: ``iterations`` x the sampler's NFE, plus two FFTs of the latent per re-initialisation.
    Raises:
        ValueError: bad settings (:func:`validate`), or a latent that is not 4-D/5-D.
    """
    settings = validate(settings)
    lpf = low_pass_filter(latent_thw(noise.shape, batch_frames), settings.filter_type, settings.d_s, settings.d_t,
                          settings.order, settings.grid)

    def reinit(p: int, x0: Tensor) -> Tensor:
        fresh = fresh_noise(noise.shape, seed, p)
        start = reinit_noise(model_sampling, sigma, noise, x0, fresh, lpf, latent, max_denoise, settings.min_signal,
                             batch_frames)
        return keep_given(start, noise, mask)

    return run_passes(sample, noise, settings.iterations, reinit, lambda s: s, on_reinit)


def run_passes(sample: Callable[[Tensor, int], Tensor], noise, iterations: int,
               reinit: Callable[[int, Tensor], object], pack: Callable[[object], Tensor],
               on_reinit: Callable[[int, object], None] | None = None) -> Tensor:
    """FreeInit's pass loop, shared by :func:`free_init` and :func:`free_init_streams`: pass 0 samples
    ``pack(noise)``; every later pass ``p`` samples ``pack(reinit(p, x0))`` of the previous pass's result
    ``x0`` (``on_reinit(p, start)`` sees the start first). Returns the last pass's result."""
    x0 = sample(pack(noise), 0)
    for p in range(1, iterations):
        start = reinit(p, x0)
        if on_reinit is not None:
            on_reinit(p, start)
        x0 = sample(pack(start), p)
    return x0


# --------------------------------------------------------------------------- audio+video (several streams)

AUDIO_TREATMENTS = ("keep initial noise", "low-pass along time")
DEFAULT_AUDIO_TREATMENT = "keep initial noise"


def mix_along_time(low: Tensor, high: Tensor, time_axis: int, settings: Settings) -> Tensor:
    """FreeInit's mix for a stream without a picture grid (audio): low frequencies of ``low``, high of
    ``high`` along axis ``time_axis`` only, with the 1-D form of the same filter (:func:`low_pass_filter`
    of ``(T, 1, 1)``: every other axis has only its DC bin, so the cut-off is ``settings.d_t``). Shape kept."""
    lo = low.movedim(time_axis, -1)
    hi = high.to(device=low.device).movedim(time_axis, -1)
    t = int(lo.shape[-1])
    lpf = low_pass_filter((t, 1, 1), settings.filter_type, settings.d_s, settings.d_t, settings.order, settings.grid)
    v = frequency_mix(lo.reshape(lo.shape + (1, 1)), hi.reshape(hi.shape + (1, 1)), lpf)
    return v.reshape(lo.shape).movedim(-1, time_axis).to(low.dtype)


def keep_given(start: Tensor, noise: Tensor, mask: Tensor | None) -> Tensor:
    """``start`` where ``mask`` is 1 (generated), the initial ``noise`` where it is 0 (given frames of a
    noise mask / in-place image): a given frame is re-noised in every pass exactly as in the first, so
    it stays the image's. ``mask`` broadcastable to ``start`` (values in [0, 1]) or None."""
    if mask is None:
        return start
    m = mask.to(device=start.device, dtype=start.dtype)
    return noise.to(start.dtype) + m * (start - noise.to(start.dtype))


def free_init_streams(sample: Callable[[Tensor, int], Tensor], noise: list, model_sampling: ModelSamplingLike,
                      sigma: SigmaLike, settings: Settings, pack: Callable[[list], Tensor],
                      unpack: Callable[[Tensor], list], audio_axes: list, seed: int | None = 0,
                      latent: list | None = None, max_denoise: bool = False, masks: list | None = None,
                      audio_treatment: str = DEFAULT_AUDIO_TREATMENT,
                      on_reinit: Callable[[int, list], None] | None = None, batch_frames: bool = False) -> Tensor:
    """FreeInit on an audio+video latent sampled packed (ComfyUI's nested latents: MiniMax H3, LTX-2).

    Args:
        sample: ``sample(packed_unit_noise, p) -> packed x0`` (one full sampling pass, sampler space).
        noise: the initial unit noise of each stream: ``[video [B, C, T, H, W], audio [...], ...]``.
        pack / unpack: the streams <-> the packed latent (ComfyUI's ``pack_latents`` / ``unpack_latents``).
        audio_axes: for each stream after the first, its time axis.
        latent, masks: each stream's processed input latent / denoise mask (or None).
        audio_treatment: ``"keep initial noise"``: every pass starts the audio streams from their own
            initial noise (the audio follows the refined video through the joint model); ``"low-pass along
            time"``: the audio result is re-noised with its initial noise and its low frequencies along time
            (cut-off ``d_t``) are kept, fresh noise above (:func:`mix_along_time`).
        batch_frames: as in :func:`free_init`, for the video stream. The joint audio+video models do not
            attend across their batch, so the default ``False`` filters each video (and each one-frame
            video of a batch) on its own.
    The video stream gets FreeInit's 3-D mix (:func:`reinit_noise`). Re-noising is ComfyUI's
    ``noise_scaling`` in the sampler's space: for MiniMax H3 the audio stream there is the carried
    variable (``audio_scale`` x the audio latent on the video schedule, ``ModelSamplingAV``), so its
    re-noising is the model's own forward process. Given frames (mask 0) keep their initial noise
    (:func:`keep_given`). Returns the last pass's packed x0; ``iterations`` x the sampler's NFE.
    Raises ValueError: unknown ``audio_treatment``.
    """
    if audio_treatment not in AUDIO_TREATMENTS:
        raise ValueError(f"audio must be one of {list(AUDIO_TREATMENTS)}, got {audio_treatment!r}")
    settings = validate(settings)
    latent = latent if latent is not None else [None] * len(noise)
    masks = masks if masks is not None else [None] * len(noise)
    lpf = low_pass_filter(latent_thw(noise[0].shape, batch_frames), settings.filter_type, settings.d_s,
                          settings.d_t, settings.order, settings.grid)
    packed_shape = pack(noise).shape

    def reinit(p: int, x0: Tensor) -> list:
        fresh = unpack(fresh_noise(packed_shape, seed, p))
        x0s = unpack(x0)
        starts = [reinit_noise(model_sampling, sigma, noise[0], x0s[0], fresh[0], lpf, latent[0], max_denoise,
                               settings.min_signal, batch_frames)]
        for i in range(1, len(noise)):
            if audio_treatment == "keep initial noise":
                starts.append(noise[i])
                continue
            u = renoised_unit_noise(model_sampling, sigma, noise[i], x0s[i], latent[i], max_denoise,
                                    settings.min_signal)
            starts.append(mix_along_time(u, fresh[i], audio_axes[i - 1], settings).to(noise[i].dtype))
        return [keep_given(s, n, m) for s, n, m in zip(starts, noise, masks)]

    return run_passes(sample, noise, settings.iterations, reinit, pack, on_reinit)

def pass_steps(steps: int, p: int, iterations: int, coarse_to_fine: bool) -> int:
    """Sampling steps of pass ``p`` (0-based): ``steps``, or with coarse-to-fine sampling (FreeInit's
    "fast sampling", diffusers ``use_fast_sampling``) ``max(1, int(steps / iterations * (p + 1)))``."""
    if not coarse_to_fine:
        return int(steps)
    return max(1, int(int(steps) / int(iterations) * (p + 1)))


def pass_sigmas(sigmas: Tensor, p: int, iterations: int, coarse_to_fine: bool) -> Tensor:
    """The schedule of pass ``p``: ``sigmas`` ``[N + 1]`` itself, or for coarse-to-fine sampling
    :func:`pass_steps` + 1 of its entries at evenly spaced indices (same first and last sigma; for
    ComfyUI's simple/normal schedules close to the schedule of that many steps)."""
    n = int(sigmas.shape[-1]) - 1
    k = pass_steps(n, p, iterations, coarse_to_fine)
    if k >= n:
        return sigmas
    idx = torch.linspace(0, n, k + 1, dtype=torch.float64).round().long().to(sigmas.device)
    return sigmas[idx]


def nfe(iterations: int, sampling_nfe: int, steps: int | None = None, coarse_to_fine: bool = False) -> int:
    """Model calls of FreeInit: ``iterations`` x those of one sampling pass (``sampling_nfe`` for
    ``steps`` steps); with coarse-to-fine sampling the sum over the passes' shorter schedules
    (3 iterations: 2 x plain)."""
    if not coarse_to_fine:
        return int(iterations) * int(sampling_nfe)
    per_step = int(sampling_nfe) / int(steps)
    return int(round(per_step * sum(pass_steps(int(steps), p, iterations, True) for p in range(int(iterations)))))


__all__ = ["FILTERS", "GRIDS", "Settings", "validate", "frequency_coordinates", "low_pass_filter",
           "to_video_layout", "from_video_layout", "latent_thw", "frequency_mix", "mix_latents", "renoise_ratio",
           "renoised_unit_noise", "reinit_noise", "pass_seed", "fresh_noise", "free_init", "run_passes",
           "AUDIO_TREATMENTS", "DEFAULT_AUDIO_TREATMENT", "mix_along_time", "keep_given", "free_init_streams", "pass_steps", "pass_sigmas", "nfe"]
