"""Every shipped workflow (workflows/*.json, UI format) is converted to the API format with the
node definitions and EXECUTED by the real ComfyUI in-process (execution.validate_prompt +
execution.PromptExecutor), with tiny random-weight models.

What the runs change, and nothing else (everything else runs as shipped):

SD1.5 graphs
  * CheckpointLoaderSimple.ckpt_name -> a tiny SD1.5-format checkpoint written at test time
    (checkpoints.py: one-level UNet with SD1.5 shapes, full-size random CLIP-L, TAESD VAE), found
    through a temporary ``checkpoints`` folder;
  * ControlNetLoader.control_net_name -> a tiny random SD1.5 ControlNet file matching that UNet;
  * zs2_video_edit_ip2p_sd15: ckpt_name -> a tiny InstructPix2Pix-format SD1.5 checkpoint (the same
    tiny UNet with 8 input channels, which ComfyUI detects as SD15_instructpix2pix);
  * LoraLoader.lora_name -> a random LoRA (kohya key layout) on every transformer-block linear layer
    of that UNet and on CLIP-L's attention projections, written at test time;
  * EmptyLatentImage / ImageScale width, height 512 -> 32 (a 4x4 latent; frames = batch size unchanged);
  * KSampler / BasicScheduler steps -> 2; NIVSDSAnimate keeps its 25 steps and step sizes 10,10,10,1 (a
    shorter schedule with those step sizes is refused, see samplers/ni_vsds.update_gains), p 0.6 -> 0.12
    (int(25 * 0.12) + 1 = 4 updates: the three eta-10 updates and one eta-1 update).
Wan graphs (the loaders' outputs are swapped, docs/comfyui.md, Models for tests)
  * UNETLoader -> test node TFVTestTinyWanModel (comfy_harness.tiny_wan: WAN21_T2V, dim 32, 2 layers);
  * CLIPTextEncode -> test node TFVTestWanConditioning (random [1, 8, 32] text embeddings), the
    CLIPLoader then has no consumer and is removed;
  * VAELoader -> test node TFVTestWanVAE: the REAL Wan 2.1 VAE architecture (comfy.sd.VAE from a
    full-size random state dict, comfy_harness.wan21_vae, built once per session);
  * EmptyHunyuanLatentVideo width, height 832x480 -> 32x32, length 33 -> 5 (2 latent frames; the
    one-frame anchor latent keeps length 1); I4VGenStaticVideoFromLatent frames 9 -> 2;
  * KSampler steps 30 -> 2; NIVSDSAnimate steps 30 -> 3.
Wan 2.2 graphs (the stock templates' layouts; loaders swapped as for Wan 2.1)
  * 14B (two experts): each UNETLoader -> TFVTestTinyWanModel with its own weight seed (0: high-noise, 1:
    low-noise expert; Wan 2.2 14B experts are Wan 2.1-architecture); KSamplerAdvanced steps 20 -> 4 and
    the switch step 10 -> 2 (end_at_step of #1, start_at_step of #2);
  * 5B: UNETLoader -> TFVTestTinyWan22Model (comfy_harness.tiny_wan22_5b: WAN22_T2V, 48 channels, dim 32),
    VAELoader -> TFVTestWan22VAE: the REAL Wan 2.2 VAE architecture (48 channels, 16x spatial; full size,
    random weights, comfy_harness.wan22_vae, built once per session); Wan22ImageToVideoLatent 1280x704, 121
    frames -> 32x32, 5 frames (a [1, 48, 2, 2, 2] latent; wan22_5b_i4vgen's one-frame anchor keeps length 1);
    I4VGenStaticVideoFromLatent frames 31 -> 2 and NIVSDSAnimate steps 20 -> 3 as for Wan 2.1.
Flux graphs (the loaders' outputs are swapped as for Wan)
  * UNETLoader -> test node TFVTestTinyFluxModel (comfy_harness.tiny_flux: Flux-dev layout, hidden 64,
    1 double + 1 single block);
  * CLIPTextEncode -> test node TFVTestFluxConditioning (random [1, 6, 12] text + [1, 8] pooled output;
    FluxGuidance then adds the guidance as shipped), the DualCLIPLoader is removed;
  * VAELoader -> test node TFVTestFluxVAE: the REAL Flux VAE architecture (16-channel AutoencoderKL,
    comfy.sd.VAE, full size, random weights, built once per session);
  * EmptySD3LatentImage width, height 512 -> 32 (a 4x4 latent, frames = batch size unchanged);
    BasicScheduler steps 20 -> 2.
SD1.5 + AnimateDiff-Evolved (i4vgen_animatediff_sd15, smoothinit_animatediff_sd15; they run when that
pack is in the tested ComfyUI's custom_nodes/, else skip with the reason)
  * as SD1.5 above, but ckpt_name -> a FULL-size random SD1.5 checkpoint (AnimateDiff injects its
    motion modules into the real SD1.5 block layout) and ADE_LoadAnimateDiffModel.model_name -> a
    random AnimateDiff v2 motion module (mm_sd_v15_v2 layout) built with AnimateDiff-Evolved's own
    AnimateDiffModel class: the session fixture ``ade_models`` (conftest.py, ade_support.py), written
    once for all AnimateDiff tests. 16 frames and SmoothInit's preset as shipped.
Input/output folders are temporary (input: a generated example.png and workflows/inputs/*).
"""
from __future__ import annotations

