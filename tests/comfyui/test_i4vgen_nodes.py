"""I4VGen nodes in the real ComfyUI (tiny random-weight SD1.5 frames-as-batch and Wan flow models)."""
import pytest
import torch

from comfy_harness import (pack_module, sd15_conds, tiny_sd15, tiny_wan22_5b, wan21_vae, wan22_vae,
                           wan_conds)

STEPS = 10
P = 0.6
TAU = int(STEPS * P) + 1  # 7


def node(mods, name):
    return mods["nodes"].NODE_CLASS_MAPPINGS[name]()


def image_latent(seed=0, shape=(1, 4, 8, 8)):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def static_video(mods, model, latent, frames=4):
    if latent.ndim == 5:  # a frame-axis NI-VSDS input (the still clip through the Wan VAE is tested below)
        return {"samples": latent.repeat(1, 1, frames, 1, 1)}
    with torch.inference_mode():
        return node(mods, "I4VGenStaticVideoFromLatent").build({"samples": latent}, frames, "auto", 0, model=model)[0]


def animate(mods, model, conds, latent, seed=1, steps=STEPS, cfg=7.5, scheduler="ddim_uniform", p=P,
            step_sizes="10,10,5,1", sigmas=None):
    """NI-VSDS Animate; step sizes 10,10,5,1 because at DDIM 10 on SD1.5 the official 10,10,10,1 are refused
    (third update's gain 2.74 > 2, see test_official_step_sizes_refused_on_a_short_schedule)."""
    pos, neg = conds
    with torch.inference_mode():
        out = node(mods, "NIVSDSAnimate").animate(model, pos, neg, latent, seed, steps, cfg, scheduler, p, step_sizes,
                                                  sigmas=sigmas)
    return out[0]["samples"]


def counting(model, on_call=None):
    """A clone of ``model`` that logs every model call (its sigma and NFE = chunks of cond/uncond)."""
    log = []
    m = model.clone()

    def wrapper(apply_model, args):
        log.append((float(args["timestep"].flatten()[0]), len(args["cond_or_uncond"])))
        out = apply_model(args["input"], args["timestep"], **args["c"])
        if on_call is not None:  # after the call: ComfyUI 0.33.0 checks interrupts inside every op
            on_call(len(log))
        return out

    m.set_model_unet_function_wrapper(wrapper)
    return m, log


def frames_of(x):
    return [x[i] for i in range(x.shape[0])] if x.ndim == 4 else [x[:, :, t] for t in range(x.shape[2])]


def assert_animated(static, out):
    assert out.shape == static.shape and torch.isfinite(out).all()
    fr = frames_of(out)
    st = frames_of(static)
    assert all(torch.equal(st[0], f) for f in st)  # the input was static
    scale = out.abs().mean()
    for i in range(1, len(fr)):  # every frame differs from the first: the static video got motion
        assert (fr[i] - fr[0]).abs().mean() > 1e-3 * scale
    assert (out - static).abs().mean() > 1e-3 * scale


# --------------------------------------------------------------------------- NI-VSDS Animate

@pytest.mark.parametrize("model_type", ["EPS", "V_PREDICTION"])
def test_animates_frames_as_batch_sd15(mods, model_type):
    model = tiny_sd15(model_type)
    sv = static_video(mods, model, image_latent())
    counted, log = counting(model)
    out = animate(mods, counted, sd15_conds(), sv)
    assert_animated(sv["samples"], out)
    # tau CFG calls (2 model passes each) over the first tau sigmas of the schedule, high to low
    sched = mods["bridge"].calculate_sigmas(model, "ddim_uniform", STEPS)
    assert sum(n for _, n in log) == 2 * TAU
    sig_seen = sorted({s for s, _ in log}, reverse=True)
    assert sig_seen == pytest.approx([float(s) for s in sched[:TAU]], rel=1e-5)


def test_animates_flow_wan(mods, wan):
    sv = static_video(mods, wan, image_latent(shape=(1, 16, 1, 8, 8)), frames=3)
    assert sv["samples"].shape == (1, 16, 3, 8, 8)
    counted, log = counting(wan)
    out = animate(mods, counted, wan_conds(), sv, cfg=5.0, scheduler="simple")
    assert_animated(sv["samples"], out)
    sched = mods["bridge"].calculate_sigmas(wan, "simple", STEPS)
    assert sum(n for _, n in log) == 2 * TAU
    assert sorted({s for s, _ in log}, reverse=True) == pytest.approx([float(s) for s in sched[:TAU]], rel=1e-5)
    assert all(0 < s <= 1 for s, _ in log)  # flow sigmas


