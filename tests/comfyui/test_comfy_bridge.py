"""The pack's wrappers and its ComfyUI bridge across ComfyUI versions (issue 7 part 4), in the real ComfyUI
with tiny random-weight models:

* every wrapper and patch the pack registers accepts arguments it does not know and passes them on
  (ComfyUI adds keywords across versions);
* the bridge detects a model that attends across the batch (Temporal Momentum Attention on a UNet or a
  DiT image model, an AnimateDiff-Evolved motion model), with the pack's patches on top too.

(SmoothInit's follow-the-sampler CFG and its never-stack-along-a-cross-batch-model tests, which were in
this file as test_follow_the_sampler.py: test_smoothinit_nodes.py.)
"""
import pytest
import torch

from comfy_harness import empty_latent, sd15_conds, smoothinit_patch


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
        wtype, ours = pe.WrappersMP.SAMPLER_SAMPLE, lambda m: smoothinit_patch(mods["si"], m)
    else:
        wtype = pe.WrappersMP.OUTER_SAMPLE
        ours = lambda m: mods["zs2"].DependencyNoiseModelPatch().patch(m, 0.01, 2, 2, "dependency", 0.9)[0]  # noqa: E731
    latent = empty_latent(batch=3)
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
    assert bridge.model_attends_across_batch(smoothinit_patch(mods["si"], tma))  # patches on top keep it
    assert bridge.model_attends_across_batch(sd15, tma.model_options)  # sampling-time options count too
    assert not bridge.model_attends_across_batch(smoothinit_patch(mods["si"], sd15))


def test_bridge_detects_tma_on_dit_image_models(mods):
    """On DiT image models TMA is an attention override, not an attn1 patch: still detected."""
    from comfy_harness import tiny_flux
    bridge = mods["bridge"]
    flux = tiny_flux()
    tma = mods["nodes"].NODE_CLASS_MAPPINGS["TemporalMomentumAttention"]().patch(flux, 0.9)[0]
    assert not bridge.model_attends_across_batch(flux)
    assert bridge.model_attends_across_batch(tma)
    assert bridge.model_attends_across_batch(flux, tma.model_options)


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
    assert bridge.model_attends_across_batch(smoothinit_patch(mods["si"], with_mm))  # our patch on top keeps it
    assert not bridge.model_attends_across_batch(without)
