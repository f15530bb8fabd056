"""The blueprints in ``subgraphs/`` (ComfyUI 0.33.0 serves ``custom_nodes/<pack>/subgraphs/*.json``,
``app/subgraph_manager.py``; ComfyUI 0.3.64 has no blueprints, so these tests skip there):

* the files are what ``scripts/build_blueprints.py`` writes from the live node definitions;
* each is a well-formed subgraph: named inputs and outputs whose link ids are the links to and from the
  subgraph's input / output nodes, a description, the inner widgets it shows exist;
* ComfyUI's own route (``GET /global_subgraphs``, ``GET /global_subgraphs/<id>``) lists every file under
  this pack and serves it unchanged;
* each one, dropped into a stock graph (the stock SD1.5, Wan 2.1 and Wan 2.2 14B layouts of the shipped
  workflows, with the blueprint's node where the method's nodes were), is converted as the frontend does
  (the subgraph flattened, ``workflow_api.ui_to_api``) and EXECUTED on the tiny models of
  test_workflows.py, with the same overrides (resolution, steps; the Wan loaders swapped).
"""
from __future__ import annotations

import asyncio
import json
import sys

import pytest

from comfy_harness import REPO_ROOT
import workflow_api as wa
from test_workflows import (SD15_OVERRIDES, TINY_CKPT, WAN_OVERRIDES, _apply_overrides,  # noqa: F401
                            _swap_wan_loaders, dirs, runner)

SUBGRAPH_DIR = REPO_ROOT / "subgraphs"
BLUEPRINT_FILES = sorted(SUBGRAPH_DIR.glob("*.json"))
PACK_FOLDER = "comfyui-training-free-video"


def _needs_blueprints():
    try:
        import app.subgraph_manager  # noqa: F401
    except ImportError:
        pytest.skip("this ComfyUI has no blueprints (app/subgraph_manager.py: ComfyUI 0.33.0 and later)")


def _scripts():
    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    try:
        import build_blueprints
        import build_workflows
    finally:
        sys.path.pop(0)
    return build_blueprints, build_workflows


def _definition(bp: dict) -> dict:
    (sg,) = bp["definitions"]["subgraphs"]
    return sg


def test_expected_blueprints_exist():
    bb, _ = _scripts()
    assert [p.stem for p in BLUEPRINT_FILES] == sorted(bb.BLUEPRINTS)
    assert len(BLUEPRINT_FILES) == 5


def test_blueprint_files_are_generated(object_info, pack):
    """The files are what scripts/build_blueprints.py writes (with the object info its boot builds)."""
    _needs_blueprints()
    bb, bw = _scripts()
    info = dict(object_info)
    info["_pack_types"] = sorted(pack.NODE_CLASS_MAPPINGS)
    info["_cnr_ids"] = bw.external_defs()[1]
    for name, bp in bb.build_all(info).items():
        path = SUBGRAPH_DIR / f"{name}.json"
        assert json.loads(path.read_text()) == bp, f"{path.name} is stale: run python scripts/build_blueprints.py"


@pytest.mark.parametrize("path", BLUEPRINT_FILES, ids=[p.stem for p in BLUEPRINT_FILES])
def test_blueprint_is_a_well_formed_subgraph(path, object_info):
    bp = json.loads(path.read_text())
    sg = _definition(bp)
    (inst,) = bp["nodes"]
    assert inst["type"] == sg["id"] and sg["name"] == path.stem and len(sg["description"]) > 80
    links = {ln["id"]: ln for ln in sg["links"]}
    assert sg["inputs"] and sg["outputs"]
    for k, si in enumerate(sg["inputs"]):
        assert si["name"] and si["linkIds"], si
        for lid in si["linkIds"]:
            assert links[lid]["origin_id"] == -10 and links[lid]["origin_slot"] == k and links[lid]["type"] == si["type"]
    for k, so in enumerate(sg["outputs"]):
        (lid,) = so["linkIds"]
        assert links[lid]["target_id"] == -20 and links[lid]["target_slot"] == k and links[lid]["type"] == so["type"]
    assert [i["name"] for i in inst["inputs"]] == [i["name"] for i in sg["inputs"]]
    assert [o["name"] for o in inst["outputs"]] == [o["name"] for o in sg["outputs"]]
    by_id = {str(n["id"]): n for n in sg["nodes"]}
    for nid, widget in inst["properties"]["proxyWidgets"]:
        info = object_info[by_id[nid]["type"]]
        assert widget in [s.input for s in wa.widget_slots(info)], (path.name, nid, widget)
    for n in sg["nodes"]:
        for idx, inp in enumerate(n["inputs"]):
            if inp["link"] is not None:
                ln = links[inp["link"]]
                assert ln["target_id"] == n["id"] and ln["target_slot"] == idx, (path.name, n["id"], inp)


