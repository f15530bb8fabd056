"""The toy video model's format (benchmarks/toy_video/build.py) loads through ComfyUI's own loaders.

No training: the build's config is written with its initial weights into a temporary folder and
loaded with UNETLoader / VAELoader, then sampled for 2 steps and decoded (seconds)."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.toy_video import build as B  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def loaded(pack, tmp_path_factory):
    import inspect

    import checkpoints as ck
    import comfy.ldm.wan.vae
    import nodes
    if "image_channels" not in inspect.signature(comfy.ldm.wan.vae.WanVAE.__init__).parameters:
        pytest.skip("this ComfyUI's Wan VAE has a fixed width (no image_channels / width read from the state dict, "
                    "as in 0.33.0): the toy video model's dim-8 VAE needs a ComfyUI that reads it")
    d = tmp_path_factory.mktemp("toy_video")
    dit_path, vae_path = B.untrained_files(d)
    with ck.registered_folder("diffusion_models", d), ck.registered_folder("vae", d):
        model = nodes.UNETLoader().load_unet(dit_path.name, "default")[0]
        vae = nodes.VAELoader().load_vae(vae_path.name)[0]
    cond = torch.load(d / "conditioning.pt")
    return model, vae, cond, dit_path


def test_dit_is_detected_as_wan21_t2v_at_the_build_widths(loaded):
    import comfy.supported_models
    import comfy.utils
    model, _, _, dit_path = loaded
    assert type(model.model.model_config) is comfy.supported_models.WAN21_T2V
    dm = model.model.diffusion_model
    assert (dm.dim, dm.num_heads, len(dm.blocks)) == (B.DIT["dim"], B.DIT["dim"] // 128, B.DIT["num_layers"])
    saved = comfy.utils.load_torch_file(str(dit_path))
    live = dm.state_dict()
    assert set(saved) == set(live)
    assert all(torch.equal(saved[k].float(), live[k].float().cpu()) for k in saved)


def test_vae_loads_at_its_width_and_round_trips_the_shapes(loaded):
    import nodes
    _, vae, _, _ = loaded
    assert type(vae.first_stage_model).__name__ == "WanVAE"
    assert vae.first_stage_model.dim == B.VAE_DIM and vae.latent_channels == 16
    lat = vae.encode(torch.rand(17, 64, 64, 3))
    assert tuple(lat.shape) == (1, 16, 5, 8, 8)
    img = nodes.VAEDecode().decode(vae, {"samples": lat})[0]
    assert tuple(img.reshape(-1, 64, 64, 3).shape) == (17, 64, 64, 3)


def test_ksampler_runs_with_the_build_conditioning(loaded):
    import nodes
    model, _, cond, _ = loaded
    pos, neg = [[cond["a red circle"], {}]], [[cond[""], {}]]
    assert tuple(cond[""].shape) == (1, B.TOKENS, B.TEXT_DIM)
    lat = {"samples": torch.zeros(1, 16, 5, 8, 8)}
    out = nodes.KSampler().sample(model, 0, 2, 6.0, "uni_pc", "simple", pos, neg, lat)[0]["samples"]
    assert tuple(out.shape) == (1, 16, 5, 8, 8) and torch.isfinite(out).all()