import asyncio
import json
import shutil
import sys
import uuid
from pathlib import Path

import pytest
import torch

from comfy_harness import (REPO_ROOT, flux_conds, flux_vae, pack_module, prompt_executor, tiny_flux, tiny_wan,
                           tiny_wan22_5b, wan21_vae, wan22_vae, wan_conds)
import workflow_api as wa

WORKFLOW_DIR = REPO_ROOT / "workflows"
# Twins of the stock templates (template_*.json, scripts/build_template_twins.py) are tested by
# tests/comfyui/test_template_twins.py (diffed against the installed stock template, executed with tiny models).
ALL_WORKFLOW_IDS = sorted(p.stem for p in WORKFLOW_DIR.glob("*.json"))
WORKFLOW_FILES = sorted(p for p in WORKFLOW_DIR.glob("*.json") if not p.stem.startswith("template_"))
WORKFLOW_IDS = [p.stem for p in WORKFLOW_FILES]
TINY_CKPT = "tfv_tiny_sd15.safetensors"
TINY_CN = "tfv_tiny_sd15_controlnet.safetensors"
TINY_IP2P_CKPT = "tfv_tiny_sd15_ip2p.safetensors"
TINY_LORA = "tfv_tiny_sd15_lora.safetensors"

# Third-party nodes a workflow may use (by design), by workflow name: class-type prefix -> pack.
THIRD_PARTY_ALLOWED = {"i4vgen_animatediff_sd15": {"ADE_": "ComfyUI-AnimateDiff-Evolved"},
                       "smoothinit_animatediff_sd15": {"ADE_": "ComfyUI-AnimateDiff-Evolved"}}