@pytest.mark.parametrize("steps,p", [(10, 0.6), (8, 0.25), (5, 1.0), (12, 0.05)])
def test_update_count_is_int_np_plus_one(mods, sd15, steps, p):
    sv = static_video(mods, sd15, image_latent(), frames=2)
    counted, log = counting(sd15)
    animate(mods, counted, sd15_conds(), sv, steps=steps, cfg=1.0, p=p, step_sizes="1")  # cfg 1: one call per update
    assert len(log) == min(int(steps * p) + 1, steps)


def test_sigmas_input_replaces_steps_and_scheduler(mods, sd15):
    sv = static_video(mods, sd15, image_latent(), frames=2)
    sigmas = torch.tensor([10.0, 6.0, 3.0, 1.5, 0.5, 0.0])
    counted, log = counting(sd15)
    animate(mods, counted, sd15_conds(), sv, steps=50, cfg=1.0, p=0.5, sigmas=sigmas)
    assert [s for s, _ in log] == pytest.approx([10.0, 6.0, 3.0], rel=1e-5)  # int(5 * 0.5) + 1 = 3


def test_official_step_sizes_refused_on_a_short_schedule(mods, sd15):
    """SD1.5 DDIM 10: the third update (eta 10 at sigma 3.35) would move the latent 2.74 times the way to the
    denoised prediction; refused before any model call, with the fix. At the node's 25 steps they run."""
    sv = static_video(mods, sd15, image_latent(), frames=2)
    counted, log = counting(sd15)
    with pytest.raises(ValueError, match=r"update 3 of 7 \(eta 10 at sigma 3\.3\d*\) has gain 2\.7\d > 2.*steps 25") as e:
        animate(mods, counted, sd15_conds(), sv, steps=10, step_sizes="10,10,10,1")
    assert str(e.value).startswith("NI-VSDS Animate (I4VGen): step_sizes:")
    assert log == []
    out = animate(mods, counted, sd15_conds(), sv, steps=25, step_sizes="10,10,10,1")
    assert len(log) == int(25 * 0.6) + 1 and torch.isfinite(out).all()
    # a connected SIGMAS replaces steps: the error says so (steps=25 here is ignored)
    short = mods["bridge"].calculate_sigmas(sd15, "ddim_uniform", 10)
    log.clear()
    with pytest.raises(ValueError, match=r"update 3 of 7 .* gain 2\.7\d > 2.*connected sigmas.*BasicScheduler with 25"):
        animate(mods, counted, sd15_conds(), sv, steps=25, step_sizes="10,10,10,1", sigmas=short)
    assert log == []


@pytest.mark.parametrize("which", ["sd", "wan"])
def test_zero_step_sizes_return_the_static_video(mods, sd15, wan, which):
    model, conds, lat = ((sd15, sd15_conds(), image_latent()) if which == "sd"
                         else (wan, wan_conds(), image_latent(shape=(1, 16, 1, 8, 8))))
    sv = static_video(mods, model, lat, frames=2)
    out = animate(mods, model, conds, sv, step_sizes="0")
    torch.testing.assert_close(out, sv["samples"], rtol=1e-5, atol=1e-5)  # latent space in == out


def test_zero_latent_goes_through_the_models_latent_space(mods, wan):
    zeros = {"samples": torch.zeros(1, 16, 2, 8, 8)}
    out = animate(mods, wan, wan_conds(), zeros, step_sizes="0")
    torch.testing.assert_close(out, zeros["samples"], rtol=1e-5, atol=1e-5)


def test_deterministic_for_a_fixed_seed(mods, sd15):
    sv = static_video(mods, sd15, image_latent())
    a = animate(mods, sd15, sd15_conds(), sv, seed=3)
    b = animate(mods, sd15, sd15_conds(), sv, seed=3)
    c = animate(mods, sd15, sd15_conds(), sv, seed=4)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("patch", ["DependencyNoiseModelPatch", "SmoothInitModelPatch"])
