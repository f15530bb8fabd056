"""NI-VSDS (docs/algorithms.md section 2.3) on the analytic Gaussian-mixture world with its exact denoiser."""
import math

import pytest
import torch

from training_free_video.samplers.gaussian_mixture import EpsModelSampling, FlowModelSampling, GaussianMixtureWorld
from training_free_video.samplers.ni_vsds import (MAX_GAIN, ni_vsds, num_updates, parse_step_sizes, step_size_at,
                                                  update_gains)

F = 8  # frames (batch rows of the analytic world)
PROMPT = 0  # the class the denoiser is conditioned on
SPACES = {"eps": EpsModelSampling, "flow": lambda: FlowModelSampling(shift=3.0)}


def ddim_uniform(ms, steps):
    """ComfyUI's ddim_uniform schedule (official DDIM timesteps 961, 921, ... for 25 steps) + final 0."""
    idx = [1 + k * (len(ms.sigmas) // steps) for k in range(steps)][::-1]
    return torch.cat([ms.sigmas[idx], torch.zeros(1)])


def setup(space, seed=1, steps=25):
    world = GaussianMixtureWorld.default(dim=16, classes=4, spread=2.0)
    ms = SPACES[space]()
    g = torch.Generator().manual_seed(seed)
    # a static video: one image of another class (1) repeated F times
    z = world.sample_x0(torch.tensor([1]), generator=g).float().expand(F, -1).clone()
    eps = torch.randn(F, world.dim, generator=g)
    denoise = world.denoiser(ms, torch.full((F,), PROMPT, dtype=torch.long))
    return world, ms, z, eps, denoise, ddim_uniform(ms, steps)


def class_logdensity(world, z, c=PROMPT):
    loglik, _ = world._posterior(z.double(), 1.0, 0.0)
    return loglik[:, c]


@pytest.mark.parametrize("space", ["eps", "flow"])
@pytest.mark.parametrize("cfg", [1.0, 7.5])
def test_moves_static_latent_toward_prompt(space, cfg):
    world, ms, z, eps, denoise, sigmas = setup(space)
    out = ni_vsds(denoise, ms, z, eps, sigmas, cfg)
    before, after = class_logdensity(world, z), class_logdensity(world, out)
    assert (after > before + 100).all(), (before, after)  # the prompt's log-density rises for every frame
    mu = world.means[PROMPT].float()
    assert ((out - mu).norm(dim=1) < 0.3 * (z - mu).norm(dim=1)).all()
    assert (world.classify(out) == PROMPT).all()
    assert torch.isfinite(out).all()
    # the static video got motion: frames differ because eps* differs per frame
    assert (out[0] - out[1]).norm() > 0.1


@pytest.mark.parametrize("space", ["eps", "flow"])
def test_one_update_is_the_weighted_denoiser_residual(space):
    world, ms, z, eps, denoise, sigmas = setup(space)
    p = 0.01  # tau = int(25 * 0.01) + 1 = 1
    out = ni_vsds(denoise, ms, z, eps, sigmas, 1.0, p=p, step_sizes="3")
    s = float(sigmas[0])
    a, b = (1.0, s) if space == "eps" else (1.0 - s, s)
    x = a * z + b * eps  # noise_scaling with max_denoise=False, also at sigma_max
    x0 = world.x0_cond(x, s, torch.full((F,), PROMPT), ms)
    eps_hat = (x - a * x0) / b
    w = b * b / (a * a + b * b)
    expected = z - 3.0 * w * (eps_hat - eps)
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5)
    # equivalently: z moves toward the denoised prediction by eta * w * a / b
    torch.testing.assert_close(out, z + 3.0 * w * a / b * (x0 - z), rtol=1e-4, atol=1e-4)


def test_noisy_latent_uses_plain_noise_scaling_at_sigma_max():
    world, ms, z, eps, denoise, _ = setup("eps")
    sigmas = torch.cat([ms.sigmas.flip(0)[::40], torch.zeros(1)])  # starts exactly at sigma_max
    assert float(sigmas[0]) == pytest.approx(float(ms.sigma_max))
    seen = []

    def spy(x, s, cfg):
        seen.append((x.clone(), float(s)))
        return denoise(x, s, cfg)

    ni_vsds(spy, ms, z, eps, sigmas, 7.5, step_sizes="0")
    for x, s in seen:  # z never moves (eta 0): every x is z + sigma * eps*, the same eps* each time
        torch.testing.assert_close(x, z + s * eps)


@pytest.mark.parametrize("space", ["eps", "flow"])
def test_deterministic_for_a_fixed_seed(space):
    world, ms, z, _, denoise, sigmas = setup(space)

    def run(seed):
        eps = torch.randn(z.shape, generator=torch.Generator().manual_seed(seed))
        return ni_vsds(denoise, ms, z, eps, sigmas, 7.5)

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_inputs_not_modified():
    world, ms, z, eps, denoise, sigmas = setup("eps")
    z0, e0 = z.clone(), eps.clone()
    ni_vsds(denoise, ms, z, eps, sigmas, 7.5)
    assert torch.equal(z, z0) and torch.equal(eps, e0)


@pytest.mark.parametrize("space", ["eps", "flow"])
def test_zero_step_sizes_return_input(space):
    world, ms, z, eps, denoise, sigmas = setup(space)
    world.nfe = 0
    out = ni_vsds(denoise, ms, z, eps, sigmas, 7.5, step_sizes="0,0")
    assert torch.equal(out, z)
    assert world.nfe == 2 * num_updates(len(sigmas), 0.6)


def test_step_sizes_apply_in_order():
    world, ms, z, eps, denoise, sigmas = setup("eps")
    log = []
    out = ni_vsds(denoise, ms, z, eps, sigmas, 7.5, step_sizes="10,10,10,1", callback=lambda d: log.append(d))
    assert [d["eta"] for d in log] == [10.0, 10.0, 10.0] + [1.0] * 13
    assert [d["i"] for d in log] == list(range(16))
    torch.testing.assert_close(log[-1]["z"], out)

    # (2, 0): only the first update moves z; equal to a single update at sigmas[0] with eta 2
    only_first = ni_vsds(denoise, ms, z, eps, sigmas, 7.5, step_sizes=(2, 0))
    single = ni_vsds(denoise, ms, z, eps, sigmas, 7.5, p=0.01, step_sizes=(2,))
    torch.testing.assert_close(only_first, single)
    # (0, 2): the first update does nothing, the rest use 2 -> a different result
    log2 = []
    later = ni_vsds(denoise, ms, z, eps, sigmas, 7.5, step_sizes=(0, 2), callback=lambda d: log2.append(d))
    assert torch.equal(log2[0]["z"], z)
    assert not torch.allclose(log2[1]["z"], z)
    assert not torch.allclose(later, only_first)
    assert step_size_at((10, 10, 10, 1), 0) == 10 and step_size_at((10, 10, 10, 1), 20) == 1


@pytest.mark.parametrize("steps,p", [(25, 0.6), (25, 0.01), (10, 0.35), (50, 0.99), (7, 0.5)])
@pytest.mark.parametrize("space", ["eps", "flow"])
def test_number_of_updates_is_int_np_plus_one(space, steps, p):
    world, ms, z, eps, denoise, _ = setup(space)
    sigmas = ddim_uniform(ms, steps)
    tau = int(steps * p) + 1
    assert num_updates(len(sigmas), p) == tau
    log = []
    world.nfe = 0
    # step size 1: the official 10,10,10,1 are refused on short schedules (see the gain tests below)
    ni_vsds(denoise, ms, z, eps, sigmas, 1.0, p=p, step_sizes="1", callback=lambda d: log.append(d["sigma"]))
    assert world.nfe == tau  # cfg 1: one model call per update
    assert log == pytest.approx([float(s) for s in sigmas[:tau]])  # the first tau sigmas, high to low
    world.nfe = 0
    ni_vsds(denoise, ms, z, eps, sigmas, 7.5, p=p, step_sizes="1")
    assert world.nfe == 2 * tau


def test_p_one_uses_every_step_but_never_sigma_zero():
    world, ms, z, eps, denoise, sigmas = setup("eps", steps=10)
    assert num_updates(len(sigmas), 1.0) == 10  # int(10 * 1) + 1 = 11, capped at the N = 10 steps
    world.nfe = 0
    out = ni_vsds(denoise, ms, z, eps, sigmas, 1.0, p=1.0, step_sizes="1")
    assert world.nfe == 10 and torch.isfinite(out).all()


@pytest.mark.parametrize("space", ["eps", "flow"])
@pytest.mark.parametrize("eta", [0.5, 3.0])
def test_update_gain_is_the_fraction_of_the_way_to_x0(space, eta):
    """One update moves z by g * (x0_hat - z) with g = update_gains(...): the quantity the refusal reads."""
    world, ms, z, eps, denoise, sigmas = setup(space)
    sigmas = sigmas[8:]  # mid-schedule (on flow models sigma_max = 1 has a = 0, i.e. gain 0)
    log = []
    out = ni_vsds(denoise, ms, z, eps, sigmas, 1.0, p=0.01, step_sizes=(eta,), callback=log.append)
    (g,) = update_gains(ms, sigmas, (eta,), 1)
    assert 0.05 < g < MAX_GAIN
    x0 = log[0]["x0"]
    assert torch.allclose(out - z, g * (x0 - z), atol=1e-4, rtol=1e-4)


def test_official_step_sizes_on_a_10_step_schedule_are_refused():
    """SD1.5 sigmas, DDIM 10: the third update (eta 10 at sigma 3.35) has gain 2.74; at DDIM 25 the largest
    is 1.30. Applied anyway, such an update leaves z farther from the denoised prediction every time."""
    world, ms, z, eps, denoise, _ = setup("eps")
    s10, s25 = ddim_uniform(ms, 10), ddim_uniform(ms, 25)
    g10 = update_gains(ms, s10, (10, 10, 10, 1), num_updates(len(s10), 0.6))
    g25 = update_gains(ms, s25, (10, 10, 10, 1), num_updates(len(s25), 0.6))
    assert max(g10) == pytest.approx(2.74, abs=0.01) and g10.index(max(g10)) == 2
    assert max(g25) == pytest.approx(1.30, abs=0.01)
    with pytest.raises(ValueError, match=r"step_sizes: update 3 of 7 \(eta 10 at sigma 3\.3\d*\) has gain 2\.74 > 2"
                                         r".*steps 25.*'1'"):
        ni_vsds(denoise, ms, z, eps, s10, 7.5)
    world.nfe = 0
    with pytest.raises(ValueError):
        ni_vsds(denoise, ms, z, eps, s10, 7.5, step_sizes="10,10,10,1")
    assert world.nfe == 0  # refused before any model call
    ni_vsds(denoise, ms, z, eps, s10, 7.5, step_sizes="10,10,5,1")  # gain 1.37 at update 3: accepted

    def distances(g, sigma, n=4):  # CFG 1: the exact denoiser's x0_hat is a fixed point of the update
        zz, out = z.clone(), []
        for _ in range(n):
            x0 = denoise(zz + sigma * eps, sigma, 1.0)
            out.append(float((zz - x0).norm()))
            zz = zz + g * (x0 - zz)
        return out

    diverging = distances(g10[2], float(s10[2]))
    contracting = distances(max(g25), float(s25[2]))
    assert diverging[-1] > 3 * diverging[0], diverging
    assert contracting[-1] < 0.1 * contracting[0], contracting


def test_parse_step_sizes():
    assert parse_step_sizes("10,10,10,1") == (10.0, 10.0, 10.0, 1.0)
    assert parse_step_sizes(" 10, 10 ,10,1, ") == (10.0, 10.0, 10.0, 1.0)
    assert parse_step_sizes("1") == (1.0,)
    assert parse_step_sizes("0.5 2") == (0.5, 2.0)
    assert parse_step_sizes([3, 1]) == (3.0, 1.0)


@pytest.mark.parametrize("text,match", [("10,ten,1", "'ten'.*not a number"), ("", "no step size"),
                                        (" , ", "no step size"), ("10,-1", "negative"), ("nan", "not finite"),
                                        ("inf", "not finite")])
def test_bad_step_sizes(text, match):
    with pytest.raises(ValueError, match=match):
        parse_step_sizes(text)
    world, ms, z, eps, denoise, sigmas = setup("eps")
    with pytest.raises(ValueError, match="step_sizes"):
        ni_vsds(denoise, ms, z, eps, sigmas, 7.5, step_sizes=text)


@pytest.mark.parametrize("p", [0.0, -0.2, 1.01, 2.0, math.nan])
def test_bad_p(p):
    world, ms, z, eps, denoise, sigmas = setup("eps")
    with pytest.raises(ValueError, match=r"p: .* outside \(0, 1\]"):
        ni_vsds(denoise, ms, z, eps, sigmas, 7.5, p=p)


@pytest.mark.parametrize("sigmas", [torch.tensor([14.6]), torch.tensor([])])
def test_too_short_schedule(sigmas):
    world, ms, z, eps, denoise, _ = setup("eps")
    with pytest.raises(ValueError, match="at least 2"):
        ni_vsds(denoise, ms, z, eps, sigmas, 7.5)


def test_bad_schedules_and_shapes():
    world, ms, z, eps, denoise, sigmas = setup("eps")
    with pytest.raises(ValueError, match="descending"):
        ni_vsds(denoise, ms, z, eps, sigmas.flip(0), 7.5)
    with pytest.raises(ValueError, match="must be > 0"):
        ni_vsds(denoise, ms, z, eps, torch.tensor([2.0, 0.0, 0.0]), 7.5, p=1.0)
    with pytest.raises(ValueError, match="eps_star"):
        ni_vsds(denoise, ms, z, eps[:3], sigmas, 7.5)
