"""LTX-2.x template twins (workflows/template_ltx*_freeinit.json) EXECUTED in the real ComfyUI.

The diff against the stock template and the up-to-date check are test_template_twins.py's (every twin).
Here each twin runs in-process (``execution.PromptExecutor`` after ``workflow_api.ui_to_api``) in both states
of the template's own "Switch to Text to Video?" x the A/B switch, with tiny random-weight models of the
real classes (tests/comfyui/tiny_av.py) behind the swapped loaders:

* CheckpointLoaderSimple (LTX-2.3) / UNETLoader (LTX-2.5) -> ``model_base.LTXAV`` (real ``LTXAVModel``, one
  block) with a prediction counter; the checkpoint's VAE and VAELoader (video) -> the real LTX causal
  video VAE at base width 8; LTXVAudioVAELoader / VAELoader (audio) -> the real LTX-2 audio VAE, tiny;
* LatentUpscaleModelLoader -> the real ``LatentUpsampler`` (x2 spatial, 32 channels, one block per stage);
* LoraLoaderModelOnly / LoraLoader -> the model with a random weight patch (``ModelPatcher.add_patches``,
  what a LoRA adds) on block 0's attention; LoraLoader passes its CLIP through;
* CLIPTextEncode -> random LTXAV text conditioning [1, 6, 32]. The text encoder loaders
  (LTXAVTextEncoderLoader, CLIPLoader) return no CLIP (None): nothing runs a text encoder.
  TextGenerateLTX2Prompt (an LLM) stays in the graph behind the template's "Boolean (Enable Prompt
  Enhance)" switch, which the test sets OFF (ComfySwitchNode is lazy: the LLM node is not run; a run of
  it would fail on the None CLIP);
* Width/Height 128 (base stage 64x64, refine 128x128), Duration 1 s at 8 fps (9 frames), LoadImage a
  64x64 picture, LoadAudio a 2 s stereo WAV (ia2v's given audio, id_lora's reference voice). Everything else
  (ManualSigmas, samplers, CFG, LTXVImgToVideoInplace / LTXVAddGuide strengths, LTXVReferenceAudio's identity
  guidance) as shipped. PromptServer.instance is the runner's message recorder (GetImageSize posts text to it).
  Templates without the "Switch to Text to Video?" (flf2v, id_lora) run in their one state.

A/B off must give the stock template's final latent (refine stage, video and audio) bit for bit, A/B on
must differ; in the image-to-video state the in-placed image frame (video frame 0) and in ia2v the given
audio stream (noise mask 0) equal the stock result with A/B on too (the refine stage in-places the image
again at strength 1, so the frame check guards the twin's output, not FreeInit's keep_given: that is
test_image_to_video's). Predictions are counted per stage (the stage is told by the latent size: the base stage
samples at half the refine stage's size; first/last-frame templates have one stage) and asserted: base
stage 3 x stock, refine stage unchanged.
On a ComfyUI without the nodes the twins use (0.3.64) the tests skip naming them.
"""
from __future__ import annotations

import json
import sys

import pytest
import torch

from comfy_harness import REPO_ROOT
import workflow_api as wa

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import build_template_twins as bt  # noqa: E402
from template_coverage import TWIN_KEY, templates_dir  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

LTX_TWINS = sorted((REPO_ROOT / "workflows").glob("template_ltx*_freeinit.json"))
SIZES = {"Width": 128, "Height": 128, "height": 128, "Duration": 1, "Frame Rate": 8, "Frame Rate(int)": 8}
T2V_SWITCH, ENHANCE_SWITCH = "Switch to Text to Video?", "Boolean (Enable Prompt Enhance)"
CALLS: dict = {}
CAPTURED: dict = {}


def _counted(model):
    """The model with a DIFFUSION_MODEL wrapper counting predictions (batch entries) per input size."""
    from comfy.patcher_extension import WrappersMP

    def count(executor, x, *args, **kwargs):
        t = x[0] if isinstance(x, (list, tuple)) else x.tensors[0] if hasattr(x, "tensors") else x  # video stream
        key = int(t[0].numel())
        CALLS[key] = CALLS.get(key, 0) + int(t.shape[0])
        return executor(x, *args, **kwargs)
    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, "tfv_test_nfe", count)
    return m