def test_noise_patches_on_the_model_do_not_touch_the_fixed_noise(mods, sd15, patch):
    """NI-VSDS draws eps* once from its seed: a MODEL that also carries a noise-replacing patch (for
    the regeneration KSampler) must give exactly the unpatched result and cost no extra calls."""
    video = static_video(mods, sd15, image_latent(3))
    with torch.inference_mode():
        if patch == "DependencyNoiseModelPatch":
            patched = node(mods, patch).patch(sd15, 0.01, 10, 15, "dependency", 0.9)[0]
        else:
            patched = node(mods, patch).patch(sd15, "Fast-SmoothInit-10", 7.5, 1.0, 50, 10, 0.05, "uniform",
                                              0.05, 0.05, 0)[0]
    counted, log = counting(patched)
    out = animate(mods, counted, sd15_conds(), video)
    torch.testing.assert_close(out, animate(mods, sd15, sd15_conds(), video), rtol=0, atol=0)
    assert len(log) == TAU


def test_input_model_not_mutated(mods, sd15):
    nodes = mods["nodes"]
    pos, neg = sd15_conds()
    empty = {"samples": torch.zeros(2, 4, 8, 8)}

    def ksample():
        with torch.inference_mode():
            return nodes.KSampler().sample(sd15, 7, 3, 7.5, "euler", "normal", pos, neg, empty)[0]["samples"]

    before_opts = repr(sd15.model_options)
    before_patches = (dict(sd15.patches), dict(sd15.object_patches), repr(sd15.wrappers), repr(sd15.callbacks))
    weights = {k: v.clone() for k, v in sd15.model.diffusion_model.state_dict().items()}
    ref = ksample()
    animate(mods, sd15, (pos, neg), static_video(mods, sd15, image_latent()))
    assert repr(sd15.model_options) == before_opts
    assert (dict(sd15.patches), dict(sd15.object_patches), repr(sd15.wrappers), repr(sd15.callbacks)) == before_patches
    for k, v in sd15.model.diffusion_model.state_dict().items():
        assert torch.equal(v, weights[k]), k
    assert torch.equal(ksample(), ref)


def test_interrupt_raises_and_leaves_the_pack_usable(mods, sd15):
    import comfy.model_management as mm
    sv = static_video(mods, sd15, image_latent())
    fresh = animate(mods, sd15, sd15_conds(), sv, seed=9)

    def stop(n):
        if n == 3:
            mm.interrupt_current_processing(True)

    counted, log = counting(sd15, on_call=stop)
    try:
        with pytest.raises(mm.InterruptProcessingException):
            animate(mods, counted, sd15_conds(), sv, seed=9)
    finally:
        mm.interrupt_current_processing(False)
    assert len(log) == 3  # cancelled after call 3, before the next model call, not after the loop
    assert torch.equal(animate(mods, sd15, sd15_conds(), sv, seed=9), fresh)


# --------------------------------------------------------------------------- bad inputs

@pytest.mark.parametrize("case,match", [
    ("image_for_sd", "single image latent"),
    ("video_for_sd", "video latent with a frame axis"),
    ("image_for_wan", "is an image latent.*needs a video latent"),
    ("one_frame_for_wan", "single frame"),
    ("channels", "latent channels"),
    ("p_zero", r"p: 0.0 is outside \(0, 1\]"),
    ("p_big", r"p: 1.5 is outside \(0, 1\]"),
    ("step_sizes", "step_sizes: 'x' .* not a number"),
    ("step_sizes_empty", "no step size"),
    ("short_sigmas", "at least 2"),
])
def test_ni_vsds_bad_inputs(mods, sd15, wan, case, match):
    sdc, wanc = sd15_conds(), wan_conds()
    video_sd = {"samples": torch.randn(4, 4, 8, 8)}
    args = dict(model=sd15, conds=sdc, latent=video_sd)
    if case == "image_for_sd":
        args["latent"] = {"samples": torch.randn(1, 4, 8, 8)}
    elif case == "video_for_sd":
        args["latent"] = {"samples": torch.randn(1, 4, 4, 8, 8)}
    elif case == "image_for_wan":
        args.update(model=wan, conds=wanc, latent={"samples": torch.randn(4, 16, 8, 8)})
    elif case == "one_frame_for_wan":
        args.update(model=wan, conds=wanc, latent={"samples": torch.randn(1, 16, 1, 8, 8)})
    elif case == "channels":
        args["latent"] = {"samples": torch.randn(4, 16, 8, 8)}
    elif case == "p_zero":
        args["p"] = 0.0
    elif case == "p_big":
        args["p"] = 1.5
    elif case == "step_sizes":
        args["step_sizes"] = "10,x,1"
    elif case == "step_sizes_empty":
        args["step_sizes"] = " "
    elif case == "short_sigmas":
        args["sigmas"] = torch.tensor([14.6])
    model, conds, latent = args.pop("model"), args.pop("conds"), args.pop("latent")
    with pytest.raises(ValueError, match=match) as e:
        animate(mods, model, conds, latent, **args)
    assert str(e.value).startswith("NI-VSDS Animate (I4VGen):")


