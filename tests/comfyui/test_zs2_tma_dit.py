"""Temporal Momentum Attention on DiT image models in the real ComfyUI (tiny random-weight Flux, SD3
and Qwen-Image built with ComfyUI's own classes): joint text-image attention averages the frames' own image
tokens only (issue 14, edge 8), and a check at sampling time warns when another node placed after
TMA replaced its attention override (edge 6)."""
import logging

import pytest
import torch

from comfy_harness import flux_conds, qwen_conds, sd3_conds, tiny_flux, tiny_qwen_image, tiny_sd3
from test_zs2_tma import (DIT_FRAMES, DIT_HW, _dit_x, capture_attention, dit_denoise, reference_image_span,
                            ReferenceTMA)


QWEN_TEXT_TOKENS = 7  # comfy_harness.qwen_conds default


@pytest.fixture(scope="module", params=["flux", "sd3", "qwen"])
def dit(request, pack):
    if request.param == "flux":
        return "flux", tiny_flux(seed=0), flux_conds(seed=0)
    if request.param == "qwen":
        return "qwen", tiny_qwen_image(seed=0), qwen_conds(seed=0)
    return "sd3", tiny_sd3(seed=0), sd3_conds(seed=0)


def image_span(name, n):
    """The frame's image tokens in a self/joint call of ``n`` tokens (8x8 latent: 16 image tokens):
    Flux [txt 6, img], SD3 [context, img] (and x-only), Qwen-Image [txt 7, img]."""
    if name == "qwen":
        return QWEN_TEXT_TOKENS, QWEN_TEXT_TOKENS + (DIT_HW // 2) ** 2
    return reference_image_span(name, n)


def latent(name, seed):
    x = _dit_x(seed=seed)
    return x.unsqueeze(2) if name == "qwen" else x                       # Qwen-Image: [F, C, 1, H, W]


def tma(zs2, model, mu, text_tokens="keep"):
    args = () if text_tokens == "keep" else ("", text_tokens)            # keep: the default
    with torch.inference_mode():
        return zs2.TemporalMomentumAttention().patch(model, mu, *args)[0]


# --------------------------------------------------------------------------- edge 8: image tokens only

def test_joint_attention_text_kv_untouched_image_kv_follow_eq2(zs2, bridge, dit):
    """Every self/joint attention call: the K, V that reach the attention kernel (captured after TMA)
    keep the text tokens' K, V exactly as the model computed them (captured before TMA), and the
    frame's image tokens carry Eq. 2 (explicit recursion per CFG chunk) of the image tokens' K, V.
    The text K/V do differ per frame in later blocks (so averaging them would change them)."""
    name, model, conds = dit
    before, after = [], []
    inner = bridge.add_attention_override(model, capture_attention(after))      # called by TMA with K', V'
    patched = bridge.add_attention_override(tma(zs2, inner, 0.9), capture_attention(before))
    dit_denoise(bridge, patched, conds, latent(name, 11))
    assert len(before) == len(after) == {"flux": 2, "sd3": 3, "qwen": 2}[name]
    ref = ReferenceTMA(0.9)
    text_differs = 0
    for b, a in zip(before, after):
        q, k, v = b["args"][:3]
        k2, v2 = a["args"][1:3]
        ax = 2 if b["kwargs"].get("skip_reshape") else 1
        n = q.shape[ax]
        start, stop = image_span(name, n)
        chunks = len(b["kwargs"]["transformer_options"]["cond_or_uncond"])
        for t, t2 in ((k, k2), (v, v2)):
            assert torch.equal(t.narrow(ax, 0, start), t2.narrow(ax, 0, start))          # text before
            assert torch.equal(t.narrow(ax, stop, n - stop), t2.narrow(ax, stop, n - stop))   # text after
            img = ref.momentum(t.narrow(ax, start, stop - start), chunks)
            assert torch.allclose(t2.narrow(ax, start, stop - start), img, atol=1e-5, rtol=1e-5)
            assert (img - t.narrow(ax, start, stop - start)).abs().max() > 1e-3
        txt = torch.cat([k.narrow(ax, 0, start), k.narrow(ax, stop, n - stop)], dim=ax)
        if txt.numel() and (txt[1:DIT_FRAMES] - txt[:1]).abs().max() > 1e-4:
            text_differs += 1
    assert text_differs >= 1


def test_text_tokens_average_is_the_previous_behaviour(zs2, bridge, dit):
    """text_tokens 'average' averages every token of joint attention (the pack before this change),
    and differs from the default 'keep'."""
    name, model, conds = dit
    x = latent(name, 12)
    ref = ReferenceTMA(0.9)
    expected = dit_denoise(bridge, bridge.add_attention_override(model, lambda prev: ref), conds, x)
    avg = dit_denoise(bridge, tma(zs2, model, 0.9, "average"), conds, x)
    assert torch.allclose(avg, expected, atol=1e-5, rtol=1e-5)
    assert (avg - dit_denoise(bridge, tma(zs2, model, 0.9), conds, x)).abs().max() > 1e-4


def test_text_tokens_input_and_clear_errors(zs2, bridge):
    """An optional COMBO input (default keep); a bad value is a clear error; a call whose token count
    does not fit the model's layout stops with an error that names the fix."""
    opt = zs2.TemporalMomentumAttention.INPUT_TYPES()["optional"]["text_tokens"]
    assert list(opt[0]) == ["keep", "average"] and opt[1]["default"] == "keep"
    model = tiny_flux(seed=0)
    with pytest.raises(ValueError, match="Temporal Momentum Attention: text_tokens must be one of"):
        zs2.TemporalMomentumAttention().patch(model, 0.9, "", "text")
    span = bridge.dit_image_token_span(model)(torch.zeros(2, 16, 8, 8), torch.zeros(2, 6, 12))
    assert span(22) == (6, 22) and span(16) == (0, 16)
    with pytest.raises(ValueError, match="text_tokens to 'average'"):
        span(20)


def test_flux_kontext_reference_tokens_are_left_alone(zs2, bridge):
    """Flux with a reference latent (Kontext: tokens [txt, img, ref]): the reference image's tokens,
    like the text, are not the frame's own and pass unchanged; the frame's image tokens are averaged."""
    model, (pos, neg) = tiny_flux(seed=0), flux_conds(seed=0)
    ref_latent = torch.randn(1, 16, 4, 4, generator=torch.Generator().manual_seed(3))
    pos = [[pos[0][0], dict(pos[0][1], reference_latents=[ref_latent])]]
    neg = [[neg[0][0], dict(neg[0][1], reference_latents=[ref_latent])]]
    before, after = [], []
    inner = bridge.add_attention_override(model, capture_attention(after))
    patched = bridge.add_attention_override(tma(zs2, inner, 0.9), capture_attention(before))
    dit_denoise(bridge, patched, (pos, neg), _dit_x(seed=13))
    assert len(before) == len(after) == 2
    for b, a in zip(before, after):                                       # double block, single block
        k, k2 = b["args"][1], a["args"][1]
        assert k.shape[2] == 6 + 16 + 4                                   # txt, img, reference tokens
        assert torch.equal(k[:, :, :6], k2[:, :, :6]) and torch.equal(k[:, :, 22:], k2[:, :, 22:])
        assert (k[:, :, 6:22] - k2[:, :, 6:22]).abs().max() > 1e-3
    k = before[1]["args"][1]
    assert (k[1:DIT_FRAMES, :, 22:] - k[:1, :, 22:]).abs().max() > 1e-4   # reference K differs per frame there


# --------------------------------------------------------------------------- edge 6: override replaced

def sage_like(func, *args, **kwargs):
    """Another pack's attention override that does not chain: it runs its own kernel (here ComfyUI's
    PyTorch attention) and ignores both ``func`` and any previous override."""
    from comfy.ldm.modules.attention import attention_pytorch
    return attention_pytorch(*args, **kwargs)


def set_override_without_chaining(model):
    m = model.clone()
    m.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = sage_like
    return m


def _sample(model, pos, steps=2):
    import comfy_extras.nodes_custom_sampler as cs
    from comfy_harness import sample_custom_advanced
    lat = {"samples": torch.zeros(DIT_FRAMES, 16, DIT_HW, DIT_HW)}
    with torch.inference_mode():
        noise = cs.RandomNoise().get_noise(5)[0]
        guider = cs.BasicGuider().get_guider(model, pos)[0]
        sigmas = cs.BasicScheduler().get_sigmas(model, "simple", steps, 1.0)[0]
        sampler = cs.KSamplerSelect().get_sampler("euler")[0]
        return sample_custom_advanced(noise, guider, sampler, sigmas, lat)["samples"]


def _tma_warnings(caplog):
    return [r for r in caplog.records if r.levelno == logging.WARNING and "Temporal Momentum Attention" in r.getMessage()
            and "OFF" in r.getMessage()]


def test_warns_when_a_later_attention_patch_replaces_tma(zs2, bridge, caplog):
    """Tiny Flux: TMA, then another pack's non-chaining override in the same slot. TMA is really off
    (the samples equal the model without TMA), and sampling logs one warning per run (ComfyUI prints
    logging warnings to its console) naming the node and the fix; the other order (the other patch
    first, TMA after it) chains, keeps TMA on and does not warn."""
    model, (pos, _) = tiny_flux(seed=0), flux_conds(seed=0)
    replaced = set_override_without_chaining(tma(zs2, model, 0.98))
    caplog.set_level(logging.WARNING)
    out = _sample(replaced, pos)
    warnings = _tma_warnings(caplog)
    assert len(warnings) == 1                                             # once per run, not per step
    msg = warnings[0].getMessage()
    assert "apply Temporal Momentum Attention after the other attention patch" in msg and "sage_like" in msg
    assert torch.equal(out, _sample(set_override_without_chaining(model), pos))      # TMA was indeed off
    assert len(_tma_warnings(caplog)) == 1                                # the plain model: no TMA, no warning
    _sample(replaced, pos)
    assert len(_tma_warnings(caplog)) == 2                                # and again in the next run
    caplog.clear()
    chained = tma(zs2, set_override_without_chaining(model), 0.98)
    on = _sample(chained, pos)
    assert not _tma_warnings(caplog)
    assert (on - out).abs().max() > 1e-3


def test_no_warning_when_another_override_chains_tma(zs2, bridge, caplog):
    """An override set after TMA that calls the previous one (as the pack's own bridge does) keeps TMA
    running: no warning, same samples as TMA alone."""
    model, (pos, _) = tiny_flux(seed=0), flux_conds(seed=0)
    calls = []
    patched = tma(zs2, model, 0.98)
    chained = bridge.add_attention_override(patched, capture_attention(calls))
    caplog.set_level(logging.WARNING)
    assert torch.equal(_sample(chained, pos), _sample(patched, pos))
    assert calls and not _tma_warnings(caplog)


def test_no_warning_when_a_cache_skips_the_blocks_after_tma_ran(zs2, bridge, caplog):
    """A step cache (TeaCache-style: later steps reuse the network output, so no attention runs)
    after TMA's override ran in the run's first model call is not a replacement: no warning."""
    import comfy.patcher_extension
    model, (pos, _) = tiny_flux(seed=0), flux_conds(seed=0)
    m = tma(zs2, model, 0.98).clone()
    cache, calls = {}, []

    def cached(executor, *args, **kwargs):
        calls.append(1)
        if "out" not in cache:
            cache["out"] = executor(*args, **kwargs)
        return cache["out"]

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.cache", cached)
    caplog.set_level(logging.WARNING)
    _sample(m, pos, steps=3)
    assert len(calls) == 3 and not _tma_warnings(caplog)
