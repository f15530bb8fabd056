"""Twins of the stock workflow templates (workflows/template_*.json, scripts/build_template_twins.py).

1. Each twin is DIFFED against the stock template installed in this ComfyUI's venv
   (comfyui-workflow-templates; 0.33.0 pins 0.11.44): every stock node keeps its JSON (type, title, mode,
   position, inputs, properties, widget values; only a sampler seed's control may go from "randomize" to
   "fixed", and a subgraph node may gain the A/B input at the end); every stock link is kept, except a
   sampler's model link, which may start at an added switch whose on_false comes from the stock source;
   the added nodes are only the pack's node, the A/B PrimitiveBoolean, its ComfySwitchNodes and one note.
2. Each twin is EXECUTED in the real ComfyUI (in-process, ``execution.PromptExecutor``) after the test
   converter (``workflow_api.ui_to_api``, which gives the real frontend's prompt for these files, see
   scripts/frontend_check.py), in every state of the template's own switch and of the A/B switch, with
   tiny random-weight models of the real classes behind the swapped loaders:
     * UNETLoader -> Wan 2.2 14B i2v experts: ``comfy.supported_models.WAN21_I2V`` (model_base.WAN21 with
       image_to_video, in_dim 36 = 16 noise + 4 mask + 16 concat channels; the 14B i2v experts' class),
       dim 32, 2 layers; t2v experts: WAN21_T2V; 5B: WAN22_T2V (48 channels). Seeds 0 (high noise) / 1
       (low noise);
     * LoraLoaderModelOnly (Lightning LoRA) -> the model with a random weight patch (ModelPatcher.add_patches,
       the mechanism a LoRA uses) on its first block's attention projections;
     * CLIPTextEncode -> random [1, 8, 32] Wan text conditioning; CLIPLoader dropped; VAELoader -> the real
       Wan 2.1 / 2.2 VAE architectures with random weights (full size, comfy_harness);
     * sizes 32x32, 5 frames; steps 20 -> 4 and split 10 -> 2 (Lightning keeps 4 / 2); the rest as shipped.
     * MiniMax H3 i2v / r2v / t2v (SamplerCustomAdvanced + BasicGuider, joint video + stereo audio latent):
       UNETLoader -> tiny ``model_base.MiniMaxH3`` (tiny_av); the two VAELoaders -> the real MiniMax H3
       video / audio VAE classes at tiny widths in ``comfy.sd.VAE`` (tiny_minimax: ComfyUI builds them at a
       fixed full size, 2,604 M / 151 M parameters); CLIPLoader -> random [1, 8, 32] text embeddings handed
       to the real MiniMaxH3ImageToVideo / ReferenceToVideo as their clip (the Qwen3-VL encoder runs inside
       those nodes); 64x64, 5 frames; steps 20 -> 3, Lightning 8 / 4 -> 2. The captured latent is both
       streams; the text encoder must have been given the template's images and SaveVideo must write.
   A/B off must give the stock template's final latent bit for bit (the stock file run with the same
   swaps), A/B on must differ from it. NFE is counted per model (predictions: a CFG call of batch 2 counts 2)
   and asserted: FreeInit's 3 passes cost 3 x the stock count on each expert.
On a ComfyUI without the template package or without the nodes a twin uses (0.3.64: ComfySwitchNode,
PrimitiveBoolean, subgraph-saving frontend) the tests skip saying which.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import pytest
import torch

from comfy_harness import REPO_ROOT, io_folders, tiny_wan, tiny_wan22_5b, tiny_wan_i2v
import workflow_api as wa

sys.path.insert(0, str(REPO_ROOT / "scripts"))
import build_template_twins as bt  # noqa: E402
from template_coverage import TWIN_KEY, templates_dir  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

TWIN_FILES = sorted(p for p in (REPO_ROOT / "workflows").glob("template_*.json") if p.stem in bt.TWINS_BY_NAME)  # ZS^2 image twins: test_image_template_twins.py
ADDED_TYPES = {"PrimitiveBoolean", "ComfySwitchNode", "MarkdownNote"}
# NFE per model label with the test overrides: {twin: {lightning state: {label: stock predictions}}}
STEPS_OVERRIDE = {20: 4, 10: 2}
CALLS: dict = {}
CAPTURED: dict = {}


def _twin_meta(path: Path) -> dict:
    return json.loads(path.read_text())["extra"][TWIN_KEY]


def test_every_twin_is_built_by_the_script():
    assert {p.stem for p in TWIN_FILES} == {t.name for t in bt.TWINS}
    for p in TWIN_FILES:
        assert _twin_meta(p)["source_template"] == bt.TWINS_BY_NAME[p.stem].source


@pytest.fixture(scope="module")
def tdir(pack):
    d = templates_dir()
    if d is None:
        pytest.skip("comfyui-workflow-templates is not installed in this ComfyUI's venv (0.33.0 installs it)")
    return d


def _stock(tdir: Path, path: Path) -> dict:
    src = tdir / f"{_twin_meta(path)['source_template']}.json"
    if not src.exists():
        pytest.skip(f"{src.name} is not in the installed template package")
    return json.loads(src.read_text())


def test_twin_files_are_what_the_script_builds_from_the_installed_templates(tdir):
    """workflows/template_*.json are current: a template update shows up here, fixed by one
    ``python scripts/build_workflows.py``."""
    import build_workflows as bw
    built = bt.build_all(bw.build_object_info(), tdir)
    stale = [n for n, ui in built.items() if wa.drift_view(json.loads((REPO_ROOT / "workflows" / f"{n}.json").read_text()))
             != wa.drift_view(json.loads(bw.render(ui)))]
    assert not stale, f"stale twins {stale}: run python scripts/build_workflows.py"


# ---------------------------------------------------------------------------------------------
# 1. Diff against the installed stock template
# ---------------------------------------------------------------------------------------------

def _graphs(wf: dict) -> dict:
    return {None: wf, **wa.subgraph_definitions(wf)}


def _added_ok(n: dict, pack_types: set) -> bool:
    if n["type"] in pack_types:
        return True
    title = n.get("title", "")
    return ((n["type"] == "PrimitiveBoolean" and title == bt.TFV_AB_TITLE)
            or (n["type"] == "ComfySwitchNode" and title.startswith("Switch (training-free video"))
            or (n["type"] == "MarkdownNote" and title == bt.TFV_NOTE_TITLE))


def _norm_stock_node(n: dict) -> dict:
    n = json.loads(json.dumps(n))
    for o in n.get("outputs") or []:
        o.pop("links", None)
    return n


@pytest.mark.parametrize("path", TWIN_FILES, ids=lambda p: p.stem)
def test_twin_differs_from_the_stock_template_only_by_the_packs_nodes(path, tdir, pack):
    twin, stock = json.loads(path.read_text()), _stock(tdir, path)
    meta = _twin_meta(path)
    pack_types = set(pack.NODE_CLASS_MAPPINGS)
    tg, sg = _graphs(twin), _graphs(stock)
    assert set(tg) == set(sg), "subgraph definitions added or removed"
    added_total = []
    for gid, s in sg.items():
        t = tg[gid]
        tn, sn = {n["id"]: n for n in t["nodes"]}, {n["id"]: n for n in s["nodes"]}
        assert set(sn) <= set(tn), f"stock nodes missing in {gid}: {set(sn) - set(tn)}"
        added = [tn[i] for i in set(tn) - set(sn)]
        bad = [(n["id"], n["type"], n.get("title")) for n in added if not _added_ok(n, pack_types)]
        assert not bad, f"nodes that are neither the pack's nor its A/B switch: {bad}"
        added_total += added
        added_ids = {n["id"] for n in added}
        for i, s_node in sn.items():
            a, b = _norm_stock_node(tn[i]), _norm_stock_node(s_node)
            if a["type"] in sg and gid is None and len(a["inputs"]) == len(b["inputs"]) + 1:  # the A/B input
                assert a["inputs"][-1]["name"] == meta["ab_input"]
                a["inputs"] = a["inputs"][:-1]
                if b.get("widgets_values"):
                    assert a["widgets_values"][-1] is True
                    a["widgets_values"] = a["widgets_values"][:-1]
            if a["type"] in ("KSamplerAdvanced", "KSampler") + bt.SEED_NODES and a.get("widgets_values") != b.get("widgets_values"):
                assert ["fixed" if x == "randomize" else x for x in b["widgets_values"]] == a["widgets_values"]
                a["widgets_values"] = b["widgets_values"]
            assert a == b, f"stock node {i} ({b['type']}) changed"
        tl = {l[0]: l for l in bt.Editor.links(t)}
        for lid, sl in {l[0]: l for l in bt.Editor.links(s)}.items():
            assert lid in tl, f"stock link {lid} removed"
            if tl[lid] == sl:
                continue
            # a re-routed sampler model link: now from an added switch whose on_false is the stock source
            assert tl[lid][3:5] == sl[3:5] and tn[sl[3]]["type"] in bt.SAMPLERS, f"link {lid} changed: {sl} -> {tl[lid]}"
            sw = tn[tl[lid][1]]
            assert sw["id"] in added_ids and sw["type"] == "ComfySwitchNode"
            on_false = tl[next(x["link"] for x in sw["inputs"] if x["name"] == "on_false")]
            assert on_false[1:3] == sl[1:3], f"switch {sw['id']}: on_false is not the stock model"
        for lid, l in tl.items():  # every new link touches an added node (or is the A/B subgraph input)
            if lid not in {x[0] for x in bt.Editor.links(s)}:
                assert l[1] in added_ids or l[3] in added_ids, f"new link {l} between stock nodes"
    assert sum(1 for n in added_total if n["type"] in pack_types) == 1
    assert sum(1 for n in added_total if n.get("title") == bt.TFV_AB_TITLE) == 1
    for key in set(stock) | set(twin):  # nothing else in the file changes
        if key not in ("nodes", "links", "definitions", "extra", "last_node_id", "last_link_id", "id", "state"):
            assert twin.get(key) == stock.get(key), key
    assert {k: v for k, v in twin["extra"].items() if k != TWIN_KEY} == stock.get("extra", {})


# ---------------------------------------------------------------------------------------------
# 2. Execution with tiny models, every switch state
# ---------------------------------------------------------------------------------------------

def _counted(model, label: str):
    """The model with a DIFFUSION_MODEL wrapper counting predictions (batch entries) per label."""
    from comfy.patcher_extension import WrappersMP

    def count(executor, x, *args, **kwargs):
        first = x[0] if isinstance(x, (list, tuple)) else x  # MiniMax H3: [video, audio]
        CALLS[label] = CALLS.get(label, 0) + int(first.shape[0])
        return executor(x, *args, **kwargs)
    m = model.clone()
    m.add_wrapper_with_key(WrappersMP.DIFFUSION_MODEL, "tfv_test_nfe", count)
    return m


class _TinyModel:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("MODEL",)
    DESCRIPTION = "Test only: a tiny random-weight Wan model of the real class (kind t2v / i2v / 5b) with an NFE counter."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"kind": (["t2v", "i2v", "5b"],), "seed": ("INT", {"default": 0}),
                             "label": ("STRING", {"default": "model"})}}

    def run(self, kind, seed, label):
        make = {"t2v": tiny_wan, "i2v": tiny_wan_i2v, "5b": tiny_wan22_5b}[kind]
        return (_counted(make(seed=seed), label),)


class _TinyLora:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("MODEL",)
    DESCRIPTION = "Test only: the model with a random weight patch (as a LoRA adds) on block 0's attention."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "seed": ("INT", {"default": 0})}}

    def run(self, model, seed):
        g = torch.Generator().manual_seed(seed)
        m = model.clone()
        sd = m.model.state_dict()
        keys = [k for k in sd if (".blocks.0.self_attn." in k or ".blocks.0.attn.qkv_proj" in k)  # Wan, MiniMax H3
                and k.endswith(".weight")]
        assert keys, "no attention weights to patch"
        m.add_patches({k: (0.05 * torch.randn(sd[k].shape, generator=g),) for k in keys}, 1.0)
        return (m,)


class _Capture:
    CATEGORY, FUNCTION, RETURN_TYPES, OUTPUT_NODE = "_tests", "run", (), True
    DESCRIPTION = "Test only: records a LATENT."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"samples": ("LATENT",), "key": ("STRING", {"default": "x"})}}

    def run(self, samples, key):
        s = samples["samples"]
        CAPTURED[key] = (torch.cat([t.flatten() for t in s.unbind()]) if getattr(s, "is_nested", False)
                         else s.clone())  # an audio+video latent: both streams
        return {}


def skip_without_nodes(files, what: str = "the twins") -> None:
    """Skip naming the nodes of ``files`` that this ComfyUI lacks (0.3.64: ComfySwitchNode, ...)."""
    import nodes
    missing = [t for p in files for t in wa.node_types(json.loads(p.read_text()))
               if t not in nodes.NODE_CLASS_MAPPINGS and t not in wa.VIRTUAL_NODE_TYPES]
    if missing:
        pytest.skip(f"this ComfyUI lacks the nodes {sorted(set(missing))} that {what} use")


@contextlib.contextmanager
def serving(root: Path, extra: dict):
    """ComfyUI's input/output folders under ``root`` (``in/example.png``) and the test nodes ``extra``
    registered; both restored on exit. Yields the input folder."""
    import nodes
    import test_workflows as tw
    (root / "in").mkdir()
    tw._example_png(root / "in" / "example.png")
    nodes.NODE_CLASS_MAPPINGS.update(extra)
    try:
        with io_folders(root / "in", root / "out"):
            yield root / "in"
    finally:
        for k in extra:
            nodes.NODE_CLASS_MAPPINGS.pop(k, None)


@pytest.fixture(scope="module")
def runner(pack, tmp_path_factory):
    import test_workflows as tw
    skip_without_nodes(TWIN_FILES)
    extra = dict(tw.TEST_NODES, TFVTestTwinModel=_TinyModel, TFVTestTwinLora=_TinyLora, TFVTestTwinCapture=_Capture,
                 **MINIMAX_TEST_NODES)
    with serving(tmp_path_factory.mktemp("tfv_twins"), extra):
        yield tw.Runner()


def _tiny_api(ui: dict, info: dict, lightning: bool | None, ab: bool | None) -> tuple[dict, str]:
    """The API graph with the loaders swapped, the test sizes and the switch states; returns it and the id
    of the final sampler (whose LATENT is captured)."""
    if _is_minimax_h3(ui):
        return _tiny_api_minimax_h3(ui, info, lightning, ab)
    api = wa.ui_to_api(ui, info, strict=False)
    for i, nid in enumerate(wa.find_nodes(api, "CLIPTextEncode")):
        api[nid] = {"class_type": "TFVTestWanConditioning", "inputs": {"seed": 100 + i}}
    for nid in wa.find_nodes(api, "UNETLoader"):
        name = str(api[nid]["inputs"]["unet_name"])
        kind = "5b" if "ti2v_5B" in name else "i2v" if "_i2v_" in name else "t2v"
        label = "high" if "high_noise" in name else "low" if "low_noise" in name else "model"
        api[nid] = {"class_type": "TFVTestTwinModel", "inputs": {"kind": kind, "seed": int(label == "low"),
                                                                   "label": label}}
    for i, nid in enumerate(wa.find_nodes(api, "LoraLoaderModelOnly")):
        api[nid] = {"class_type": "TFVTestTwinLora", "inputs": {"model": api[nid]["inputs"]["model"], "seed": 50 + i}}
    for nid in wa.find_nodes(api, "VAELoader"):
        wan22 = str(api[nid]["inputs"]["vae_name"]).startswith("wan2.2_vae")
        api[nid] = {"class_type": "TFVTestWan22VAE" if wan22 else "TFVTestWanVAE", "inputs": {}}
    for nid in wa.find_nodes(api, "CLIPLoader"):
        del api[nid]
    for ct in ("WanImageToVideo", "EmptyHunyuanLatentVideo", "Wan22ImageToVideoLatent"):
        for nid in wa.find_nodes(api, ct):
            api[nid]["inputs"].update(width=32, height=32, length=5)
    for nid in wa.find_nodes(api, "LoadImage"):
        api[nid]["inputs"]["image"] = "example.png"
    for nid in wa.find_nodes(api, "PrimitiveInt"):
        v = api[nid]["inputs"]["value"]
        api[nid]["inputs"]["value"] = STEPS_OVERRIDE.get(v, v)
    for nid in wa.find_nodes(api, "KSampler") + wa.find_nodes(api, "KSamplerAdvanced"):
        for k in ("steps", "end_at_step", "start_at_step"):
            v = api[nid]["inputs"].get(k)
            if isinstance(v, int) and v in STEPS_OVERRIDE:
                api[nid]["inputs"][k] = STEPS_OVERRIDE[v]
    _set_booleans(api, lightning, ab)
    finals = [k for k in wa.find_nodes(api, "KSamplerAdvanced") if api[k]["inputs"]["add_noise"] == "disable"] \
        or wa.find_nodes(api, "KSampler")
    assert len(finals) == 1
    api["tfv_capture"] = {"class_type": "TFVTestTwinCapture", "inputs": {"samples": [finals[0], 0], "key": "final"}}
    return api, finals[0]


def _set_booleans(api: dict, lightning: bool | None, ab: bool | None) -> None:
    for nid in wa.find_nodes(api, "PrimitiveBoolean"):
        is_ab = api[nid]["_meta"]["title"] == bt.TFV_AB_TITLE
        state = ab if is_ab else lightning
        if state is not None:
            api[nid]["inputs"]["value"] = state


# ---- MiniMax H3 (i2v / r2v / t2v): joint video + stereo audio latent, SamplerCustomAdvanced + BasicGuider ----

class _TinyMiniMaxH3:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("MODEL",)
    DESCRIPTION = "Test only: a tiny random-weight MiniMax H3 (model_base.MiniMaxH3, real DiT) with an NFE counter."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0}), "label": ("STRING", {"default": "model"})}}

    def run(self, seed, label):
        import tiny_av
        return (_counted(tiny_av.tiny_minimax_h3(seed=seed), label),)


class _MiniMaxH3VAE:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("VAE",)
    DESCRIPTION = "Test only: the real MiniMax H3 video / audio VAE class at a tiny width (tiny_minimax)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"kind": (["video", "audio"],)}}

    def run(self, kind):
        import tiny_minimax
        return ((tiny_minimax.minimax_h3_video_vae if kind == "video" else tiny_minimax.minimax_h3_audio_vae)(),)


class _MiniMaxH3Text:
    CATEGORY, FUNCTION, RETURN_TYPES = "_tests", "run", ("CLIP",)
    DESCRIPTION = "Test only: random [1, 8, 32] text embeddings for the MiniMax H3 nodes' clip (tiny_minimax)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"seed": ("INT", {"default": 0})}}

    def run(self, seed):
        import tiny_minimax
        return (tiny_minimax.TestMiniMaxTextEncoder(seed),)


MINIMAX_TEST_NODES = {"TFVTestTwinMiniMaxH3": _TinyMiniMaxH3, "TFVTestTwinMiniMaxH3VAE": _MiniMaxH3VAE,
                      "TFVTestTwinMiniMaxH3Text": _MiniMaxH3Text}
MINIMAX_H3_NODES = ("MiniMaxH3ImageToVideo", "MiniMaxH3ReferenceToVideo")
MINIMAX_H3_STEPS = {20: 3, 8: 2, 4: 2}  # full / Lightning (i2v, t2v: 8 on the subgraph node; r2v: 4) steps -> test steps


def _is_minimax_h3(ui: dict) -> bool:
    return any(t in MINIMAX_H3_NODES for t in wa.node_types(ui))


def _tiny_api_minimax_h3(ui: dict, info: dict, lightning: bool | None, ab: bool | None) -> tuple[dict, str]:
    """MiniMax H3 template -> API graph: UNETLoader -> tiny MiniMax H3; the two VAELoaders -> the real
    video / audio VAE classes at tiny widths; CLIPLoader -> random text embeddings (the encoder runs inside
    MiniMaxH3ImageToVideo / ReferenceToVideo, which themselves run); 64x64, 5 frames (latent video
    [1, 24, 2, 4, 4] + audio [1, 32, 2, 8]); steps 20 -> 3, Lightning 8 / 4 -> 2. Captures
    SamplerCustomAdvanced's output (both streams)."""
    api = wa.ui_to_api(ui, info, strict=False)
    for nid in wa.find_nodes(api, "UNETLoader"):
        api[nid] = {"class_type": "TFVTestTwinMiniMaxH3", "inputs": {"seed": 0, "label": "model"}}
    for i, nid in enumerate(wa.find_nodes(api, "LoraLoaderModelOnly")):
        api[nid] = {"class_type": "TFVTestTwinLora", "inputs": {"model": api[nid]["inputs"]["model"], "seed": 50 + i}}
    for nid in wa.find_nodes(api, "VAELoader"):
        kind = "audio" if "audio" in str(api[nid]["inputs"]["vae_name"]) else "video"
        api[nid] = {"class_type": "TFVTestTwinMiniMaxH3VAE", "inputs": {"kind": kind}}
    for i, nid in enumerate(wa.find_nodes(api, "CLIPLoader")):
        api[nid] = {"class_type": "TFVTestTwinMiniMaxH3Text", "inputs": {"seed": 100 + i}}
    for ct in MINIMAX_H3_NODES:
        for nid in wa.find_nodes(api, ct):
            api[nid]["inputs"].update(width=64, height=64, length=5)
    for nid in wa.find_nodes(api, "LoadImage"):
        api[nid]["inputs"]["image"] = "example.png"
    for nid in wa.find_nodes(api, "PrimitiveInt"):
        v = api[nid]["inputs"]["value"]
        api[nid]["inputs"]["value"] = MINIMAX_H3_STEPS.get(v, v)
    _set_booleans(api, lightning, ab)
    finals = wa.find_nodes(api, "SamplerCustomAdvanced")
    assert len(finals) == 1
    api["tfv_capture"] = {"class_type": "TFVTestTwinCapture", "inputs": {"samples": [finals[0], 0], "key": "final"}}
    return api, finals[0]