def test_server_lists_and_serves_every_blueprint(tmp_path):
    """ComfyUI's own blueprint routes list every subgraphs/*.json of the pack folder and serve it unchanged."""
    _needs_blueprints()
    import aiohttp.web
    from aiohttp.test_utils import TestClient, TestServer
    from app.subgraph_manager import SubgraphManager
    from checkpoints import registered_folder
    pack_dir = tmp_path / "custom_nodes" / PACK_FOLDER
    pack_dir.parent.mkdir()
    pack_dir.symlink_to(REPO_ROOT, target_is_directory=True)

    async def run():
        app = aiohttp.web.Application()
        routes = aiohttp.web.RouteTableDef()
        SubgraphManager().add_routes(routes, {})
        app.add_routes(routes)
        async with TestClient(TestServer(app)) as client:
            listed = await (await client.get("/global_subgraphs")).json()
            served = {}
            for key, entry in listed.items():
                if entry["source"] == "custom_node":
                    served[entry["name"]] = (entry, await (await client.get(f"/global_subgraphs/{key}")).json())
        return served

    with registered_folder("custom_nodes", pack_dir.parent):
        served = asyncio.run(run())
    assert sorted(served) == [p.stem for p in BLUEPRINT_FILES]
    for name, (entry, full) in served.items():
        assert entry["info"]["node_pack"] == f"custom_nodes.{PACK_FOLDER}"
        assert full["data"] == (SUBGRAPH_DIR / f"{name}.json").read_text(), name


# ---------------------------------------------------------------------------------------------
# Dropped into stock graphs, executed

def _with_blueprint(g, bp: dict):
    """Register the blueprint's instance as a node type of the builder graph ``g`` (its inputs and outputs);
    returns its type id."""
    sg = _definition(bp)
    g.object_info[sg["id"]] = {
        "input": {"required": {i["name"]: (i["type"],) for i in sg["inputs"]}},
        "input_order": {"required": [i["name"] for i in sg["inputs"]]},
        "output": [o["type"] for o in sg["outputs"]], "output_name": [o["name"] for o in sg["outputs"]],
        "python_module": "blueprint", "name": sg["id"]}
    return sg["id"]


def _ui_with(g, bp: dict) -> dict:
    """The builder graph as a UI workflow holding the blueprint: its definition under ``definitions`` and the
    instance's properties as a dropped blueprint has them (the frontend copies the file's node)."""
    ui = g.to_ui()
    sg = _definition(bp)
    for n in ui["nodes"]:
        if n["type"] == sg["id"]:
            n["properties"] = json.loads(json.dumps(bp["nodes"][0]["properties"]))
            n["widgets_values"] = []
    ui["definitions"] = {"subgraphs": [json.loads(json.dumps(sg))]}
    return ui


