"""The pack follows the sampler and survives ComfyUI versions (issue 7 part 4), in the real ComfyUI
with tiny random-weight models:

* SmoothInit (KSampler): the DDIM step's CFG (w1) is the sampler's own CFG by default (cfg 0),
  an explicit value is used as given;
* every wrapper and patch the pack registers accepts arguments it does not know and passes them on
  (ComfyUI adds keywords across versions);
* SmoothInit never stacks perturbations along the batch of a model that attends across the batch
  (Temporal Momentum Attention, AnimateDiff-Evolved), whatever the latent's batch size.
"""
import re

import pytest
import torch

from comfy_harness import count_model_calls, ksampler_start_noise, sample_custom_advanced, sd15_conds

FOLLOW = 0.0


def _latent(batch=1, size=8):
    return {"samples": torch.zeros(batch, 4, size, size)}


def _patch(mods, model, cfg=FOLLOW, K=2, chunk=0, method="SmoothInit (custom)"):
    return mods["si"].SmoothInitModelPatch().patch(model, method, cfg, 1.0, 50, K, 0.1, "uniform", 0.05, 0.05,
                                                   chunk)[0]


def _noise_node(mods, model, seed, cfg, K=2, chunk=0):
    pos, neg = sd15_conds()
    return mods["si"].SmoothInitNoise().build(mods["cs"].Noise_RandomNoise(seed), model, pos, neg, cfg, 1.0, 50,
                                              "custom", K, 0.1, "uniform", chunk)[0]


def _ksampler_noise(mods, model, seed, latent, cfg, steps=1):
    """KSampler's (possibly replaced) starting unit noise, captured by an innermost wrapper."""
    pos, neg = sd15_conds()
    return ksampler_start_noise(model, seed, pos, neg, latent, steps, cfg)


# --------------------------------------------------------------------------- w1 follows the sampler

def test_default_patch_uses_the_ksamplers_cfg(mods, sd15):
    """KSampler at CFG 5 with the default patch (cfg 0) starts from the NOISE node's noise at cfg 5,
    not at the paper's 7.5; an explicit cfg is used as given."""
    latent = _latent()
    with torch.inference_mode():
        followed, _ = _ksampler_noise(mods, _patch(mods, sd15), 3, latent, cfg=5.0)
        explicit, _ = _ksampler_noise(mods, _patch(mods, sd15, cfg=7.5), 3, latent, cfg=5.0)
        at5 = _noise_node(mods, sd15, 3, 5.0).generate_noise(latent)
        at75 = _noise_node(mods, sd15, 3, 7.5).generate_noise(latent)
    assert float((at5 - at75).abs().max()) > 1e-3  # the CFG of the DDIM step matters
    torch.testing.assert_close(followed, at5, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(explicit, at75, rtol=1e-5, atol=1e-5)


def test_default_patch_under_a_guider_without_cfg_stops_with_an_error(mods, sd15):
    """BasicGuider applies no CFG scale: following it would give w1 = 1 = inversion_cfg, a Forward-
    Inversion that injects nothing (issue 14 part 2), so the default patch stops with an error naming the
    node and the cfg input; an explicit cfg 1 is still run as given."""
    cs = mods["cs"]
    pos, _ = sd15_conds()
    latent = _latent()

    def run(model):
        guider = cs.BasicGuider().get_guider(model, pos)[0]
        sigmas = cs.BasicScheduler().get_sigmas(model, "simple", 1, 1.0)[0]
        sampler = cs.KSamplerSelect().get_sampler("euler")[0]
        return sample_custom_advanced(cs.Noise_RandomNoise(0), guider, sampler, sigmas, latent)["samples"]

    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"SmoothInit \(KSampler\): cfg is 0 \(follow the sampler\) but the "
                                             r"sampler.s guider \(\w+\) has no negative prompt"):
            run(_patch(mods, sd15))
        assert torch.isfinite(run(_patch(mods, sd15, cfg=1.0))).all()


