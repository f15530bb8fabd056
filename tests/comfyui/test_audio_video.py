"""Audio+video (nested) latents through the pack's nodes (issue 19 item 1), on tiny random-weight MiniMax H3
and LTX-2 (LTXAV) models of ComfyUI's real classes (``tiny_av``). ComfyUIs without these families (0.3.64)
skip with the reason (feature detection: ``tiny_av.av_missing_reason``)."""
import pytest
import torch

import comfy_harness as H
import tiny_av

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


@pytest.fixture(scope="module")
def av(pack):
    reason = tiny_av.av_missing_reason()
    if reason:
        pytest.skip(reason)
    yield
    tiny_av.release_cached_models()


@pytest.fixture(scope="module")
def cs(av):
    import comfy_extras.nodes_custom_sampler as cs
    return cs


def _r(out):
    return out.result if hasattr(out, "result") else out


def _stock(cs, model, conds, latent, seed=0, steps=4, cfg=3.0):
    pos, neg = conds
    guider = _r(cs.CFGGuider.execute(model, pos, neg, cfg))[0]
    sampler = _r(cs.KSamplerSelect.execute("euler"))[0]
    sigmas = _r(cs.BasicScheduler.execute(model, "simple", steps, 1.0))[0]
    return H.sample_custom_advanced(_r(cs.RandomNoise.execute(seed))[0], guider, sampler, sigmas, latent)


@pytest.mark.parametrize("family", ["minimax_h3", "ltxav"])
def test_tiny_av_model_samples_stock_sampler_custom_advanced(cs, family):
    """The tiny models are real: the stock SamplerCustomAdvanced samples their nested latent, both streams
    come back in their own shapes, finite, and depend on the seed."""
    if family == "minimax_h3":
        model, conds, latent = tiny_av.tiny_minimax_h3(), tiny_av.minimax_conds(), tiny_av.minimax_latent()
        import comfy.model_base
        assert model.model.model_type == comfy.model_base.ModelType.FLOW_AV
        assert model.get_model_object("model_sampling").audio_scale == pytest.approx(4.0)
    else:
        model, conds, latent = tiny_av.tiny_ltxav(), tiny_av.ltxav_conds(), tiny_av.ltxav_latent()
    shapes = [t.shape for t in latent["samples"].unbind()]
    a = _stock(cs, model, conds, latent, seed=0)["samples"].unbind()
    b = _stock(cs, model, conds, latent, seed=1)["samples"].unbind()
    assert [t.shape for t in a] == shapes
    for x, y in zip(a, b):
        assert torch.isfinite(x).all() and x.std() > 0.1
        assert not torch.allclose(x, y)


def test_tiny_ltx_audio_vae_decodes_a_latent(av):
    """The tiny LTX-2 audio VAE is the real one: LTXVAudioVAEDecode turns the audio stream into a stereo waveform."""
    import comfy_extras.nodes_lt_audio as la
    latent = tiny_av.ltxav_latent()
    audio = _r(la.LTXVAudioVAEDecode.execute({"samples": torch.randn_like(latent["samples"].unbind()[1])},
                                             tiny_av.tiny_ltx_audio_vae()))[0]
    assert audio["waveform"].shape[:2] == (1, 2) and audio["sample_rate"] == 16000
