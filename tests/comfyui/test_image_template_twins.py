"""ZS^2 twins of the stock IMAGE templates (workflows/template_*_zs2.json, scripts/template_twins_image.py;
issue 21 item 4).

1. Each twin is regenerated from the installed stock template and must equal the shipped file, and it is
   DIFFED against the stock template (comfyui-workflow-templates, 0.33.0 pins 0.11.44): every stock node
   keeps its JSON except the empty latent's batch_size (1 -> the frames), the root Save Image (same id and
   input link, now SaveAnimatedWEBP), a seed control "randomize" -> "fixed", and the subgraph node's added
   A/B input; every stock link is kept except the sampler's model link, which starts at the added A/B switch
   whose on_false is the stock source; the added nodes are only Temporal Momentum Attention, Dependency
   Noise (KSampler), the A/B PrimitiveBoolean, its ComfySwitchNode and one note.
2. Each twin is EXECUTED in the real ComfyUI (in-process ``execution.PromptExecutor``, a fresh executor per
   run so no cached output is shared between runs) after ``workflow_api.ui_to_api``, in both A/B states and
   every state of the template's own switches, with tiny random-weight models of the real classes behind
   the swapped loaders (test-only nodes; ``tiny_image_dits`` / ``comfy_harness``):
     * UNETLoader -> Z-Image (``supported_models.ZImage``), Krea 2, Flux 2 (Klein 9B: without the guidance
       embedding), Qwen-Image (2512 is Qwen-Image's architecture), each with a DIFFUSION_MODEL wrapper counting
       predictions; the int8 templates differ from their bf16/fp8 ones in the loader's file only;
     * CLIPTextEncode -> random conditioning of that family (Z-Image: caption features with attention mask;
       Flux 2: text, FluxGuidance adds the guidance as shipped); CLIPLoader dropped;
     * TextGenerate (Krea 2's prompt enhancement, a Qwen3-VL LM) -> a test node returning its prompt;
     * LoraLoaderModelOnly -> a random LoRA file (generic ``diffusion_model.<key>.lora_up/down`` layout, rank
       2) on every linear layer of the tiny model, through the real LoraLoaderModelOnly;
     * VAELoader -> the real architectures with random weights: Flux VAE (Z-Image ae), Wan 2.1 VAE (Qwen-Image
       VAE: Krea 2, Qwen-Image), Flux 2 VAE with the small decoder (full_encoder_small_decoder);
     * sizes: empty latents 32x32 (Flux 2 edit: the reference image scaled to 0.01 MP, the latent follows it),
       frames 8 -> 3; steps as shipped.
   A/B off must equal the stock template run with the same swaps and the same batch bit for bit (decoded
   images, torch.equal) without running the pack's nodes; A/B on gives 3 frames that differ from each
   other and from A/B off, and an animated WEBP of 3 frames. NFE (predictions per frame) is asserted.
On a ComfyUI without the template package, the nodes or the model classes a twin uses (0.3.64) the tests
skip saying which.
"""
from __future__ import annotations

import asyncio
import functools
import json
import sys
import uuid
from pathlib import Path

import pytest
import torch

from comfy_harness import REPO_ROOT, flux_vae, io_folders, prompt_executor, qwen_conds, tiny_qwen_image, wan21_vae
import workflow_api as wa

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import build_template_twins as bt  # noqa: E402
import template_twins_image as ti  # noqa: E402
from template_coverage import TWIN_KEY, templates_dir  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TWIN_FILES = [REPO_ROOT / "workflows" / f"{t.name}.json" for t in ti.IMAGE_TWINS]
ADDED = {"TemporalMomentumAttention", "DependencyNoiseModelPatch"}
FRAMES = 3
CALLS: list = []
CAPTURED: dict = {}
# The template's own switches (PrimitiveBoolean titles) and the stock NFE per prediction, by switch state.
_KREA2_SWITCHES = ["Boolean (Refine Prompt?)", "Boolean (Enable LoRA?)"]
SWITCHES = {"template_z_image_turbo_zs2": [], "template_krea2_turbo_zs2": _KREA2_SWITCHES,
            "template_flux2_zs2": ["Enable 8 steps lora"], "template_qwen_image_2512_zs2": ["Enable 4 Steps LoRA?"],
            "template_krea2_turbo_int8_zs2": _KREA2_SWITCHES,
            "template_z_image_turbo_int8_zs2": [],
            "template_flux2_t2i_zs2": ["Enable Turbo LoRA"],
            "template_flux2_klein_9b_zs2": []}


