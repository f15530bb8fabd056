"""The papers' setting: SD1.5 + AnimateDiff v2 through ComfyUI-AnimateDiff-Evolved (ADE), real nodes.

Models (session fixture ``ade_models``, conftest.py / ade_support.py): a FULL-size random SD1.5
checkpoint loaded by CheckpointLoaderSimple and a random AnimateDiff v2 motion module in the
``mm_sd_v15_v2`` layout (32 positions) written through ADE's own classes, loaded by
ADE_LoadAnimateDiffModel -> ADE_ApplyAnimateDiffModelSimple -> ADE_UseEvolvedSampling. Kept cheap:
32x32 pixels (4x4 latents), 16 frames (24 with context windows), one or two sampling steps, small K.

What is checked under ADE:
* SmoothInit: the real UNet evaluations equal the NFE formula K x (calls(w1) + calls(w2)) (ADE's
  wrappers neither double nor drop calls) and its progress is one bar over those calls; the
  SamplerCustomAdvanced form (Fast-SmoothInit Noise with the SIGMAS input) gives the KSampler
  patch's noise and result; the motion module acts inside the optimisation (the noise differs from
  the same graph without the motion module, and only with it do the frames' noises depend on each
  other).
* ADE context windows (24 frames, context_length 16): Dependency Noise, SmoothInit and NI-VSDS run
  and give finite results of the right shape; Temporal Momentum Attention averages inside each
  window and restarts at the window's first frame (as its tooltip says).

Skipped, with the reason printed, when ADE is not in the tested ComfyUI's custom_nodes/.
"""
from __future__ import annotations

import gc
from types import SimpleNamespace

import pytest
import torch

from ade_support import ade_node, first
from comfy_harness import pack_module

FRAMES = 16
WINDOW_FRAMES = 24
CONTEXT_LENGTH = 16
CONTEXT_OVERLAP = 4
AD_BETAS = "sqrt_linear (AnimateDiff)"  # what beta_schedule "autoselect" picks for a v2 motion module


@pytest.fixture(scope="module")
def ad(pack, ade_models):
    """Loaded once for this module: the full-size SD1.5 (model, clip, vae), the motion model, the
    ADE-patched MODEL (autoselect betas, as the shipped workflows), conds and modules."""
    import comfy.model_management
    import comfy.patcher_extension
    import comfy.utils
    import comfy_extras.nodes_custom_sampler as cs
    import nodes
    model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(ade_models["ckpt"])[:3]
    motion = first(ade_node("ADE_LoadAnimateDiffModel")(model_name=ade_models["motion_model"]))
    m_models = first(ade_node("ADE_ApplyAnimateDiffModelSimple")(motion_model=motion))
    evo = first(ade_node("ADE_UseEvolvedSampling")(model=model, m_models=m_models, beta_schedule="autoselect"))
    with torch.inference_mode():
        pos = nodes.CLIPTextEncode().encode(clip, "a waterfall in a lush green forest, mist")[0]
        neg = nodes.CLIPTextEncode().encode(clip, "blurry, low quality")[0]
    ns = SimpleNamespace(model=model, vae=vae, m_models=m_models, evo=evo, pos=pos, neg=neg, nodes=nodes, cs=cs,
                         pe=comfy.patcher_extension, utils=comfy.utils,
                         si=pack_module(pack, "nodes.smoothinit"), core=pack_module(pack, "samplers.smoothinit"),
                         zs2=pack_module(pack, "nodes.zs2"), i4v=pack_module(pack, "nodes.i4vgen"),
                         tm=pack_module(pack, "attention.temporal_momentum"))
    yield ns
    ns.__dict__.clear()
    del model, clip, vae, motion, m_models, evo
    comfy.model_management.unload_all_models()
    gc.collect()


def _latent(frames=FRAMES):
    return {"samples": torch.zeros(frames, 4, 4, 4)}