SD15_OVERRIDES = {
    "CheckpointLoaderSimple": {"ckpt_name": TINY_CKPT},
    "ControlNetLoader": {"control_net_name": TINY_CN},
    "LoraLoader": {"lora_name": TINY_LORA},
    "EmptyLatentImage": {"width": 32, "height": 32},
    "ImageScale": {"width": 32, "height": 32},
    "KSampler": {"steps": 2},
    "BasicScheduler": {"steps": 2},
    "NIVSDSAnimate": {"p": 0.12},
}
WAN_OVERRIDES = {
    "EmptyHunyuanLatentVideo": {"width": 32, "height": 32, "length": lambda v: 1 if v == 1 else 5},
    "I4VGenStaticVideoFromLatent": {"frames": 2},
    "KSampler": {"steps": 2},
    "NIVSDSAnimate": {"steps": 3},
    "KSamplerAdvanced": {"steps": 4, "start_at_step": lambda v: 2 if v == 10 else v,
                         "end_at_step": lambda v: 2 if v == 10 else v},
    "Wan22ImageToVideoLatent": {"width": 32, "height": 32, "length": lambda v: 1 if v == 1 else 5},
}
FLUX_OVERRIDES = {
    "EmptySD3LatentImage": {"width": 32, "height": 32},
    "BasicScheduler": {"steps": 2},
}
# Expected outputs after the overrides: {output node class: frames per saved file}.
EXPECTED = {
    "zs2_text_to_video_sd15": {"SaveAnimatedWEBP": 8},
    "zs2_controlnet_sd15": {"SaveAnimatedWEBP": 8},
    "zs2_long_video_sd15": {"SaveAnimatedWEBP": 64},
    "smoothinit_t2i_sd15": {"SaveImage": 1},
    "zs2_fast_smoothinit_sd15": {"SaveAnimatedWEBP": 8},
    "wan_t2v_fast_smoothinit": {"SaveAnimatedWEBP": 5},
    "zs2_text_to_video_flux": {"SaveAnimatedWEBP": 8},
    "wan_t2v_freeinit": {"SaveAnimatedWEBP": 5},
    "zs2_freeinit_sd15": {"SaveAnimatedWEBP": 8},
    "i4vgen_wan": {"SaveAnimatedWEBP": 5},
    "i4vgen_real_image_sd15": {"SaveAnimatedWEBP": 8},
    "i4vgen_animatediff_sd15": {"SaveAnimatedWEBP": 16},
    "zs2_video_edit_ip2p_sd15": {"SaveAnimatedWEBP": 8},
    "zs2_lora_sd15": {"SaveAnimatedWEBP": 8},
    "smoothinit_animatediff_sd15": {"SaveAnimatedWEBP": 16},
    "wan22_t2v_freeinit": {"SaveAnimatedWEBP": 5},
    "wan22_t2v_smoothinit": {"SaveAnimatedWEBP": 5},
    "wan22_5b_t2v_freeinit": {"SaveAnimatedWEBP": 5},
    "wan22_5b_i4vgen": {"SaveAnimatedWEBP": 5},
}
# Workflows whose checkpoint is not a plain SD1.5 one: the tiny stand-in of the same format.
CKPT_BY_WORKFLOW = {"zs2_video_edit_ip2p_sd15": TINY_IP2P_CKPT}


def _is_core(info: dict) -> bool:
    mod = str(info.get("python_module", "nodes"))
    return mod == "nodes" or mod.startswith(("comfy_extras", "comfy_api_nodes"))


def _load_build_script():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import build_workflows
    finally:
        sys.path.pop(0)
    return build_workflows


def _ade_missing_reason():
    from ade_support import ade_missing_reason
    return ade_missing_reason()


# ---------------------------------------------------------------------------------------------
# In-process execution
# ---------------------------------------------------------------------------------------------

class _ServerStub:
    """What PromptExecutor needs of PromptServer: it records the messages."""

    def __init__(self):
        self.client_id = None
        self.last_node_id = None
        self.sockets_metadata = {}
        self.messages = []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass


class Runner:
    def __init__(self):
        self.server = _ServerStub()
        self.executor = prompt_executor(self.server)

    def validate(self, api: dict):
        import execution
        return asyncio.run(execution.validate_prompt(str(uuid.uuid4()), api, None))

    def run(self, api: dict) -> dict:
        valid = self.validate(api)
        assert valid[0], f"validation failed: {valid[1]} {json.dumps(valid[3], default=str)[:3000]}"
        self.server.messages.clear()
        self.executor.execute(api, str(uuid.uuid4()), extra_data={}, execute_outputs=valid[2])
        errors = [d for e, d in self.server.messages if e == "execution_error"]
        assert self.executor.success and not errors, f"execution failed: {errors}"
        return self.executor.history_result["outputs"]


def _example_png(path: Path, size: int = 64) -> None:
    """A deterministic RGB picture (colour gradients and a disc) for LoadImage: the tests never rely on
    files of the tested ComfyUI (a fresh checkout's input/ folder is empty)."""
    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1)
    disc = ((x - 0.6) ** 2 + (y - 0.4) ** 2 < 0.06).astype(np.float32)
    rgb = np.stack([x, y, 0.5 * (1 - x) + 0.5 * disc], axis=-1)
    Image.fromarray((rgb * 255).round().astype(np.uint8), "RGB").save(path, format="PNG")