def _nfe(name: str, state: dict) -> int:
    """Predictions per frame of the stock template in ``state`` (cond + uncond count 2; CFG 1 runs cond only)."""
    on = any(state.values())
    return {"template_z_image_turbo_zs2": 8, "template_krea2_turbo_zs2": 8,
            "template_flux2_zs2": 8 if on else 20, "template_qwen_image_2512_zs2": 4 if on else 100,
            "template_krea2_turbo_int8_zs2": 8,
            "template_z_image_turbo_int8_zs2": 8,
            "template_flux2_t2i_zs2": 8 if on else 20,
            "template_flux2_klein_9b_zs2": 40}[name]


def test_every_image_twin_file_exists_and_names_its_source():
    for t, p in zip(ti.IMAGE_TWINS, TWIN_FILES):
        assert p.is_file(), f"{p.name} missing: run python scripts/build_workflows.py on ComfyUI 0.33.0"
        meta = json.loads(p.read_text())["extra"][TWIN_KEY]
        assert meta["source_template"] == t.source and meta["frames"] == ti.FRAMES and meta["nfe"] == t.nfe


@pytest.fixture(scope="module")
def tdir(pack):
    d = templates_dir()
    if d is None:
        pytest.skip("comfyui-workflow-templates is not installed in this ComfyUI's venv (0.33.0 installs it)")
    return d


@pytest.fixture(scope="module")
def info(pack):
    import build_workflows
    return build_workflows.build_object_info()  # with the pack's node types, as the build script sees them


def _stock(tdir: Path, t) -> dict:
    src = tdir / f"{t.source}.json"
    if not src.exists():
        pytest.skip(f"{src.name} is not in the installed template package")
    return json.loads(src.read_text())


# ---------------------------------------------------------------------------------------------
# 1. Built from the stock JSON, diffed against it
# ---------------------------------------------------------------------------------------------

def _norm(n: dict) -> dict:
    n = json.loads(json.dumps(n))
    for o in n.get("outputs") or []:
        o.pop("links", None)
    return n