def _counted(ad, model, calls):
    """Clone with a DIFFUSION_MODEL wrapper recording (batch, cond_or_uncond) of every real UNet call."""
    m = model.clone()

    def counter(executor, x, *args, **kwargs):
        t_opts = kwargs.get("transformer_options", args[-1] if args and isinstance(args[-1], dict) else {})
        calls.append((int(x.shape[0]), list(t_opts.get("cond_or_uncond", []))))
        return executor(x, *args, **kwargs)

    m.add_wrapper_with_key(ad.pe.WrappersMP.DIFFUSION_MODEL, "test.count", counter)
    return m


def _captured(ad, model, got):
    """Clone with an (innermost) SAMPLER_SAMPLE wrapper recording the unit noise the sampler starts from."""
    m = model.clone()

    def capture(executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        got["noise"] = noise.detach().cpu().clone()
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)

    m.add_wrapper_with_key(ad.pe.WrappersMP.SAMPLER_SAMPLE, "test.capture", capture)
    return m


def _nfe(calls, frames):
    """Model evaluations per sample (one per cond or uncond chunk of the frames)."""
    assert all(b % frames == 0 for b, _ in calls), calls
    return sum(b // frames for b, _ in calls)


class _Bars:
    """Records every progress-bar update (ComfyUI's global progress hook)."""

    def __init__(self, ad):
        self.ad, self.updates = ad, []

    def __enter__(self):
        self.ad.utils.set_progress_bar_global_hook(
            lambda value, total, preview=None, node_id=None: self.updates.append((int(value), int(total))))
        return self

    def __exit__(self, *exc):
        self.ad.utils.set_progress_bar_global_hook(None)


# Fast-SmoothInit (custom), kept small: K 2, cfg 7.5, inversion_cfg 1 -> 2 x (2 + 1) = 6 NFE.
K, SIGMA_SM, GAMMA_M, GAMMA_DECAY, CFG, INV_CFG, GRID = 2, 0.05, 0.05, 0.05, 7.5, 1.0, 50
SEED = 5


def _smoothinit_patch(ad, model):
    return ad.si.SmoothInitModelPatch().patch(model, "Fast-SmoothInit (custom)", CFG, INV_CFG, GRID, K, SIGMA_SM,
                                              "gaussian", GAMMA_M, GAMMA_DECAY, 0)[0]


@pytest.fixture(scope="module")
def ksampler_run(ad):
    """SmoothInit (KSampler) on the ADE model, then KSampler (ddim, ddim_uniform, 1 step, CFG 7.5), with
    the real UNet calls, the progress bars and the sampler's start noise recorded."""
    calls, got = [], {}
    m = _captured(ad, _counted(ad, _smoothinit_patch(ad, ad.evo), calls), got)
    with _Bars(ad) as bars, torch.inference_mode():
        out = ad.nodes.KSampler().sample(m, SEED, 1, CFG, "ddim", "ddim_uniform", ad.pos, ad.neg, _latent())[0]
    return {"calls": calls, "bars": bars.updates, "noise": got["noise"], "samples": out["samples"]}


def test_smoothinit_model_calls_under_ade_equal_the_nfe_formula(ad, ksampler_run):
    expect = ad.core.nfe(K, CFG, INV_CFG)
    assert expect == 6
    calls = ksampler_run["calls"]
    # the optimisation's calls, then one CFG sampling step (2 evaluations); every call holds all 16 frames
    assert _nfe(calls, FRAMES) == expect + 2, calls
    assert _nfe(calls[:-1], FRAMES) == expect
    # one bar over the optimisation's model calls (never reset), reaching the formula's total, then
    # the sampler's own bar
    smooth = [u for u in ksampler_run["bars"] if u[1] == expect]
    assert smooth and smooth[-1] == (expect, expect)
    assert [v for v, _ in smooth] == sorted(v for v, _ in smooth)
    first_sampler_bar = next(i for i, u in enumerate(ksampler_run["bars"]) if u[1] != expect)
    assert all(u[1] == expect for u in ksampler_run["bars"][:first_sampler_bar])
    assert torch.isfinite(ksampler_run["samples"]).all()


def test_noise_node_with_sigmas_gives_the_ksampler_patch_noise_under_ade(ad, ksampler_run):
    """SamplerCustomAdvanced(Fast-SmoothInit Noise(RandomNoise, SIGMAS), CFGGuider, ddim, SIGMAS) ==
    KSampler(SmoothInit (KSampler)) on the same ADE model, seed, conds and schedule."""
    cs = ad.cs
    sigmas = cs.BasicScheduler().get_sigmas(ad.evo, "ddim_uniform", 1, 1.0)[0]
    noise = ad.si.FastSmoothInitNoise().build(cs.RandomNoise().get_noise(SEED)[0], ad.evo, ad.pos, ad.neg, CFG,
                                              INV_CFG, GRID, "custom", K, SIGMA_SM, GAMMA_M, GAMMA_DECAY,
                                              sigmas=sigmas)[0]
    got = {}
    guider = cs.CFGGuider().get_guider(_captured(ad, ad.evo, got), ad.pos, ad.neg, CFG)[0]
    sampler = cs.KSamplerSelect().get_sampler("ddim")[0]
    with torch.inference_mode():
        out = cs.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, _latent())[0]
    base = cs.RandomNoise().get_noise(SEED)[0].generate_noise(_latent())
    assert not torch.allclose(ksampler_run["noise"], base, atol=1e-3)  # the patch did optimise
    torch.testing.assert_close(got["noise"], ksampler_run["noise"], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out["samples"], ksampler_run["samples"], rtol=1e-4, atol=1e-4)