def _lora_patch(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    m = model.clone()
    sd = m.model.state_dict()
    keys = [k for k in sd if ".transformer_blocks.0.attn1." in k and k.endswith(".weight") and sd[k].ndim == 2]
    assert keys, "no block-0 attention weights to patch"
    m.add_patches({k: (0.05 * torch.randn(sd[k].shape, generator=g),) for k in keys}, 1.0)
    return m


def tiny_latent_upsampler(seed: int = 5):
    """The real LTX ``LatentUpsampler`` (x2 spatial, 128 latent channels, 32 mid channels, one block per
    stage) with random weights in a ModelPatcher, as LatentUpscaleModelLoader returns it."""
    import comfy.model_patcher
    import comfy.ops
    from comfy.ldm.lightricks.latent_upsampler import LatentUpsampler
    from checkpoints import init_random
    m = LatentUpsampler.from_config({"in_channels": 128, "mid_channels": 32, "num_blocks_per_stage": 1, "dims": 3,
                                     "spatial_upsample": True, "temporal_upsample": False, "spatial_scale": 2.0},
                                    operations=comfy.ops.disable_weight_init).to(torch.float32)
    init_random(m, seed)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(m, load_device=cpu, offload_device=cpu)


def _node(desc: str, inputs: dict, returns: tuple, fn):
    return type("TFVTestLTX", (), {
        "CATEGORY": "_tests", "FUNCTION": "run", "RETURN_TYPES": returns, "DESCRIPTION": "Test only: " + desc,
        "INPUT_TYPES": classmethod(lambda cls: {"required": inputs}),
        "run": lambda self, **kw: fn(**kw)})


def _model(seed):
    from tiny_av import tiny_ltxav
    return _counted(tiny_ltxav(seed))


def _nodes() -> dict:
    from tiny_av import ltxav_conds, tiny_ltx_audio_vae, tiny_ltx_video_vae
    seed = {"seed": ("INT", {"default": 0})}
    return {
        "TFVTestLTXCheckpoint": _node("tiny LTXAV model + tiny LTX video VAE for CheckpointLoaderSimple.", seed,
                                      ("MODEL", "CLIP", "VAE"), lambda seed: (_model(seed), None, tiny_ltx_video_vae())),
        "TFVTestLTXModel": _node("tiny LTXAV model for UNETLoader.", seed, ("MODEL",), lambda seed: (_model(seed),)),
        "TFVTestLTXVideoVAE": _node("tiny real LTX video VAE.", {}, ("VAE",), lambda: (tiny_ltx_video_vae(),)),
        "TFVTestLTXAudioVAE": _node("tiny real LTX-2 audio VAE.", {}, ("VAE",), lambda: (tiny_ltx_audio_vae(),)),
        "TFVTestLTXUpscaler": _node("tiny real LatentUpsampler.", {}, ("LATENT_UPSCALE_MODEL",),
                                    lambda: (tiny_latent_upsampler(),)),
        "TFVTestLTXNoClip": _node("no text encoder (nothing runs one).", {}, ("CLIP",), lambda: (None,)),
        "TFVTestLTXText": _node("random LTXAV text conditioning [1, 6, 32].", seed, ("CONDITIONING",),
                                lambda seed: ([[ltxav_conds(seed)[0][0][0], {}]],)),
        "TFVTestLTXLora": _node("a random weight patch on block 0's attention, CLIP passed through.",
                                {"model": ("MODEL",), "seed": ("INT", {"default": 0})}, ("MODEL", "CLIP"),
                                lambda model, seed: (_lora_patch(model, seed), None)),
        "TFVTestLTXCapture": type("TFVTestLTXCapture", (), {
            "CATEGORY": "_tests", "FUNCTION": "run", "RETURN_TYPES": (), "OUTPUT_NODE": True,
            "DESCRIPTION": "Test only: records a LATENT (video and audio streams).",
            "INPUT_TYPES": classmethod(lambda cls: {"required": {"samples": ("LATENT",)}}),
            "run": lambda self, samples: CAPTURED.update(final=[t.clone() for t in (
                samples["samples"].unbind() if samples["samples"].is_nested else [samples["samples"]])]) or {}}),
    }


def _example_wav(path, seconds: float = 2.0, rate: int = 16000) -> None:
    """A deterministic stereo 16-bit WAV (two sine tones) for LoadAudio."""
    import wave
    t = torch.arange(int(seconds * rate)) / rate
    pcm = (0.3 * torch.stack([torch.sin(2 * torch.pi * 220 * t), torch.sin(2 * torch.pi * 330 * t)], 1) * 32767)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.round().to(torch.int16).numpy().tobytes())


