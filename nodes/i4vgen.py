"""I4VGen nodes: anchor image selection, static video, NI-VSDS animation.

"I4VGen: Image as Free Stepping Stone for Text-to-Video Generation" (arXiv 2406.02230), with the
official code's algorithm and defaults from docs/algorithms.md section 2. The pipeline in a graph:

1. anchor image: candidates (a batch from any image model/sampler) -> any score node ->
   **I4VGen Anchor Select** (or a user image, paper Sec. 4.5);
2. **Static Video From Latent / From Image**: the anchor held still for F frames in the video
   model's latent layout (for causal video VAEs the encoding of the still clip);
3. **NI-VSDS Animate**: the static video animated by the video model (this file's loop, run inside
   ComfyUI's sampler machinery through ``comfy_bridge.run_in_sampling``);
4. regeneration: a stock KSampler at ``denoise = p_re`` on the animated latent (no node needed).

Thin adapters: the algorithm is :func:`..samplers.ni_vsds.ni_vsds` (pure torch); ComfyUI is reached
only through :mod:`.comfy_bridge`.
"""
from __future__ import annotations

import math

import torch

from ..samplers import ni_vsds as nv
from ..samplers.ni_vsds import DEFAULT_P, DivergingStepSizeError, ni_vsds, num_updates
from . import comfy_bridge as bridge
from . import registry

LAYOUT_AUTO = "auto"
LAYOUT_BATCH = "frames as batch"
LAYOUT_AXIS = "frame axis"
LAYOUTS = [LAYOUT_AUTO, LAYOUT_BATCH, LAYOUT_AXIS]

#: eps* is drawn from the NI-VSDS seed XOR this constant, so it is independent of the noise a
#: sampler node draws from the same seed (the official code draws the regeneration noise fresh).
NI_VSDS_SEED_SALT = 0x4E492D5653445321
MAX_SEED = 0xFFFFFFFFFFFFFFFF


class AnyType(str):
    """A socket type that accepts any link (ComfyUI compares types with ``!=``)."""

    def __ne__(self, other):
        return False

    __hash__ = str.__hash__


ANY = AnyType("*")


# --------------------------------------------------------------------------- layout helpers

def _shape(t: torch.Tensor) -> str:
    return "[" + ", ".join(str(int(s)) for s in t.shape) + "]"


def _model_layout(model) -> str:
    return LAYOUT_AXIS if bridge.latent_dimensions(model) >= 3 else LAYOUT_BATCH


def _check_model_channels(model, latent: torch.Tensor, what: str) -> None:
    c = bridge.latent_channels(model)
    if latent.shape[1] != c:
        raise ValueError(f"{what} has {int(latent.shape[1])} latent channels (shape {_shape(latent)}) but the "
                         f"MODEL's latent format {bridge.latent_format_name(model)} has {c}; encode with the VAE "
                         f"that belongs to this model family")