@pytest.mark.parametrize("t", ti.IMAGE_TWINS, ids=lambda t: t.name)
def test_twin_is_the_stock_template_plus_zs2_only(t, tdir, info, pack):
    stock = _stock(tdir, t)
    path = REPO_ROOT / "workflows" / f"{t.name}.json"
    twin = json.loads(path.read_text())
    rebuilt = ti.build_image_twin(t, stock, info, twin["extra"][TWIN_KEY]["templates_package"])
    assert wa.drift_view(json.loads(json.dumps(rebuilt))) == wa.drift_view(twin), \
        f"{path.name} is not what scripts/template_twins_image.py builds from the installed {t.source}.json"
    meta = twin["extra"][TWIN_KEY]
    tg, sg = {None: twin, **wa.subgraph_definitions(twin)}, {None: stock, **wa.subgraph_definitions(stock)}
    assert set(tg) == set(sg)
    added_all = []
    for gid, s in sg.items():
        g = tg[gid]
        tn, sn = {n["id"]: n for n in g["nodes"]}, {n["id"]: n for n in s["nodes"]}
        assert set(sn) <= set(tn), f"stock nodes missing: {set(sn) - set(tn)}"
        added = [tn[i] for i in set(tn) - set(sn)]
        added_ids = {n["id"] for n in added}
        added_all += added
        for n in added:
            assert (n["type"] in ADDED or (n["type"] == "PrimitiveBoolean" and n.get("title") == bt.TFV_AB_TITLE)
                    or (n["type"] == "ComfySwitchNode" and n.get("title", "").startswith("Switch (training-free"))
                    or (n["type"] == "MarkdownNote" and n.get("title") == bt.TFV_NOTE_TITLE)), (n["id"], n["type"])
        for i, b in sn.items():
            a, b = _norm(tn[i]), _norm(b)
            if gid is None and a["type"] in sg:  # the subgraph node: the A/B input (and its value) at the end
                assert a["inputs"][-1]["name"] == ti.AB_INPUT
                a["inputs"] = a["inputs"][:-1]
                if b.get("widgets_values"):
                    assert a["widgets_values"][-1] is True
                    a["widgets_values"] = a["widgets_values"][:-1]
            if b["type"] == "SaveImage":
                assert gid is None and a["type"] == "SaveAnimatedWEBP"
                assert [x["link"] for x in a["inputs"]] == [x["link"] for x in b["inputs"] if x["name"] == "images"]
                assert a["widgets_values"] == [f"zs2/{b['widgets_values'][0]}", 8.0, False, 90, "default"]
                continue
            if b["type"] in ti.LATENTS:
                assert i == meta["latent_node"] and a["widgets_values"][-1] == ti.FRAMES and b["widgets_values"][-1] == 1
                a["widgets_values"][-1] = 1
            if b["type"] in ("KSampler", "RandomNoise"):
                assert a["widgets_values"] == ["fixed" if x == "randomize" else x for x in b["widgets_values"]]
                a["widgets_values"] = b["widgets_values"]
            assert a == b, f"stock node {i} ({b['type']}) changed"
        tl = {l[0]: l for l in bt.Editor.links(g)}
        sl_all = {l[0]: l for l in bt.Editor.links(s)}
        for lid, sl in sl_all.items():
            assert lid in tl, f"stock link {lid} removed"
            if tl[lid] != sl:  # the sampler's model link, now from the A/B switch (on_false: the stock source)
                assert tl[lid][3:5] == sl[3:5] and tn[sl[3]]["type"] in bt.SAMPLERS, (sl, tl[lid])
                sw = tn[tl[lid][1]]
                assert sw["id"] in added_ids and sw["type"] == "ComfySwitchNode"
                on_false = tl[next(x["link"] for x in sw["inputs"] if x["name"] == "on_false")]
                assert on_false[1:3] == sl[1:3]
        for lid, l in tl.items():
            if lid not in sl_all:
                assert l[1] in added_ids or l[3] in added_ids, f"new link {l} between stock nodes"
    assert sorted(n["type"] for n in added_all if n["type"] in ADDED) == sorted(ADDED)
    assert sum(1 for n in added_all if n.get("title") == bt.TFV_AB_TITLE) == 1
    for key in set(stock) | set(twin):
        if key not in ("nodes", "links", "definitions", "extra", "last_node_id", "last_link_id", "id", "state"):
            assert twin.get(key) == stock.get(key), key
    assert {k: v for k, v in twin["extra"].items() if k != TWIN_KEY} == stock.get("extra", {})


# ---------------------------------------------------------------------------------------------
# 2. Execution with tiny models
# ---------------------------------------------------------------------------------------------

def _counted(model):
    from comfy.patcher_extension import WrappersMP

    def count(executor, x, *args, **kwargs):
        CALLS.append(int(x.shape[0]))
        return executor(x, *args, **kwargs)
    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, "tfv_test_nfe", count)
    return m


def flux2_vae():
    """The real Flux 2 VAE architecture with the small decoder (``full_encoder_small_decoder``: 32 latent
    channels, batch-normed 2x2 patches = 128 channels at 16x; encoder ch 128, decoder ch 64), random weights."""
    from comfy_harness import _CACHE
    if "flux2_vae" not in _CACHE:
        import comfy.sd
        from checkpoints import init_random
        skeleton = {"decoder.conv_in.weight": torch.zeros(256, 32, 3, 3),
                    "encoder.down.2.downsample.conv.weight": torch.zeros(512, 512, 3, 3),
                    "decoder.post_quant_conv.weight": torch.zeros(32, 32, 1, 1),
                    "encoder.quant_conv.weight": torch.zeros(64, 64, 1, 1),
                    "bn.running_mean": torch.zeros(128), "bn.running_var": torch.ones(128)}
        vae = comfy.sd.VAE(sd=skeleton)
        init_random(vae.first_stage_model, 8)
        for name, b in vae.first_stage_model.named_buffers():
            if name.endswith("running_var"):
                b.fill_(1.0)
        assert vae.latent_channels == 128
        _CACHE["flux2_vae"] = vae
    return _CACHE["flux2_vae"]


