"""ZS^2 Dependency Noise (the NOISE node and the KSampler patch) in the real ComfyUI on the tiny random-weight
SD1.5 UNet (and the tiny Wan for video latents): the NOISE node's noise is what the patched KSampler starts
from, the patch leaves zero noise alone, frames along axis 2 of a video latent, per-frame kl_lambda_schedule.
(Moved from test_zs2_nodes.py, now test_zs2_tma.py; Dependency Noise with TMA: test_zs2_tma.py.)"""
import pytest
import torch

from comfy_harness import tiny_wan
from test_zs2_tma import FRAMES, H, SEED, W, _x


def test_noise_node_equals_ksampler_patch(zs2, sd15, conds):
    """Same seed and settings: the NOISE node's noise is exactly what the patched KSampler starts from,
    and SamplerCustomAdvanced with it equals KSampler with the patch."""
    import comfy.patcher_extension
    import comfy_extras.nodes_custom_sampler as cs
    import nodes
    pos, neg = conds
    lat = {"samples": torch.zeros(FRAMES, 4, H, W)}
    for noise_model in ("dependency", "mixed", "progressive"):
        args = (0.05, 10, 15, noise_model, 0.8)
        with torch.inference_mode():
            noise = zs2.DependencyNoise().get_noise(SEED, *args)[0]
            patched = zs2.DependencyNoiseModelPatch().patch(sd15, *args)[0]
            captured = []

            def capture(executor, noise_in, *a, **kw):
                captured.append(noise_in.clone())
                return executor(noise_in, *a, **kw)

            probe = patched.clone()
            probe.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.capture", capture)
            ks = nodes.KSampler().sample(probe, SEED, 2, 4.0, "euler", "normal", pos, neg, lat)[0]["samples"]
            expected = noise.generate_noise(lat)
            assert noise.seed == SEED and expected.dtype == lat["samples"].dtype and expected.device.type == "cpu"
            assert torch.equal(captured[0], expected)
            if noise_model == "dependency":
                guider = cs.CFGGuider().get_guider(sd15, pos, neg, 4.0)[0]
                sampler = cs.KSamplerSelect().get_sampler("euler")[0]
                sigmas = cs.BasicScheduler().get_sigmas(sd15, "normal", 2, 1.0)[0]
                sca = cs.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, lat)[0]["samples"]
                assert torch.allclose(sca, ks, atol=1e-6)
                plain = nodes.KSampler().sample(sd15, SEED, 2, 4.0, "euler", "normal", pos, neg, lat)[0]["samples"]
                assert not torch.allclose(plain, ks)


def test_ksampler_patch_leaves_zero_noise_alone(zs2, sd15, conds):
    import nodes
    pos, neg = conds
    lat = {"samples": _x(seed=5) * 0.3}
    with torch.inference_mode():
        patched = zs2.DependencyNoiseModelPatch().patch(sd15, 0.01, 10, 15, "dependency", 0.9)[0]
        adv = nodes.KSamplerAdvanced()
        a = adv.sample(patched, "disable", SEED, 2, 4.0, "euler", "normal", pos, neg, lat, 0, 2, "disable")[0]
        b = adv.sample(sd15, "disable", SEED, 2, 4.0, "euler", "normal", pos, neg, lat, 0, 2, "disable")[0]
    assert torch.equal(a["samples"], b["samples"])


def test_dependency_noise_on_wan_video_latent(zs2):
    """Video latents [B, C, T, H, W]: the KSampler patch draws frames along axis 2 and sampling runs."""
    import comfy.patcher_extension
    import nodes
    from comfy_harness import wan_conds
    wan = tiny_wan()
    pos, neg = wan_conds()
    lat = {"samples": torch.zeros(1, 16, 4, 8, 8)}
    captured = []

    def capture(executor, noise_in, *a, **kw):
        captured.append(noise_in.clone())
        return executor(noise_in, *a, **kw)

    with torch.inference_mode():
        patched = zs2.DependencyNoiseModelPatch().patch(wan, 0.01, 10, 15, "dependency", 0.9)[0]
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.capture", capture)
        out = nodes.KSampler().sample(patched, SEED, 1, 3.0, "euler", "simple", pos, neg, lat)[0]["samples"]
    n = captured[0]
    assert n.shape == (1, 16, 4, 8, 8) and torch.isfinite(out).all()
    cos = torch.nn.functional.cosine_similarity
    assert cos(n[0, :, 0].flatten(), n[0, :, 1].flatten(), dim=0) > 0.95      # frames correlated along T
    assert cos(n[0, 0].flatten(), n[0, 1].flatten(), dim=0).abs() < 0.3       # channels are not


