"""Forward-Inversion, SmoothInit and Fast-SmoothInit (samplers/smoothinit.py) on the analytic world.

References are re-derived here from docs/algorithms.md section 1 (independently of the module's code):
f_s = DDIM step sigma_a -> sigma_b at w1, then DDIM inversion back at w2, on unit noise.
"""
import math

import pytest
import torch

from training_free_video.samplers import smoothinit as si
from training_free_video.samplers.gaussian_mixture import (EpsModelSampling, FlowModelSampling,
                                                           GaussianMixtureWorld, sample_ddim)

TOL = dict(rtol=1e-6, atol=1e-6)  # sigma_space reads the scalings in float32, as ComfyUI does
SPACES = {"eps": EpsModelSampling, "flow": lambda: FlowModelSampling(shift=3.0)}


def _setup(space="eps", n=64, dim=8, spread=1.0, seed=0):
    ms = SPACES[space]()
    world = GaussianMixtureWorld.default(dim=dim, classes=4, spread=spread, std=0.5)
    labels = torch.arange(n) % 4
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(n, dim, generator=g, dtype=torch.float64)
    sa, sb = si.inversion_sigmas(ms.sigmas, ms.sigma_max, 50)
    return ms, world, labels, eps, sa, sb


def _ref_fs(d, ms, eps, sa, sb, w1, w2, max_denoise=True):
    """Forward-Inversion written out with the closed-form scalings (EPS: b = sqrt(1 + s^2) at max_denoise)."""
    if isinstance(ms, EpsModelSampling):
        b = math.sqrt(1 + sa * sa) if max_denoise else sa
    else:
        b = sa
    x = b * eps
    x0 = d(x, sa, w1)
    y = x0 + sb * (x - x0) / sa                     # DDIM to sigma_b: x0 + sigma_b * eps_hat
    x0b = d(y, sb, w2)
    z = x0b + sa * (y - x0b) / sb                   # inversion: x0 + sigma_a * eps_hat at sigma_b
    return z / b


# --------------------------------------------------------------------------- Forward-Inversion

@pytest.mark.parametrize("space", SPACES)
def test_forward_inversion_matches_the_written_out_formula(space):
    ms, world, labels, eps, sa, sb = _setup(space)
    d = world.denoiser(ms, labels)
    out = si.forward_inversion(d, ms, eps, sa, sb, 7.5, 1.0)
    torch.testing.assert_close(out, _ref_fs(d, ms, eps, sa, sb, 7.5, 1.0), **TOL)
    assert out.dtype == eps.dtype and out.shape == eps.shape


def test_inversion_sigmas_use_the_50_step_grid():
    ms = EpsModelSampling()
    sa, sb = si.inversion_sigmas(ms.sigmas, ms.sigma_max, 50)
    assert sa == pytest.approx(float(ms.sigmas[-1])) and sb == pytest.approx(float(ms.sigmas[979]), rel=1e-5)
    assert si.inversion_sigmas(ms.sigmas, ms.sigma_max, 10)[1] == pytest.approx(float(ms.sigmas[899]), rel=1e-5)


@pytest.mark.parametrize("space", SPACES)
def test_forward_inversion_with_w1_equal_w2_is_close_to_identity(space):
    """Paper E.7: w1 = w2 makes f_s nearly the identity; w1 > w2 moves the noise far more."""
    ms, world, labels, eps, sa, sb = _setup(space, n=256)
    d = world.denoiser(ms, labels)

    def rel(w1, w2):
        return float((si.forward_inversion(d, ms, eps, sa, sb, w1, w2) - eps).norm() / eps.norm())

    same = max(rel(7.5, 7.5), rel(1.0, 1.0))
    moved = rel(7.5, 1.0)
    assert same < 5e-3, same
    assert same < 0.1 * moved, (same, moved)