@pytest.fixture(scope="module")
def dirs(pack, tmp_path_factory):
    """Temporary ComfyUI input/output folders and model folders with the tiny models."""
    import folder_paths
    from checkpoints import registered_folder, write_controlnet, write_sd15_checkpoint, write_sd15_lora
    root = tmp_path_factory.mktemp("tfv_workflows")
    models = root / "models"
    write_sd15_checkpoint(models / "checkpoints" / TINY_CKPT, "tiny", seed=0)
    write_sd15_checkpoint(models / "checkpoints" / TINY_IP2P_CKPT, "tiny", seed=0, variant="ip2p")
    write_controlnet(models / "controlnet" / TINY_CN, seed=0)
    write_sd15_lora(models / "loras" / TINY_LORA, "tiny", seed=0)
    inp, out = root / "input", root / "output"
    inp.mkdir()
    out.mkdir()
    _example_png(inp / "example.png")
    for f in (WORKFLOW_DIR / "inputs").glob("*"):
        shutil.copy(f, inp / f.name)
    old_in, old_out = folder_paths.get_input_directory(), folder_paths.get_output_directory()
    folder_paths.set_input_directory(str(inp))
    folder_paths.set_output_directory(str(out))
    with registered_folder("checkpoints", models / "checkpoints"), \
            registered_folder("controlnet", models / "controlnet"), registered_folder("loras", models / "loras"):
        yield {"root": root, "input": inp, "output": out}
    folder_paths.set_input_directory(old_in)
    folder_paths.set_output_directory(old_out)


# Test-only nodes that stand in for the Wan and Flux loaders (registered for this module only).

def _stand_in(doc: str, return_type: str, make, seed_tooltip: str | None = "seed"):
    """A test-only node class (category _tests) returning ``make(seed)``, or ``make()`` when
    ``seed_tooltip`` is None (no inputs)."""
    spec = {} if seed_tooltip is None else {"seed": ("INT", {"default": 0, "min": 0, "max": 2 ** 31,
                                                             "tooltip": seed_tooltip})}

    def run(self, **kwargs):
        return (make(**kwargs),)

    return type("TFVTestStandIn", (), {"__doc__": doc, "CATEGORY": "_tests", "FUNCTION": "run",
                                       "RETURN_TYPES": (return_type,),
                                       "INPUT_TYPES": classmethod(lambda cls: {"required": dict(spec)}), "run": run})


TEST_NODES = {
    "TFVTestTinyWanModel": _stand_in("Test only: a tiny random-weight Wan 2.1 T2V model in place of UNETLoader.",
                                     "MODEL", tiny_wan, "weights seed"),
    "TFVTestWanConditioning": _stand_in("Test only: random Wan text conditioning [1, 8, 32] in place of "
                                        "CLIPTextEncode.", "CONDITIONING", lambda seed: wan_conds(seed)[0]),
    "TFVTestWanVAE": _stand_in("Test only: the real Wan 2.1 VAE architecture with random weights in place of "
                               "VAELoader.", "VAE", wan21_vae, None),
    "TFVTestTinyWan22Model": _stand_in("Test only: a tiny random-weight Wan 2.2 5B (ti2v, 48 channels) model in "
                                       "place of UNETLoader.", "MODEL", tiny_wan22_5b, "weights seed"),
    "TFVTestWan22VAE": _stand_in("Test only: the real Wan 2.2 VAE architecture (48 channels, 16x spatial) with "
                                 "random weights in place of VAELoader.", "VAE", wan22_vae, None),
    "TFVTestTinyFluxModel": _stand_in("Test only: a tiny random-weight Flux-dev-architecture model in place of "
                                      "UNETLoader.", "MODEL", tiny_flux, "weights seed"),
    "TFVTestFluxConditioning": _stand_in("Test only: random Flux text conditioning ([1, 6, 12] + pooled [1, 8]) in "
                                         "place of CLIPTextEncode.", "CONDITIONING",
                                         lambda seed: flux_conds(seed, guidance=None)[0]),
    "TFVTestFluxVAE": _stand_in("Test only: the real Flux VAE architecture (16-channel AutoencoderKL, full size) "
                                "with random weights in place of VAELoader.", "VAE", flux_vae, None),
}


@pytest.fixture(scope="module")
def runner(dirs):
    import nodes
    nodes.NODE_CLASS_MAPPINGS.update(TEST_NODES)
    try:
        yield Runner()
    finally:
        for k in TEST_NODES:
            nodes.NODE_CLASS_MAPPINGS.pop(k, None)