def test_motion_module_acts_inside_the_optimisation(ad):
    """Forward-Inversion noise with the motion module differs from the same graph without it (same
    ADE sampling, betas, seed, conds), and only with it do the frames interact: changing the last
    frame's base noise changes frame 0's optimised noise."""
    plain = first(ade_node("ADE_UseEvolvedSampling")(model=ad.model, beta_schedule=AD_BETAS))
    with_mm = first(ade_node("ADE_UseEvolvedSampling")(model=ad.model, m_models=ad.m_models, beta_schedule=AD_BETAS))
    torch.testing.assert_close(with_mm.get_model_object("model_sampling").sigmas,
                               plain.get_model_object("model_sampling").sigmas)
    torch.testing.assert_close(with_mm.get_model_object("model_sampling").sigmas,
                               ad.evo.get_model_object("model_sampling").sigmas)  # = autoselect's schedule
    base = torch.randn(FRAMES, 4, 4, 4, generator=torch.Generator().manual_seed(3))
    moved = base.clone()
    moved[-1] = torch.randn(4, 4, 4, generator=torch.Generator().manual_seed(4))
    TensorNoise = ad.si.TensorNoise

    def forward_inversion(model, n):
        node = ad.si.ForwardInversionNoise().build(TensorNoise(n, seed=SEED), model, ad.pos, ad.neg, CFG, INV_CFG,
                                                   GRID)[0]
        with torch.inference_mode():
            return node.generate_noise(_latent())

    ad_base, ad_moved = forward_inversion(with_mm, base), forward_inversion(with_mm, moved)
    pl_base, pl_moved = forward_inversion(plain, base), forward_inversion(plain, moved)
    for t in (ad_base, ad_moved, pl_base, pl_moved):
        assert torch.isfinite(t).all() and not torch.allclose(t, base if t is not ad_moved else moved, atol=1e-3)
    assert (ad_base - pl_base).abs().max() > 1e-2  # the motion module changes the optimised noise
    # without the motion module every frame is its own image: frame 0 ignores the last frame
    torch.testing.assert_close(pl_moved[:-1], pl_base[:-1], rtol=1e-5, atol=1e-5)
    # with it, the temporal attention mixes the frames: frame 0 depends on the last frame's noise
    assert (ad_moved[0] - ad_base[0]).abs().max() > 1e-4


# --------------------------------------------------------------------------- ADE context windows

@pytest.fixture(scope="module")
def evo_windows(ad):
    """The ADE model with Standard Uniform context options (context_length 16, overlap 4): a 24-frame
    latent is denoised in overlapping 16-frame windows."""
    ctx = first(ade_node("ADE_StandardUniformContextOptions")(context_length=CONTEXT_LENGTH, context_stride=1,
                                                              context_overlap=CONTEXT_OVERLAP))
    return first(ade_node("ADE_UseEvolvedSampling")(model=ad.model, m_models=ad.m_models, context_options=ctx,
                                                    beta_schedule="autoselect"))


