"""Newer ComfyUI model paths (issue 13 part 3), in the real ComfyUI with tiny random-weight models.

* Nested (audio+video) latents: ComfyUI 0.33.0's ``CFGGuider.sample`` packs a nested latent (LTX-2:
  video ``[B, C, T, H, W]`` + audio ``[B, 8, T_a, 16]``) flat to ``[B, 1, N]`` before any wrapper runs.
  A tiny LTX-2 (``comfy.supported_models.LTXAV``, 1 layer, random weights) samples such a latent on
  the CPU; every pack node that would see it stops with an error naming the node and what it
  supports. ComfyUIs without nested latents (0.3.64) skip those tests with the reason; detection
  answering "not nested" for plain latents is tested on both.
* Core context windows (``WanContextWindowsManual``; 0.33.0 adds FreeNoise, on by default): with
  Dependency Noise (KSampler), SmoothInit (KSampler) and FreeInit (KSampler) on tiny Wan 2.1, in
  both orders of application, the sampler starts from FreeNoise(the pack's noise) -- the same as the
  pack's NOISE / SAMPLER nodes with SamplerCustomAdvanced -- and both orders give the same video.
* ModelPatcherDynamic (0.33.0, comfy-aimdo): checked whether it can be built for a CPU device.
"""
import inspect

import pytest
import torch

from comfy_harness import ksampler_start_noise, sample_custom_advanced, sd15_conds, tiny_sd15, tiny_wan, wan_conds

STEPS = 2
CFG = 7.5


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


def _first(out):
    return (out.result if hasattr(out, "result") else out)[0]


def _dep_patch(mods, model):
    return mods["zs2"].DependencyNoiseModelPatch().patch(model, 0.05, 4, 4, "dependency", 0.9)[0]


def _dep_params(mods):
    return mods["zs2"].dn.Settings.from_inputs(0.05, 4, 4, "dependency", 0.9)


def _si_patch(mods, model):
    # Forward-Inversion (3 NFE), w1 = the sampler's CFG
    return mods["si"].SmoothInitModelPatch().patch(model, "Forward-Inversion", 0.0, 1.0, 50, 10, 0.05, "uniform",
                                                   0.05, 0.05, 0)[0]


def _fi_patch(mods, model, iterations=2):
    return mods["fi"].FreeInitModelPatch().patch(model, iterations, "butterworth", 0.25, 0.25, 4, 0.068, False)[0]


def _fi_sampler(mods, inner, iterations=2):
    return mods["fi"].FreeInitSampler().get_sampler(inner, iterations, "butterworth", 0.25, 0.25, 4, 0.068, False)[0]


def _euler(mods):
    return _first(mods["cs"].KSamplerSelect().get_sampler("euler"))


def _sca(mods, model, noise, sampler, pos, neg, latent, steps=STEPS, cfg=CFG):
    cs = mods["cs"]
    guider = _first(cs.CFGGuider().get_guider(model, pos, neg, cfg))
    sigmas = _first(cs.BasicScheduler().get_sigmas(model, "simple", steps, 1.0))
    return sample_custom_advanced(noise, guider, sampler, sigmas, latent)["samples"]


def _ksampler(mods, model, seed, pos, neg, latent, steps=STEPS, cfg=CFG):
    return mods["nodes"].KSampler().sample(model, seed, steps, cfg, "euler", "simple", pos, neg, latent)[0]["samples"]


# =========================================================================== detection on plain latents (both)

def test_plain_latents_are_not_nested_inside_real_sampling(mods):
    """On every ComfyUI: a plain Wan latent is not nested, and neither OUTER_SAMPLE's arguments nor the
    guider inside sampling report packed streams (0.33.0 passes latent_shapes=[one shape])."""
    import comfy.patcher_extension as pe
    b = mods["bridge"]
    seen = {}
    m = tiny_wan().clone()

    def outer(executor, noise, *args, **kwargs):
        seen["outer"] = b.outer_sample_latent_shapes(args, kwargs)
        seen["outer_kw"] = "latent_shapes" in kwargs
        return executor(noise, *args, **kwargs)

    def inner(executor, guider, *args, **kwargs):
        seen["inner"] = b.packed_latent_shapes(guider)
        return executor(guider, *args, **kwargs)

    m.add_wrapper_with_key(pe.WrappersMP.OUTER_SAMPLE, "test.outer", outer)
    m.add_wrapper_with_key(pe.WrappersMP.SAMPLER_SAMPLE, "test.inner", inner)
    pos, neg = wan_conds()
    latent = {"samples": torch.zeros(1, 16, 3, 4, 4)}
    _ksampler(mods, m, 1, pos, neg, latent)
    assert not b.is_nested_latent(latent["samples"])
    assert b.nested_latent_shapes(latent["samples"]) is None
    assert seen["outer"] is None and seen["inner"] is None
    print(f"OUTER_SAMPLE gets latent_shapes: {seen['outer_kw']}")