def _apply_overrides(api: dict, table: dict) -> None:
    for class_type, values in table.items():
        for nid in wa.find_nodes(api, class_type):
            for name, v in values.items():
                assert name in api[nid]["inputs"], f"{class_type} {nid} has no input {name}"
                api[nid]["inputs"][name] = v(api[nid]["inputs"][name]) if callable(v) else v


def _swap_wan_loaders(api: dict) -> None:
    for i, nid in enumerate(wa.find_nodes(api, "CLIPTextEncode")):
        api[nid] = {"class_type": "TFVTestWanConditioning", "inputs": {"seed": 100 + i}}
    for i, nid in enumerate(wa.find_nodes(api, "UNETLoader")):   # two experts: weight seeds 0 (high), 1 (low)
        five_b = "ti2v_5B" in str(api[nid]["inputs"].get("unet_name"))
        api[nid] = {"class_type": "TFVTestTinyWan22Model" if five_b else "TFVTestTinyWanModel", "inputs": {"seed": i}}
    for nid in wa.find_nodes(api, "VAELoader"):
        wan22 = str(api[nid]["inputs"].get("vae_name")).startswith("wan2.2_vae")
        api[nid] = {"class_type": "TFVTestWan22VAE" if wan22 else "TFVTestWanVAE", "inputs": {}}
    for nid in wa.find_nodes(api, "CLIPLoader"):
        users = [k for k, v in api.items() for x in v["inputs"].values() if isinstance(x, list) and x[:1] == [nid]]
        assert not users, f"CLIPLoader {nid} still used by {users}"
        del api[nid]


def _swap_flux_loaders(api: dict) -> None:
    for i, nid in enumerate(wa.find_nodes(api, "CLIPTextEncode")):
        api[nid] = {"class_type": "TFVTestFluxConditioning", "inputs": {"seed": 100 + i}}
    for nid in wa.find_nodes(api, "UNETLoader"):
        api[nid] = {"class_type": "TFVTestTinyFluxModel", "inputs": {"seed": 0}}
    for nid in wa.find_nodes(api, "VAELoader"):
        api[nid] = {"class_type": "TFVTestFluxVAE", "inputs": {}}
    for nid in wa.find_nodes(api, "DualCLIPLoader"):
        users = [k for k, v in api.items() for x in v["inputs"].values() if isinstance(x, list) and x[:1] == [nid]]
        assert not users, f"DualCLIPLoader {nid} still used by {users}"
        del api[nid]


def test_override_tables_name_shipped_nodes():
    """The override tables only name inputs that exist on shipped nodes (guards against silent no-ops)."""
    for table in (SD15_OVERRIDES, WAN_OVERRIDES, FLUX_OVERRIDES):
        for class_type in table:
            assert any(class_type in p.read_text() for p in WORKFLOW_FILES), class_type


# ---------------------------------------------------------------------------------------------
# Static checks on the files
# ---------------------------------------------------------------------------------------------

def test_all_expected_workflows_exist():
    assert set(WORKFLOW_IDS) == set(EXPECTED), "workflows/ and EXPECTED must list the same workflows"


