"""Image-to-video graphs through FreeInit (issue 19 item 2), on tiny random-weight models of ComfyUI's real classes.

Two kinds of i2v:
* the given frames sit in the latent under a noise mask (``Wan22ImageToVideoLatent`` with a start image,
  ``LTXVImgToVideoInplace``, ``SetLatentNoiseMask``): FreeInit keeps the given frames' initial noise in every
  pass, so the output's given frame is the image's -- the stock graph's;
* the image rides in the conditioning (MiniMax H3 keyframes ``minimax_keyframes``, ``WanImageToVideo``'s concat
  latent): FreeInit's passes are samplings of the same guider, so every model call of every pass sees it.
NFE is stated per test (calls per network evaluation, cond and uncond counted separately).
"""
import pytest
import torch

import comfy_harness as H
import tiny_av
from test_audio_video import Capture, _freeinit_sampler, _r, _sca, _streams, av, count_calls, euler  # noqa: F401 (av: fixture)

pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


@pytest.fixture(scope="module")
def cs(pack):
    import comfy_extras.nodes_custom_sampler as cs
    return cs


def _euler(cs):
    return euler()


def _image(seed=0, h=64, w=64):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, h, w, 3, generator=g)


def _assert_given_frames_kept(cap, stock, out, given, shapes=None):
    """Pass 1 starts the given frames (mask 0) from the initial noise, the others not; the output's given
    frames equal the stock graph's."""
    n0, n1 = cap.runs[0]["noise"], cap.runs[1]["noise"]
    if shapes is not None:
        n0, n1 = _streams(n0, shapes)[0], _streams(n1, shapes)[0]
    assert torch.equal(n1[:, :, given], n0[:, :, given])
    assert not torch.allclose(n1[:, :, given.stop:], n0[:, :, given.stop:])
    assert torch.allclose(out[:, :, given], stock[:, :, given], atol=1e-5)
    assert not torch.allclose(out[:, :, given.stop:], stock[:, :, given.stop:], atol=1e-3)


def test_freeinit_wan22_5b_start_image_keeps_the_given_frame(cs):
    """Wan 2.2 5B ti2v (Wan22ImageToVideoLatent with a start image, the real Wan 2.2 VAE, tiny DiT): FreeInit
    Sampler 2 iterations, euler 4 steps CFG 3 (NFE 2 x 4 x 2 = 16; stock 8): latent frame 0 of the output
    equals the stock graph's (the image's encoding), pass 1 keeps frame 0's initial noise."""
    import comfy_extras.nodes_wan as nw
    model = H.tiny_wan22_5b()
    conds = H.wan_conds()
    latent = _r(nw.Wan22ImageToVideoLatent.execute(H.wan22_vae(), 32, 32, 9, 1, _image(1, 32, 32)))[0]
    assert float(latent["noise_mask"][:, :, 0].max()) == 0.0
    stock = _sca(cs, model, conds, latent, _euler(cs))["samples"]
    counts, cap = [], Capture()
    out = _sca(cs, count_calls(model, counts), conds, latent, _freeinit_sampler(_pack(), cap))["samples"]
    assert sum(counts) == 16
    _assert_given_frames_kept(cap, stock, out, slice(0, 1))
    assert torch.allclose(out[:, :, 0], latent["samples"][:, :, 0], atol=1e-5)