# --------------------------------------------------------------------------- static video

def test_static_video_from_latent_layouts(mods, sd15, wan):
    n = node(mods, "I4VGenStaticVideoFromLatent")
    batch = image_latent(shape=(3, 4, 8, 8))
    out = n.build({"samples": batch}, 5, "auto", 2)[0]["samples"]  # no model: 4-D input -> frames as batch
    assert out.shape == (5, 4, 8, 8) and all(torch.equal(f, batch[2]) for f in out)
    out = n.build({"samples": batch}, 5, "auto", 1, model=sd15)[0]["samples"]
    assert out.shape == (5, 4, 8, 8) and torch.equal(out[4], batch[1])
    one = image_latent(shape=(1, 16, 1, 8, 8))
    assert n.build({"samples": one}, 4, "frames as batch", 0)[0]["samples"].shape == (4, 16, 8, 8)


@pytest.mark.parametrize("case,match", [
    ("index", "batch_index 3 is out of range"),
    ("video_input", "already a video latent with 4 frames"),
    ("layout_vs_wan", "layout 'frames as batch' contradicts the MODEL"),
    ("layout_vs_sd", "layout 'frame axis' contradicts the MODEL"),
    ("channels", "16 latent channels .* has 4"),
    ("video_latent_without_vae", r"vae: samples \[1, 16, 1, 8, 8\] is a video latent needs the video model's VAE"),
    ("frame_axis_without_vae", r"vae: a static video on the frame axis .* needs the video model's VAE"),
    ("frame_axis_for_wan_without_vae", r"vae: .*Connect the video model's VAE"),
    ("image_vae", "vae: .* needs the video model's causal video VAE .* image VAE"),
])
def test_static_video_bad_inputs(mods, sd15, wan, case, match):
    n = node(mods, "I4VGenStaticVideoFromLatent")
    lat, layout, idx, model, vae = image_latent(shape=(2, 4, 8, 8)), "auto", 0, None, None
    if case == "index":
        idx = 3
    elif case == "video_input":
        lat, layout = torch.randn(1, 16, 4, 8, 8), "frames as batch"
    elif case == "layout_vs_wan":
        lat, layout, model = torch.randn(1, 16, 1, 8, 8), "frames as batch", wan
    elif case == "layout_vs_sd":
        layout, model = "frame axis", sd15
    elif case == "channels":
        lat, model = torch.randn(1, 16, 8, 8), sd15
    elif case == "video_latent_without_vae":
        lat = torch.randn(1, 16, 1, 8, 8)
    elif case == "frame_axis_without_vae":
        layout = "frame axis"
    elif case == "frame_axis_for_wan_without_vae":
        lat, model = torch.randn(1, 16, 8, 8), wan
    elif case == "image_vae":
        lat, vae = torch.randn(1, 16, 1, 8, 8), tiny_taesd_vae(16)
    with pytest.raises(ValueError, match=match) as e:
        n.build({"samples": lat}, 4, layout, idx, model=model, vae=vae)
    assert str(e.value).startswith("Static Video From Latent (I4VGen):")


