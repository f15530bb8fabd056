"""ZS^2 Long Video (chunks) in the real ComfyUI on the tiny random-weight SD1.5 UNet: memory of one
chunk (frames per model call), F <= m unchanged, determinism, the seam imposed at every model call,
KSampler and SamplerCustomAdvanced, one progress bar, interruption, errors."""
import pytest
import torch

from comfy_harness import pack_module, structure, tiny_wan

H = W = 8
SEED = 77
STEPS = 3
CFG = 5.0


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread per module


@pytest.fixture(scope="module")
def long(pack):
    return pack_module(pack, "nodes.zs2_long")


def probed(model, log):
    """Clone with a DIFFUSION_MODEL wrapper that records every network call: frames per CFG chunk,
    the input x, and cond_or_uncond."""
    import comfy.patcher_extension
    m = model.clone()

    def probe(executor, *args, **kwargs):
        x = args[0]
        to = args[5] if len(args) > 5 else kwargs.get("transformer_options", {})
        cou = list(to.get("cond_or_uncond", [0]))
        log.append({"frames": x.shape[0] // len(cou), "x": x.detach().clone(), "cou": cou})
        return executor(*args, **kwargs)

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.probe", probe)
    return m


def zs2_model(zs2, long, model, chunk=8, mu=0.98):
    """The README chain: TMA -> Dependency Noise (KSampler) -> ZS^2 Long Video (chunks)."""
    with torch.inference_mode():
        m = zs2.TemporalMomentumAttention().patch(model, mu)[0]
        m = zs2.DependencyNoiseModelPatch().patch(m, 0.01, 10, 15, "dependency", 0.9)[0]
        return m if chunk is None else long.ZS2LongVideo().patch(m, chunk)[0]


def ksampler(model, conds, frames, sampler="euler", steps=STEPS, seed=SEED):
    import nodes
    pos, neg = conds
    lat = {"samples": torch.zeros(frames, 4, H, W)}
    with torch.inference_mode():
        return nodes.KSampler().sample(model, seed, steps, CFG, sampler, "normal", pos, neg, lat)[0]["samples"]


class FixedNoise:
    """A NOISE whose first frames are always the same tensor (so a shorter latent gets a prefix)."""
    seed = 0

    def __init__(self, frames, seed=5):
        self.t = torch.randn(frames, 4, H, W, generator=torch.Generator().manual_seed(seed))

    def generate_noise(self, latent):
        return self.t[:latent["samples"].shape[0]].clone()


def custom_advanced(model, conds, frames, noise, sampler="euler", steps=STEPS):
    import comfy_extras.nodes_custom_sampler as cs
    pos, neg = conds
    lat = {"samples": torch.zeros(frames, 4, H, W)}
    with torch.inference_mode():
        guider = cs.CFGGuider().get_guider(model, pos, neg, CFG)[0]
        smp = cs.KSamplerSelect().get_sampler(sampler)[0]
        sigmas = cs.BasicScheduler().get_sigmas(model, "normal", steps, 1.0)[0]
        out, den = cs.SamplerCustomAdvanced().sample(noise, guider, smp, sigmas, lat)
    return out["samples"], den["samples"]


# --------------------------------------------------------------------------- memory of one chunk

def test_frames_per_model_call_at_most_chunk(zs2, long, sd15, conds):
    log = []
    out = ksampler(zs2_model(zs2, long, probed(sd15, log), chunk=8), conds, 20)
    assert out.shape == (20, 4, H, W) and torch.isfinite(out).all()
    per_call = [c["frames"] for c in log]
    assert max(per_call) == 8
    # chunks frames 0..7, 7..14, 14..19: every frame of every chunk evaluated once per step, cond + uncond
    assert sum(c["x"].shape[0] for c in log) == STEPS * 2 * (8 + 8 + 6)
    log.clear()
    ksampler(zs2_model(zs2, long, probed(sd15, log), chunk=None), conds, 20)     # control: one batch
    assert max(c["frames"] for c in log) == 20


# --------------------------------------------------------------------------- F <= m is today's ZS^2

@pytest.mark.parametrize("frames", [8, 5, 1])
def test_one_chunk_equals_unpatched_ksampler(zs2, long, sd15, conds, frames):
    plain = ksampler(zs2_model(zs2, long, sd15, chunk=None), conds, frames)
    assert torch.equal(ksampler(zs2_model(zs2, long, sd15, chunk=8), conds, frames), plain)


def test_one_chunk_equals_unpatched_sampler_custom_advanced(zs2, long, sd15, conds):
    noise = FixedNoise(8)
    plain, plain_den = custom_advanced(zs2_model(zs2, long, sd15, chunk=None), conds, 8, noise)
    out, den = custom_advanced(zs2_model(zs2, long, sd15, chunk=8), conds, 8, noise)
    assert torch.equal(out, plain) and torch.equal(den, plain_den)


# --------------------------------------------------------------------------- chunked sampling

def test_chunked_is_deterministic_and_first_chunk_is_plain_sampling(zs2, long, sd15, conds):
    """Chunk 0 is exactly today's sampling of frames 0..m-1 (same noise prefix); the whole run is
    deterministic, and later frames differ from sampling all frames in one batch."""
    noise = FixedNoise(15)
    out, den = custom_advanced(zs2_model(zs2, long, sd15, chunk=8), conds, 15, noise)
    again, _ = custom_advanced(zs2_model(zs2, long, sd15, chunk=8), conds, 15, noise)
    assert torch.equal(out, again)
    assert out.shape == den.shape == (15, 4, H, W)         # denoised_output: all frames, not the last chunk
    first, _ = custom_advanced(zs2_model(zs2, long, sd15, chunk=None), conds, 8, noise)
    assert torch.equal(out[:8], first)
    whole, _ = custom_advanced(zs2_model(zs2, long, sd15, chunk=None), conds, 15, noise)
    assert (out[8:] - whole[8:]).abs().max() > 1e-3


def test_ksampler_and_sampler_custom_advanced_agree(zs2, long, sd15, conds):
    """KSampler (Dependency Noise (KSampler) patch) and SamplerCustomAdvanced (Dependency Noise node,
    same seed) give the same chunked video."""
    m = zs2_model(zs2, long, sd15, chunk=6)
    ks = ksampler(m, conds, 16)
    with torch.inference_mode():
        noise = zs2.DependencyNoise().get_noise(SEED, 0.01, 10, 15, "dependency", 0.9)[0]
    sca, _ = custom_advanced(m, conds, 16, noise)
    assert ks.shape == (16, 4, H, W)
    assert torch.allclose(sca, ks, atol=1e-6)


def _split_by_chunk(log, plan, calls_per_chunk):
    out, i = [], 0
    for s, e in plan:
        out.append(log[i:i + calls_per_chunk])
        i += calls_per_chunk
    assert i == len(log)
    return out


@pytest.mark.parametrize("sampler", ["euler", "heun", "euler_ancestral", "dpmpp_2m"])
def test_seam_input_equals_recorded_last_frame_at_every_call(zs2, long, sd15, conds, sampler):
    """At every model call of chunk k+1, frame 0 (the seam) of each CFG half is exactly chunk k's last
    frame at the same call: the model sees one continuous seam trajectory, whatever the sampler."""
    from training_free_video.samplers.long_video import plan_chunks
    log = []
    frames, chunk = 15, 6
    out = ksampler(zs2_model(zs2, long, probed(sd15, log), chunk=chunk), conds, frames, sampler=sampler)
    plan = plan_chunks(frames, chunk)
    assert len(plan) == 3 and torch.isfinite(out).all()
    per_chunk = _split_by_chunk(log, plan, len(log) // len(plan))
    assert len(per_chunk[0]) >= STEPS
    for prev, cur, (s, e), (s1, e1) in zip(per_chunk, per_chunk[1:], plan, plan[1:]):
        for a, b in zip(prev, cur):
            assert a["cou"] == b["cou"]
            m0, m1 = e - s, e1 - s1
            for p in range(len(a["cou"])):
                assert torch.equal(a["x"][p * m0 + m0 - 1], b["x"][p * m1]), (sampler, p)
            # and the seam is not simply copied everywhere: frame 1 of the next chunk is new
            assert not torch.equal(b["x"][1], a["x"][m0 - 1])


@pytest.mark.parametrize("sampler", ["euler", "heun", "dpmpp_2m", "lms", "dpm_2", "uni_pc", "deis"])
def test_deterministic_sampler_seam_state_and_output_are_continuous(zs2, long, sd15, conds, sampler):
    """Deterministic samplers: the sampler's own state of the seam frame in chunk k+1 (seen through the
    callback) equals chunk k's last frame at every step; the last report holds all frames."""
    import comfy.samplers
    import comfy_extras.nodes_custom_sampler as cs
    pos, neg = conds
    states = []
    noise = FixedNoise(11)
    m = zs2_model(zs2, long, sd15, chunk=6)
    with torch.inference_mode():
        guider = cs.CFGGuider().get_guider(m, pos, neg, CFG)[0]
        sigmas = cs.BasicScheduler().get_sigmas(m, "normal", STEPS, 1.0)[0]
        latent = torch.zeros(11, 4, H, W)
        out = guider.sample(noise.generate_noise({"samples": latent}), latent, comfy.samplers.sampler_object(sampler),
                            sigmas, callback=lambda i, x0, x, n: states.append((i, n, x.clone())))
    # chunks 0..5 and 5..10; callback: 3 steps per chunk + one final report with all frames
    assert [(i, n) for i, n, _ in states] == [(0, 6), (1, 6), (2, 6), (3, 6), (4, 6), (5, 6), (5, 6)]
    assert states[-1][2].shape[0] == 11 and out.shape[0] == 11
    for j in range(STEPS):
        assert torch.equal(states[j][2][-1], states[STEPS + j][2][0]), j


def test_adaptive_sampler_runs_and_warns_about_unmatched_sigmas(zs2, long, sd15, conds, caplog):
    """dpm_adaptive chooses its sigmas from the whole chunk: the run completes with all frames and a
    warning says the seam is approximate where the previous chunk never used a sigma."""
    import logging
    with caplog.at_level(logging.WARNING):
        out = ksampler(zs2_model(zs2, long, sd15, chunk=6), conds, 11, sampler="dpm_adaptive")
    assert out.shape == (11, 4, H, W) and torch.isfinite(out).all()
    assert any("ZS^2 Long Video (chunks)" in r.getMessage() and "dpm_adaptive" in r.getMessage()
               for r in caplog.records)


def test_one_progress_bar_over_all_chunks(zs2, long, sd15, conds):
    import comfy.utils
    seen = []
    old = comfy.utils.PROGRESS_BAR_HOOK
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: seen.append((value, total)))
    try:
        ksampler(zs2_model(zs2, long, sd15, chunk=8), conds, 20)              # 3 chunks x 3 steps
    finally:
        comfy.utils.set_progress_bar_global_hook(old)
    values = [v for v, t in seen]
    assert all(t == 9 for v, t in seen[1:])
    assert values[-1] == 9 and values == sorted(values) and set(range(1, 10)) <= set(values)


# --------------------------------------------------------------------------- interruption, model, errors

def test_interrupt_between_chunks_and_model_untouched(zs2, long, sd15, conds):
    """Cancel at the end of chunk 0 (after its last model call, so that no op of ComfyUI's, which
    checks interrupts in every op since 0.33.0, sees it first): the run raises ComfyUI's interrupt
    (checked before every chunk) before chunk 1's first call, the input MODEL is unchanged, and the
    next run gives the same video as an uninterrupted one."""
    import comfy.model_management
    import comfy.patcher_extension
    inner = zs2_model(zs2, long, sd15, chunk=None)
    before = structure(inner.model_options), structure(inner.wrappers)
    patched = long.ZS2LongVideo().patch(inner, 8)[0]
    assert structure(inner.model_options) == before[0] and structure(inner.wrappers) == before[1]
    expected = ksampler(patched, conds, 12)
    calls = {"n": 0}

    def trip(executor, *args, **kwargs):
        calls["n"] += 1
        out = executor(*args, **kwargs)
        if calls["n"] == STEPS:                      # chunk 0's last call has returned
            comfy.model_management.interrupt_current_processing(True)
        return out

    tripping = patched.clone()
    tripping.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.trip", trip)
    with pytest.raises(comfy.model_management.InterruptProcessingException):
        ksampler(tripping, conds, 12)
    assert calls["n"] == STEPS                       # chunk 0 finished, chunk 1 never started
    assert structure(inner.model_options) == before[0] and structure(inner.wrappers) == before[1]
    assert torch.equal(ksampler(patched, conds, 12), expected)


def test_errors(long, sd15):
    with torch.inference_mode():
        with pytest.raises(ValueError, match=r"ZS\^2 Long Video \(chunks\): chunk_frames must be >= 2"):
            long.ZS2LongVideo().patch(sd15, 1)
        with pytest.raises(ValueError, match=r"ZS\^2 Long Video \(chunks\): model: its Wan21 latents have a frame axis"):
            long.ZS2LongVideo().patch(tiny_wan(), 8)


def test_per_frame_noise_mask_is_sliced_per_chunk(zs2, long, sd15, conds):
    """Inpainting with one mask per frame (Set Latent Noise Mask): frames whose mask is 0 keep the input
    latent in every chunk, the others are resampled."""
    import nodes
    pos, neg = conds
    frames = 11
    latent = torch.randn(frames, 4, H, W, generator=torch.Generator().manual_seed(12))
    mask = torch.ones(frames, H * 8, W * 8)
    keep = [2, 5, 8, 9]                   # chunks 0..5 and 5..10: in chunk 0, the seam, in chunk 1
    mask[keep] = 0.0
    m = zs2_model(zs2, long, sd15, chunk=6)
    with torch.inference_mode():
        lat = nodes.SetLatentNoiseMask().set_mask({"samples": latent}, mask)[0]
        out = nodes.KSampler().sample(m, SEED, STEPS, CFG, "euler", "normal", pos, neg, lat)[0]["samples"]
    assert out.shape == latent.shape
    for f in range(frames):
        if f in keep:
            assert torch.allclose(out[f], latent[f], atol=1e-5), f
        else:
            assert (out[f] - latent[f]).abs().max() > 1e-2, f


# --------------------------------------------------------------------------- per-frame ControlNet hints

def tiny_controlnet():
    """A ControlNet for the tiny UNet (ComfyUI's own cldm class, random weights) as ControlNetLoader returns."""
    import comfy.cldm.cldm
    import comfy.controlnet
    from comfy_harness import TINY_SD15_UNET, _init_weights
    cfg = dict(TINY_SD15_UNET)
    cfg.pop("out_channels")
    net = comfy.cldm.cldm.ControlNet(hint_channels=3, dtype=torch.float32, device="cpu", **cfg)
    _init_weights(net, 3)
    return comfy.controlnet.ControlNet(net, load_device=torch.device("cpu"))


def test_per_frame_controlnet_hints_are_sliced_per_chunk(zs2, long, sd15, conds):
    """One control image per frame (15 frames, chunks 0..7 and 7..14): chunk 1 uses hints 7..14, so
    changing hints 8..14 changes frames 8..14 only (unsliced, ComfyUI would give chunk 1 hints 0..7
    and the change would do nothing); chunk 0 equals plain sampling of 8 frames with hints 0..7; the
    ControlNet's own hint is restored afterwards."""
    import nodes
    frames, noise = 15, FixedNoise(15)
    hints = torch.rand(frames, 8 * H, 8 * W, 3, generator=torch.Generator().manual_seed(9))
    changed = hints.clone()
    changed[8:] = torch.rand(frames - 8, 8 * H, 8 * W, 3, generator=torch.Generator().manual_seed(10))
    cn = tiny_controlnet()

    def run(images, model, n):
        with torch.inference_mode():
            pos, neg = nodes.ControlNetApplyAdvanced().apply_controlnet(*conds, cn, images, 1.0, 0.0, 1.0)
            ctrl = pos[0][1]["control"]
            out, _ = custom_advanced(model, (pos, neg), n, noise)
        assert ctrl.cond_hint_original.shape[0] == images.shape[0]          # restored
        return out

    chunked = zs2_model(zs2, long, sd15, chunk=8)
    a, b = run(hints, chunked, frames), run(changed, chunked, frames)
    assert torch.equal(a[:8], b[:8])
    assert (a[8:] - b[8:]).flatten(1).abs().amax(1).min() > 1e-4              # every later frame follows its hint
    plain = run(hints[:8], zs2_model(zs2, long, sd15, chunk=None), 8)
    assert torch.equal(a[:8], plain)


def test_per_frame_text_conds_are_sliced_per_chunk(zs2, long, sd15, conds):
    """A positive conditioning with one text embedding per frame ([15, tokens, dim], a model cond of
    batch F): chunk 1 gets embeddings 7..14 (unsliced, ComfyUI would truncate them to 0..7 and a
    change of 8..14 would do nothing); chunk 0 equals plain sampling of 8 frames with embeddings 0..7."""
    frames, noise = 15, FixedNoise(15)
    _, neg = conds
    emb = torch.randn(frames, 7, 16, generator=torch.Generator().manual_seed(21))
    changed = emb.clone()
    changed[8:] = torch.randn(frames - 8, 7, 16, generator=torch.Generator().manual_seed(22))
    chunked = zs2_model(zs2, long, sd15, chunk=8)
    a, _ = custom_advanced(chunked, ([[emb, {}]], neg), frames, noise)
    b, _ = custom_advanced(chunked, ([[changed, {}]], neg), frames, noise)
    assert torch.equal(a[:8], b[:8])
    assert (a[8:] - b[8:]).flatten(1).abs().amax(1).min() > 1e-4
    plain, _ = custom_advanced(zs2_model(zs2, long, sd15, chunk=None), ([[emb[:8], {}]], neg), 8, noise)
    assert torch.equal(a[:8], plain)


# --------------------------------------------------------------------------- per-frame masks, global frame indices (issue 14)

def test_per_frame_cond_masks_are_sliced_per_chunk(zs2, long, sd15, conds):
    """ConditioningSetMask with one mask per frame (15 frames, chunks 0..7 and 7..14): a second prompt
    applies where its frame's mask is 1. Chunk 1 uses masks 7..14, so changing masks 8..14 changes
    frames 8..14 only (before: every chunk got masks 0..7 and the change did nothing); chunk 0 equals
    plain sampling of 8 frames with masks 0..7."""
    import nodes
    frames, noise = 15, FixedNoise(15)
    pos, neg = conds
    other = [[torch.randn(1, 7, 16, generator=torch.Generator().manual_seed(31)), {}]]
    masks = torch.zeros(frames, 8 * H, 8 * W)
    masks[::2] = 1.0                                    # even frames get the second prompt
    changed = 1.0 - masks
    changed[:8] = masks[:8]                             # frames 8..14 flipped

    def positive(m):
        with torch.inference_mode():
            masked = nodes.ConditioningSetMask().append(other, m, "default", 1.0)[0]
            return nodes.ConditioningCombine().combine(pos, masked)[0]

    chunked = zs2_model(zs2, long, sd15, chunk=8)
    a, _ = custom_advanced(chunked, (positive(masks), neg), frames, noise)
    b, _ = custom_advanced(chunked, (positive(changed), neg), frames, noise)
    assert torch.equal(a[:8], b[:8])
    assert (a[8:] - b[8:]).flatten(1).abs().amax(1).min() > 1e-4        # every later frame follows its mask
    plain, _ = custom_advanced(zs2_model(zs2, long, sd15, chunk=None), (positive(masks[:8]), neg), 8, noise)
    assert torch.equal(a[:8], plain)


def ad_params_probe(model, log):
    """Clone with a DIFFUSION_MODEL wrapper that records the ``ad_params`` every network call sees
    (what another pack's per-frame input, e.g. an IPAdapter image batch, would index by)."""
    import comfy.patcher_extension
    m = model.clone()

    def probe(executor, *args, **kwargs):
        to = args[5] if len(args) > 5 else kwargs.get("transformer_options", {})
        ad = to.get("ad_params")
        log.append(None if ad is None else {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in ad.items()})
        return executor(*args, **kwargs)

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.ad_probe", probe)
    return m


def test_chunks_carry_global_frame_indices_as_ad_params(zs2, long, sd15, conds):
    """Every model call of chunk k sees AnimateDiff-style ad_params with the chunk's global frame
    indices: sub_idxs = start..end-1, full_length = F, context_length = chunk frames (before: none, so
    other packs' per-frame inputs and schedules restarted at frame 0 in every chunk). F <= m: no
    ad_params are added (the unpatched call)."""
    from training_free_video.samplers.long_video import plan_chunks
    log = []
    ksampler(zs2_model(zs2, long, ad_params_probe(sd15, log), chunk=6), conds, 13)
    plan = plan_chunks(13, 6)
    assert len(plan) == 3 and len(log) == 3 * STEPS
    for k, (s, e) in enumerate(plan):
        for ad in log[k * STEPS:(k + 1) * STEPS]:
            assert ad == {"full_length": 13, "context_length": e - s, "sub_idxs": list(range(s, e))}, (k, ad)
    log.clear()
    ksampler(zs2_model(zs2, long, ad_params_probe(sd15, log), chunk=8), conds, 8)
    assert log == [None] * STEPS


def test_momentum_schedule_follows_global_frame_index(zs2, long, sd15, conds):
    """Temporal Momentum Attention's momentum_schedule under Long Video is resolved at the frames'
    global indices, as kl_lambda_schedule is: with mu_1..mu_6 = 0 and mu_7.. = 0.98 (F = 11, chunks
    0..5 and 5..10), chunk 0 is plain self-attention (equal to momentum 0) and chunk 1 (global frames
    6..11) uses 0.98 (equal to momentum 0.98 from the same seam). Before, the schedule restarted in
    every chunk (resolved over the chunk's own frames), so chunk 1 also ran at mu = 0."""
    frames, noise = 11, FixedNoise(11)
    sched = "0, 0, 0, 0, 0, 0, 0.98"

    def model(mu, schedule=""):
        with torch.inference_mode():
            m = zs2.TemporalMomentumAttention().patch(sd15, mu, schedule)[0]
            return long.ZS2LongVideo().patch(m, 6)[0]

    out, _ = custom_advanced(model(0.98, sched), conds, frames, noise)
    zero, _ = custom_advanced(model(0.0), conds, frames, noise)
    assert torch.equal(out[:6], zero[:6])
    assert (out[6:] - zero[6:]).flatten(1).abs().amax(1).min() > 1e-4
    # a ramp over the whole video: chunk 0 holds global frames 1..6 of an 11-frame ramp 0.5:1, so it
    # equals one 6-frame batch with those six values written out (before: the ramp ran over 6 frames)
    from training_free_video.samplers.frame_schedule import parse_frame_schedule
    mus = parse_frame_schedule("0.5:1", input_name="t").resolve(frames)
    ramp, _ = custom_advanced(model(0.98, "0.5:1"), conds, frames, noise)
    with torch.inference_mode():
        first = zs2.TemporalMomentumAttention().patch(sd15, 0.98, ", ".join(f"{v!r}" for v in mus[:6]))[0]
    plain, _ = custom_advanced(first, conds, 6, noise)
    assert torch.equal(ramp[:6], plain)
