"""Patches of different features on one MODEL, in the real ComfyUI on the tiny random-weight SD1.5 UNet:
ZS^2 Long Video (chunks) with FreeInit (KSampler) and with SmoothInit (KSampler), in either patch order."""
import logging

import pytest
import torch

from comfy_harness import count_model_calls

H = W = 8
SEED = 77
STEPS = 2
CFG = 5.0
FRAMES, CHUNK = 7, 4          # chunks: frames 0..3, 3..6


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


def ksampler(model, conds, frames=FRAMES):
    import nodes
    pos, neg = conds
    lat = {"samples": torch.zeros(frames, 4, H, W)}
    with torch.inference_mode():
        return nodes.KSampler().sample(model, SEED, STEPS, CFG, "euler", "normal", pos, neg, lat)[0]["samples"]


def long_patch(mods, m):
    with torch.inference_mode():
        return mods["long"].ZS2LongVideo().patch(m, CHUNK)[0]


def freeinit_patch(mods, m, iterations=2):
    with torch.inference_mode():
        return mods["fi"].FreeInitModelPatch().patch(m, iterations, "butterworth", 0.25, 0.25, 4, 0.068,
                                                           False)[0]


def smoothinit_patch(mods, m):
    with torch.inference_mode():
        return mods["si"].SmoothInitModelPatch().patch(m, "Fast-SmoothInit (custom)", 0.0, 1.0, 50, 2, 0.05,
                                                               "uniform", 0.05, 0.05, 0)[0]


def test_long_video_with_freeinit_either_order(mods, sd15, conds, caplog):
    """Chunking is the outer loop, FreeInit's passes run inside each chunk: the same video in either
    patch order, at most CHUNK frames per model call, NFE = chunks x iterations x steps (x2 CFG), every
    pass of a later chunk finds the seam at its own sigmas (no approximate-seam warning), and FreeInit
    changes the result."""
    log_a, log_b = [], []
    with caplog.at_level(logging.WARNING):
        a = ksampler(freeinit_patch(mods, long_patch(mods, count_model_calls(sd15, log_a))), conds)
        b = ksampler(long_patch(mods, freeinit_patch(mods, count_model_calls(sd15, log_b))), conds)
    assert not [r for r in caplog.records if "approximate" in r.getMessage()]
    assert a.shape == (FRAMES, 4, H, W) and torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert log_a == log_b and max(log_a) == 2 * CHUNK                      # cond + uncond of one chunk
    assert len(log_a) == 2 * 2 * STEPS                                      # 2 chunks x 2 passes x steps
    plain_long = ksampler(long_patch(mods, sd15), conds)
    assert (a - plain_long).abs().max() > 1e-3


def test_long_video_with_smoothinit_either_order(mods, sd15, conds, caplog):
    """Chunking runs before SmoothInit (KSampler) whichever patch came first: SmoothInit optimises each
    chunk's noise inside the chunk (model calls of at most CHUNK frames, not all frames at once), the
    same video in either order, deterministic, and SmoothInit changes the result."""
    log_a, log_b = [], []
    with caplog.at_level(logging.WARNING):
        a = ksampler(smoothinit_patch(mods, long_patch(mods, count_model_calls(sd15, log_a))), conds)
        b = ksampler(long_patch(mods, smoothinit_patch(mods, count_model_calls(sd15, log_b))), conds)
        again = ksampler(long_patch(mods, smoothinit_patch(mods, sd15)), conds)
    assert not [r for r in caplog.records if "approximate" in r.getMessage()]
    assert a.shape == (FRAMES, 4, H, W) and torch.isfinite(a).all()
    assert torch.equal(a, b) and torch.equal(b, again)
    assert log_a == log_b and max(log_a) == 2 * CHUNK, max(log_b)       # (before the fix: 2 x FRAMES)
    plain_long = ksampler(long_patch(mods, sd15), conds)
    assert (a - plain_long).abs().max() > 1e-3


def test_long_video_reorders_only_its_copy(mods, sd15):
    """Putting the chunking first changes the patched copy's wrapper order, never the input MODEL's."""
    from comfy.patcher_extension import WrappersMP
    si = smoothinit_patch(mods, sd15)
    before = list(si.wrappers[WrappersMP.SAMPLER_SAMPLE].items())
    out = long_patch(mods, si)
    assert list(si.wrappers[WrappersMP.SAMPLER_SAMPLE].items()) == before
    assert list(out.wrappers[WrappersMP.SAMPLER_SAMPLE]) == [mods["long"].WRAPPER_KEY] + [k for k, _ in before]