@pytest.mark.parametrize("space", SPACES)
def test_forward_inversion_w1_above_w2_lands_in_the_prompted_class_more_often(space):
    """Paper Thm 3.2 / Fig. 3: plain sampling after f_s (w1 7.5 > w2 1) hits the prompted class more."""
    ms, world, labels, eps, sa, sb = _setup(space, n=4000, spread=0.2)
    d = world.denoiser(ms, labels)
    sig = si.grid_schedule(ms.sigmas, 20)

    def stats(noise):
        x0 = sample_ddim(d, ms, noise, sig, 1.0)
        acc = float((world.classify(x0) == labels).double().mean())
        loglik, _ = world._posterior(x0, 1.0, 0.0)
        post = torch.softmax(loglik, 1)[torch.arange(len(labels)), labels]
        return acc, float(post.mean())

    acc0, p0 = stats(eps)
    acc1, p1 = stats(si.forward_inversion(d, ms, eps, sa, sb, 7.5, 1.0))
    acc_eq, p_eq = stats(si.forward_inversion(d, ms, eps, sa, sb, 1.0, 1.0))
    assert acc1 >= acc0 + 0.004 and p1 > p0 + 0.002, (acc0, acc1, p0, p1)
    assert abs(p_eq - p0) < 0.1 * (p1 - p0), (p0, p_eq, p1)
    # iterating (Fast-SmoothInit-30) strengthens the effect
    fast = si.fast_smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, 30, 0.1, 0.01, 0.25, torch.Generator().manual_seed(0))
    acc3, p3 = stats(fast)
    assert acc3 > acc1 + 0.05 and p3 > p1, (acc1, acc3)


def test_forward_inversion_with_a_latent_img2img():
    """Non-zero latent, start below sigma_max (max_denoise False): x = latent + sigma * noise."""
    ms, world, labels, eps, _, _ = _setup("eps")
    g = torch.Generator().manual_seed(3)
    latent = torch.randn(eps.shape, generator=g, dtype=torch.float64)
    sa, sb = si.inversion_sigmas(ms.sigmas, 3.0, 50)
    d = world.denoiser(ms, labels)
    out = si.forward_inversion(d, ms, eps, sa, sb, 7.5, 1.0, latent=latent, max_denoise=False)
    x = latent + sa * eps
    x0 = d(x, sa, 7.5)
    y = x + (sb - sa) * (x - x0) / sa
    z = y + (sa - sb) * (y - d(y, sb, 1.0)) / sb
    torch.testing.assert_close(out, (z - latent) / sa, **TOL)
    assert not torch.allclose(out, si.forward_inversion(d, ms, eps, sa, sb, 7.5, 1.0, max_denoise=False))
    same = si.forward_inversion(d, ms, eps, sa, sb, 3.0, 3.0, latent=latent, max_denoise=False)
    assert float((same - eps).norm() / eps.norm()) < 1e-2


# --------------------------------------------------------------------------- SmoothInit

@pytest.mark.parametrize("space", SPACES)
def test_forward_inversion_equals_smoothinit_with_k1_sigma0(space):
    ms, world, labels, eps, sa, sb = _setup(space)
    d = world.denoiser(ms, labels)
    fi = si.forward_inversion(d, ms, eps, sa, sb, 7.5, 1.0)
    for nt in si.NOISE_TYPES:
        s = si.smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, K=1, sigma_sm=0.0, noise_type=nt,
                          generator=torch.Generator().manual_seed(9))
        torch.testing.assert_close(s, fi, rtol=0, atol=1e-12)


@pytest.mark.parametrize("noise_type", si.NOISE_TYPES)
def test_smoothinit_is_the_mean_of_perturbed_forward_inversions(noise_type):
    ms, world, labels, eps, sa, sb = _setup("flow", n=16)
    d = world.denoiser(ms, labels)
    K, s_sm = 7, 0.3
    out = si.smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, K, s_sm, noise_type, torch.Generator().manual_seed(4),
                        chunk_size=3)
    g = torch.Generator().manual_seed(4)
    ref = torch.zeros_like(eps)
    for _ in range(K):
        n = si.perturbation(eps.shape, noise_type, g).double()
        ref += _ref_fs(d, ms, eps + s_sm * n, sa, sb, 7.5, 1.0)
    torch.testing.assert_close(out, ref / K, **TOL)
    # not just f_s(eps): the perturbations matter
    assert not torch.allclose(out, si.forward_inversion(d, ms, eps, sa, sb, 7.5, 1.0), atol=1e-4)


def test_smoothinit_result_does_not_depend_on_chunk_size():
    ms, world, labels, eps, sa, sb = _setup("eps", n=8)
    d = world.denoiser(ms, labels)
    outs = [si.smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, 30, 0.025, "uniform", torch.Generator().manual_seed(1),
                          chunk_size=c) for c in (1, 4, 7, 30, 100)]
    for o in outs[1:]:
        torch.testing.assert_close(o, outs[0], rtol=0, atol=1e-12)