# =========================================================================== nested latents (0.33.0: LTX-2)

TINY_LTXAV = {"image_model": "ltxav", "in_channels": 16, "audio_in_channels": 128, "cross_attention_dim": 32,
              "audio_cross_attention_dim": 16, "attention_head_dim": 16, "audio_attention_head_dim": 8,
              "num_attention_heads": 2, "audio_num_attention_heads": 2, "caption_channels": 24, "num_layers": 1,
              "connector_attention_head_dim": 8, "connector_num_attention_heads": 2, "connector_num_layers": 1}


def _nested_missing_reason():
    import comfy.supported_models
    import comfy.utils
    try:
        import comfy.nested_tensor  # noqa: F401
    except ImportError:
        return "this ComfyUI has no nested latents (no comfy.nested_tensor; 0.3.64): nothing to refuse"
    if not hasattr(comfy.supported_models, "LTXAV") or not hasattr(comfy.utils, "pack_latents"):
        return "this ComfyUI has no LTX-2 audio+video model (comfy.supported_models.LTXAV) to build a tiny one"
    return None


@pytest.fixture(scope="module")
def ltxav(pack):
    """A tiny LTX-2 (audio+video) ModelPatcher: comfy.supported_models.LTXAV with one AV transformer block
    (video 2 heads x 16, audio 2 heads x 8), random weights (matrices N(0, 1/fan_in), norms 1); its text
    conds are given already processed (video 32 + audio 16 channels)."""
    reason = _nested_missing_reason()
    if reason:
        pytest.skip(reason)
    import comfy.model_patcher
    import comfy.supported_models
    cfg = comfy.supported_models.LTXAV(dict(TINY_LTXAV, dtype=torch.float32))
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():
            if p.ndim > 1:
                p.copy_(torch.randn(p.shape, generator=g) / p[0].numel() ** 0.5)
            else:
                p.fill_(1.0 if ("norm" in name or name.endswith("scale")) else 0.0)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def _av_conds(seed=0):
    g = torch.Generator().manual_seed(seed)
    dim = TINY_LTXAV["cross_attention_dim"] + TINY_LTXAV["audio_cross_attention_dim"]
    return [[torch.randn(1, 6, dim, generator=g), {}]], [[torch.randn(1, 6, dim, generator=g), {}]]


def _av_latent():
    """A nested audio+video latent made by ComfyUI's own Concat AV Latent node (LTXVConcatAVLatent)."""
    import comfy_extras.nodes_lt as lt
    video = {"samples": torch.zeros(1, TINY_LTXAV["in_channels"], 3, 4, 4)}
    audio = {"samples": torch.zeros(1, 8, 5, 16)}
    return _first(lt.LTXVConcatAVLatent.execute(video, audio))


def test_tiny_ltx2_samples_a_nested_latent_unpatched(mods, ltxav):
    """The control: the tiny LTX-2 samples the nested latent (KSampler) and returns both streams."""
    pos, neg = _av_conds()
    latent = _av_latent()
    assert mods["bridge"].nested_latent_shapes(latent["samples"]) == [(1, 16, 3, 4, 4), (1, 8, 5, 16)]
    out = _ksampler(mods, ltxav, 3, pos, neg, latent)
    shapes = [tuple(t.shape) for t in out.unbind()]
    assert shapes == [(1, 16, 3, 4, 4), (1, 8, 5, 16)]
    assert all(bool(torch.isfinite(t).all()) for t in out.unbind())


def _nested_error(excinfo, node):
    msg = str(excinfo.value)
    assert msg.startswith(node + ":") and msg.count(node + ":") == 1, msg      # named once (nodes/errors.py)
    assert "nested" in msg and "not supported" in msg and "Remove this node" in msg, msg
    return msg