def _own_rule_guider(model, which):
    """A guider with a negative prompt and its own predict_noise (ComfyUI's own classes)."""
    pos, neg = sd15_conds()
    middle, _ = sd15_conds(seed=1)
    if which == "dual":
        import comfy_extras.nodes_custom_sampler as cs
        guider = cs.Guider_DualCFG(model)
        guider.set_conds(pos, middle, neg)
        guider.set_cfg(8.0, 6.0)
    else:
        import comfy_extras.nodes_perpneg as pn
        guider = pn.Guider_PerpNeg(model)
        guider.set_conds(pos, neg, middle)
        guider.set_cfg(8.0, 1.5)
    return guider


@pytest.mark.parametrize("which,rule", [("dual", r"cfg_conds 8, cfg_cond2_negative 6"),
                                        ("perpneg", r"cfg 8, neg_scale 1\.5")])
def test_guider_with_its_own_rule_gets_a_true_message(mods, sd15, which, rule):
    """DualCFGGuider and PerpNegGuider HAVE a negative prompt (issue 20 item 7): the follow-the-sampler
    error says that the guider combines its conds with its own rule (and gives that rule's scales),
    not that it "applies no CFG (no negative prompt)"; so does the explicit-cfg refusal."""
    cs = mods["cs"]
    latent = _latent()

    def run(model):
        sigmas = cs.BasicScheduler().get_sigmas(model, "simple", 1, 1.0)[0]
        sampler = cs.KSamplerSelect().get_sampler("euler")[0]
        return sample_custom_advanced(cs.Noise_RandomNoise(0), _own_rule_guider(model, which), sampler, sigmas,
                                      latent)["samples"]

    with torch.inference_mode():
        with pytest.raises(ValueError) as follow:
            run(_patch(mods, sd15))
        with pytest.raises(ValueError) as explicit:
            run(_patch(mods, sd15, cfg=7.5))
        assert torch.isfinite(run(_patch(mods, sd15, cfg=1.0))).all()  # cfg 1 = inversion_cfg 1: runs as given
    for e in (follow, explicit):
        msg = str(e.value)
        assert "no negative" not in msg and "applies no CFG" not in msg and "does not apply a CFG" not in msg
        assert "has a negative prompt" in msg and "own rule" in msg
        assert re.search(rule, msg), msg
        assert "KSampler / CFGGuider" in msg
    assert str(follow.value).startswith("SmoothInit (KSampler): cfg is 0 (follow the sampler)")
    assert "w1 = 1 = inversion_cfg" in str(follow.value)


def test_patch_cfg_widget_defaults_to_following_the_sampler(mods):
    spec = mods["si"].SmoothInitModelPatch.INPUT_TYPES()["required"]["cfg"][1]
    assert spec["default"] == FOLLOW and "follow" in spec["tooltip"]
    noise_spec = mods["si"].SmoothInitNoise.INPUT_TYPES()["required"]["cfg"][1]
    assert noise_spec["default"] == 7.5  # no sampler to follow: explicit


# --------------------------------------------------------------------------- wrappers pass on what they do not use

FUTURE_KW = "tfv_future_keyword"


def _with_future_arguments(mods, model, wrapper_type, ours):
    """``ours(model)`` wrapped between an outermost test wrapper that adds an unknown positional
    argument and keyword (as a newer ComfyUI might) and an innermost one that checks both arrived
    and removes them before ComfyUI's own function runs."""
    seen = []
    m = model.clone()

    def outer(executor, *args, **kwargs):
        return executor(*args, "future positional", **{FUTURE_KW: 42}, **kwargs)

    def inner(executor, *args, **kwargs):
        seen.append((args[-1], kwargs.pop(FUTURE_KW, None)))
        return executor(*args[:-1], **kwargs)

    m.add_wrapper_with_key(wrapper_type, "test.outer", outer)
    m = ours(m)
    m.add_wrapper_with_key(wrapper_type, "test.inner", inner)
    return m, seen