def test_workflow_files_are_generated_from_the_node_definitions(pack):
    """workflows/*.json are what scripts/build_workflows.py writes from the tested ComfyUI's node
    definitions, compared as ``workflow_api.drift_view`` sees them: everything but the output slots
    no link uses (a newer ComfyUI adds outputs to core nodes, e.g. 0.33.0's Save nodes return their
    IMAGE; the files, generated with ComfyUI 0.3.64, load in both)."""
    bw = _load_build_script()
    info = bw.build_object_info()
    built = bw.build_all(info)
    stale = [n for n, ui in built.items()
             if not (WORKFLOW_DIR / f"{n}.json").exists()
             or wa.drift_view(json.loads((WORKFLOW_DIR / f"{n}.json").read_text()))
             != wa.drift_view(json.loads(bw.render(ui)))]
    assert not stale, f"stale workflow files {stale}: run python scripts/build_workflows.py"
    assert set(bw.EXAMPLE_INPUTS) == {p.name for p in (WORKFLOW_DIR / "inputs").iterdir()}
    for name, make in bw.EXAMPLE_INPUTS.items():
        assert (WORKFLOW_DIR / "inputs" / name).read_bytes() == make(), name


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=WORKFLOW_IDS)
def test_ui_format_is_well_formed(path):
    wf = json.loads(path.read_text())
    for key in ("last_node_id", "last_link_id", "nodes", "links", "groups", "config", "extra", "version"):
        assert key in wf, key
    assert wf["version"] == 0.4
    nodes = {n["id"]: n for n in wf["nodes"]}
    assert len(nodes) == len(wf["nodes"]), "duplicate node ids"
    assert wf["last_node_id"] >= max(nodes)
    links = {l[0]: l for l in wf["links"]}
    assert len(links) == len(wf["links"]) and wf["last_link_id"] >= max(links)
    for n in wf["nodes"]:
        for key in ("id", "type", "pos", "size", "flags", "order", "mode", "inputs", "outputs", "properties",
                    "widgets_values"):
            assert key in n, (n["id"], key)
        assert n["mode"] == 0
        if n["type"] != "Note":
            assert n["properties"]["Node name for S&R"] == n["type"]
        for idx, inp in enumerate(n["inputs"]):
            if inp["link"] is None:
                continue
            lid, src, src_slot, dst, dst_slot, typ = links[inp["link"]]
            assert (dst, dst_slot) == (n["id"], idx), f"link {lid} does not point at node {n['id']} input {idx}"
            out = nodes[src]["outputs"][src_slot]
            assert lid in out["links"] and out["type"] == typ
            assert wa._types_compatible(inp["type"], typ), (n["type"], inp["name"], inp["type"], typ)
        for slot, out in enumerate(n["outputs"]):
            assert out["slot_index"] == slot
            for lid in out["links"]:
                assert links[lid][1:3] == [n["id"], slot]
    # every link is referenced by exactly its destination input
    for lid, src, src_slot, dst, dst_slot, typ in wf["links"]:
        assert nodes[dst]["inputs"][dst_slot]["link"] == lid
    # left-to-right: every link goes rightwards
    for lid, src, _, dst, _, _ in wf["links"]:
        assert nodes[src]["pos"][0] < nodes[dst]["pos"][0], f"link {lid} goes right-to-left"
    assert any(n["type"] == "Note" for n in wf["nodes"]), "each workflow explains itself in a Note"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=WORKFLOW_IDS)
def test_workflow_uses_only_core_nodes_and_ours(path, pack, live_info):
    wf = json.loads(path.read_text())
    ours = set(pack.NODE_CLASS_MAPPINGS)
    allowed = THIRD_PARTY_ALLOWED.get(path.stem, {})
    for t in wa.node_types(wf):
        if t in wa.VIRTUAL_NODE_TYPES or t in ours:
            continue
        if any(t.startswith(p) for p in allowed):
            continue
        assert t in live_info, f"{path.name}: unknown node type {t}"
        assert _is_core(live_info[t]), f"{path.name}: {t} is neither a core node nor one of this pack's"
    assert any(n["type"] in ours for n in wf["nodes"]), "each workflow uses this pack"


def test_recorded_third_party_definitions_match_live_ones_when_installed(live_info):
    for k, v in wa.recorded_external_defs().items():
        if k not in live_info:
            continue
        assert [s.name for s in wa.widget_slots(live_info[k])] == [s.name for s in wa.widget_slots(v)], k


@pytest.fixture
def placeholder_models(dirs, tmp_path):
    """Empty files with the shipped model names, so the combo values validate as a user's would."""
    from checkpoints import registered_folder
    bw = _load_build_script()
    names = {"checkpoints": [bw.SD15_CKPT, bw.SD15_IP2P_CKPT], "controlnet": [bw.SD15_SCRIBBLE_CN],
             "loras": [bw.SD15_LORA], "diffusion_models": [bw.WAN_UNET, bw.FLUX_UNET, bw.WAN22_HIGH, bw.WAN22_LOW, bw.WAN22_5B],
             "text_encoders": [bw.WAN_TE, bw.FLUX_CLIP_L, bw.FLUX_T5], "vae": [bw.WAN_VAE, bw.FLUX_VAE, bw.WAN22_VAE]}
    import folder_paths
    if "animatediff_models" in folder_paths.folder_names_and_paths:
        names["animatediff_models"] = [bw.AD_MOTION_MODEL]
    stack = []
    for folder, files in names.items():
        d = tmp_path / folder
        d.mkdir()
        for f in files:
            (d / f).write_bytes(b"")
        cm = registered_folder(folder, d)
        cm.__enter__()
        stack.append(cm)
    yield
    for cm in reversed(stack):
        cm.__exit__(None, None, None)


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=WORKFLOW_IDS)
def test_shipped_widget_values_validate(path, object_info, runner, placeholder_models):
    """The file as shipped (no override) passes ComfyUI's own prompt validation: every widget value is
    in range / one of the combo choices, every required input is connected."""
    if path.stem in THIRD_PARTY_ALLOWED and _ade_missing_reason():
        pytest.skip(_ade_missing_reason())
    api = wa.convert_file(path, object_info)
    valid = runner.validate(api)
    assert valid[0], f"{path.name}: {valid[1]} {json.dumps(valid[3], default=str)[:3000]}"