def _windowed_calls_ok(calls):
    """Every real UNet call under the context options holds one 16-frame window per cond/uncond chunk."""
    assert calls
    for b, chunks in calls:
        assert b == CONTEXT_LENGTH * len(chunks), (b, chunks)


def _check_video(samples, frames=WINDOW_FRAMES):
    assert tuple(samples.shape) == (frames, 4, 4, 4)
    assert torch.isfinite(samples).all()
    assert samples.std() > 0


def test_dependency_noise_runs_under_context_windows(ad, evo_windows):
    dn = ad.zs2.DependencyNoiseModelPatch().patch(evo_windows, 0.01, 10, 15, "dependency", 0.9)[0]
    calls, got = [], {}
    m = _captured(ad, _counted(ad, dn, calls), got)
    with torch.inference_mode():
        out = ad.nodes.KSampler().sample(m, SEED, 1, CFG, "ddim", "ddim_uniform", ad.pos, ad.neg,
                                         _latent(WINDOW_FRAMES))[0]
    _check_video(out["samples"])
    _windowed_calls_ok(calls)
    base = ad.cs.RandomNoise().get_noise(SEED)[0].generate_noise(_latent(WINDOW_FRAMES))
    assert got["noise"].shape == base.shape and not torch.allclose(got["noise"], base)  # the noise was replaced
    # dependency noise: consecutive frames are correlated over all 24 frames (across the windows)
    n = got["noise"].flatten(1)
    corr = torch.nn.functional.cosine_similarity(n[1:], n[:-1], dim=1)
    assert corr.min() > 0.2


def test_smoothinit_runs_under_context_windows(ad, evo_windows):
    calls, got = [], {}
    m = _captured(ad, _counted(ad, _smoothinit_patch(ad, evo_windows), calls), got)
    with _Bars(ad) as bars, torch.inference_mode():
        out = ad.nodes.KSampler().sample(m, SEED, 1, CFG, "ddim", "ddim_uniform", ad.pos, ad.neg,
                                         _latent(WINDOW_FRAMES))[0]
    _check_video(out["samples"])
    _windowed_calls_ok(calls)
    expect = ad.core.nfe(K, CFG, INV_CFG)
    assert (expect, expect) in bars.updates  # the pack counts model calls, however many windows each has
    base = ad.cs.RandomNoise().get_noise(SEED)[0].generate_noise(_latent(WINDOW_FRAMES))
    assert got["noise"].shape == base.shape and torch.isfinite(got["noise"]).all()
    assert not torch.allclose(got["noise"], base, atol=1e-3)


def test_ni_vsds_runs_under_context_windows(ad, evo_windows):
    static = ad.i4v.StaticVideoFromLatent().build({"samples": torch.randn(1, 4, 4, 4)}, WINDOW_FRAMES,
                                                         "auto", 0, model=evo_windows)[0]
    calls = []
    m = _counted(ad, evo_windows, calls)
    with torch.inference_mode():
        out = ad.i4v.NIVSDSAnimate().animate(m, ad.pos, ad.neg, static, 7, 3, CFG, "ddim_uniform", 0.6,
                                             "1")[0]  # 3 steps: 10,10,10,1 would be refused (update gain > 2)
    _check_video(out["samples"])
    _windowed_calls_ok(calls)
    s = static["samples"]
    assert not torch.allclose(out["samples"], s, atol=1e-3)
    assert (out["samples"] - out["samples"][:1]).abs().amax(dim=(1, 2, 3)).max() > 1e-3  # no longer static


