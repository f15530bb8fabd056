"""Wan 2.2's two-expert graph with the initial-noise methods other than FreeInit, and distilled CFG-1
sampling (issue 14 parts 1 and 2), in the real ComfyUI (moved from test_wan22.py; FreeInit's two-expert
node and its graph: test_freeinit_two_experts.py, whose split helpers and experts these tests use).

The stock Wan 2.2 14B layout (video_wan2_2_14B_t2v): KSamplerAdvanced #1 on the high-noise expert
(add_noise enable, steps 0..k of N, return_with_leftover_noise enable), KSamplerAdvanced #2 on the
low-noise expert (add_noise disable, steps k..N). The experts are tiny random-weight Wan 2.1-architecture
models (Wan 2.2 14B experts are Wan 2.1-architecture), two weight seeds = two experts, shift 8 each.

SmoothInit (KSampler) / NOISE nodes, Dependency Noise, NI-VSDS and Static Video in the same graph: the
high-noise expert optimises the start noise, the second stage's all-zero noise is left alone.
CFG 1 (distilled 4-step path): SmoothInit's follow-the-sampler default stops with an error.
"""
import pytest
import torch

from comfy_harness import count_model_calls, wan21_vae, wan_conds
from test_freeinit_two_experts import (CFG, K_SWITCH, LATENT_SHAPE, N, SEED, _custom_two_stage, _smoothinit,  # noqa: F401
                                       _two_stage, high, low)


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


# --------------------------------------------------------------------------- initial-noise methods, two experts

def test_smoothinit_patch_on_the_high_noise_expert(mods, high, low):
    """SmoothInit (KSampler) on the high-noise expert optimises KSamplerAdvanced #1's start noise at its
    first sigma with its CFG (cfg 0 follows 3.5): the video equals the SamplerCustomAdvanced split from
    Fast-SmoothInit Noise (SIGMAS = the high part) at cfg 3.5. A patch on the low-noise expert too leaves
    the second stage's all-zero noise alone: the low expert runs only its N - k CFG steps."""
    cs = mods["cs"]
    pos, neg = wan_conds()
    cl = []
    with torch.inference_mode():
        _, a = _two_stage(mods, _smoothinit(mods, high), _smoothinit(mods, count_model_calls(low, cl)))
        sigmas = cs.BasicScheduler().get_sigmas(high, "simple", N, 1.0)[0]
        hi_s, _ = cs.SplitSigmas().get_sigmas(sigmas, K_SWITCH)
        noise = mods["si"].FastSmoothInitNoise().build(cs.Noise_RandomNoise(SEED), high, pos, neg, CFG, 1.0, 50,
                                                       "custom", 2, 0.05, 0.05, 0.05, sigmas=hi_s)[0]
        b = _custom_two_stage(mods, high, low, noise)
        _, plain = _two_stage(mods, high, low)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert float((a - plain).abs().max()) > 1e-2
    assert sum(cl) == (N - K_SWITCH) * 2


def test_dependency_noise_patch_on_the_high_noise_expert(mods, high, low):
    """Dependency Noise (KSampler) on the high-noise expert = the split from the Dependency Noise node;
    the patch on the low-noise expert leaves its all-zero noise alone (same video as without it)."""
    zs2 = mods["zs2"]
    args = (0.01, 10, 15, "dependency", 0.9)
    with torch.inference_mode():
        ph = zs2.DependencyNoiseModelPatch().patch(high, *args)[0]
        pl = zs2.DependencyNoiseModelPatch().patch(low, *args)[0]
        _, a = _two_stage(mods, ph, pl)
        _, a_low_plain = _two_stage(mods, ph, low)
        noise = zs2.DependencyNoise().get_noise(SEED, *args)[0]
        b = _custom_two_stage(mods, high, low, noise)
        _, plain = _two_stage(mods, high, low)
    assert torch.equal(a, a_low_plain)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-4)
    assert float((a - plain).abs().max()) > 1e-2


def test_ni_vsds_and_static_video_with_the_high_noise_expert(mods, high, low):
    """I4VGen in the two-expert graph: a one-frame anchor from the stock split, Static Video From
    Latent (the real Wan VAE encodes the still clip), NI-VSDS Animate on the high-noise expert (the first
    tau sigmas are the high-noise ones), regeneration by the split starting at step 1 (denoise 0.75)."""
    i4v = mods["i4"]
    pos, neg = wan_conds()
    with torch.inference_mode():
        _, anchor = _two_stage(mods, high, low, latent={"samples": torch.zeros(1, 16, 1, 8, 8)})
        static = i4v.StaticVideoFromLatent().build({"samples": anchor}, 3, "auto", 0, model=high, vae=wan21_vae())[0]
        assert static["samples"].shape == LATENT_SHAPE
        anim = i4v.NIVSDSAnimate().animate(high, pos, neg, static, 7, N, CFG, "simple", 0.6, "1")[0]
        _, regen = _two_stage(mods, high, low, latent=anim, start=1)
    assert float((anim["samples"] - static["samples"]).abs().max()) > 1e-3
    assert regen.shape == LATENT_SHAPE and torch.isfinite(regen).all()


# --------------------------------------------------------------------------- CFG 1 (distilled 4-step path)

def test_smoothinit_follow_mode_at_cfg_1_stops_with_an_error(mods, high, low):
    """The stock fast path (4 steps, switch 2, CFG 1): SmoothInit (KSampler)'s cfg 0 would follow CFG 1
    = inversion_cfg and inject nothing; it stops with an error naming the node, cfg and what to set. An
    explicit cfg (3.5) runs and changes the start noise; the NOISE nodes have no follow mode."""
    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): cfg is 0 \(follow the sampler\) but the "
                                             r"sampler's CFG is 1.*Set cfg to a value above inversion_cfg"):
            _two_stage(mods, _smoothinit(mods, high), low, cfg=1.0)
        _, explicit = _two_stage(mods, _smoothinit(mods, high, cfg=3.5), low, cfg=1.0)
        _, plain = _two_stage(mods, high, low, cfg=1.0)
    assert float((explicit - plain).abs().max()) > 1e-2
    for cls in ("ForwardInversionNoise", "SmoothInitNoise", "FastSmoothInitNoise"):
        assert getattr(mods["si"], cls).INPUT_TYPES()["required"]["cfg"][1]["default"] == 7.5