def test_freeinit_set_latent_noise_mask_on_wan(cs):
    """Set Latent Noise Mask on a Wan 2.1 latent (frames 0-1 given, 2-3 generated; tiny Wan 2.1 t2v):
    FreeInit Sampler, 2 iterations (NFE 16): frames 0-1 equal the stock graph's, start noise kept there."""
    import nodes
    model = H.tiny_wan()
    g = torch.Generator().manual_seed(5)
    latent = {"samples": torch.randn(1, 16, 4, 4, 4, generator=g)}
    mask = torch.ones(4, 4, 4)   # MASK [frames, H, W]: ComfyUI maps its batch onto the latent frames
    mask[:2] = 0.0
    latent = nodes.SetLatentNoiseMask().set_mask(latent, mask)[0]
    stock = _sca(cs, model, H.wan_conds(), latent, _euler(cs))["samples"]
    counts, cap = [], Capture()
    out = _sca(cs, count_calls(model, counts), H.wan_conds(), latent, _freeinit_sampler(_pack(), cap))["samples"]
    assert sum(counts) == 16
    _assert_given_frames_kept(cap, stock, out, slice(0, 2))


def test_freeinit_ltxv_img_to_video_inplace_on_ltxav(cs, av):
    """LTX-2 i2v: LTXVImgToVideoInplace (tiny LTX video VAE) on the video latent, joined with the audio latent
    (LTXVConcatAVLatent): FreeInit Sampler 2 iterations, both streams (NFE 16): the video's latent frame 0
    equals the stock graph's (the image's encoding), its start noise is kept there."""
    import comfy_extras.nodes_lt as lt
    import comfy_extras.nodes_lt_audio as la
    model = tiny_av.tiny_ltxav()
    video = _r(lt.EmptyLTXVLatentVideo.execute(64, 64, 9, 1))[0]
    video = _r(lt.LTXVImgToVideoInplace.execute(tiny_av.tiny_ltx_video_vae(), _image(2), video, 1.0, False))[0]
    audio = _r(la.LTXVEmptyLatentAudio.execute(9, 25.0, 1, tiny_av.tiny_ltx_audio_vae()))[0]
    latent = tiny_av.concat_av(video, audio)
    conds = tiny_av.ltxav_conds()
    stock = _sca(cs, model, conds, latent, _euler(cs))["samples"].unbind()
    counts, cap = [], Capture()
    out = _sca(cs, count_calls(model, counts), conds, latent, _freeinit_sampler(_pack(), cap))["samples"].unbind()
    assert sum(counts) == 16
    shapes = cap.runs[0]["shapes"]
    _assert_given_frames_kept(cap, stock[0], out[0], slice(0, 1), shapes)
    assert torch.allclose(out[0][:, :, 0], video["samples"][:, :, 0], atol=1e-5)


def _payload_counter(model, seen):
    import comfy.patcher_extension
    m = model.clone()

    def wrap(executor, *args, **kwargs):
        payload = kwargs.get("minimax_payload") or {}
        seen.append(len(payload.get("keyframes") or []))
        return executor(*args, **kwargs)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.keyframes", wrap)
    return m


def test_freeinit_minimax_h3_keyframe_conditioning_in_every_pass(cs, av):
    """MiniMax H3 i2v puts the first frame in the conditioning (MiniMaxH3ImageToVideo / MiniMaxH3AddGuide:
    ``minimax_keyframes`` with the frame's VAE latent; here set with node_helpers as those nodes do): every
    model call of both FreeInit passes (NFE 2 x 4 x 2 = 16) sees the keyframe, and the keyframe changes the
    result (control without it)."""
    import node_helpers
    model = tiny_av.tiny_minimax_h3()
    pos, neg = tiny_av.minimax_conds()
    g = torch.Generator().manual_seed(3)
    kf = [{"resolved_frame_index": 0, "latent": torch.randn(1, 24, 1, 4, 4, generator=g)}]
    pos_kf = node_helpers.conditioning_set_values(pos, {"minimax_keyframes": kf})
    latent = tiny_av.minimax_latent()
    seen = []
    out = _sca(cs, _payload_counter(model, seen), (pos_kf, neg), latent,
               _freeinit_sampler(_pack(), _euler(cs)))["samples"].unbind()
    assert len(seen) == 16 and sum(1 for k in seen if k == 1) == 8   # the positive's calls: 4 steps x 2 passes
    plain = _sca(cs, model, (pos, neg), latent, _freeinit_sampler(_pack(), _euler(cs)))["samples"].unbind()
    assert not torch.allclose(out[0], plain[0], atol=1e-3)