@pytest.mark.parametrize("which", ["smoothinit", "dependency_noise"])
def test_wrappers_pass_on_arguments_they_do_not_use(mods, sd15, which):
    pe = mods["pe"]
    if which == "smoothinit":
        wtype, ours = pe.WrappersMP.SAMPLER_SAMPLE, lambda m: _patch(mods, m)
    else:
        wtype = pe.WrappersMP.OUTER_SAMPLE
        ours = lambda m: mods["zs2"].DependencyNoiseModelPatch().patch(m, 0.01, 2, 2, "dependency", 0.9)[0]  # noqa: E731
    latent = _latent(batch=3)
    pos, neg = sd15_conds()
    with torch.inference_mode():
        m, seen = _with_future_arguments(mods, sd15, wtype, ours)
        got = mods["nodes"].KSampler().sample(m, 4, 1, 5.0, "euler", "simple", pos, neg, latent)[0]["samples"]
        ref = mods["nodes"].KSampler().sample(ours(sd15), 4, 1, 5.0, "euler", "simple", pos, neg, latent)[0]["samples"]
        plain = mods["nodes"].KSampler().sample(sd15, 4, 1, 5.0, "euler", "simple", pos, neg, latent)[0]["samples"]
    assert seen == [("future positional", 42)]
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)  # our wrapper still did its work (and read the seed)
    assert float((ref - plain).abs().max()) > 1e-3


def test_tma_attn1_patch_accepts_arguments_it_does_not_use(mods, sd15):
    tma = mods["nodes"].NODE_CLASS_MAPPINGS["TemporalMomentumAttention"]().patch(sd15, 0.9)[0]
    patch = tma.model_options["transformer_options"]["patches"]["attn1_patch"][-1]
    n = torch.randn(4, 6, 8, generator=torch.Generator().manual_seed(0))
    opts = {"cond_or_uncond": [0, 1]}
    ref = patch(n, n, n, opts)
    got = patch(n, n, n, opts, "future positional", **{FUTURE_KW: 42})
    for a, b in zip(ref, got):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.equal(ref[1], n)  # the patch is active


# --------------------------------------------------------------------------- never stack along a cross-batch model

def test_bridge_detects_models_that_attend_across_the_batch(mods, sd15):
    bridge = mods["bridge"]
    tma = mods["nodes"].NODE_CLASS_MAPPINGS["TemporalMomentumAttention"]().patch(sd15, 0.9)[0]
    assert not bridge.model_attends_across_batch(sd15)
    assert bridge.model_attends_across_batch(tma)
    assert bridge.model_attends_across_batch(_patch(mods, tma))  # patches on top keep it
    assert bridge.model_attends_across_batch(sd15, tma.model_options)  # sampling-time options count too
    assert not bridge.model_attends_across_batch(_patch(mods, sd15))


def test_bridge_detects_tma_on_dit_image_models(mods):
    """On DiT image models TMA is an attention override, not an attn1 patch: still detected."""
    from comfy_harness import tiny_flux
    bridge = mods["bridge"]
    flux = tiny_flux()
    tma = mods["nodes"].NODE_CLASS_MAPPINGS["TemporalMomentumAttention"]().patch(flux, 0.9)[0]
    assert not bridge.model_attends_across_batch(flux)
    assert bridge.model_attends_across_batch(tma)
    assert bridge.model_attends_across_batch(flux, tma.model_options)


@pytest.mark.parametrize("form", ["noise_node", "ksampler_patch"])
def test_tma_batch_1_explicit_chunk_does_not_mix_perturbations(mods, sd15, form):
    """Batch 1 (one frame) with TMA and chunk_size 4: four perturbations stacked along the batch
    would be averaged by TMA as if they were frames; the result must equal one perturbation per call."""
    tma = mods["nodes"].NODE_CLASS_MAPPINGS["TemporalMomentumAttention"]().patch(sd15, 0.9)[0]
    latent = _latent(batch=1)
    counts = []

    def counted(model):
        return count_model_calls(model, counts)

    with torch.inference_mode():
        if form == "noise_node":
            one = _noise_node(mods, tma, 9, 7.5, K=4, chunk=1).generate_noise(latent)
            four = _noise_node(mods, counted(tma), 9, 7.5, K=4, chunk=4).generate_noise(latent)
        else:
            one, _ = _ksampler_noise(mods, _patch(mods, tma, K=4, chunk=1), 9, latent, cfg=7.5)
            four, _ = _ksampler_noise(mods, counted(_patch(mods, tma, K=4, chunk=4)), 9, latent, cfg=7.5)
    assert max(counts) <= 2  # one perturbation x (cond + uncond) per call
    torch.testing.assert_close(one, four, rtol=1e-5, atol=1e-5)