def _set_template_switch(ui: dict, path: Path, state: bool) -> bool | None:
    """Apply the template's own switch in the UI file; returns the Lightning state for the API (or None)."""
    if "5b" in path.stem:  # Load Image bypassed (text-to-video, stock) or active (image-to-video)
        for n in ui["nodes"]:
            if n["type"] == "LoadImage":
                n["mode"] = 0 if state else wa.MODE_BYPASS
        return None
    return state


def _run(runner, ui: dict, lightning, ab) -> tuple[torch.Tensor, dict]:
    info = wa.object_info_in_process()
    api, _ = _tiny_api(ui, info, lightning, ab)
    CALLS.clear()
    CAPTURED.clear()
    runner.run(api)
    return CAPTURED["final"], dict(CALLS)


NFE_REPORT: dict = {}


@pytest.mark.parametrize("template_state", [False, True], ids=["stock-switch-off", "stock-switch-on"])
@pytest.mark.parametrize("path", [p for p in TWIN_FILES if not p.stem.startswith("template_ltx")],  # LTX: test_template_twins_ltx
                         ids=lambda p: p.stem)
def test_twin_runs_in_every_switch_state_and_ab_off_is_the_stock_result(runner, path, template_state, tdir):
    stock_ui, twin_ui = _stock(tdir, path), json.loads(path.read_text())
    light = _set_template_switch(stock_ui, path, template_state)
    _set_template_switch(twin_ui, path, template_state)
    ref, ref_calls = _run(runner, stock_ui, light, None)
    off, off_calls = _run(runner, twin_ui, light, False)
    on, on_calls = _run(runner, twin_ui, light, True)
    NFE_REPORT[(path.stem, template_state)] = {"stock": ref_calls, "A/B off": off_calls, "A/B on": on_calls}
    print(f"\nNFE {path.stem} template switch {template_state}: stock {ref_calls}, A/B off {off_calls}, "
          f"A/B on {on_calls}")
    assert torch.equal(off, ref), "A/B off is not the stock template's result"
    assert off_calls == ref_calls
    assert on.shape == ref.shape and torch.isfinite(on).all()
    assert not torch.allclose(on, ref), "FreeInit did not change the result"
    iterations = bt.TWINS_BY_NAME[path.stem].widgets["iterations"]
    assert on_calls == {k: iterations * v for k, v in ref_calls.items()}, "FreeInit NFE is not passes x stock NFE"
    if _is_minimax_h3(stock_ui):
        _check_minimax_h3_inputs_and_outputs(path)


def _strings(x) -> set:
    if isinstance(x, str):
        return {x}
    items = x.values() if isinstance(x, dict) else x if isinstance(x, list) else []
    return set().union(*[_strings(v) for v in items]) if items else set()


def _check_minimax_h3_inputs_and_outputs(path: Path) -> None:
    """The template's MiniMax H3 node gave the text encoder its prompt with the template's images (i2v:
    the first frame; r2v: two reference images; t2v: none; ComfyUI caches the node across the runs) and
    SaveVideo wrote a non-empty video (the video and audio VAE decodes ran)."""
    import folder_paths
    import tiny_minimax
    prompts = _strings(json.loads(path.read_text()))
    mine = [s for s in tiny_minimax.TestMiniMaxTextEncoder.seen if s["text"] in prompts]
    want = {"i2v": {"images": 1}, "r2v": {"minimax_ref_items": 2}, "t2v": {"images": 0}}[path.stem.split("_")[3]]
    assert mine and all(all(s.get(k) == v for k, v in want.items()) for s in mine), mine
    videos = sorted(Path(folder_paths.get_output_directory()).rglob("MiniMax_H3*.mp4"))
    assert videos and all(v.stat().st_size > 0 for v in videos), videos