@pytest.fixture(scope="module")
def runner(pack, tmp_path_factory):
    import server
    import test_workflows as tw
    from test_template_twins import serving, skip_without_nodes
    from tiny_av import av_missing_reason
    skip_without_nodes(LTX_TWINS, "the LTX twins")
    if av_missing_reason():
        pytest.skip(av_missing_reason())
    if templates_dir() is None:
        pytest.skip("comfyui-workflow-templates is not installed in this ComfyUI's venv (0.33.0 installs it)")
    with serving(tmp_path_factory.mktemp("tfv_ltx_twins"), _nodes()) as inputs:
        _example_wav(inputs / "example.wav")
        runner = tw.Runner()
        # GetImageSize (first/last-frame templates) posts progress text to PromptServer.instance: record it
        runner.server.send_progress_text = lambda text, node_id, sid=None: runner.server.messages.append(("text", text))
        had = hasattr(server.PromptServer, "instance")
        old_instance = getattr(server.PromptServer, "instance", None)
        server.PromptServer.instance = runner.server
        try:
            yield runner
        finally:
            if had:
                server.PromptServer.instance = old_instance
            else:
                del server.PromptServer.instance


def _swap(api: dict, nid: str, class_type: str, **inputs) -> None:
    api[nid] = {"class_type": class_type, "inputs": inputs, "_meta": api[nid].get("_meta", {})}


def _tiny_api(ui: dict, info: dict, t2v: bool, ab: bool | None) -> dict:
    api = wa.ui_to_api(ui, info, strict=False)
    for i, nid in enumerate(wa.find_nodes(api, "CLIPTextEncode")):
        _swap(api, nid, "TFVTestLTXText", seed=100 + i)
    for nid in wa.find_nodes(api, "CheckpointLoaderSimple"):
        _swap(api, nid, "TFVTestLTXCheckpoint", seed=0)
    for nid in wa.find_nodes(api, "UNETLoader"):
        _swap(api, nid, "TFVTestLTXModel", seed=0)
    for nid in wa.find_nodes(api, "VAELoader"):
        audio = "audio" in str(api[nid]["inputs"]["vae_name"])
        _swap(api, nid, "TFVTestLTXAudioVAE" if audio else "TFVTestLTXVideoVAE")
    for nid in wa.find_nodes(api, "LTXVAudioVAELoader"):
        _swap(api, nid, "TFVTestLTXAudioVAE")
    for nid in wa.find_nodes(api, "LatentUpscaleModelLoader"):
        _swap(api, nid, "TFVTestLTXUpscaler")
    for nid in wa.find_nodes(api, "LTXAVTextEncoderLoader") + wa.find_nodes(api, "CLIPLoader"):
        _swap(api, nid, "TFVTestLTXNoClip")
    for i, nid in enumerate(wa.find_nodes(api, "LoraLoaderModelOnly") + wa.find_nodes(api, "LoraLoader")):
        _swap(api, nid, "TFVTestLTXLora", model=api[nid]["inputs"]["model"], seed=50 + i)
    for nid in wa.find_nodes(api, "LoadImage"):
        api[nid]["inputs"]["image"] = "example.png"
    for nid in wa.find_nodes(api, "LoadAudio"):
        api[nid]["inputs"]["audio"] = "example.wav"
    for ct, cast in (("PrimitiveInt", int), ("PrimitiveFloat", float)):
        for nid in wa.find_nodes(api, ct):
            title = api[nid]["_meta"]["title"]
            if title in SIZES:
                api[nid]["inputs"]["value"] = cast(SIZES[title])
    for nid in wa.find_nodes(api, "PrimitiveBoolean"):
        title = api[nid]["_meta"]["title"]
        state = {bt.TFV_AB_TITLE: ab, T2V_SWITCH: t2v, ENHANCE_SWITCH: False}.get(title)
        if state is not None:
            api[nid]["inputs"]["value"] = state
    stages = sorted(wa.find_nodes(api, "SamplerCustomAdvanced"),
                    key=lambda k: float(str(api[api[k]["inputs"]["sigmas"][0]]["inputs"]["sigmas"]).split(",")[0]))
    assert len(stages) in (1, 2), stages
    api["tfv_capture"] = {"class_type": "TFVTestLTXCapture", "inputs": {"samples": [stages[0], 0]}}  # refine/only
    return api