def test_auto_chunk_rule(mods):
    auto_chunk = mods["si"].auto_chunk
    assert auto_chunk(4, (1, 4, 8, 8), "cpu") == 4
    assert auto_chunk(4, (1, 4, 8, 8), "cpu", attends_across_batch=True) == 1
    assert auto_chunk(0, (1, 4, 8, 8), "cuda", attends_across_batch=True) == 1
    assert auto_chunk(4, (1, 16, 3, 8, 8), "cuda", attends_across_batch=True) == 1


def _load_ade():
    """AnimateDiff-Evolved's module, loaded from the tested ComfyUI's custom_nodes/ (a subfolder named
    *animatediff-evolved*, or custom_nodes itself when ADE's files sit there); None when absent."""
    import asyncio
    import sys

    import nodes
    from comfy_harness import comfyui_path
    custom = comfyui_path() / "custom_nodes"
    cands = [p for p in sorted(custom.iterdir()) if "animatediff-evolved" in p.name.lower()] if custom.is_dir() else []
    if (custom / "animatediff" / "model_injection.py").is_file():
        cands.append(custom)
    for folder in cands:
        if not (folder / "__init__.py").is_file():
            continue
        name = str(folder).replace(".", "_x_")
        if name not in sys.modules and not asyncio.run(nodes.load_custom_node(str(folder))):
            continue
        if "ADE_UseEvolvedSampling" in nodes.NODE_CLASS_MAPPINGS:
            return sys.modules[name]
    return None


def test_bridge_detects_an_animatediff_evolved_motion_model(mods, sd15):
    """The MODEL that ADE's own Use Evolved Sampling node returns with a motion model attached
    (ADE's AnimateDiffModel class, mid block only, weights never run) attends across the batch;
    the same node without a motion model does not."""
    import importlib
    ade = _load_ade()
    if ade is None:
        pytest.skip("ComfyUI-AnimateDiff-Evolved is not in the tested ComfyUI's custom_nodes/")
    mm = importlib.import_module(f"{ade.__name__}.animatediff.motion_module_ad")
    inj = importlib.import_module(f"{ade.__name__}.animatediff.model_injection")
    nodes = mods["nodes"].NODE_CLASS_MAPPINGS
    block = "mid_block.motion_modules.0.temporal_transformer.transformer_blocks.0.attention_blocks"
    sd = {f"{block}.{i}.pos_encoder.pe": torch.zeros(1, 32, 1280) for i in range(2)}
    info = mm.AnimateDiffInfo(sd_type=mm.ModelTypeSD.SD1_5, mm_format=mm.AnimateDiffFormat.ANIMATEDIFF,
                              mm_version=mm.AnimateDiffVersion.V2, mm_name="tfv_test_mid_block_only")
    motion = inj.create_MotionModelPatcher(mm.AnimateDiffModel(mm_state_dict=sd, mm_info=info),
                                           load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    m_models = nodes["ADE_ApplyAnimateDiffModelSimple"]().apply_motion_model(motion)[0]
    with_mm = nodes["ADE_UseEvolvedSampling"]().use_evolved_sampling(sd15, "autoselect", m_models=m_models)[0]
    without = nodes["ADE_UseEvolvedSampling"]().use_evolved_sampling(sd15, "autoselect")[0]
    bridge = mods["bridge"]
    assert bridge.model_attends_across_batch(with_mm)
    assert bridge.model_attends_across_batch(_patch(mods, with_mm))  # our patch on top keeps it
    assert not bridge.model_attends_across_batch(without)