# ---------------------------------------------------------------------------------------------
# Execution
# ---------------------------------------------------------------------------------------------

def _check_outputs(name: str, outputs: dict, api: dict, out_dir: Path):
    from PIL import Image
    import numpy as np
    expected = EXPECTED[name]
    for class_type, frames in expected.items():
        ids = wa.find_nodes(api, class_type)
        assert ids, f"{name}: no {class_type}"
        for nid in ids:
            files = outputs.get(nid, {}).get("images", [])
            assert files, f"{name}: {class_type} {nid} wrote nothing"
            for f in files:
                p = out_dir / f.get("subfolder", "") / f["filename"]
                assert p.is_file(), p
                with Image.open(p) as im:
                    n = getattr(im, "n_frames", 1)
                    assert n == frames, f"{p.name}: {n} frames, expected {frames}"
                    arrs = []
                    for i in range(n):
                        im.seek(i)
                        arrs.append(np.asarray(im.convert("RGB"), dtype=np.float32))
                a = np.stack(arrs)
                assert np.isfinite(a).all()
                assert a.std() > 1.0, f"{p.name} is (nearly) constant"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=WORKFLOW_IDS)
def test_workflow_runs(path, object_info, runner, dirs, request):
    name = path.stem
    if name in THIRD_PARTY_ALLOWED and _ade_missing_reason():
        pytest.skip(_ade_missing_reason())
    api = wa.convert_file(path, object_info)
    if name in THIRD_PARTY_ALLOWED:
        # AnimateDiff needs the real SD1.5 block layout: full-size random SD1.5 + random motion module
        # (session fixture ade_models, shared with test_animatediff.py).
        m = request.getfixturevalue("ade_models")
        _apply_overrides(api, dict(SD15_OVERRIDES, CheckpointLoaderSimple={"ckpt_name": m["ckpt"]},
                                   ADE_LoadAnimateDiffModel={"model_name": m["motion_model"]}))
    elif wa.find_nodes(api, "DualCLIPLoader"):
        _swap_flux_loaders(api)
        _apply_overrides(api, FLUX_OVERRIDES)
    elif wa.find_nodes(api, "UNETLoader"):
        _swap_wan_loaders(api)
        _apply_overrides(api, WAN_OVERRIDES)
    else:
        ckpt = CKPT_BY_WORKFLOW.get(name, TINY_CKPT)
        _apply_overrides(api, dict(SD15_OVERRIDES, CheckpointLoaderSimple={"ckpt_name": ckpt}))
    if name != "smoothinit_animatediff_sd15":
        outputs = runner.run(api)
    else:
        # The SmoothInit paper's setting under AnimateDiff-Evolved: count the real UNet evaluations of
        # the whole graph (one per cond/uncond chunk of the 16 frames): Fast-SmoothInit-10's NFE formula
        # plus KSampler's CFG steps, nothing doubled by ADE's wrappers.
        from comfy.ldm.modules.diffusionmodules.openaimodel import UNetModel
        batches = []

        def count(module, args):
            if isinstance(module, UNetModel):
                batches.append(int(args[0].shape[0]))

        handle = torch.nn.modules.module.register_module_forward_pre_hook(count)
        try:
            outputs = runner.run(api)
        finally:
            handle.remove()
        (ks,) = wa.find_nodes(api, "KSampler")
        (si_node,) = wa.find_nodes(api, "SmoothInitModelPatch")
        frames = api[wa.find_nodes(api, "EmptyLatentImage")[0]]["inputs"]["batch_size"]
        si_in = api[si_node]["inputs"]
        assert si_in["method"] == "Fast-SmoothInit-10"
        core = pack_module(request.getfixturevalue("pack"), "samplers.smoothinit")
        w1 = si_in["cfg"] or api[ks]["inputs"]["cfg"]  # cfg 0: the DDIM step follows the sampler's CFG
        expect = core.nfe(10, w1, si_in["inversion_cfg"]) + 2 * api[ks]["inputs"]["steps"]
        assert all(b % frames == 0 for b in batches), batches
        assert sum(b // frames for b in batches) == expect == 30 + 2 * 2, batches
    _check_outputs(name, outputs, api, dirs["output"])


def test_tiny_ip2p_checkpoint_and_lora_are_what_they_stand_in_for(dirs):
    """The stand-ins go through the core loaders as the real files would: the IP2P file is detected as
    ComfyUI's SD15_instructpix2pix (8 input channels, the image latent concatenated to the noise), and
    LoraLoader patches every LoRA module (40 UNet linear layers, 48 CLIP-L projections) and changes the
    model's prediction and the text encoding."""
    import comfy.model_base
    import nodes
    with torch.inference_mode():
        ip2p = nodes.CheckpointLoaderSimple().load_checkpoint(TINY_IP2P_CKPT)[0]
        assert isinstance(ip2p.model, comfy.model_base.SD15_instructpix2pix)
        assert ip2p.model.diffusion_model.input_blocks[0][0].weight.shape[1] == 8
        model, clip, _ = nodes.CheckpointLoaderSimple().load_checkpoint(TINY_CKPT)[:3]
        lmodel, lclip = nodes.LoraLoader().load_lora(model, clip, TINY_LORA, 0.8, 0.8)
        assert len(lmodel.patches) == 40 and len(lclip.patcher.patches) == 48
        pos = nodes.CLIPTextEncode().encode(clip, "a lighthouse")[0]
        lpos = nodes.CLIPTextEncode().encode(lclip, "a lighthouse")[0]
        assert (pos[0][0] - lpos[0][0]).abs().max() > 1e-2
        lat = {"samples": torch.zeros(2, 4, 8, 8)}
        plain = nodes.KSampler().sample(model, 1, 1, 1.0, "euler", "normal", pos, pos, lat)[0]["samples"]
        patched = nodes.KSampler().sample(lmodel, 1, 1, 1.0, "euler", "normal", pos, pos, lat)[0]["samples"]
        assert (plain - patched).abs().max() > 1e-2
        again = nodes.KSampler().sample(model, 1, 1, 1.0, "euler", "normal", pos, pos, lat)[0]["samples"]
        assert torch.equal(plain, again)                     # the LoRA went on a clone only


def test_template_browser_lists_and_serves_every_workflow(tmp_path):
    """ComfyUI's own template routes (app/custom_node_manager.py, Workflow -> Browse Templates) list
    every workflows/*.json of the pack folder and serve it unchanged."""
    import aiohttp.web
    from aiohttp.test_utils import TestClient, TestServer
    from app.custom_node_manager import CustomNodeManager
    from checkpoints import registered_folder
    pack_dir = tmp_path / "custom_nodes" / "comfyui-training-free-video"
    pack_dir.parent.mkdir()
    pack_dir.symlink_to(REPO_ROOT, target_is_directory=True)

    async def run():
        app = aiohttp.web.Application()
        routes = aiohttp.web.RouteTableDef()
        CustomNodeManager().add_routes(routes, app, [(pack_dir.name, str(pack_dir))])
        app.add_routes(routes)
        async with TestClient(TestServer(app)) as client:
            listed = await (await client.get("/workflow_templates")).json()
            served = {}
            for name in ALL_WORKFLOW_IDS:
                r = await client.get(f"/api/workflow_templates/{pack_dir.name}/{name}.json")
                served[name] = (r.status, await r.read())
        return listed, served

    with registered_folder("custom_nodes", pack_dir.parent):
        listed, served = asyncio.run(run())
    assert sorted(listed[pack_dir.name]) == ALL_WORKFLOW_IDS
    assert {"zs2_video_edit_ip2p_sd15", "zs2_lora_sd15"} <= set(WORKFLOW_IDS)
    for name, (status, body) in served.items():
        assert status == 200 and body == (WORKFLOW_DIR / f"{name}.json").read_bytes(), name
