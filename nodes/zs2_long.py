"""Node: ZS^2 Long Video (chunks) -- any number of frames with the memory of one chunk, the paper's
auto-regressive mode (ZS^2 Sec. 6.1; docs/algorithms.md section 3.3).

A MODEL patch made of two wrappers (registered through :mod:`.comfy_bridge`):

* SAMPLER_SAMPLE (every sampler node -- KSampler, KSamplerAdvanced, SamplerCustom[Advanced] -- ends
  in ``CFGGuider.sample`` -> SAMPLER_SAMPLE, with the model loaded and the conds processed): an
  ``F``-frame latent ``[F, C, H, W]`` with ``F > m`` is sampled as chunks of at most ``m`` frames that
  overlap by one seam frame (:func:`..samplers.long_video.plan_chunks`); each chunk is one run of the
  sampler you chose on that chunk's slice of the noise, latent and mask (and per-frame conds), and the
  chunk outputs are stitched into one ``F``-frame latent.
* PREDICT_NOISE (every CFG model call): inside a chunk, frame 0 (the seam) gets the previous chunk's
  recorded last-frame input and denoised output at the same sigma, and the chunk's last frame is
  recorded for the next chunk (:class:`..samplers.long_video.ChunkState`).

``F <= m`` (or the pack's own loops, NI-VSDS/SmoothInit NOISE nodes) passes straight through: exactly
the unpatched model's result.
"""
from __future__ import annotations

import logging

import torch

from ..samplers import long_video as lv
from . import comfy_bridge as bridge
from . import registry
from .errors import NodeError, prefixed
WRAPPER_KEY = "training_free_video.zs2_long_video"
STATE_KEY = "training_free_video.zs2_long_video_chunk"


AD_PARAMS = "ad_params"


def _with_state(extra_args: dict, state: lv.ChunkState, seed, frames: int) -> dict:
    """A copy of the sampler's extra_args that carries this chunk's seam state (and chunk seed), and
    the chunk's global frame indices as AnimateDiff-style ``ad_params`` (:func:`lv.chunk_frame_params`)
    so per-frame schedules and other packs' per-frame inputs follow the video's frame index."""
    ea = bridge.with_transformer_option(extra_args, STATE_KEY, state)
    outer = bridge.transformer_option(extra_args.get("model_options", {}), AD_PARAMS)
    ea = bridge.with_transformer_option(ea, AD_PARAMS, lv.chunk_frame_params(state.start, state.end, frames, outer))
    if seed is not None and state.index > 0:
        ea["seed"] = (int(seed) + state.index) % 2 ** 64   # fresh ancestral/SDE noise per chunk (chunk 0 as unpatched)
    return ea


def make_wrappers(node: str, chunk: int):
    """The two wrapper functions of the patch for chunks of ``chunk`` frames."""

    def predict_noise(executor, x, timestep, model_options={}, seed=None):
        state = bridge.transformer_option(model_options, STATE_KEY)
        if state is None:
            return executor(x, timestep, model_options, seed)
        if x.shape[0] != state.frames:
            raise RuntimeError(prefixed(node, f"a model call inside chunk {state.index} has {x.shape[0]} frames, "
                                              f"expected {state.frames}; another patch changes the batch between the "
                                              "sampler and the model. Remove that patch, or this node."))
        sigma = float(timestep.reshape(-1)[0])
        return state.model_call(lambda xx: executor(xx, timestep, model_options, seed), x, sigma)

    def sampler_sample(executor, guider, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
                       disable_pbar=False):
        frames = int(noise.shape[0])
        if bridge.own_loop_active() or frames <= chunk or sigmas.shape[-1] < 2:
            return executor(guider, sigmas, extra_args, callback, noise, latent_image, denoise_mask, disable_pbar)
        if noise.ndim != 4:
            raise NodeError(node, f"latent of shape {tuple(noise.shape)}: this node splits the frames of an image "
                                  "model's latent [frames, C, H, W] (SD1.x/SD2.x/SDXL, frames = batch); for video "
                                  "models with a frame axis remove it.")
        plan = lv.plan_chunks(frames, chunk)
        steps = int(sigmas.shape[-1]) - 1
        total = steps * len(plan)
        store = bridge.intermediate_device()
        seed = extra_args.get("seed", None)
        latest = {}          # chunk index -> (x0, x) of its latest callback

        def frames_of(t, s, e):
            return t[s:e] if t is not None and t.ndim >= 1 and t.shape[0] == frames else t

        def sample_chunk(state: lv.ChunkState) -> torch.Tensor:
            s, e, k = state.start, state.end, state.index
            cb = None
            if callback is not None:
                def cb(i, x0, x, n, k=k):
                    latest[k] = (x0, x)
                    shown = x0[1:] if k > 0 and x0.shape[0] > 1 else x0   # preview a new frame, not the seam
                    callback(k * steps + int(i), shown, x, total)
            with bridge.conds_frame_slice(guider, frames, s, e):
                return executor(guider, sigmas, _with_state(extra_args, state, seed, frames), cb, noise[s:e],
                                frames_of(latent_image, s, e), frames_of(denoise_mask, s, e), disable_pbar)

        out, states = lv.sample_in_chunks(sample_chunk, frames, chunk, store=lambda t: t.to(store),
                                          before_chunk=lambda st: bridge.throw_if_interrupted())
        unmatched = sum(st.unmatched for st in states)
        if unmatched:
            logging.warning("%s: %d of %d model calls in chunks 2..%d came at sigmas the previous chunk never used "
                            "(an adaptive sampler such as dpm_adaptive): the seam frame was left as the sampler had "
                            "it there, so the seams are approximate. Use a fixed-step sampler for exact seams.",
                            node, unmatched, sum(st.calls for st in states[1:]), len(states))
        if callback is not None and len(latest) == len(plan):
            # one last report with the whole video's x0 (SamplerCustomAdvanced's denoised_output)
            x0 = lv.stitch([latest[k][0].to(store) for k in range(len(plan))], plan)
            x = lv.stitch([latest[k][1].to(store) for k in range(len(plan))], plan)
            callback(total - 1, x0.to(noise.device), x.to(noise.device), total)
        return out.to(noise.device)

    return sampler_sample, predict_noise