def tiny_taesd_vae(channels, seed=0):
    """A real ComfyUI VAE (TAESD architecture) with random weights and ``channels`` latent channels."""
    import comfy.sd
    import comfy.taesd.taesd
    sd = comfy.taesd.taesd.TAESD(latent_channels=channels).state_dict()
    g = torch.Generator().manual_seed(seed)
    sd = {k: (torch.randn(v.shape, generator=g) / max(1, v[0].numel()) ** 0.5 if v.ndim > 1 else torch.zeros_like(v))
          for k, v in sd.items()}
    sd["vae_scale"], sd["vae_shift"] = torch.tensor(1.0), torch.tensor(0.0)
    return comfy.sd.VAE(sd=sd)


def test_static_video_from_image_encodes_once_in_the_models_layout(mods, sd15, wan):
    n = node(mods, "I4VGenStaticVideoFromImage")
    images = torch.rand(2, 64, 64, 3, generator=torch.Generator().manual_seed(0))
    vae4 = tiny_taesd_vae(4)
    with torch.inference_mode():
        ref = vae4.encode(images[1:2])
        out = n.build(images, vae4, 4, "auto", 1, model=sd15)[0]["samples"]
    assert out.shape == (4, 4, 8, 8) and all(torch.allclose(f, ref[0], atol=1e-5) for f in out)
    vae16 = tiny_taesd_vae(16)
    with pytest.raises(ValueError, match="Static Video From Image \\(I4VGen\\): vae: .*causal video VAE .* image VAE"):
        with torch.inference_mode():
            n.build(images, vae16, 3, "auto", 0, model=wan)  # an image VAE cannot make a Wan still clip
    with pytest.raises(ValueError, match="Static Video From Image \\(I4VGen\\): .*16 latent channels"):
        with torch.inference_mode():
            n.build(images, vae16, 3, "auto", 0, model=sd15)
    with pytest.raises(ValueError, match="Static Video From Image \\(I4VGen\\): batch_index 2"):
        n.build(images, vae4, 3, "auto", 2)


# --------------------------------------------------------------------------- static video through the Wan VAE

@pytest.fixture(scope="module")
def wan_vae(pack):
    return wan21_vae()


def still_image(seed=0, size=16):
    return torch.rand(1, size, size, 3, generator=torch.Generator().manual_seed(seed))


def test_bridge_inverts_the_video_vaes_frame_count(mods, wan_vae):
    bridge = mods["bridge"]
    assert bridge.causal_video_frames_fn(tiny_taesd_vae(4)) is None
    fn = bridge.causal_video_frames_fn(wan_vae)
    assert [fn(n) for n in (1, 4, 5, 9, 33, 81)] == [1, 1, 2, 3, 9, 21]
    assert [bridge.picture_frames_for(wan_vae, t) for t in (1, 2, 3, 9, 21)] == [1, 5, 9, 33, 81]


def test_static_video_from_image_is_the_wan_vaes_encoding_of_the_still_clip(mods, wan, wan_vae):
    n = node(mods, "I4VGenStaticVideoFromImage")
    img = still_image()
    with torch.inference_mode():
        out = n.build(img, wan_vae, 2, "auto", 0, model=wan)[0]["samples"]
        clip = wan_vae.encode(img.repeat(5, 1, 1, 1))  # 4 * (2 - 1) + 1 picture frames, one encode
        single = wan_vae.encode(img)
        assert torch.equal(n.build(img, wan_vae, 2, "auto", 0)[0]["samples"], out)  # auto follows the VAE
    assert out.shape == (1, 16, 2, 2, 2)
    torch.testing.assert_close(out, clip, rtol=0, atol=0)
    # the old construction, the one-frame latent repeated, is NOT this still clip
    torch.testing.assert_close(out[:, :, 0], single[:, :, 0], rtol=1e-5, atol=1e-5)
    assert (out[:, :, 1] - single[:, :, 0]).abs().max() > 1e-2