def test_smoothinit_halves_the_chunk_on_out_of_memory_and_continues():
    ms, world, labels, eps, sa, sb = _setup("eps", n=4)
    inner = world.denoiser(ms, labels)
    batches = []

    def limited(x, sigma, cfg):
        batches.append(x.shape[0])
        if x.shape[0] > 3 * eps.shape[0]:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return inner(x, sigma, cfg)

    halvings = []
    out = si.smoothinit(limited, ms, eps, sa, sb, 7.5, 1.0, 10, 0.025, "uniform", torch.Generator().manual_seed(2),
                        chunk_size=10, on_oom=halvings.append)
    ref = si.smoothinit(inner, ms, eps, sa, sb, 7.5, 1.0, 10, 0.025, "uniform", torch.Generator().manual_seed(2),
                        chunk_size=1)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    assert halvings == [5, 2], halvings
    assert max(b for b in batches[2:]) <= 3 * eps.shape[0]

    def always(x, sigma, cfg):
        raise torch.OutOfMemoryError("simulated")

    with pytest.raises(torch.OutOfMemoryError):
        si.smoothinit(always, ms, eps, sa, sb, 7.5, 1.0, 4, 0.025, "uniform", chunk_size=4)


# --------------------------------------------------------------------------- Fast-SmoothInit

def _ref_fast(fs, eps, K, sigma_sm, gamma_m, gamma_decay, g):
    """docs/algorithms.md section 1.3 written out with explicit histories (lists indexed by j)."""
    tmp = {-1: eps, 0: eps}
    r = {}
    for j in range(K):
        if j >= 1:
            tmp[j] = (1 - gamma_m) * r[j - 1] + gamma_m * (1 - gamma_m) * tmp[j - 1] + gamma_m ** 2 * tmp[j - 2]
        n = torch.randn(eps.shape, generator=g, dtype=torch.float32).double()
        r[j] = fs(tmp[j] + sigma_sm * (1 - gamma_decay) ** (j + 1) * n)
    return r[K - 1]


@pytest.mark.parametrize("space", SPACES)
@pytest.mark.parametrize("gamma_m,gamma_decay", [(0.05, 0.05), (0.3, 0.25), (0.95, 0.05)])
def test_fast_smoothinit_matches_the_released_momentum_rule(space, gamma_m, gamma_decay):
    ms, world, labels, eps, sa, sb = _setup(space, n=16)
    d = world.denoiser(ms, labels)
    out = si.fast_smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, 6, 0.1, gamma_m, gamma_decay,
                             torch.Generator().manual_seed(7))
    ref = _ref_fast(lambda z: _ref_fs(d, ms, z, sa, sb, 7.5, 1.0), eps, 6, 0.1, gamma_m, gamma_decay,
                    torch.Generator().manual_seed(7))
    torch.testing.assert_close(out, ref, **TOL)


def test_fast_smoothinit_gamma0_feeds_each_output_as_the_next_input():
    ms, world, labels, eps, sa, sb = _setup("eps", n=16)
    d = world.denoiser(ms, labels)
    seen = []

    def recording(x, sigma, cfg):
        if float(sigma) == sa:                      # the first call of each f_s sees its input
            seen.append(x.clone())
        return d(x, sigma, cfg)

    K, s_sm, gd = 5, 0.2, 0.1
    out = si.fast_smoothinit(recording, ms, eps, sa, sb, 7.5, 1.0, K, s_sm, 0.0, gd, torch.Generator().manual_seed(3))
    b = math.sqrt(1 + sa * sa)
    g = torch.Generator().manual_seed(3)
    prev = eps
    for j in range(K):
        n = torch.randn(eps.shape, generator=g, dtype=torch.float32).double()
        inp = prev + s_sm * (1 - gd) ** (j + 1) * n
        torch.testing.assert_close(seen[j] / b, inp, **TOL)
        prev = _ref_fs(d, ms, inp, sa, sb, 7.5, 1.0)
    torch.testing.assert_close(out, prev, **TOL)   # the last iterate, not a mean
    # sigma_sm = 0: exactly f_s composed K times
    comp = eps
    for _ in range(K):
        comp = si.forward_inversion(d, ms, comp, sa, sb, 7.5, 1.0)
    torch.testing.assert_close(si.fast_smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, K, 0.0, 0.0, gd), comp,
                               rtol=1e-12, atol=1e-12)


def test_fast_smoothinit_gamma_m_near_one_stays_near_the_base_noise():
    ms, world, labels, eps, sa, sb = _setup("eps", n=64)
    d = world.denoiser(ms, labels)

    def drift(gm):
        out = si.fast_smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, 30, 0.0, gm, 0.25)
        return float((out - eps).norm())

    assert drift(0.95) < 0.5 * drift(0.01)