FAMILIES = {  # twin -> (tiny model, conditioning, VAE[, the tiny model's keyword arguments])
    "template_z_image_turbo_zs2": ("tiny_z_image", "lumina2_conds", flux_vae),
    "template_krea2_turbo_zs2": ("tiny_krea2", "krea2_conds", wan21_vae),
    "template_flux2_zs2": ("tiny_flux2", "flux2_conds", flux2_vae),
    "template_qwen_image_2512_zs2": (tiny_qwen_image, qwen_conds, wan21_vae),
    "template_krea2_turbo_int8_zs2": ("tiny_krea2", "krea2_conds", wan21_vae),  # int8: the loader is swapped
    "template_z_image_turbo_int8_zs2": ("tiny_z_image", "lumina2_conds", flux_vae),
    "template_flux2_t2i_zs2": ("tiny_flux2", "flux2_conds", flux2_vae),
    "template_flux2_klein_9b_zs2": ("tiny_flux2", "flux2_conds", flux2_vae, {"klein": True}),  # no guidance embed
}


def _family(name: str):
    import tiny_image_dits as tid
    model, conds, vae, *kw = FAMILIES[name]
    model = getattr(tid, model) if isinstance(model, str) else model
    if kw:
        model = functools.partial(model, **kw[0])
    conds = getattr(tid, conds) if isinstance(conds, str) else conds
    if conds is tid.flux2_conds:
        return model, (lambda seed: conds(seed, guidance=None)), vae
    return model, conds, vae


class _Model:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("MODEL",)
    DESCRIPTION = "Test only: the twin's tiny random-weight model of the real class, counting predictions."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"twin": (list(FAMILIES),), "seed": ("INT", {"default": 0})}}

    def run(self, twin, seed):
        return (_counted(_family(twin)[0](seed=seed)),)


class _Cond:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("CONDITIONING",)
    DESCRIPTION = "Test only: random conditioning of the twin's model family in place of CLIPTextEncode."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"twin": (list(FAMILIES),), "seed": ("INT", {"default": 0})}}

    def run(self, twin, seed):
        return (_family(twin)[1](seed)[0],)


class _VAE:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("VAE",)
    DESCRIPTION = "Test only: the real VAE architecture of the twin's family with random weights."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"twin": (list(FAMILIES),)}}

    def run(self, twin):
        return (_family(twin)[2](),)


class _TextGenerate:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("STRING",)
    DESCRIPTION = "Test only: TextGenerate (prompt enhancement) returning its prompt (no LM in the tests)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"prompt": ("STRING", {"forceInput": True})}}

    def run(self, prompt):
        return (prompt,)


class _Capture:
    CATEGORY, FUNCTION, RETURN_TYPES, OUTPUT_NODE = "_tests", "run", (), True
    DESCRIPTION = "Test only: keeps the decoded images for comparison."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE",), "key": ("STRING", {"default": ""})}}

    def run(self, images, key):
        CAPTURED[key] = images.clone()
        return {}


TEST_NODES = {"TFVTestImageTwinModel": _Model, "TFVTestImageTwinCond": _Cond, "TFVTestImageTwinVAE": _VAE,
              "TFVTestTextGenerate": _TextGenerate, "TFVTestCapture": _Capture}


class _ServerStub:
    def __init__(self):
        self.client_id, self.last_node_id, self.sockets_metadata, self.messages = "tfv-test", None, {}, []

    def send_sync(self, event, data, sid=None):
        self.messages.append((event, data))

    def queue_updated(self):
        pass

    def send_progress_text(self, text, node_id, sid=None):  # GetImageSize reports through PromptServer.instance
        self.messages.append(("progress_text", {"node": node_id, "text": text}))