# FreeInit and the SmoothInit family support audio+video latents: tests/comfyui/test_audio_video.py
@pytest.mark.parametrize("which", ["Dependency Noise (KSampler)"])
def test_model_patches_refuse_a_nested_latent_naming_the_node(mods, ltxav, which):
    pos, neg = _av_conds()
    patch = {"Dependency Noise (KSampler)": _dep_patch}[which]
    with pytest.raises(ValueError) as e:
        _ksampler(mods, patch(mods, ltxav), 3, pos, neg, _av_latent())
    msg = _nested_error(e, which)
    assert "[1, 16, 3, 4, 4] + [1, 8, 5, 16]" in msg and "not supported" in msg


def test_noise_nodes_refuse_a_nested_latent(mods, ltxav):
    pos, neg = _av_conds()
    dep = mods["zs2"].DependencyNoise().get_noise(3, 0.05, 4, 4, "dependency", 0.9)[0]
    with pytest.raises(ValueError) as e:
        _sca(mods, ltxav, dep, _euler(mods), pos, neg, _av_latent())
    _nested_error(e, "Dependency Noise")


def test_static_video_and_ni_vsds_refuse_a_nested_latent(mods, ltxav):
    i4 = mods["i4"]
    with pytest.raises(ValueError) as e:
        i4.StaticVideoFromLatent().build(_av_latent(), 4, "auto", 0)
    _nested_error(e, "Static Video From Latent (I4VGen)")
    pos, neg = _av_conds()
    with pytest.raises(ValueError) as e:
        i4.NIVSDSAnimate().animate(ltxav, pos, neg, _av_latent(), 0, 4, CFG, "simple", 0.6, "1")
    _nested_error(e, "NI-VSDS Animate (I4VGen)")


def test_frames_as_batch_patches_refuse_the_ltx2_model(mods, ltxav):
    """ZS^2 Long Video and Temporal Momentum Attention refuse an audio+video model when patching."""
    with pytest.raises(ValueError, match=r"^ZS\^2 Long Video \(chunks\): model:"):
        mods["long"].ZS2LongVideo().patch(ltxav, 4)
    with pytest.raises(ValueError, match=r"^Temporal Momentum Attention:"):
        mods["zs2"].TemporalMomentumAttention().patch(ltxav, 0.98)


def test_the_pack_loop_refuses_a_nested_latent_before_sampling(mods, ltxav):
    """run_in_sampling (the NOISE nodes' and NI-VSDS's loop) refuses a nested latent itself."""
    b = mods["bridge"]
    pos, neg = _av_conds()
    lat = _av_latent()["samples"]
    with pytest.raises(b.NestedLatentError):
        b.run_in_sampling(ltxav, pos, neg, 1.0, lat, mods["sample"].prepare_noise(lat, 0), torch.tensor([1.0, 0.0]),
                          lambda ctx: None)


# =========================================================================== core context windows on tiny Wan

CW_FRAMES = 7       # latent frames; windows of 3 with overlap 1 (Wan node: 9 and 4 picture frames)


def _context_windows(model):
    """ComfyUI's Wan context windows node (both versions; FreeNoise on where the node has it)."""
    import comfy.context_windows as cw
    import comfy_extras.nodes_context_windows as ncw
    node = ncw.WanContextWindowsManualNode
    params = inspect.signature(node.execute).parameters
    kw = {"context_length": 9, "context_overlap": 4, "context_schedule": cw.ContextSchedules.STATIC_STANDARD,
          "context_stride": 1, "closed_loop": False, "fuse_method": cw.ContextFuseMethods.PYRAMID}
    if "freenoise" in params:
        kw["freenoise"] = True
    return _first(node.execute(model, **kw))


def _freenoise(model, noise, seed):
    """What core FreeNoise does to ``noise`` for this context-windows MODEL (identity where the handler
    has no FreeNoise, e.g. ComfyUI 0.3.64)."""
    import comfy.context_windows as cw
    h = model.model_options["context_handler"]
    if not getattr(h, "freenoise", False):
        return noise.clone()
    return cw.apply_freenoise(noise.clone(), h.dim, h.context_length, h.context_overlap, seed)


def _has_freenoise(model):
    return bool(getattr(model.model_options["context_handler"], "freenoise", False))


def _wan_world():
    pos, neg = wan_conds()
    return pos, neg, {"samples": torch.zeros(1, 16, CW_FRAMES, 4, 4)}