def _run(runner, ui: dict, t2v: bool, ab) -> tuple[list, dict]:
    api = _tiny_api(ui, wa.object_info_in_process(), t2v, ab)
    CALLS.clear()
    CAPTURED.clear()
    runner.run(api)
    sizes = sorted(CALLS)  # the base stage samples at half the refine stage's size
    assert len(sizes) == len(wa.find_nodes(api, "SamplerCustomAdvanced")), f"stages vs call sizes: {CALLS}"
    return CAPTURED["final"], dict(zip(["base", "refine"], [CALLS[k] for k in sizes]))


@pytest.mark.parametrize("t2v", [False, True], ids=["i2v-state", "t2v-state"])
@pytest.mark.parametrize("path", LTX_TWINS, ids=lambda p: p.stem)
def test_ltx_twin_runs_in_every_switch_state_and_ab_off_is_the_stock_result(runner, path, t2v):
    twin_ui = json.loads(path.read_text())
    src = templates_dir() / f"{twin_ui['extra'][TWIN_KEY]['source_template']}.json"
    if not src.exists():
        pytest.skip(f"{src.name} is not in the installed template package")
    stock_ui = json.loads(src.read_text())
    if t2v and T2V_SWITCH not in {n.get("title") for g in [stock_ui] + list(wa.subgraph_definitions(stock_ui).values())
                                  for n in g["nodes"]}:
        pytest.skip(f"{src.stem} has no '{T2V_SWITCH}' switch (one state)")
    ref, ref_calls = _run(runner, stock_ui, t2v, None)
    off, off_calls = _run(runner, twin_ui, t2v, False)
    on, on_calls = _run(runner, twin_ui, t2v, True)
    print(f"\nNFE {path.stem} t2v switch {t2v}: stock {ref_calls}, A/B off {off_calls}, A/B on {on_calls}; "
          f"streams {[tuple(t.shape) for t in ref]}")
    assert len(ref) == 2, "expected a video and an audio stream"
    assert all(torch.equal(a, b) for a, b in zip(off, ref)), "A/B off is not the stock template's result"
    assert off_calls == ref_calls
    assert all(a.shape == b.shape and torch.isfinite(a).all() for a, b in zip(on, ref))
    assert not torch.allclose(on[0], ref[0]), "FreeInit did not change the video"
    types = wa.node_types(stock_ui)
    if not t2v and "LTXVImgToVideoInplace" in types:  # the in-placed image frame is the stock graph's
        print(f"frame 0 |on - stock| max {float((on[0][:, :, 0] - ref[0][:, :, 0]).abs().max()):.3g}")
        assert torch.equal(on[0][:, :, 0], ref[0][:, :, 0]), "the given image frame changed"
    if "LTXVAudioVAEEncode" in types:  # ia2v: the given audio (noise mask 0) is the stock graph's
        print(f"audio |on - stock| max {float((on[1] - ref[1]).abs().max()):.3g}")
        assert torch.equal(on[1], ref[1]), "the given audio changed"
    iterations = bt.TWINS_BY_NAME[path.stem].widgets["iterations"]
    assert on_calls == {k: iterations * v if k == "base" else v for k, v in ref_calls.items()}
