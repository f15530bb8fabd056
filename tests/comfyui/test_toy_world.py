"""The trained toy-world checkpoint (benchmarks/toy_world) in the real ComfyUI.

Skips (reason printed with -rs) when the checkpoint is not cached: building it trains for ~30 CPU
minutes (``python -m benchmarks.toy_world.build``), which tests never do.
"""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from benchmarks.toy_world import build as B  # noqa: E402
from benchmarks.toy_world import world as W  # noqa: E402


@pytest.fixture(scope="module")
def toy():
    path = B.checkpoint_path()
    if not path.exists():
        pytest.skip(f"toy-world checkpoint not cached at {path}; build it with `python -m benchmarks.toy_world.build` "
                    "(about 30 CPU minutes)")
    import checkpoints as ck
    import nodes
    with ck.registered_folder("checkpoints", path.parent):
        model, clip, vae = nodes.CheckpointLoaderSimple().load_checkpoint(path.name)[:3]
    return model, clip, vae


def test_checkpoint_loads_as_sd15(toy):
    import comfy.supported_models
    model, clip, vae = toy
    assert isinstance(model.model.model_config, comfy.supported_models.SD15)
    assert type(vae.first_stage_model).__name__ == "TAESD"


def test_vae_round_trip_keeps_the_class(toy):
    import nodes
    _, _, vae = toy
    b = W.sample(12, torch.Generator().manual_seed(11), labels=torch.arange(12))
    lat = nodes.VAEEncode().encode(vae, b.images.permute(0, 2, 3, 1))[0]
    img = nodes.VAEDecode().decode(vae, lat)[0]
    assert (W.judge(img).labels == b.labels).float().mean() >= 0.9


def test_plain_sampling_follows_the_prompt(toy):
    """KSampler (DDIM 20, CFG 7.5) from CLIPTextEncode prompts: the judge agrees with the prompt for most
    of the 12 classes, and the empty prompt does not (the text conditioning is what decides)."""
    import nodes
    model, clip, vae = toy
    labels = torch.arange(12)
    conds = [nodes.CLIPTextEncode().encode(clip, W.caption(int(k)))[0] for k in labels]
    pos = [[torch.cat([c[0][0] for c in conds]), {"pooled_output": torch.cat([c[0][1]["pooled_output"] for c in conds])}]]
    neg = nodes.CLIPTextEncode().encode(clip, "")[0]
    lat = nodes.EmptyLatentImage().generate(64, 64, 12)[0]
    out = nodes.KSampler().sample(model, 3, 20, 7.5, "ddim", "ddim_uniform", pos, neg, lat)[0]
    v = W.judge(nodes.VAEDecode().decode(vae, out)[0])
    acc = float((v.labels == labels).float().mean())
    assert acc >= 0.66, f"prompt accuracy {acc:.2f} on 12 samples"
    # with the labels shifted by one colour the same pictures are judged wrong
    assert float((v.labels == (labels + 3) % 12).float().mean()) <= 0.25