# --------------------------------------------------------------------------- noise, presets, cost

def test_noise_types_have_the_documented_variance():
    g = torch.Generator().manual_seed(0)
    n = 1_000_000
    u = si.perturbation((n,), "uniform", g)
    gs = si.perturbation((n,), "gaussian", g)
    t = si.perturbation((n,), "truncated_gaussian", g)
    for x in (u, gs):                                   # unit variance, zero mean
        assert abs(float(x.var()) - 1.0) < 0.01 and abs(float(x.mean())) < 0.005
    assert float(u.abs().max()) <= math.sqrt(3) + 1e-6 and float(u.abs().max()) > 1.7
    # truncated_gaussian = randn clipped to [-1, 1] (released code): variance 1 - 2 phi(1)
    phi1 = math.exp(-0.5) / math.sqrt(2 * math.pi)
    assert float(t.abs().max()) <= 1.0 and abs(float(t.var()) - (1 - 2 * phi1)) < 0.005
    assert abs(float((t.abs() == 1.0).double().mean()) - math.erfc(1 / math.sqrt(2))) < 0.005
    with pytest.raises(ValueError, match="noise_type"):
        si.perturbation((3,), "laplace", g)


def test_presets_reproduce_the_papers_table():
    P = si.PRESETS
    assert (P["Forward-Inversion"].method, P["Forward-Inversion"].K) == ("forward_inversion", 1)
    s = P["SmoothInit-30"]
    assert (s.method, s.K, s.sigma_sm, s.noise_type) == ("smoothinit", 30, 0.025, "uniform")
    f = P["Fast-SmoothInit-10"]
    assert (f.method, f.K, f.sigma_sm, f.noise_type, f.gamma_m, f.gamma_decay) == \
        ("fast_smoothinit", 10, 0.05, "gaussian", 0.05, 0.05)
    f = P["Fast-SmoothInit-30"]
    assert (f.K, f.sigma_sm, f.gamma_m, f.gamma_decay) == (30, 0.1, 0.01, 0.25)
    assert (P["Fast-SmoothInit-10 DiT-safe"].K, P["Fast-SmoothInit-10 DiT-safe"].sigma_sm,
            P["Fast-SmoothInit-10 DiT-safe"].gamma_m, P["Fast-SmoothInit-10 DiT-safe"].gamma_decay) == (10, 0.05, 0.95, 0.05)
    assert (P["Fast-SmoothInit-30 DiT-safe"].K, P["Fast-SmoothInit-30 DiT-safe"].sigma_sm,
            P["Fast-SmoothInit-30 DiT-safe"].gamma_m, P["Fast-SmoothInit-30 DiT-safe"].gamma_decay) == (30, 0.1, 0.95, 0.25)
    c = si.resolve("custom", 12, 0.2, "truncated_gaussian", 0.1, 0.2, method="smoothinit")
    assert (c.method, c.K, c.sigma_sm, c.noise_type) == ("smoothinit", 12, 0.2, "truncated_gaussian")
    assert si.resolve("custom", 5, method="forward_inversion").K == 1
    with pytest.raises(ValueError, match="unknown preset"):
        si.resolve("SmoothInit-31")
    # NFE floor of the paper's timing table: (2N + 3K) / 2N with w2 = 1, N = 50
    assert 1 + si.preset_nfe("Fast-SmoothInit-10") / si.sampling_nfe(50, 7.5) == pytest.approx(1.3)
    assert 1 + si.preset_nfe("SmoothInit-30") / si.sampling_nfe(50, 7.5) == pytest.approx(1.9)
    assert 1 + si.preset_nfe("Forward-Inversion") / si.sampling_nfe(50, 7.5) == pytest.approx(1.03)


@pytest.mark.parametrize("w1,w2", [(7.5, 1.0), (1.0, 1.0), (7.5, 7.5), (1.0, 3.0)])
@pytest.mark.parametrize("preset", list(si.PRESETS))
def test_model_calls_equal_the_nfe_formula(preset, w1, w2):
    ms, world, labels, eps, sa, sb = _setup("flow", n=4)
    d = world.denoiser(ms, labels)
    cfgs = []

    def spy(x, sigma, cfg):
        cfgs.append(cfg)
        return d(x, sigma, cfg)

    world.nfe = 0
    si.optimise_noise(si.PRESETS[preset], spy, ms, eps, sa, sb, w1, w2, torch.Generator().manual_seed(0))
    K = si.PRESETS[preset].K
    assert world.nfe == si.nfe(K, w1, w2) == K * ((1 if w1 == 1 else 2) + (1 if w2 == 1 else 2))
    assert set(cfgs) <= {w1, w2}                         # never an unconditional-only call of our own
    assert cfgs.count(w1) >= K and len(cfgs) == 2 * K