@pytest.mark.parametrize("anchor_frames", [1, 2])
def test_static_video_from_latent_with_the_wan_vae_holds_picture_frame_0(mods, wan, wan_vae, anchor_frames):
    """A Wan latent (a one-frame anchor, or a 2-latent-frame clip whose first frame is held) is
    decoded, its picture frame 0 held still for 4 * (T - 1) + 1 frames and encoded once."""
    n = node(mods, "I4VGenStaticVideoFromLatent")
    g = torch.Generator().manual_seed(3)
    lat = torch.randn(2, 16, 1 if anchor_frames == 1 else 2, 2, 2, generator=g)  # batch_index 1 is the anchor
    with torch.inference_mode():
        out = n.build({"samples": lat}, 2, "auto", 1, model=wan, vae=wan_vae)[0]["samples"]
        frame0 = wan_vae.decode(lat[1:2])[:, 0]  # picture frame 0 of the anchor latent
        ref = wan_vae.encode(frame0.repeat(5, 1, 1, 1))
    assert out.shape == (1, 16, 2, 2, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (out[:, :, 1] - out[:, :, 0]).abs().max() > 1e-2  # not a latent repeated along the frame axis


def test_static_video_from_latent_with_the_wan22_vae(mods, wan_vae):
    """Wan 2.2 5B (workflows/wan22_5b_i4vgen.json): its VAE has 48 channels and 16x spatial but the same
    causal 4x temporal compression, so the stock 121 frames are 31 latent frames, and the one-frame anchor
    becomes the encoding of its picture frame 0 held for 4 * (T - 1) + 1 frames, in the 5B's layout."""
    n = node(mods, "I4VGenStaticVideoFromLatent")
    bridge, vae22, wan5b = mods["bridge"], wan22_vae(), tiny_wan22_5b()
    assert bridge.vae_latent_channels(vae22) == 48
    assert [bridge.picture_frames_for(vae22, t) for t in (1, 2, 9, 31)] == [1, 5, 33, 121]
    lat = torch.randn(1, 48, 1, 2, 2, generator=torch.Generator().manual_seed(4))  # a 32x32 one-frame anchor
    with torch.inference_mode():
        out = n.build({"samples": lat}, 2, "auto", 0, model=wan5b, vae=vae22)[0]["samples"]
        frame0 = vae22.decode(lat)[:, 0]
        ref = vae22.encode(frame0.repeat(5, 1, 1, 1))
    assert frame0.shape == (1, 32, 32, 3) and out.shape == (1, 48, 2, 2, 2)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    assert (out[:, :, 1] - out[:, :, 0]).abs().max() > 1e-2  # not a latent repeated along the frame axis
    with pytest.raises(ValueError, match="Static Video From Latent \\(I4VGen\\): samples has 48 latent channels .* VAE's latent "
                                         "has 16"):
        with torch.inference_mode():
            n.build({"samples": lat}, 2, "auto", 0, vae=wan_vae)  # the Wan 2.1 VAE on a 5B latent


def test_frames_as_batch_ignores_the_vae(mods, sd15, wan_vae):
    n = node(mods, "I4VGenStaticVideoFromLatent")
    lat = image_latent(shape=(2, 4, 8, 8))
    with torch.inference_mode():
        with_vae = n.build({"samples": lat}, 5, "auto", 1, model=sd15, vae=wan_vae)[0]["samples"]
    assert with_vae.shape == (5, 4, 8, 8) and all(torch.equal(f, lat[1]) for f in with_vae)


# --------------------------------------------------------------------------- anchor select

def test_anchor_select_picks_the_best_candidate(mods):
    n = node(mods, "I4VGenAnchorSelect")
    imgs = torch.rand(4, 16, 16, 3, generator=torch.Generator().manual_seed(0))
    img, idx, score = n.select([imgs], ["highest"], ["0.1, 0.7, 0.3, 0.7"])  # ties keep the first
    assert idx == 1 and score == pytest.approx(0.7) and torch.equal(img, imgs[1:2])
    _, idx, _ = n.select([imgs], ["lowest"], [""], scores=[torch.tensor([0.5, 0.2, 0.9, 0.3])])
    assert idx == 1
    _, idx, _ = n.select([imgs], ["highest"], ["9,9,9,9"], scores=[0.1, 0.2, 3.0, -1.0])  # one FLOAT per image
    assert idx == 2
    _, idx, _ = n.select([imgs[:2], imgs[2:]], ["highest"], [""], scores=[[1.0, 2.0], [5.0, 0.0]])
    assert idx == 2
    for bad, match in [("1,2,3", "3 score"), ("1,2,x,4", "'x' is not a number"), ("", "0 score")]:
        with pytest.raises(ValueError, match=f"I4VGen Anchor Select: .*{match}"):
            n.select([imgs], ["highest"], [bad])
    with pytest.raises(ValueError, match="not finite"):
        n.select([imgs], ["highest"], [""], scores=[[1.0, float("nan"), 0.0, 0.0]])


def test_anchor_select_accepts_any_score_link(mods):
    """The scores socket accepts any upstream type in ComfyUI's own prompt validation."""
    import asyncio

    import execution
    graph = {
        "1": {"class_type": "EmptyImage", "inputs": {"width": 16, "height": 16, "batch_size": 3, "color": 0}},
        "2": {"class_type": "PrimitiveFloat", "inputs": {"value": 0.5}},
        "3": {"class_type": "I4VGenAnchorSelect", "inputs": {"images": ["1", 0], "mode": "highest",
                                                            "scores_text": "", "scores": ["2", 0]}},
        "4": {"class_type": "PreviewImage", "inputs": {"images": ["3", 0]}},
    }
    res = execution.validate_prompt("t", graph, None)
    res = asyncio.run(res) if asyncio.iscoroutine(res) else res
    assert res[0], res


# --------------------------------------------------------------------------- node API rules

def test_node_definitions_follow_the_api_rules(mods):
    i4 = mods["i4"]
    classes, names = mods["registry"].mappings(i4.__name__)
    assert set(classes) == set(names) and len(classes) == 4
    assert "NI-VSDS" in names["NIVSDSAnimate"]
    for key, cls in classes.items():
        assert mods["nodes"].NODE_CLASS_MAPPINGS[key] is cls
        spec = cls.INPUT_TYPES()
        for section in spec.values():
            for name, entry in section.items():
                assert entry[1].get("tooltip"), f"{key}.{name} has no tooltip"
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS)
        assert cls.DESCRIPTION and cls.CATEGORY and callable(getattr(cls, cls.FUNCTION))
    req = i4.NIVSDSAnimate.INPUT_TYPES()["required"]
    assert req["seed"][1]["control_after_generate"] and req["step_sizes"][1]["default"] == "10,10,10,1"
    assert req["p"][1]["default"] == 0.6