@pytest.mark.parametrize("text,match", [
    ("0.01, abc", r"'abc' is not a number"),
    ("0.01, -0.02", r"lambda_i = -0.02 is out of range: each lambda_i must be a number >= 0"),
    ("0.1:0.2:0.3", r"'0.1:0.2:0.3' is not a ramp 'start:end'"),
    ("0,01", r"'0,01' is ambiguous: the comma in '0,01' reads as a decimal comma \(0.01\) or as two values "
             r"\(0 and 01\)\. Use a dot for decimals"),        # issue 14 edge 5: was the two values [0, 1]
])
def test_lambda_schedule_errors_name_node_and_input(zs2, sd15, text, match):
    with pytest.raises(ValueError, match=r"^Dependency Noise: kl_lambda_schedule: " + match):
        zs2.DependencyNoise().get_noise(0, 0.01, 10, 15, "dependency", 0.9, text)
    with pytest.raises(ValueError, match=r"^Dependency Noise \(KSampler\): kl_lambda_schedule: " + match):
        zs2.DependencyNoiseModelPatch().patch(sd15, 0.01, 10, 15, "dependency", 0.9, text)


def test_lambda_schedule_noise_per_frame_and_same_in_both_nodes(zs2, sd15, conds):
    """kl_lambda_schedule reaches the noise (frame i searched against lambda_i, the last value
    repeating), identically in the NOISE node and the KSampler patch; empty = the scalar exactly."""
    import comfy.patcher_extension
    import nodes
    from training_free_video.samplers.dependency_noise import dependency_noise
    pos, neg = conds
    lat = {"samples": torch.zeros(FRAMES, 4, H, W)}
    lambdas = [0.01, 2.0, 0.01, 0.01, 0.01, 0.01, 0.01]               # '0.01, 2, 0.01': a cut at frame 3
    with torch.inference_mode():
        noise = zs2.DependencyNoise().get_noise(SEED, 0.05, 10, 15, "dependency", 0.9, "0.01, 2, 0.01")[0]
        n = noise.generate_noise(lat)
        ref = dependency_noise((1, FRAMES, 4, H, W), lambdas, generator=torch.Generator().manual_seed(SEED))[0]
        assert torch.equal(n, ref)
        cos = torch.nn.functional.cosine_similarity
        c = [cos(n[i].flatten(), n[i + 1].flatten(), dim=0).item() for i in range(FRAMES - 1)]
        assert c[1] < 0.3 and min(c[:1] + c[2:]) > 0.9, c              # only frames 2 -> 3 decorrelate
        scalar = zs2.DependencyNoise().get_noise(SEED, 0.05, 10, 15, "dependency", 0.9)[0].generate_noise(lat)
        assert torch.equal(zs2.DependencyNoise().get_noise(SEED, 0.05, 10, 15, "dependency", 0.9, " ")[0]
                           .generate_noise(lat), scalar)
        assert not torch.equal(n, scalar)
        patched = zs2.DependencyNoiseModelPatch().patch(sd15, 0.05, 10, 15, "dependency", 0.9, "0.01, 2, 0.01")[0]
        captured = []

        def capture(executor, noise_in, *a, **kw):
            captured.append(noise_in.clone())
            return executor(noise_in, *a, **kw)

        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, "test.capture", capture)
        nodes.KSampler().sample(patched, SEED, 1, 4.0, "euler", "normal", pos, neg, lat)
    assert torch.equal(captured[0], n)