def _stock_sd15(bw, g, bp, kind):
    ckpt, pos, neg = bw._sd15_front(g, "a red ball")
    t = _with_blueprint(g, bp)
    if kind == "model":   # a MODEL -> MODEL blueprint between the checkpoint and the KSampler
        inst = g.add(t, model=ckpt["MODEL"])
        lat = g.add("EmptyLatentImage", width=512, height=512, batch_size=8)
        ks = g.add("KSampler", model=inst[0], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                   latent_image=lat["LATENT"], seed=42, steps=20, cfg=7.5, sampler_name="ddim",
                   scheduler="ddim_uniform", denoise=1.0)
        bw._save_webp(g, ks["LATENT"], ckpt["VAE"], "bp/sd15")
        return 8
    # I4VGen: a one-image anchor from the same model, then the blueprint (frames as the batch: no VAE)
    lat = g.add("EmptyLatentImage", width=512, height=512, batch_size=1)
    anchor = g.add("KSampler", model=ckpt["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                   latent_image=lat["LATENT"], seed=42, steps=25, cfg=7.5, sampler_name="ddim",
                   scheduler="ddim_uniform", denoise=1.0)
    inst = g.add(t, model=ckpt["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                 anchor=anchor["LATENT"])
    bw._save_webp(g, inst[0], ckpt["VAE"], "bp/i4vgen_sd15")
    return 16


def _stock_wan(bw, g, bp, kind):
    t = _with_blueprint(g, bp)
    if kind == "two_experts":   # video_wan2_2_14B_t2v: the blueprint replaces the two KSamplerAdvanced
        hi, lo, pos, neg, vae = bw._wan22_14b_front(g, "a fox")
        lat = g.add("EmptyHunyuanLatentVideo", width=640, height=640, length=81, batch_size=1)
        inst = g.add(t, high_noise_model=hi["MODEL"], low_noise_model=lo["MODEL"], positive=pos["CONDITIONING"],
                     negative=neg["CONDITIONING"], latent_image=lat["LATENT"])
    else:
        ms, pos, neg, vae = bw._wan_front(g, "a fox")
        if kind == "sampler":   # text_to_video_wan: the blueprint replaces the KSampler
            lat = g.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33, batch_size=1)
            inst = g.add(t, model=ms["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                         latent_image=lat["LATENT"])
        else:                   # I4VGen: one-frame anchor, then the blueprint with the Wan VAE connected
            lat = g.add("EmptyHunyuanLatentVideo", width=832, height=480, length=1, batch_size=1)
            anchor = g.add("KSampler", model=ms["MODEL"], positive=pos["CONDITIONING"],
                           negative=neg["CONDITIONING"], latent_image=lat["LATENT"], seed=42, steps=30, cfg=6.0,
                           sampler_name="uni_pc", scheduler="simple", denoise=1.0)
            inst = g.add(t, model=ms["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                         anchor=anchor["LATENT"], vae=vae["VAE"])
    bw._save_webp(g, inst[0], vae["VAE"], "bp/wan", fps=16.0)
    return 5


# blueprint -> (stock graph, kind, overrides beyond test_workflows' tables)
CASES = {
    "ZS2 video from an image model (TMA + Dependency Noise)": ("sd15", "model", {}),
    "Fast-SmoothInit-10 (before any sampler)": ("sd15", "model", {}),
    "I4VGen (static video - NI-VSDS - regeneration)": ("sd15", "i4vgen", {}),
    "FreeInit KSampler (one video model)": ("wan", "sampler", {}),
    "FreeInit KSampler (Wan 2.2 two experts)": ("wan", "two_experts", {}),
    "I4VGen on Wan (vae connected)": ("wan", "i4vgen", {"NIVSDSAnimate": {"step_sizes": "1", "scheduler": "simple"}}),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_blueprint_runs_in_a_stock_graph(case, object_info, runner, dirs):
    _needs_blueprints()
    _, bw = _scripts()
    family, kind, extra = CASES[case]
    name = "I4VGen (static video - NI-VSDS - regeneration)" if case.startswith("I4VGen on Wan") else case
    bp = json.loads((SUBGRAPH_DIR / f"{name}.json").read_text())
    g = bw.Graph(dict(object_info), f"blueprint test {case}")
    frames = (_stock_sd15 if family == "sd15" else _stock_wan)(bw, g, bp, kind)
    ui = _ui_with(g, bp)
    api = wa.ui_to_api(ui, object_info)
    inner = {n["type"] for n in _definition(bp)["nodes"]}
    assert inner <= {v["class_type"] for v in api.values()}, "the blueprint's nodes are not in the prompt"
    if family == "sd15":
        _apply_overrides(api, dict(SD15_OVERRIDES, CheckpointLoaderSimple={"ckpt_name": TINY_CKPT}))
    else:
        _swap_wan_loaders(api)
        _apply_overrides(api, WAN_OVERRIDES)
    _apply_overrides(api, extra)
    outputs = runner.run(api)
    saved = [f for out in outputs.values() for f in out.get("images", [])]
    assert saved, outputs
    from PIL import Image
    for f in saved:
        with Image.open(dirs["output"] / f.get("subfolder", "") / f["filename"]) as im:
            assert getattr(im, "n_frames", 1) == frames, (case, f)