def test_temporal_momentum_averages_inside_each_context_window(ad, evo_windows):
    """Under ADE context windows a model call holds one window's frames (ad_params.sub_idxs): TMA's
    momentum average runs over that window only and restarts at its first frame, whatever that
    frame's index in the whole video."""
    mu = 0.9
    tma = ad.zs2.TemporalMomentumAttention().patch(evo_windows, mu)[0]
    seen = []

    def recorder(n, context_attn1, value_attn1, extra_options):
        # registered after TMA, so it sees TMA's output: K/V inputs = Eq. 2 over the call's frames
        chunks = len(extra_options["cond_or_uncond"])
        params = extra_options["ad_params"]
        frames = n.shape[0] // chunks
        torch.testing.assert_close(context_attn1, ad.tm.temporal_momentum(n, mu, chunks))
        first_frames = torch.arange(chunks) * frames
        torch.testing.assert_close(context_attn1[first_frames], n[first_frames])  # restart at the window's start
        seen.append((frames, tuple(params["sub_idxs"]), params["full_length"]))
        return n, context_attn1, value_attn1

    m = tma.clone()
    m.set_model_attn1_patch(recorder)
    with torch.inference_mode():
        out = ad.nodes.KSampler().sample(m, SEED, 1, CFG, "ddim", "ddim_uniform", ad.pos, ad.neg,
                                         _latent(WINDOW_FRAMES))[0]
    _check_video(out["samples"])
    assert seen
    windows = {w for _, w, _ in seen}
    assert all(f == CONTEXT_LENGTH and full == WINDOW_FRAMES for f, _, full in seen)
    assert all(len(w) == CONTEXT_LENGTH and list(w) == list(range(w[0], w[0] + CONTEXT_LENGTH)) for w in windows)
    assert len(windows) >= 2 and min(w[0] for w in windows) == 0 and max(w[-1] for w in windows) == WINDOW_FRAMES - 1
    assert any(w[0] > 0 for w in windows)  # a window starting mid-video restarts the average there
    tip = ad.zs2.TemporalMomentumAttention.INPUT_TYPES()["required"]["momentum"][1]["tooltip"]
    assert "context window" in tip and "first frame" in tip


def test_freeinit_filters_across_the_frames_under_ade(ad, pack):
    """FreeInit under ADE (the FreeInit paper's own setting): the motion module attends across the
    batch, so the 16 frames are one video and pass 2 starts from the 3-D (frames, H, W) mix, not from
    a 2-D mix per frame (issue 14: an image batch is frames only when the model couples it)."""
    import comfy.k_diffusion.sampling as kd
    import comfy.samplers
    fi_nodes, core = pack_module(pack, "nodes.freeinit"), pack_module(pack, "samplers.freeinit")
    rec = []

    def fn(model, x, sigmas, extra_args=None, callback=None, disable=None):
        rec.append({"x": x.detach().clone(), "sigma0": float(sigmas[0])})
        out = kd.sample_euler(model, x, sigmas, extra_args=extra_args, callback=callback, disable=disable)
        rec[-1]["out"] = out.detach().clone()
        return out

    latent = _latent()
    with torch.inference_mode():
        sampler = fi_nodes.FreeInitSampler().get_sampler(comfy.samplers.KSAMPLER(fn), 2, "butterworth", 0.25, 0.25,
                                                         4, 0.068)[0]
        guider = ad.cs.CFGGuider().get_guider(ad.evo, ad.pos, ad.neg, CFG)[0]
        sigmas = ad.cs.BasicScheduler().get_sigmas(ad.evo, "simple", 1, 1.0)[0]
        ad.cs.SamplerCustomAdvanced().sample(ad.cs.Noise_RandomNoise(SEED), guider, sampler, sigmas, latent)
        eps = ad.cs.Noise_RandomNoise(SEED).generate_noise(latent)
    assert len(rec) == 2
    s0 = rec[0]["sigma0"]
    ms = ad.evo.get_model_object("model_sampling")
    fresh = core.fresh_noise(eps.shape, SEED, 1)
    start = rec[1]["x"] / (1 + s0 ** 2) ** 0.5                         # EPS max_denoise start: x_T = b * n

    def expect(frames):
        lpf = core.low_pass_filter(core.latent_thw(eps.shape, frames), "butterworth")
        return core.reinit_noise(ms, s0, eps, rec[0]["out"], fresh, lpf, None, True, batch_frames=frames)
    torch.testing.assert_close(start, expect(True), rtol=1e-4, atol=1e-4)
    assert float((start - expect(False)).abs().max()) > 1e-2