def test_batched_smoothinit_counts_per_sample_evaluations():
    ms, world, labels, eps, sa, sb = _setup("eps", n=4)
    d = world.denoiser(ms, labels)
    evals = []

    def per_sample(x, sigma, cfg):
        evals.append(si.model_calls(cfg) * x.shape[0] // eps.shape[0])
        return d(x, sigma, cfg)

    si.smoothinit(per_sample, ms, eps, sa, sb, 7.5, 1.0, 30, 0.025, "uniform", chunk_size=8)
    assert sum(evals) == si.nfe(30, 7.5, 1.0) == 90
    assert len(evals) == 2 * 4                           # ceil(30 / 8) batched calls per direction


def test_same_generator_seed_same_result():
    ms, world, labels, eps, sa, sb = _setup("eps", n=8)
    d = world.denoiser(ms, labels)

    def run(seed, fn):
        return fn(d, ms, eps, sa, sb, 7.5, 1.0, generator=torch.Generator().manual_seed(seed))

    for fn in (si.smoothinit, si.fast_smoothinit):
        torch.testing.assert_close(run(1, fn), run(1, fn), rtol=0, atol=0)
        assert not torch.allclose(run(1, fn), run(2, fn))


def test_float32_in_float32_out():
    ms, world, labels, eps, sa, sb = _setup("eps", n=4)
    d = world.denoiser(ms, labels)
    out = si.fast_smoothinit(d, ms, eps.float(), sa, sb, 7.5, 1.0, 3)
    ref = si.fast_smoothinit(d, ms, eps, sa, sb, 7.5, 1.0, 3)
    assert out.dtype == torch.float32 and torch.allclose(out.double(), ref, atol=1e-4)


# --------------------------------------------------------------------------- errors

def test_bad_inputs_raise_clear_errors():
    ms, world, labels, eps, sa, sb = _setup("eps", n=4)
    d = world.denoiser(ms, labels)
    with pytest.raises(ValueError, match="^sigma_sm must be"):
        si.smoothinit(d, ms, eps, sa, sb, K=3, sigma_sm=-0.1)
    with pytest.raises(ValueError, match="^sigma_sm must be"):
        si.fast_smoothinit(d, ms, eps, sa, sb, K=3, sigma_sm=-0.1)
    for bad_k in (0, -2, 1.5):
        with pytest.raises(ValueError, match="K must be an integer >= 1"):
            si.smoothinit(d, ms, eps, sa, sb, K=bad_k)
        with pytest.raises(ValueError, match="K must be an integer >= 1"):
            si.fast_smoothinit(d, ms, eps, sa, sb, K=bad_k)
    with pytest.raises(ValueError, match="grid_steps must be >= 2"):
        si.inversion_sigmas(ms.sigmas, ms.sigma_max, 1)
    with pytest.raises(ValueError, match="^grid_steps must be >= 2"):   # the node adds its name (nodes/errors.py)
        si.validate(grid_steps=0)
    nan = eps.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        si.smoothinit(d, ms, nan, sa, sb, K=2)
    with pytest.raises(ValueError, match="NaN"):
        si.fast_smoothinit(d, ms, nan, sa, sb, K=2)
    with pytest.raises(ValueError, match="NaN"):
        si.optimise_noise(si.PRESETS["Forward-Inversion"], d, ms, nan, sa, sb)
    with pytest.raises(ValueError, match="noise_type"):
        si.smoothinit(d, ms, eps, sa, sb, noise_type="pink")
    with pytest.raises(ValueError, match="gamma_m must be in"):
        si.fast_smoothinit(d, ms, eps, sa, sb, gamma_m=1.5)
    with pytest.raises(ValueError, match="gamma_decay must be in"):
        si.fast_smoothinit(d, ms, eps, sa, sb, gamma_decay=1.0)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        si.smoothinit(d, ms, eps, sa, sb, chunk_size=0)
    with pytest.raises(ValueError, match="must be below sigma_a"):
        si.forward_inversion(d, ms, eps, sb, sa)
    with pytest.raises(ValueError, match="sigma_a must be > 0"):
        si.inversion_sigmas(ms.sigmas, 0.0, 50)