@registry.node(registry.Spec(
    id="ZS2LongVideo", display_name="ZS^2 Long Video (chunks)", method="ZS2", function="patch",
    inputs={
        "model": ("MODEL", {"tooltip": "An SD1.x / SD2.x / SDXL image model whose frames are the latent batch "
                                       "(usually after Temporal Momentum Attention and Dependency Noise "
                                       "(KSampler)). Not modified (a patched copy is returned)."}),
        "chunk_frames": ("INT", {"default": 8, "min": 2, "max": 4096,
                                 "tooltip": "m: the most frames sampled at once (memory of one m-frame batch; "
                                            "paper 8). Chunks overlap by one seam frame: the last frame of a "
                                            "chunk is frame 1 of the next, so F frames take ceil((F-1)/(m-1)) "
                                            "chunks (64 frames at m = 8: 9 chunks, 9x the sampling steps). "
                                            "F <= m: one ordinary batch, unchanged."}),
    },
    outputs=(("MODEL", "model",
              "A patched copy of the model: any sampler node samples a latent of more than chunk_frames frames "
              "chunk by chunk and returns all frames as one latent."),),
    description=(
        "ZS^2 long videos (Sec. 5, auto-regressive mode): a latent of F frames (Empty Latent Image batch_size = F) "
        "is sampled in chunks of chunk_frames (m) frames that share one seam frame: the last frame of each chunk is "
        "frame 1 of the next (Temporal Momentum Attention's anchor). While a chunk samples, its last frame's model "
        "input and denoised x0 are recorded at every model call; in the next chunk frame 1 gets exactly that "
        "trajectory at every call with the same sigma, so the seam is continuous. The initial noise is the full "
        "F-frame noise (Dependency Noise continues across chunks); per-frame ControlNet hints, concat conds and "
        "ConditioningSetMask masks are sliced per chunk, and every model call carries the chunk's global frame indices "
        "as AnimateDiff-style ad_params (sub_idxs, full_length), so momentum_schedule and other packs' per-frame "
        "inputs follow the video's frame index. Output: one latent with all F frames (the seam is not duplicated). Works with every "
        "sampler node (KSampler, KSamplerAdvanced, SamplerCustom[Advanced]); one progress bar over all chunks. "
        "Exact seam for deterministic samplers (euler, ddim, heun, dpmpp_2m, lms, uni_pc, ...); ancestral/SDE "
        "samplers draw fresh noise per chunk (seed + chunk index): the model still sees the recorded seam at every "
        "call and the output keeps the previous chunk's seam frame. Cost: NFE = steps x calls per step x chunks, "
        "each call on at most m frames (x2 with CFG). F <= m: the unpatched result exactly. With FreeInit or "
        "SmoothInit (KSampler) on the same model, in either patch order, they run inside each chunk (FreeInit: "
        "its passes and temporal low-pass filter span one chunk's frames; SmoothInit: each chunk's noise is "
        "optimised on that chunk), so memory stays that of one chunk. FreeInit (KSampler, two experts) is not "
        "supported with it (an error)."),
    aliases=registry.ZS2_TERMS + ("long video", "chunks", "autoregressive", "64 frames", "sliding window")))
class ZS2LongVideo:
    def patch(self, model, chunk_frames):
        node = self.NODE_NAME
        m = int(chunk_frames)
        if m < 2:
            raise ValueError(f"chunk_frames must be >= 2 (a seam frame plus at least one new frame), got {m}.")
        if bridge.latent_dimensions(model) != 2:
            raise ValueError(f"model: its {bridge.latent_format_name(model)} latents have a frame axis "
                             "([B, C, T, H, W], a video model such as Wan/Hunyuan/LTXV); this node chunks image "
                             "models' frames-as-batch latents (SD1.x/SD2.x/SDXL, the ZS^2 setting). Remove it.")
        sampler_sample, predict_noise = make_wrappers(node, m)
        return (bridge.add_sampler_wrappers(model, WRAPPER_KEY, sampler_sample=sampler_sample,
                                            predict_noise=predict_noise, outermost=True),)
