"""ZS^2 long videos in chunks (Sec. 5 auto-regressive mode): chunk plan, stitching and seam imposition
with toy k-diffusion samplers on a toy denoiser whose frames depend on frame 0 (like TMA's anchor)."""
import pytest
import torch

from training_free_video.samplers.long_video import (
    ChunkState, SeamTrajectory, plan_chunks, sample_in_chunks, stitch)

SIGMAS = torch.tensor([8.0, 4.0, 2.0, 1.0, 0.5, 0.0])


# --------------------------------------------------------------------------- plan and stitch

@pytest.mark.parametrize("frames,chunk", [(64, 8), (32, 8), (9, 8), (8, 8), (3, 2), (1, 8), (100, 7), (17, 16)])
def test_plan_covers_every_frame_with_one_frame_seams(frames, chunk):
    plan = plan_chunks(frames, chunk)
    assert plan[0][0] == 0 and plan[-1][1] == frames
    assert all(2 <= e - s <= chunk for s, e in plan) or len(plan) == 1
    assert all(b[0] == a[1] - 1 for a, b in zip(plan, plan[1:]))           # exactly one shared frame
    assert all(e - s == chunk for s, e in plan[:-1])                       # only the last may be shorter
    if frames > chunk:
        assert len(plan) == -(-(frames - 1) // (chunk - 1))
    else:
        assert plan == [(0, frames)]


def test_plan_examples_and_errors():
    assert plan_chunks(64, 8) == [(7 * k, 7 * k + 8) for k in range(9)]
    assert plan_chunks(32, 8) == [(0, 8), (7, 15), (14, 22), (21, 29), (28, 32)]
    assert plan_chunks(9, 8) == [(0, 8), (7, 9)]
    with pytest.raises(ValueError, match="chunk must be >= 2"):
        plan_chunks(10, 1)
    with pytest.raises(ValueError, match="frames must be >= 1"):
        plan_chunks(0, 8)


def test_stitch_drops_each_seam_once():
    video = torch.arange(32.0).reshape(32, 1, 1, 1).expand(32, 2, 3, 3).clone()
    plan = plan_chunks(32, 8)
    parts = [video[s:e].clone() for s, e in plan]
    for p in parts[1:]:
        p[0] = -1.0                       # a chunk's own copy of the seam is never used
    assert torch.equal(stitch(parts, plan), video)
    with pytest.raises(ValueError, match="chunk 1 has 7 frames, planned 8"):
        stitch([parts[0], parts[1][:7]] + parts[2:], plan)
    with pytest.raises(ValueError, match="4 chunk outputs for 5"):
        stitch(parts[:4], plan)


# --------------------------------------------------------------------------- toy sampling

def toy_denoiser(log):
    """x0 of each frame from itself and frame 0 of the batch (frame 0 anchors the rest, as in TMA)."""
    def denoise(x, sigma):
        log.append(x.shape[0])
        own = torch.tanh(x / (1.0 + sigma)) * 2.0
        return own + 0.5 * torch.tanh(x[:1] / (1.0 + sigma))
    return denoise


def euler(model, x, sigmas, gen=None, callback=None):
    for i in range(len(sigmas) - 1):
        s, s1 = float(sigmas[i]), float(sigmas[i + 1])
        den = model(x, s)
        if callback:
            callback(i, x)
        x = x + (x - den) / s * (s1 - s)
    return x


def heun(model, x, sigmas, gen=None, callback=None):
    for i in range(len(sigmas) - 1):
        s, s1 = float(sigmas[i]), float(sigmas[i + 1])
        d = (x - model(x, s)) / s
        if callback:
            callback(i, x)
        if s1 == 0:
            x = x + d * (s1 - s)
        else:
            x2 = x + d * (s1 - s)
            d2 = (x2 - model(x2, s1)) / s1
            x = x + (d + d2) / 2 * (s1 - s)
    return x


def euler_ancestral(model, x, sigmas, gen, callback=None):
    for i in range(len(sigmas) - 1):
        s, s1 = float(sigmas[i]), float(sigmas[i + 1])
        den = model(x, s)
        if callback:
            callback(i, x)
        up = min(s1, (s1 ** 2 * (s ** 2 - s1 ** 2) / s ** 2) ** 0.5)
        down = (s1 ** 2 - up ** 2) ** 0.5
        x = x + (x - den) / s * (down - s)
        if s1 > 0:
            x = x + torch.randn(x.shape, generator=gen) * up
    return x


def run_chunked(sampler, noise, chunk, sigmas=SIGMAS, log=None, trace=None):
    """The node's loop in pure torch: each chunk samples its slice of the full noise through
    ``state.model_call``; ``trace[k]`` gets (model input, sampler state) per step."""
    log = [] if log is None else log
    den = toy_denoiser(log)

    def sample_chunk(state: ChunkState):
        gen = torch.Generator().manual_seed(100 + state.index)
        inputs = []

        def model(x, s):
            return state.model_call(lambda xx: (inputs.append(xx.clone()), den(xx, s))[1], x, s)

        states = []
        out = sampler(model, noise[state.start:state.end] * float(sigmas[0]), sigmas, gen,
                      callback=lambda i, x: states.append(x.clone()))
        if trace is not None:
            trace.append((state, inputs, states))
        return out

    return sample_in_chunks(sample_chunk, noise.shape[0], chunk)


def noise_of(frames, seed=0):
    return torch.randn(frames, 2, 4, 4, generator=torch.Generator().manual_seed(seed))


def test_frames_per_model_call_never_exceed_the_chunk():
    log = []
    out, states = run_chunked(heun, noise_of(32), 8, log=log)
    assert out.shape == (32, 2, 4, 4) and torch.isfinite(out).all()
    assert max(log) == 8 and len(states) == 5 and log[-1] == 4                 # last chunk: frames 28..31
    assert all(st.imposed == st.calls for st in states[1:]) and states[0].imposed == 0
    assert all(st.unmatched == 0 for st in states)


@pytest.mark.parametrize("frames", [1, 5, 8])
def test_one_chunk_equals_plain_sampling(frames):
    noise = noise_of(frames, seed=3)
    out, states = run_chunked(euler, noise, 8)
    plain = euler(lambda x, s: toy_denoiser([])(x, s), noise * 8.0, SIGMAS)
    assert torch.equal(out, plain)
    assert len(states) == 1 and states[0].record is None and states[0].impose is None


@pytest.mark.parametrize("sampler", [euler, heun])
def test_deterministic_sampler_seam_follows_recorded_trajectory(sampler):
    """Deterministic samplers: at every call of chunk k+1 the model input and the sampler's own state of
    frame 0 equal chunk k's last frame exactly, so the seam is one continuous trajectory."""
    trace = []
    out, states = run_chunked(sampler, noise_of(20, seed=1), 8, trace=trace)
    for (prev, prev_in, prev_states), (cur, cur_in, cur_states) in zip(trace, trace[1:]):
        assert len(cur_in) == len(prev_in) == cur.imposed
        for a, b in zip(prev_in, cur_in):
            assert torch.equal(a[-1], b[0])
        for a, b in zip(prev_states, cur_states):
            assert torch.equal(a[-1], b[0])
    assert torch.equal(out, run_chunked(sampler, noise_of(20, seed=1), 8)[0])          # deterministic


def test_without_imposition_the_seam_would_drift():
    """Control: the same chunk loop with nothing imposed gives a different seam input (frame 0 of a
    chunk has no anchor before it), so the equality above is the imposition's doing."""
    noise = noise_of(15, seed=1)
    den = toy_denoiser([])
    last = euler(lambda x, s: den(x, s), noise[0:8] * 8.0, SIGMAS)
    fresh = euler(lambda x, s: den(x, s), noise[7:15] * 8.0, SIGMAS)
    assert (last[-1] - fresh[0]).abs().max() > 1e-3


def test_ancestral_sampler_model_sees_recorded_seam_and_output_keeps_previous_chunk():
    trace = []
    noise = noise_of(15, seed=2)
    out, states = run_chunked(euler_ancestral, noise, 8, trace=trace)
    (_, in0, st0), (_, in1, st1) = trace
    assert all(torch.equal(a[-1], b[0]) for a, b in zip(in0, in1))            # imposed at every call
    assert not all(torch.equal(a[-1], b[0]) for a, b in zip(st0, st1))       # the sampler's own state drifts
    first = run_chunked(euler_ancestral, noise[:8], 8)[0]
    assert torch.equal(out[:8], first)                                        # seam frame 7 = chunk 0's


def test_unmatched_sigmas_are_counted_and_left_alone():
    traj = SeamTrajectory()
    traj.record(2.0, torch.ones(3), torch.zeros(3))
    traj.record(2.0, 2 * torch.ones(3), torch.ones(3))
    state = ChunkState(1, 7, 10, impose=traj)
    x = torch.full((3, 3), 5.0)
    out = state.model_call(lambda xx: xx * 10, x, 2.0)
    assert torch.equal(out[0], torch.zeros(3)) and torch.equal(out[1:], x[1:] * 10)
    out = state.model_call(lambda xx: xx * 10, x, 2.0 * (1 + 1e-7))           # 2nd call at that sigma: 2nd entry
    assert torch.equal(out[0], torch.ones(3))
    out = state.model_call(lambda xx: xx * 10, x, 2.0)                        # no entries left
    assert torch.equal(out, x * 10) and torch.equal(x, torch.full((3, 3), 5.0))
    assert (state.calls, state.imposed, state.unmatched) == (3, 2, 1)


def test_chunk_frame_params_are_global_indices():
    """ad_params of a chunk (issue 14): the chunk's global frame indices and the video length; when
    the sampler's options already hold ad_params over the same frames (the video is itself a window
    of a longer one), the chunk's indices are theirs and their other keys are kept."""
    from training_free_video.samplers.long_video import chunk_frame_params
    assert chunk_frame_params(7, 14, 64) == {"full_length": 64, "context_length": 7, "sub_idxs": list(range(7, 14))}
    outer = {"full_length": 100, "context_length": 20, "sub_idxs": list(range(40, 60)), "other": 1}
    assert chunk_frame_params(7, 14, 20, outer) == {"full_length": 100, "context_length": 7,
                                                    "sub_idxs": list(range(47, 54)), "other": 1}
    assert outer["sub_idxs"] == list(range(40, 60)) and outer["context_length"] == 20     # not modified
    # ad_params without window indices (AnimateDiff-Evolved without context windows): the chunk's own
    assert chunk_frame_params(0, 8, 20, {"full_length": 20, "context_length": 16, "sub_idxs": None}) == {
        "full_length": 20, "context_length": 8, "sub_idxs": list(range(8))}