def _run(api: dict) -> tuple[dict, set]:
    """Execute ``api`` with a fresh executor; (outputs, ids of the executed nodes)."""
    import execution
    valid = asyncio.run(execution.validate_prompt(str(uuid.uuid4()), api, None))
    assert valid[0], f"validation failed: {valid[1]} {json.dumps(valid[3], default=str)[:2000]}"
    import server as comfy_server
    server = _ServerStub()
    ex = prompt_executor(server)
    old = getattr(comfy_server.PromptServer, "instance", None)
    comfy_server.PromptServer.instance = getattr(old, "send_progress_text", None) and old or server
    try:
        ex.execute(api, str(uuid.uuid4()), extra_data={"client_id": "tfv-test"}, execute_outputs=valid[2])
    finally:
        if old is None:
            del comfy_server.PromptServer.instance
        else:
            comfy_server.PromptServer.instance = old
    errors = [d for e, d in server.messages if e == "execution_error"]
    assert ex.success and not errors, f"execution failed: {errors}"
    ran = {d.get("node") for e, d in server.messages if e == "executing" and isinstance(d, dict)}
    return ex.history_result["outputs"], ran


@pytest.fixture(scope="module")
def runtime(pack, tmp_path_factory):
    import nodes
    from checkpoints import registered_folder
    from test_workflows import _example_png
    root = tmp_path_factory.mktemp("tfv_image_twins")
    inp, out, loras = root / "input", root / "output", root / "loras"
    loras.mkdir()
    nodes.NODE_CLASS_MAPPINGS.update(TEST_NODES)
    try:
        with io_folders(inp, out), registered_folder("loras", loras):
            yield {"input": inp, "output": out, "loras": loras, "png": _example_png}
    finally:
        for k in TEST_NODES:
            nodes.NODE_CLASS_MAPPINGS.pop(k, None)


def _write_lora(path: Path, model, seed: int = 3, rank: int = 2) -> None:
    """A random LoRA on every linear weight of ``model`` (generic ``diffusion_model.<key>.lora_up/down``)."""
    import comfy.utils
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for k, w in model.model.state_dict().items():
        if k.startswith("diffusion_model.") and k.endswith(".weight") and w.ndim == 2:
            base = k[:-len(".weight")]
            sd[f"{base}.lora_down.weight"] = torch.randn(rank, w.shape[1], generator=g) / w.shape[1] ** 0.5
            sd[f"{base}.lora_up.weight"] = torch.randn(w.shape[0], rank, generator=g) * 0.1
    comfy.utils.save_torch_file(sd, str(path))


def _missing(name: str, ui: dict) -> str | None:
    """What this ComfyUI lacks to run the twin: its node classes (root and subgraphs; notes are frontend-only)
    and the tiny model's class."""
    import nodes
    import tiny_image_dits as tid
    defs = wa.subgraph_definitions(ui)
    types = {n["type"] for g in [ui, *defs.values()] for n in g.get("nodes", [])} - set(defs) - {"MarkdownNote", "Note"}
    absent = [f"node {t}" for t in sorted(types - set(nodes.NODE_CLASS_MAPPINGS))]
    try:
        if name != "template_qwen_image_2512_zs2":
            _family(name)[0](seed=0)
    except tid.Missing as e:
        absent.append(str(e))
    return f"{name} needs what this ComfyUI lacks: {'; '.join(absent)}" if absent else None


def _swap(name: str, api: dict, rt: dict) -> None:
    """The tiny models behind the loaders and the test sizes (module docstring)."""
    for i, nid in enumerate(sorted(wa.find_nodes(api, "CLIPTextEncode"))):
        api[nid] = {"class_type": "TFVTestImageTwinCond", "inputs": {"twin": name, "seed": 100 + i}}
    for nid in wa.find_nodes(api, "UNETLoader"):
        api[nid] = {"class_type": "TFVTestImageTwinModel", "inputs": {"twin": name, "seed": 0}}
    for nid in wa.find_nodes(api, "VAELoader"):
        api[nid] = {"class_type": "TFVTestImageTwinVAE", "inputs": {"twin": name}}
    for nid in wa.find_nodes(api, "TextGenerate"):
        api[nid] = {"class_type": "TFVTestTextGenerate", "inputs": {"prompt": api[nid]["inputs"]["prompt"]}}
    for nid in wa.find_nodes(api, "CLIPLoader"):
        assert not [k for k, v in api.items() for x in v["inputs"].values() if isinstance(x, list) and x[:1] == [nid]]
        del api[nid]
    lora = rt["loras"] / f"{name}.safetensors"
    if not lora.exists():
        _write_lora(lora, _family(name)[0](seed=0))
    for nid in wa.find_nodes(api, "LoraLoaderModelOnly"):
        api[nid]["inputs"]["lora_name"] = lora.name
    for ct in ti.LATENTS:
        for nid in wa.find_nodes(api, ct):
            api[nid]["inputs"]["batch_size"] = FRAMES
            if name != "template_flux2_zs2":
                api[nid]["inputs"].update(width=32, height=32)
    for nid in wa.find_nodes(api, "LoadImage"):
        png = rt["input"] / "example.png"
        if not png.exists():
            rt["png"](png)
        api[nid]["inputs"]["image"] = png.name
    for nid in wa.find_nodes(api, "ImageScaleToTotalPixels"):
        api[nid]["inputs"]["megapixels"] = 0.01