def test_context_windows_run_on_the_tiny_wan(mods, wan):
    """The windows are really used (3 of 7 frames per model call, 4 with 0.33.0's causal fix frame) and
    FreeNoise is where ComfyUI has it."""
    import comfy.patcher_extension as pe
    pos, neg, latent = _wan_world()
    cw_model = _context_windows(wan)
    frames = []
    m = cw_model.clone()

    def count(executor, *args, **kwargs):
        frames.append(int(args[0].shape[2]))
        return executor(*args, **kwargs)

    m.add_wrapper_with_key(pe.WrappersMP.DIFFUSION_MODEL, "test.frames", count)
    _ksampler(mods, m, 2, pos, neg, latent)
    assert frames and max(frames) < CW_FRAMES and 3 in frames   # 0.33.0 adds a causal fix frame to later windows
    print(f"FreeNoise in this ComfyUI's context windows: {_has_freenoise(cw_model)}")


@pytest.mark.parametrize("order", ["patch then windows", "windows then patch"])
def test_dependency_noise_then_freenoise_in_either_order(mods, wan, order):
    """Dependency Noise (KSampler) replaces the full-length noise, then FreeNoise reshuffles it: the
    sampler starts from FreeNoise(dependency noise of the seed), as with the Dependency Noise node."""
    pos, neg, latent = _wan_world()
    seed = 11
    model = (_context_windows(_dep_patch(mods, wan)) if order == "patch then windows"
             else _dep_patch(mods, _context_windows(wan)))
    start, out = ksampler_start_noise(model, seed, pos, neg, latent, steps=STEPS, cfg=CFG)
    dep = mods["zs2"].make_noise("Dependency Noise", latent["samples"].shape, seed, _dep_params(mods))
    assert torch.equal(start, _freenoise(_context_windows(wan), dep, seed))
    noise_node = mods["zs2"].DependencyNoise().get_noise(seed, 0.05, 4, 4, "dependency", 0.9)[0]
    sca = _sca(mods, _context_windows(wan), noise_node, _euler(mods), pos, neg, latent)
    assert torch.allclose(out, sca, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("order", ["patch then windows", "windows then patch"])
def test_smoothinit_then_freenoise_in_either_order(mods, wan, order):
    """SmoothInit (KSampler) optimises the full-length noise (model calls through the windows), then
    FreeNoise reshuffles the result, whichever was applied first; equal to Forward-Inversion Noise on
    the context-windows MODEL with SamplerCustomAdvanced (whose FreeNoise runs once, at sampling)."""
    pos, neg, latent = _wan_world()
    seed = 12
    cw_wan = _context_windows(wan)
    model = (_context_windows(_si_patch(mods, wan)) if order == "patch then windows"
             else _si_patch(mods, cw_wan))
    b = mods["bridge"]
    order_keys = b.sampler_sample_order(model)
    assert order_keys[0] == "training_free_video.smoothinit", order_keys
    start, out = ksampler_start_noise(model, seed, pos, neg, latent, steps=STEPS, cfg=CFG)
    cs = mods["cs"]
    sigmas = _first(cs.BasicScheduler().get_sigmas(cw_wan, "simple", STEPS, 1.0))
    fwd = mods["si"].ForwardInversionNoise().build(cs.Noise_RandomNoise(seed), cw_wan, pos, neg, CFG, 1.0, 50,
                                                   sigmas=sigmas)[0]
    optimised = fwd.generate_noise(latent)
    base = cs.Noise_RandomNoise(seed).generate_noise(latent)
    assert not torch.allclose(optimised, base, atol=1e-3)           # the optimisation did something
    assert torch.allclose(start, _freenoise(cw_wan, optimised, seed), atol=1e-5, rtol=1e-5)
    sca = _sca(mods, cw_wan, fwd, _euler(mods), pos, neg, latent)
    assert torch.allclose(out, sca, atol=1e-5, rtol=1e-5)
    if _has_freenoise(cw_wan):   # FreeNoise really moved frames of the optimised noise
        assert not torch.allclose(start, optimised, atol=1e-4)


@pytest.mark.parametrize("order", ["patch then windows", "windows then patch"])
def test_freeinit_starts_from_freenoise_noise_in_either_order(mods, wan, order):
    """FreeInit (an OUTER_SAMPLE sampler swap) runs below every SAMPLER_SAMPLE wrapper: its initial
    noise is the FreeNoise-shuffled noise, and the patch equals FreeInit Sampler with SamplerCustomAdvanced
    on the context-windows MODEL, in both orders."""
    pos, neg, latent = _wan_world()
    seed = 13
    cw_wan = _context_windows(wan)
    model = (_context_windows(_fi_patch(mods, wan)) if order == "patch then windows"
             else _fi_patch(mods, cw_wan))
    start, out = ksampler_start_noise(model, seed, pos, neg, latent, steps=STEPS, cfg=CFG)
    base = mods["cs"].Noise_RandomNoise(seed).generate_noise(latent)
    assert torch.equal(start, _freenoise(cw_wan, base, seed))
    sca = _sca(mods, cw_wan, mods["cs"].Noise_RandomNoise(seed), _fi_sampler(mods, _euler(mods)), pos, neg, latent)
    assert torch.allclose(out, sca, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("applied", [("long", "si", "cw"), ("cw", "si", "long"), ("si", "cw", "long"),
                                     ("cw", "long", "si")])
def test_wrapper_order_is_chunks_then_smoothinit_then_core_whatever_the_application_order(mods, applied):
    """SAMPLER_SAMPLE order on the MODEL: ZS^2 Long Video, SmoothInit (KSampler), then core context
    windows' wrapper (FreeNoise where it has one), for any order of application."""
    import comfy_extras.nodes_context_windows as ncw
    import comfy.context_windows as cw
    node = ncw.ContextWindowsManualNode
    params = inspect.signature(node.execute).parameters
    kw = {"context_length": 4, "context_overlap": 1, "context_schedule": cw.ContextSchedules.STATIC_STANDARD,
          "context_stride": 1, "closed_loop": False, "fuse_method": cw.ContextFuseMethods.PYRAMID, "dim": 0}
    if "freenoise" in params:
        kw["freenoise"] = True
    apply = {"long": lambda m: mods["long"].ZS2LongVideo().patch(m, 4)[0],
             "si": lambda m: _si_patch(mods, m),
             "cw": lambda m: _first(node.execute(m, **kw))}
    m = tiny_sd15()
    for k in applied:
        m = apply[k](m)
    keys = mods["bridge"].sampler_sample_order(m)
    assert keys[:2] == [mods["long"].WRAPPER_KEY, "training_free_video.smoothinit"], keys
    if "freenoise" in params:
        assert keys[2:] == ["ContextWindows_sampler_sample"], keys
    else:
        assert keys[2:] == [], keys


# =========================================================================== ModelPatcherDynamic

def test_model_patcher_dynamic_on_the_cpu(mods):
    """ModelPatcherDynamic (comfy-aimdo, ComfyUI 0.33.0's default model class on NVIDIA GPUs) cannot be
    built for a CPU load device: its ``__new__`` returns a plain ModelPatcher. Recorded here so a
    ComfyUI that changes this fails the test (then exercise the pack's loops with it)."""
    import comfy.model_patcher as mp
    cls = getattr(mp, "ModelPatcherDynamic", None)
    if cls is None:
        pytest.skip("this ComfyUI has no ModelPatcherDynamic (0.3.64)")
    plain = tiny_sd15()
    made = cls(plain.model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    assert type(made) is mp.ModelPatcher and not made.is_dynamic()
    print("ModelPatcherDynamic(load_device=cpu) -> ModelPatcher: not exercisable on this CPU-only machine")


def test_own_loops_read_the_model_patcher_from_the_guider_inside_sampling(mods):
    """The pack's own loops (NOISE nodes, NI-VSDS) take the model patcher from the guider inside
    sampling, i.e. after CFGGuider.inner_set_conds (which may swap a dynamic patcher in 0.33.0)."""
    b = mods["bridge"]
    sd = tiny_sd15()
    pos, neg = sd15_conds()
    lat = torch.zeros(1, 4, 8, 8)
    got = {}

    def fn(ctx):
        got["mp"] = ctx.model_patcher
        got["guider_mp"] = ctx.guider.model_patcher
        got["noise"] = ctx.noise.detach().cpu().clone()
        return None

    noise = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    b.run_in_sampling(sd, pos, neg, 1.0, lat, noise, torch.tensor([14.6, 0.0]), fn)
    assert got["mp"] is got["guider_mp"]
    assert torch.equal(got["noise"], noise)