def test_stated_refusal_boundary_matches_update_gains(pack, mods, sd15):
    """Issue 20 item 6: the step counts at which the docstring, the node description and the steps tooltip say
    the official 10,10,10,1 are refused on SD1.5 (p 0.6) are exactly those where update_gains exceeds
    MAX_GAIN on ComfyUI's own schedules (was "fewer than about 15 steps"; 11-15 steps run, gains 1.45-1.80)."""
    import re
    nv = pack_module(pack, "samplers.ni_vsds")
    ms = sd15.get_model_object("model_sampling")
    official = nv.parse_step_sizes("10,10,10,1")

    def highest_gain(sched, steps):
        sig = mods["bridge"].calculate_sigmas(sd15, sched, steps)
        return max(nv.update_gains(ms, sig, official, nv.num_updates(len(sig), P)))

    refused = {s: [n for n in range(1, 61) if highest_gain(s, n) > nv.MAX_GAIN] for s in ("ddim_uniform", "normal")}
    assert refused == {"ddim_uniform": list(range(2, 11)), "normal": list(range(3, 11))}
    cls = mods["i4"].NIVSDSAnimate
    for text in (nv.ni_vsds.__doc__, cls.DESCRIPTION):
        flat = " ".join(text.split()).replace("`", "")
        stated = re.findall(r"(\d+)-(\d+) (ddim_uniform|normal)(?: or (\d+)-(\d+) (normal))?", flat)
        ranges = {}
        for lo, hi, s, lo2, hi2, s2 in stated:
            ranges[s] = list(range(int(lo), int(hi) + 1))
            if s2:
                ranges[s2] = list(range(int(lo2), int(hi2) + 1))
        assert ranges == refused, flat
        assert "about 15" not in flat
    doc = " ".join(nv.ni_vsds.__doc__.split())
    assert f"gain {highest_gain('ddim_uniform', 10):.2f}" in doc and f"(10: {highest_gain('normal', 10):.2f})" in doc
    above = [max(highest_gain(s, n) for n in range(11, 61)) for s in ("ddim_uniform", "normal")]
    assert f"{above[0]:.2f} / {above[1]:.2f} or less" in doc
    tip = cls.INPUT_TYPES()["required"]["steps"][1]["tooltip"]
    assert "SD1.5: 10 or fewer ddim_uniform or normal steps" in tip and max(refused["normal"]) == 10