def _set_switches(api: dict, titles: list, state: tuple) -> dict:
    out = {}
    for title, value in zip(titles, state):
        (nid,) = [k for k, v in api.items() if v["class_type"] == "PrimitiveBoolean" and v["_meta"]["title"] == title]
        api[nid]["inputs"]["value"] = value
        out[title] = value
    return out


def _capture(api: dict, key: str) -> None:
    (save,) = [k for k, v in api.items() if v["class_type"] in ("SaveImage", "SaveAnimatedWEBP")]
    api[f"capture_{key}"] = {"class_type": "TFVTestCapture", "inputs": {"images": api[save]["inputs"]["images"],
                                                                        "key": key}}


def _states(name: str):
    n = len(SWITCHES[name])
    return [tuple(bool(s >> k & 1) for k in range(n)) for s in range(2 ** n)]


CASES = [(t, s) for t in ti.IMAGE_TWINS for s in _states(t.name)]


@pytest.mark.parametrize("t,state", CASES, ids=[f"{t.name}-{'-'.join(map(str, s)) or 'plain'}" for t, s in CASES])
def test_twin_runs_ab_off_is_stock_ab_on_gives_differing_frames(t, state, info, runtime, request):
    from PIL import Image
    name = t.name
    twin_ui = json.loads((REPO_ROOT / "workflows" / f"{name}.json").read_text())
    reason = _missing(name, twin_ui)
    if reason:
        pytest.skip(reason)
    tdir = request.getfixturevalue("tdir")
    api = wa.ui_to_api(twin_ui, info)
    stock = wa.ui_to_api(_stock(tdir, t), info, strict=False)
    _swap(name, api, runtime)
    _swap(name, stock, runtime)
    st = _set_switches(api, SWITCHES[name], state)
    _set_switches(stock, SWITCHES[name], state)
    (ab,) = [k for k, v in api.items() if v.get("_meta", {}).get("title") == bt.TFV_AB_TITLE]
    pack_ids = {k for k, v in api.items() if v["class_type"] in ADDED}
    images, nfe = {}, {}
    for label, graph in (("stock", stock), ("off", api), ("on", api)):
        g = wa.deepcopy(graph)
        if label != "stock":
            g[ab]["inputs"]["value"] = label == "on"
        _capture(g, label)
        CALLS.clear()
        outputs, ran = _run(g)
        images[label] = CAPTURED.pop(label)
        nfe[label] = sum(CALLS) / FRAMES
        if label == "off":
            assert not (ran & pack_ids), f"A/B off ran the pack's nodes {ran & pack_ids}"
        if label == "on":
            assert pack_ids <= ran
            (save,) = wa.find_nodes(g, "SaveAnimatedWEBP")
            (f,) = outputs[save]["images"]
            with Image.open(runtime["output"] / f.get("subfolder", "") / f["filename"]) as im:
                assert getattr(im, "n_frames", 1) == FRAMES
    assert images["off"].shape[0] == FRAMES
    assert torch.equal(images["off"], images["stock"]), f"{name} {st}: A/B off is not the stock result"
    on = images["on"]
    assert on.shape == images["off"].shape and torch.isfinite(on).all()
    assert not torch.equal(on, images["off"]), f"{name} {st}: A/B on equals A/B off"
    for i in range(FRAMES - 1):
        assert (on[i] - on[i + 1]).abs().max() > 1e-3, f"{name} {st}: frames {i} and {i + 1} are equal"
    expect = _nfe(name, st)
    assert nfe == {"stock": expect, "off": expect, "on": expect}, nfe