def _pack():
    return H.boot()


def _two_stage_sca(cs, high, low, conds, latent, cap_high, cap_low, steps=4, switch=2, seed=0):
    """The stock two-expert layout with SamplerCustomAdvanced: #1 on ``high`` (RandomNoise, sigmas 0..switch),
    #2 on ``low`` (DisableNoise, sigmas switch..steps) on #1's LATENT."""
    from test_audio_video import _guider, _sigmas
    sig = _sigmas(high, steps)
    a = H.sample_custom_advanced(cs.Noise_RandomNoise(seed), _guider(high, conds, 3.0), cap_high,
                                 sig[:switch + 1], latent)
    b = H.sample_custom_advanced(cs.Noise_EmptyNoise(), _guider(low, conds, 3.0), cap_low, sig[switch:],
                                 dict(latent, samples=a["samples"]))
    return b["samples"]


def test_freeinit_two_experts_keep_the_start_image(pack, cs):
    """FreeInit (KSampler, two experts) on a Wan 2.2 i2v latent with a noise mask (Wan22ImageToVideoLatent start
    image; two tiny Wan 2.2 5B DiTs as high / low experts, 4 steps split at 2, CFG 3, 2 iterations: NFE
    2 x 4 x 2 = 16; stock 8): the output's latent frame 0 equals the stock two-sampler graph's, and the re-run of
    the high-noise stage starts frame 0 from the initial noise (it was refused before)."""
    import comfy_extras.nodes_wan as nw
    fi = H.pack_module(pack, "nodes.freeinit")
    high, low = H.tiny_wan22_5b(0), H.tiny_wan22_5b(1)
    conds = H.wan_conds()
    latent = _r(nw.Wan22ImageToVideoLatent.execute(H.wan22_vae(), 32, 32, 9, 1, _image(1, 32, 32)))[0]
    stock = _two_stage_sca(cs, high, low, conds, latent, euler(), euler())
    h2, l2 = fi.FreeInitTwoExperts().patch(high, low, 2, "butterworth", 0.25, 0.25, 4, 0.068, False)
    counts, cap_h = [], Capture()
    out = _two_stage_sca(cs, count_calls(h2, counts), count_calls(l2, counts), conds, latent, cap_h, euler())
    assert sum(counts) == 16 and len(cap_h.runs) == 2
    n0, n1 = cap_h.runs[0]["noise"], cap_h.runs[1]["noise"]
    assert torch.equal(n1[:, :, :1], n0[:, :, :1]) and not torch.allclose(n1[:, :, 1:], n0[:, :, 1:])
    assert cap_h.runs[1]["mask"] is not None                      # the re-run keeps the noise mask
    assert torch.allclose(out[:, :, :1], stock[:, :, :1], atol=1e-5)
    assert not torch.allclose(out[:, :, 1:], stock[:, :, 1:], atol=1e-3)


def test_freeinit_two_experts_refuse_an_audio_video_latent(pack, cs, av):
    """Two-sampler FreeInit on an audio+video latent (MiniMax H3): an error naming the node, the input and
    what it supports (one-sampler FreeInit)."""
    fi = H.pack_module(pack, "nodes.freeinit")
    m = tiny_av.tiny_minimax_h3()
    h2, l2 = fi.FreeInitTwoExperts().patch(m, m, 2, "butterworth", 0.25, 0.25, 4, 0.068, False)
    with pytest.raises(ValueError) as e:
        _two_stage_sca(cs, h2, l2, tiny_av.minimax_conds(), tiny_av.minimax_latent(), euler(), euler())
    msg = str(e.value)
    assert msg.startswith("FreeInit (KSampler, two experts): high_noise_model: the sampler's latent is a nested latent")
    assert "FreeInit (KSampler) or FreeInit Sampler" in msg