def _resolve_layout(layout: str, model, vae, input_ndim: int) -> str:
    """The output layout: the MODEL's (a contradicting explicit layout is an error); without a MODEL
    'auto' follows the VAE (a causal video VAE -> frame axis), else the input (5-D -> frame axis)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout '{layout}' is not one of {LAYOUTS}")
    if model is not None:
        want = _model_layout(model)
        if layout == LAYOUT_AUTO:
            return want
        if layout != want:
            fam = ("native video latents [B, C, T, H, W]" if want == LAYOUT_AXIS
                   else "frames as batch [F, C, H, W]")
            raise ValueError(f"layout '{layout}' contradicts the MODEL (latent format "
                             f"{bridge.latent_format_name(model)}), which takes {fam}; choose '{want}' or 'auto'")
        return layout
    if layout != LAYOUT_AUTO:
        return layout
    if bridge.causal_video_frames_fn(vae) is not None:
        return LAYOUT_AXIS
    return LAYOUT_AXIS if input_ndim == 5 else LAYOUT_BATCH


def _need_causal_vae(vae, what: str) -> None:
    if vae is None:
        raise ValueError(f"vae: {what} needs the video model's VAE: a causal video VAE (Wan, Hunyuan, "
                         f"LTXV) puts 1 picture frame in latent frame 0 and 4 (LTXV: 8) in each later one, so a "
                         f"latent repeated along the frame axis is not a still clip. Connect the video model's VAE "
                         f"(e.g. the VAELoader of wan_2.1_vae) to the vae input: the anchor frame is decoded, held "
                         f"still and the still clip encoded once.")
    if bridge.causal_video_frames_fn(vae) is None:
        raise ValueError(f"vae: {what} needs the video model's causal video VAE (Wan, Hunyuan, LTXV), but "
                         f"the connected VAE is an image VAE (latent_dim {getattr(vae, 'latent_dim', '?')}); connect "
                         f"the VAE that belongs to the video model.")


def _check_vae_channels(vae, latent: torch.Tensor, what: str) -> None:
    c = bridge.vae_latent_channels(vae)
    if c is not None and int(latent.shape[1]) != c:
        raise ValueError(f"{what} has {int(latent.shape[1])} latent channels (shape {_shape(latent)}) but the "
                         f"VAE's latent has {c}; connect the VAE that made this latent")


_NESTED_STATIC = "The static video is built from an image latent [B, C, H, W] or a video latent [B, C, T, H, W]."


def make_static_video(samples: torch.Tensor, frames: int, layout: str, batch_index: int,
                      model=None, vae=None) -> torch.Tensor:
    """The static video of one latent (I4VGen Sec. 3.2, docs/algorithms.md section 2.2): the latent
    of the anchor image held still for ``frames`` frames.

    Args:
        samples: raw latents: images ``[B, C, H, W]`` or videos ``[B, C, T, H, W]``.
        frames: F >= 1 (latent frames).
        layout: ``"frames as batch"`` -> ``[F, C, H, W]`` (SD1.5 + AnimateDiff-Evolved: the latent
            repeated along the batch, each frame an image latent; ``vae`` unused). ``"frame axis"``
            -> ``[1, C, F, H, W]`` (Wan, Hunyuan, LTXV): needs ``vae``, the video model's causal
            VAE: picture frame 0 of the anchor (what latent frame 0 decodes to) is decoded, held
            for the picture-frame count that gives F latent frames (Wan ``4 (F - 1) + 1``) and
            encoded once, because a causal VAE's latent repeated along the frame axis is not a
            still clip. ``"auto"``: the MODEL's layout, else a causal video VAE's (frame axis),
            else the input's (4-D -> frames as batch, 5-D -> frame axis).
        batch_index: which latent of the batch is the anchor.
        model: optional MODEL to check the layout and channel count against.
        vae: optional VAE (required for the frame axis).
    Raises:
        ValueError (naming the input): bad index or layout, a multi-frame video latent
            for frames as batch, a frame-axis output without a causal video VAE, channel counts
            that do not match the VAE or the MODEL.
    """
    bridge.refuse_nested_latent("samples", samples, _NESTED_STATIC)
    if int(frames) < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if samples.ndim not in (4, 5):
        raise ValueError(f"samples {_shape(samples)} is neither an image latent [B, C, H, W] nor a "
                         f"video latent [B, C, T, H, W]")
    b = int(samples.shape[0])
    if not 0 <= int(batch_index) < b:
        raise ValueError(f"batch_index {batch_index} is out of range for a batch of {b} latent(s) "
                         f"{_shape(samples)}; use 0..{b - 1} (e.g. the index output of I4VGen Anchor Select)")
    layout = _resolve_layout(layout, model, vae, samples.ndim)
    one = samples[int(batch_index):int(batch_index) + 1]
    if layout == LAYOUT_AXIS:
        what = (f"samples {_shape(samples)} is a video latent" if samples.ndim == 5
                else f"a static video on the frame axis (layout '{layout}')")
        _need_causal_vae(vae, what)
        _check_vae_channels(vae, one, "samples")
        held = bridge.decode_first_picture_frame(vae, one)
        out = bridge.encode_still_clip(vae, held, int(frames))
        if model is not None:
            _check_model_channels(model, out, "the VAE's latent")
        return out.contiguous()
    if one.ndim == 5:
        if one.shape[2] != 1:
            raise ValueError(f"samples {_shape(samples)} is already a video latent with {int(one.shape[2])} "
                             f"frames; for frames as batch give an image latent [B, C, H, W] or a one-frame video "
                             f"latent [B, C, 1, H, W]")
        one = one[:, :, 0]
    if model is not None:
        _check_model_channels(model, one, "samples")
    return one.repeat(int(frames), 1, 1, 1).contiguous()


def check_video_latent(model, x: torch.Tensor, name: str = "latent_image") -> None:
    """Raise if ``x`` is not a multi-frame video latent in the MODEL's layout.

    Frames-as-batch models (latent_dimensions 2: SD1.5 + AnimateDiff) need ``[F, C, H, W]`` with
    F >= 2; native video models (latent_dimensions 3: Wan, Hunyuan, LTXV) need ``[B, C, T, H, W]``
    with T >= 2; the channel count must be the latent format's.
    """
    fmt = bridge.latent_format_name(model)
    if _model_layout(model) == LAYOUT_AXIS:
        if x.ndim == 4:
            raise ValueError(f"{name} {_shape(x)} is an image latent, but the MODEL (latent format {fmt}) "
                             f"needs a video latent [B, C, T, H, W]; build it with Static Video From Latent/Image "
                             f"(layout 'auto' or 'frame axis')")
        if x.ndim != 5:
            raise ValueError(f"{name} {_shape(x)} is not a video latent [B, C, T, H, W]")
        _check_model_channels(model, x, name)
        if x.shape[2] < 2:
            raise ValueError(f"{name} {_shape(x)} has a single frame; NI-VSDS animates a video of T >= 2 "
                             f"frames: repeat the image with Static Video From Latent/Image")
    else:
        if x.ndim == 5:
            raise ValueError(f"{name} {_shape(x)} is a video latent with a frame axis, but the MODEL "
                             f"(latent format {fmt}) takes frames as batch [F, C, H, W] (SD1.5 + AnimateDiff); "
                             f"build the static video with layout 'frames as batch' or 'auto'")
        if x.ndim != 4:
            raise ValueError(f"{name} {_shape(x)} is not a frames-as-batch latent [F, C, H, W]")
        _check_model_channels(model, x, name)
        if x.shape[0] < 2:
            raise ValueError(f"{name} {_shape(x)} is a single image latent; NI-VSDS animates a video of "
                             f"F >= 2 frames: repeat the image with Static Video From Latent/Image")


# --------------------------------------------------------------------------- nodes

_FRAMES_TOOLTIP = ("Number of frames F of the static video, in latent frames. Frames as batch (SD1.5 + "
                   "AnimateDiff): one latent per video frame (AnimateDiff default 16). Frame axis (Wan, Hunyuan, "
                   "LTXV): latent frames T; the still clip encoded has the picture-frame count that gives T latent "
                   "frames: 4 * (T - 1) + 1 for Wan/Hunyuan (e.g. 9 -> 33, 21 -> 81), 8 * (T - 1) + 1 for LTXV.")
_LAYOUT_TOOLTIP = ("Latent layout of the video model. 'frames as batch': [F, C, H, W] (SD1.5 + "
                   "AnimateDiff-Evolved). 'frame axis': [1, C, F, H, W] (Wan, Hunyuan, LTXV; needs the video "
                   "VAE). 'auto': the connected MODEL's layout, else the VAE's (a video VAE -> frame axis), else the "
                   "input's (an image latent [B, C, H, W] -> frames as batch, a video latent [B, C, T, H, W] -> "
                   "frame axis).")
_BATCH_INDEX_TOOLTIP = ("Which image of the input batch is the anchor (0-based); connect the index output of "
                        "I4VGen Anchor Select to use the best candidate's latent without a VAE round trip.")
_MODEL_CHECK_TOOLTIP = ("Optional: the video MODEL this static video is for; 'auto' then follows its latent "
                        "layout, and the layout and channel count are checked against it.")
_LATENT_VAE_TOOLTIP = ("The video model's VAE; required for a frame-axis static video (Wan, Hunyuan, LTXV): their "
                       "causal VAEs put 1 picture frame in latent frame 0 and 4 (LTXV 8) in each later one, so the "
                       "latent repeated along the frame axis is not a still clip. The node holds picture frame 0 of "
                       "the anchor latent (what its first latent frame decodes to), repeats it to 4 * (F - 1) + 1 "
                       "picture frames and encodes that still clip once. Unused for frames as batch (SD1.5 + "
                       "AnimateDiff: the latent is repeated, no VAE round trip).")


@registry.node(registry.Spec(
    id="I4VGenStaticVideoFromLatent", display_name="Static Video From Latent (I4VGen)", method="I4VGen", function="build",
    inputs={
        "samples": ("LATENT", {"tooltip": "The anchor latent(s): [B, C, H, W] from an image VAE or sampler, "
                                          "or [B, C, T, H, W] from a video VAE or sampler (its first frame is "
                                          "held; a one-frame clip is the usual anchor)."}),
        "frames": ("INT", {"default": 16, "min": 1, "max": 4096, "tooltip": _FRAMES_TOOLTIP}),
        "layout": (LAYOUTS, {"default": LAYOUT_AUTO, "tooltip": _LAYOUT_TOOLTIP}),
        "batch_index": ("INT", {"default": 0, "min": 0, "max": 4095, "tooltip": _BATCH_INDEX_TOOLTIP}),
    },
    optional={
        "model": ("MODEL", {"tooltip": _MODEL_CHECK_TOOLTIP}),
        "vae": ("VAE", {"tooltip": _LATENT_VAE_TOOLTIP}),
    },
    outputs=(("LATENT", "static_video",
              "The static video latent: [F, C, H, W] (frames as batch) or [1, C, F, H, W] (frame axis, the VAE's "
              "encoding of the still clip)."),),
    description=("I4VGen static video (paper Sec. 3.2): the anchor image held still for F frames in the video "
                 "model's latent layout. Frames as batch (SD1.5 + AnimateDiff): the anchor's clean latent "
                 "repeated, no VAE round trip. Frame axis (Wan, Hunyuan, LTXV; connect the vae): picture frame 0 "
                 "of the anchor latent is decoded, held still for 4 * (F - 1) + 1 picture frames and encoded once, "
                 "so the latent is the encoding of a still clip (a causal video VAE's latent repeated along the "
                 "frame axis is not). No model calls (0 NFE); with the vae one decode and one encode. Feed it to "
                 "NI-VSDS Animate."),
    aliases=registry.I4VGEN_TERMS + ("static video", "still video", "repeat frames", "hold frame")))
class StaticVideoFromLatent:
    def build(self, samples, frames, layout, batch_index, model=None, vae=None):
        out = make_static_video(samples["samples"], frames, layout, batch_index, model, vae)
        return ({"samples": out},)


@registry.node(registry.Spec(
    id="I4VGenStaticVideoFromImage", display_name="Static Video From Image (I4VGen)", method="I4VGen", function="build",
    inputs={
        "image": ("IMAGE", {"tooltip": "The anchor image (a batch is allowed; batch_index picks one)."}),
        "vae": ("VAE", {"tooltip": "The video model's VAE (SD1.5 VAE for AnimateDiff, Wan VAE for Wan). A "
                                   "video VAE encodes the still clip (the image held for the picture-frame "
                                   "count of F latent frames) in one call."}),
        "frames": ("INT", {"default": 16, "min": 1, "max": 4096, "tooltip": _FRAMES_TOOLTIP}),
        "layout": (LAYOUTS, {"default": LAYOUT_AUTO, "tooltip": _LAYOUT_TOOLTIP}),
        "batch_index": ("INT", {"default": 0, "min": 0, "max": 4095,
                                "tooltip": "Which image of the input batch is the anchor (0-based)."}),
    },
    optional={
        "model": ("MODEL", {"tooltip": _MODEL_CHECK_TOOLTIP}),
    },
    outputs=(("LATENT", "static_video",
              "The static video latent: [F, C, H, W] (frames as batch) or [1, C, F, H, W] (frame axis, the VAE's "
              "encoding of the still clip)."),),
    description=("I4VGen static video (paper Sec. 3.2) from a picture, in one VAE encode: with a video VAE (Wan, "
                 "Hunyuan, LTXV) the still clip (the image repeated to 4 * (F - 1) + 1 picture frames for Wan) is "
                 "encoded into F latent frames on the frame axis; with an image VAE (SD1.5 + AnimateDiff) the image "
                 "is encoded once and its latent repeated to F frames as the batch. A real user image makes the "
                 "paper's 'adaptation on real image' (Sec. 4.5). No model calls (0 NFE), one VAE encode. Feed it to "
                 "NI-VSDS Animate."),
    aliases=registry.I4VGEN_TERMS + ("static video", "still video", "image to static video", "real image")))
class StaticVideoFromImage:
    def build(self, image, vae, frames, layout, batch_index, model=None):
        b = int(image.shape[0])
        if not 0 <= int(batch_index) < b:
            raise ValueError(f"batch_index {batch_index} is out of range for {b} image(s); use 0..{b - 1}")
        if int(frames) < 1:
            raise ValueError(f"frames must be >= 1, got {frames}")
        pixels = image[int(batch_index):int(batch_index) + 1, :, :, :3]
        if _resolve_layout(layout, model, vae, 4) == LAYOUT_AXIS:
            _need_causal_vae(vae, "a static video on the frame axis")
            out = bridge.encode_still_clip(vae, pixels, int(frames))  # the still clip, encoded once
            if model is not None:
                _check_model_channels(model, out, "the VAE's latent")
            return ({"samples": out.contiguous()},)
        latent = vae.encode(pixels)  # encoded once
        out = make_static_video(latent, frames, LAYOUT_BATCH, 0, model)
        return ({"samples": out},)


@registry.node(registry.Spec(
    id="NIVSDSAnimate", display_name="NI-VSDS Animate (I4VGen)", method="I4VGen", function="animate",
    inputs={
        "model": ("MODEL", {"tooltip": "The video model (SD1.5 with an AnimateDiff-Evolved motion module, "
                                       "Wan, ...). It is not modified."}),
        "positive": ("CONDITIONING", {"tooltip": "The prompt's conditioning."}),
        "negative": ("CONDITIONING", {"tooltip": "The negative conditioning for CFG."}),
        "latent_image": ("LATENT", {"tooltip": "The static video from Static Video From Latent/Image, in "
                                               "the MODEL's layout ([F, C, H, W] or [B, C, T, H, W])."}),
        "seed": ("INT", {"default": 0, "min": 0, "max": MAX_SEED, "control_after_generate": True,
                         "tooltip": "Seed of the fixed noise eps* (one unit Gaussian per frame, drawn once). "
                                    "Drawn from its own stream, so it never equals a sampler's noise."}),
        "steps": ("INT", {"default": 25, "min": 1, "max": 10000,
                          "tooltip": "Steps N of the sampling schedule NI-VSDS walks (ignored when sigmas "
                                     "is connected). AnimateDiff default: DDIM 25 steps. Keep 25 even when "
                                     "the regeneration sampler uses fewer: step sizes 10,10,10,1 overshoot "
                                     "on short schedules and are refused there (SD1.5: 10 or fewer "
                                     "ddim_uniform or normal steps)."}),
        "cfg": ("FLOAT", {"default": 7.5, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01,
                          "tooltip": "Classifier-free guidance scale of the model calls (the sampling CFG; "
                                     "AnimateDiff 7.5). 1.0 = one conditional call per update."}),
        "scheduler": (bridge.SCHEDULERS, {"default": "ddim_uniform",
                                          "tooltip": "Scheduler of the schedule (ignored when sigmas is "
                                                     "connected). ddim_uniform reproduces the official "
                                                     "DDIM timesteps on SD1.5."}),
        "p": ("FLOAT", {"default": DEFAULT_P, "min": 0.0, "max": 1.0, "step": 0.01,
                        "tooltip": "Fraction of the schedule used, in (0, 1]: tau = int(N * p) + 1 updates "
                                   "over the highest sigmas (default 0.6: 16 of 25)."}),
        "step_sizes": ("STRING", {"default": "10,10,10,1", "multiline": False,
                                  "tooltip": "Comma-separated step sizes eta_1, eta_2, ... of the updates; the "
                                             "last value repeats. AnimateDiff '10,10,10,1' (for ~15+ "
                                             "steps; refused when an update's gain exceeds 2), LaVie '1'."}),
    },
    optional={
        "sigmas": ("SIGMAS", {"tooltip": "Optional schedule (descending, in the model's sigma units, >= 2 "
                                         "sigmas); replaces steps + scheduler."}),
    },
    outputs=(("LATENT", "animated",
              "The animated video latent (same shape as the input); regenerate it with a KSampler at denoise = "
              "p_re (AnimateDiff 1.0, LaVie 0.8) and a seed different from this node's."),),
    description=("I4VGen NI-VSDS (noise-invariant video score distillation sampling, paper Sec. 3.2 / "
                 "Algorithm 1, official defaults from docs/algorithms.md section 2.3): animates a static video with "
                 "the video model. One unit noise eps* is drawn once from the seed; for each of the first "
                 "tau = int(N * p) + 1 sigmas of the schedule (high to low) the latent moves by "
                 "-eta_i * (1 - alphabar(sigma)) * (eps_hat - eps*), eps_hat from the CFG denoised prediction. "
                 "Cost: tau CFG model calls (NFE = tau, x2 with CFG). "
                 "Its schedule is its own (steps need not match the sampler's): an update whose gain "
                 "eta * a * b / (a^2 + b^2) exceeds 2 would make the latent diverge and is refused, e.g. the "
                 "official 10,10,10,1 on SD1.5 (p 0.6) at 2-10 ddim_uniform or 3-10 normal steps; 11 steps "
                 "and more run. "
                 "Follow it with a KSampler at denoise = p_re (video regeneration)."),
    aliases=registry.I4VGEN_TERMS + ("ni-vsds", "nivsds", "vsds", "score distillation", "animate") + registry.VIDEO_TERMS))
class NIVSDSAnimate:
    def animate(self, model, positive, negative, latent_image, seed, steps, cfg, scheduler, p, step_sizes,
                sigmas=None):
        x = latent_image["samples"]
        bridge.refuse_nested_latent("latent_image", x, "NI-VSDS animates a video latent [B, C, T, H, W] or frames "
                                                       "as batch [F, C, H, W].")
        settings = nv.Settings.from_inputs(cfg, p, step_sizes)
        if sigmas is None:
            if int(steps) < 1:
                raise ValueError(f"steps must be >= 1, got {steps}")
            sched = bridge.calculate_sigmas(model, scheduler, int(steps))
        else:
            sched = torch.as_tensor(sigmas).detach().flatten().float().cpu()
        tau = num_updates(sched.numel(), settings.p)
        check_video_latent(model, x)

        g = torch.Generator(device="cpu").manual_seed((int(seed) ^ NI_VSDS_SEED_SALT) & MAX_SEED)
        eps_star = torch.randn(x.shape, generator=g, dtype=torch.float32, device="cpu").to(x.dtype)
        zero_latent = bool(torch.count_nonzero(x) == 0)

        def run(ctx):
            z = bridge.process_latent_in(ctx, ctx.latent_image) if zero_latent else ctx.latent_image
            progress = bridge.iteration_progress(model, tau)
            base = ctx.denoiser()

            def denoise(xx, sigma, c):
                bridge.throw_if_interrupted()
                return base(xx, sigma, c)

            out = ni_vsds(denoise, ctx.model_sampling, z, ctx.noise, ctx.sigmas, settings.cfg, p=settings.p,
                          step_sizes=settings.step_sizes, callback=lambda d: progress(d["i"], d["z"]))
            return ctx.process_latent_out(out)

        try:
            out = bridge.run_in_sampling(model, positive, negative, settings.cfg, x, eps_star, sched, run,
                                         seed=int(seed))
        except DivergingStepSizeError as e:
            if sigmas is None:
                raise
            raise ValueError(f"{e} The schedule here is the connected sigmas (steps and scheduler are ignored): "
                             "connect a longer one, e.g. BasicScheduler with 25 steps, or disconnect sigmas to use "
                             "steps.") from e
        out = out.to(bridge.intermediate_device())
        if not torch.isfinite(out).all():
            raise ValueError(f"the animated latent is not finite; lower step_sizes or p, or check the "
                             f"model and cfg")
        return ({"samples": out},)


def parse_scores(value) -> list[float]:
    """Scores from a number, a list/tuple (nested lists are flattened), a tensor/array, or a string
    of comma/space/newline-separated numbers. Raises ValueError naming ``scores`` on anything else."""
    out: list[float] = []

    def add(v):
        if v is None:
            return
        if isinstance(v, str):
            for part in v.replace(";", ",").replace("\n", ",").replace(" ", ",").replace("\t", ",").split(","):
                if part.strip():
                    try:
                        out.append(float(part))
                    except ValueError:
                        raise ValueError(f"score '{part.strip()}' is not a number; give one number per "
                                         f"candidate image, e.g. '0.12, 0.53, 0.31'") from None
            return
        if isinstance(v, bool):
            raise ValueError(f"scores got a boolean ({v}); give one number per candidate image")
        if isinstance(v, (int, float)):
            out.append(float(v))
            return
        if isinstance(v, dict):
            raise ValueError(f"scores got a {type(v).__name__}; give numbers (a FLOAT list, a tensor or "
                             f"a comma-separated string), one per candidate image")
        if hasattr(v, "detach") or hasattr(v, "tolist"):
            vals = v.detach().cpu().flatten().tolist() if hasattr(v, "detach") else v.tolist()
            add(vals if isinstance(vals, list) else [vals])
            return
        if isinstance(v, (list, tuple)):
            for item in v:
                add(item)
            return
        raise ValueError(f"scores got a {type(v).__name__}; give numbers (a FLOAT list, a tensor or a "
                         f"comma-separated string), one per candidate image")

    add(value)
    for s in out:
        if not math.isfinite(s):
            raise ValueError(f"score {s} is not finite")
    return out


@registry.node(registry.Spec(
    id="I4VGenAnchorSelect", display_name="I4VGen Anchor Select", method="I4VGen", function="select",
    inputs={
        "images": ("IMAGE", {"tooltip": "The candidate images [N, H, W, C] (e.g. a batch of N candidates "
                                         "from an image sampler; the official code uses N = 16)."}),
        "mode": (["highest", "lowest"], {"default": "highest",
                                         "tooltip": "Keep the highest score (rewards) or the lowest (losses, "
                                                    "distances). Ties keep the first."}),
        "scores_text": ("STRING", {"default": "", "multiline": False,
                                   "tooltip": "Scores as comma-separated numbers, one per candidate, used "
                                              "when the scores input is not connected."}),
    },
    optional={
        "scores": (ANY, {"tooltip": "Scores from any node: a FLOAT (list), a number list, a tensor or a "
                                    "string of numbers, one per candidate image."}),
    },
    outputs=(("IMAGE", "anchor_image",
              "The selected candidate image [1, H, W, C]."),
             ("INT", "index",
              "Its 0-based index in the candidate batch."),
             ("FLOAT", "score",
              "Its score."),),
    description=("I4VGen generation-selection (paper Sec. 3.1): keeps the best of a batch of candidate images by "
                 "a score per image, so any reward/score node (ImageReward, CLIP score, aesthetic...) can drive it. "
                 "Outputs the anchor image and its index (use the index as batch_index of Static Video From Latent "
                 "to keep the candidate's own latent). No model calls (0 NFE)."),
    input_is_list=True,
    aliases=registry.I4VGEN_TERMS + ("anchor select", "best image", "pick best", "rank images", "score")))
class I4VGenAnchorSelect:
    def select(self, images, mode, scores_text, scores=None):
        imgs = [t for t in images if t is not None]
        if not imgs:
            raise ValueError(f"images is empty")
        try:
            batch = torch.cat(imgs, dim=0)
        except RuntimeError:
            raise ValueError(f"the candidate images have different sizes "
                             f"{[_shape(t) for t in imgs]}") from None
        mode = mode[0] if isinstance(mode, list) else mode
        text = scores_text[0] if isinstance(scores_text, list) and scores_text else scores_text
        if scores is not None and not (isinstance(scores, list) and all(s is None for s in scores)):
            vals = parse_scores(scores)
            source = "scores"
        else:
            vals = parse_scores(text or "")
            source = "scores_text"
        n = int(batch.shape[0])
        if len(vals) != n:
            raise ValueError(f"{source} has {len(vals)} score(s) for {n} candidate image(s); give exactly "
                             f"one score per image")
        best = 0
        for i, v in enumerate(vals):
            if (v > vals[best]) if mode == "highest" else (v < vals[best]):
                best = i
        return (batch[best:best + 1], best, float(vals[best]))
