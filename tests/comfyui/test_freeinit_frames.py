"""FreeInit: which axis holds the frames (issue 14, edges 3 and 4), in the real ComfyUI.

* An image batch is one video's frames only when the model attends across its batch (Temporal
  Momentum Attention, an AnimateDiff motion model); without such a model the images are independent
  and each gets 2-D FreeInit on its own, so image 0 of a batch equals a batch-1 run.
* Qwen-Image latents of one picture frame per batch entry ([F, C, 1, H, W]) are F frames under TMA,
  as Dependency Noise and TMA see them: FreeInit's low-pass runs across the batch.
"""
import pytest
import torch

from comfy_harness import qwen_conds, sd15_conds, tiny_qwen_image
from test_freeinit import _recording_sampler

STEPS = 2
SEED = 5


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


@pytest.fixture(scope="module")
def qwen(pack):
    return tiny_qwen_image(seed=0, num_layers=1, attention_head_dim=32, axes_dims_rope=(8, 12, 12))


def _qwen_conds():
    return qwen_conds(seed=1, tokens=6)


def _freeinit(mods, model, iterations=3):
    return mods["fi"].FreeInitModelPatch().patch(model, iterations, "butterworth", 0.25, 0.25, 4, 0.068, False)[0]


def _ksampler(mods, model, batch, seed=SEED):
    pos, neg = sd15_conds()
    lat = {"samples": torch.zeros(batch, 4, 8, 8)}
    with torch.inference_mode():
        return mods["nodes"].KSampler().sample(model, seed, STEPS, 7.5, "euler", "simple", pos, neg, lat)[0]["samples"]


def test_image_batch_without_cross_frame_model_is_independent_images(mods, sd15):
    """No model attends across the batch (plain SD1.5): FreeInit treats a batch of 4 as 4 independent
    images, so image 0 equals the batch-1 run with the same seed (same initial and fresh noise).
    Before, the temporal low-pass over the batch mixed the four images (image 0 differed). With TMA
    the batch is one video's frames and image 0 does depend on the others."""
    m = _freeinit(mods, sd15)
    four, one = _ksampler(mods, m, 4), _ksampler(mods, m, 1)
    scale = float(one.abs().max())                               # random weights: latents of a few hundred
    diff = lambda a, b: float((a - b).abs().max()) / scale
    assert diff(four[:1], one) < 1e-4                             # batch-size rounding only
    plain4, plain1 = _ksampler(mods, sd15, 4), _ksampler(mods, sd15, 1)
    assert diff(plain4[:1], plain1) < 1e-4
    assert diff(four[:1], plain1) > 1e-2                          # FreeInit did act
    # TMA at momentum 0 attends across the batch in name only (mu = 0 is self-attention exactly), so the
    # difference below comes from FreeInit's low-pass over the frames alone
    with torch.inference_mode():
        tma0 = mods["zs2"].TemporalMomentumAttention().patch(sd15, 0.0)[0]
    video4, video1 = _ksampler(mods, _freeinit(mods, tma0), 4), _ksampler(mods, _freeinit(mods, tma0), 1)
    assert diff(video1, one) < 1e-4
    assert diff(video4[:1], video1) > 1e-2


def _qwen_pass_starts(mods, model):
    cs = mods["cs"]
    pos, neg = _qwen_conds()
    lat = {"samples": torch.zeros(4, 16, 1, 8, 8)}
    rec = []
    with torch.inference_mode():
        sampler = mods["fi"].FreeInitSampler().get_sampler(_recording_sampler(mods, rec), 2, "butterworth", 0.25,
                                                            0.25, 4, 0.068)[0]
        guider = cs.CFGGuider().get_guider(model, pos, neg, 3.0)[0]
        sigmas = cs.BasicScheduler().get_sigmas(model, "simple", STEPS, 1.0)[0]
        cs.SamplerCustomAdvanced().sample(cs.Noise_RandomNoise(SEED), guider, sampler, sigmas, lat)
        eps = cs.Noise_RandomNoise(SEED).generate_noise(lat)
    assert len(rec) == 2 and rec[0]["x"].shape == (4, 16, 1, 8, 8)
    return rec, eps


@pytest.mark.parametrize("tma", [True, False])
def test_qwen_image_one_frame_per_batch_entry_is_frames_under_tma(mods, qwen, tma):
    """Qwen-Image [4, 16, 1, H, W] with TMA: FreeInit's pass-2 start is the 3-D (frames, H, W) mix of
    the 4-D latent [4, 16, H, W] with the frames as the batch (before: each entry filtered alone in
    2-D, no temporal low-pass); without TMA the entries are independent images (2-D each)."""
    core = mods["core"]
    model = qwen
    if tma:
        with torch.inference_mode():
            model = mods["zs2"].TemporalMomentumAttention().patch(qwen, 0.98)[0]
    rec, eps = _qwen_pass_starts(mods, model)
    s0 = rec[0]["sigma0"]
    ms = qwen.get_model_object("model_sampling")
    start = rec[1]["x"] / s0                                       # flow: x_T = sigma * n (empty latent)
    flat = lambda z: z[:, :, 0]
    fresh = core.fresh_noise(eps.shape, SEED, 1)
    lpf = core.low_pass_filter((4, 8, 8) if tma else (1, 8, 8), "butterworth")
    ref = core.reinit_noise(ms, s0, flat(eps), flat(rec[0]["out"]), flat(fresh), lpf, None, True,
                            batch_frames=tma)
    torch.testing.assert_close(flat(start), ref, rtol=1e-4, atol=1e-4)
    other = core.reinit_noise(ms, s0, flat(eps), flat(rec[0]["out"]), flat(fresh),
                              core.low_pass_filter((1, 8, 8) if tma else (4, 8, 8), "butterworth"), None, True,
                              batch_frames=not tma)
    assert float((flat(start) - other).abs().max()) > 1e-3          # the two layouts do differ here