def test_smoothinit_keeps_the_in_place_image_frames_noise(pack, cs, av):
    """SmoothInit (KSampler) (custom, K 3, cfg 3 / inversion_cfg 1: NFE 9, then 4 steps x 2 = 8) on LTX-2 i2v
    (LTXVImgToVideoInplace + audio): the optimised noise of the given latent frame is the initial noise (so the
    frame is noised as in the stock graph), the other frames' and the audio's noise is optimised; the output's
    frame 0 equals the stock graph's."""
    import comfy_extras.nodes_lt as lt
    import comfy_extras.nodes_lt_audio as la
    from test_audio_video import StartNoise, _si_patch
    model = tiny_av.tiny_ltxav()
    video = _r(lt.EmptyLTXVLatentVideo.execute(64, 64, 17, 1))[0]
    video = _r(lt.LTXVImgToVideoInplace.execute(tiny_av.tiny_ltx_video_vae(), _image(2), video, 1.0, False))[0]
    latent = tiny_av.concat_av(video, _r(la.LTXVEmptyLatentAudio.execute(17, 25.0, 1, tiny_av.tiny_ltx_audio_vae()))[0])
    conds = tiny_av.ltxav_conds()
    stock_cap, cap, counts = StartNoise(), StartNoise(), []
    stock = _sca(cs, model, conds, latent, stock_cap, seed=5)["samples"].unbind()
    out = _sca(cs, count_calls(_si_patch(pack, model), counts), conds, latent, cap, seed=5)["samples"].unbind()
    assert sum(counts) == 9 + 8
    n0, n1 = _streams(stock_cap.noise, cap.shapes), _streams(cap.noise, cap.shapes)
    assert torch.equal(n1[0][:, :, :1], n0[0][:, :, :1])
    assert not torch.allclose(n1[0][:, :, 1:], n0[0][:, :, 1:], atol=1e-4)
    assert not torch.allclose(n1[1], n0[1], atol=1e-4)
    assert torch.allclose(out[0][:, :, :1], stock[0][:, :, :1], atol=1e-5)


def test_freeinit_wan_image_to_video_concat_conditioning_in_every_pass(cs):
    """WanImageToVideo (the real Wan 2.1 VAE, tiny Wan i2v DiT): the start image rides in the conditioning
    (concat_latent_image + concat_mask -> c_concat). Every model call of both FreeInit passes (NFE 2 x 4 x 2 =
    16) gets the image's concat latent, and the image changes the result (control: a grey start image)."""
    import comfy.patcher_extension
    import comfy_extras.nodes_wan as nw
    model = H.tiny_wan_i2v()
    pos, neg = H.wan_conds()

    def i2v(image):
        with torch.no_grad():   # the session's cached VAE may hold inference tensors (0.3.64)
            p, n, lat = _r(nw.WanImageToVideo.execute(pos, neg, H.wan21_vae(), 32, 32, 5, 1, image))
        return (p, n), lat
    conds, latent = i2v(_image(4, 32, 32))
    seen = []
    m = model.clone()

    def wrap(executor, *args, **kwargs):   # the DiT's input: noisy latent (16) + mask (4) + image latent (16)
        seen.append(int(args[0].shape[1]) == 36 and bool(args[0][:, 20:].abs().sum() > 0))
        return executor(*args, **kwargs)
    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.concat", wrap)
    counts = []
    out = _sca(cs, count_calls(m, counts), conds, latent, _freeinit_sampler(_pack(), euler()))["samples"]
    assert sum(counts) == 16 and len(seen) == len(counts) and all(seen)   # cond + uncond batched: 8 calls of 2
    grey_conds, _ = i2v(torch.full((1, 32, 32, 3), 0.5))
    grey = _sca(cs, model, grey_conds, latent, _freeinit_sampler(_pack(), euler()))["samples"]
    assert not torch.allclose(out, grey, atol=1e-3)
