"""The test converter (workflow_api.ui_to_api) on subgraph workflows: flattened as the frontend's
``graphToPrompt`` does (ComfyUI 0.33.0's frontend 1.49).

* Synthetic graphs with core latent nodes pin each rule: execution ids ``"<instance>:<inner>"`` and nested
  ``"<outer>:<middle>:<inner>"``, subgraph-input links to an outer source, subgraph widget values from the
  instance's ``widgets_values`` (or the inner widget's own value when the instance saved none), links out
  through the subgraph's output node, bypassed and muted nodes inside a subgraph, muted/bypassed instances,
  the frontend's renumbering of inner node ids that collide with the root graph's.
* Stock templates (comfyui-workflow-templates installed, as in ComfyUI 0.33.0's venv): the converter's prompt
  equals the prompt the REAL frontend's ``app.graphToPrompt()`` gave for the same file, recorded in
  ``frontend_prompts/`` by ``python scripts/frontend_check.py --save-prompts tests/comfyui/frontend_prompts
  <template files>`` (headless Chromium; 49 of the 56 local video templates match there, all the ones this
  pack has twins of; the 7 others use frontend-extension widgets: CustomCombo, Painter, ImageCompare,
  Autogrow values, a widget-converted switch input).
* Graphs without subgraphs, on small hand-made UI graphs with the live node definitions (``object_info`` /
  ``live_info``, conftest.py): widget order and seed control values, links, upload widgets, bypassed / muted
  nodes, Reroute, PrimitiveNode and Note, a bypassed node's same-slot-then-type routing, unknown and group
  nodes refused, V3 core node definitions, the widget layout of every registered node.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import workflow_api as wa

HERE = Path(__file__).resolve().parent
RECORDED = HERE / "frontend_prompts"


@pytest.fixture(scope="module")
def info(pack):
    return wa.object_info_in_process(["EmptyLatentImage", "LatentUpscaleBy", "LatentBatch", "SaveLatent"])


def _node(nid, type_, inputs=(), outputs=(), widgets=None, mode=0, order=0):
    return {"id": nid, "type": type_, "mode": mode, "order": order,
            "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs],
            "widgets_values": widgets if widgets is not None else []}


LAT_IN = {"name": "samples", "type": "LATENT"}
LAT_OUT = {"name": "LATENT", "type": "LATENT"}


def _upscale(nid, link_in, link_out=None, scale=1.5, mode=0, scale_link=None):
    ins = [dict(LAT_IN, link=link_in)]
    if scale_link is not None:
        ins.append({"name": "scale_by", "type": "FLOAT", "widget": {"name": "scale_by"}, "link": scale_link})
    return _node(nid, "LatentUpscaleBy", ins, [dict(LAT_OUT, links=[link_out] if link_out else [])],
                 ["nearest-exact", scale], mode=mode)


def _graph(inner_mode=0, instance_mode=0, instance_widgets=(2.0,), nested=True):
    """root: 1 EmptyLatentImage -> [10: subgraph S] -> 2 SaveLatent.

    S (inputs: samples LATENT, scale FLOAT widget; output: LATENT):
      -10.samples -> 1 LatentUpscaleBy(scale_by <- -10.scale) -> 5 LatentUpscaleBy(bypass/mute per
      ``inner_mode``, 3.0) -> [6: subgraph N] -> -20.LATENT
    N: -10.samples -> 3 LatentUpscaleBy(1.25) -> -20.LATENT
    Inner node 1 collides with root node 1 (renumbered by the frontend to last_node_id + 1 = 11)."""
    inner_n = {
        "id": "N", "name": "nested", "inputs": [{"id": "a", "name": "samples", "type": "LATENT", "linkIds": [1]}],
        "outputs": [{"id": "b", "name": "LATENT", "type": "LATENT", "linkIds": [2]}],
        "nodes": [_upscale(3, 1, 2, scale=1.25)],
        "links": [{"id": 1, "origin_id": -10, "origin_slot": 0, "target_id": 3, "target_slot": 0, "type": "LATENT"},
                  {"id": 2, "origin_id": 3, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "LATENT"}],
    }
    s_nodes = [_upscale(1, 11, 12, scale_link=13), _upscale(5, 12, 14, scale=3.0, mode=inner_mode)]
    s_links = [{"id": 11, "origin_id": -10, "origin_slot": 0, "target_id": 1, "target_slot": 0, "type": "LATENT"},
               {"id": 12, "origin_id": 1, "origin_slot": 0, "target_id": 5, "target_slot": 0, "type": "LATENT"},
               {"id": 13, "origin_id": -10, "origin_slot": 1, "target_id": 1, "target_slot": 1, "type": "FLOAT"}]
    if nested:
        s_nodes.append(_node(6, "N", [dict(LAT_IN, link=14)], [dict(LAT_OUT, links=[15])]))
        s_links += [{"id": 14, "origin_id": 5, "origin_slot": 0, "target_id": 6, "target_slot": 0, "type": "LATENT"},
                    {"id": 15, "origin_id": 6, "origin_slot": 0, "target_id": -20, "target_slot": 0, "type": "LATENT"}]
    else:
        s_links.append({"id": 15, "origin_id": 5, "origin_slot": 0, "target_id": -20, "target_slot": 0,
                        "type": "LATENT"})
    sub = {"id": "S", "name": "outer", "nodes": s_nodes, "links": s_links,
           "inputs": [{"id": "i0", "name": "samples", "type": "LATENT", "linkIds": [11]},
                      {"id": "i1", "name": "scale", "type": "FLOAT", "linkIds": [13]}],
           "outputs": [{"id": "o0", "name": "LATENT", "type": "LATENT", "linkIds": [15]}]}
    instance = _node(10, "S", [dict(LAT_IN, link=1), {"name": "scale", "type": "FLOAT", "widget": {"name": "scale"},
                                                       "link": None}],
                     [dict(LAT_OUT, links=[2])], list(instance_widgets) if instance_widgets is not None else None,
                     mode=instance_mode)
    if instance_widgets is None:
        instance.pop("widgets_values")
    return {"last_node_id": 10, "nodes": [
        _node(1, "EmptyLatentImage", [], [dict(LAT_OUT, links=[1])], [64, 64, 1]),
        instance,
        _node(2, "SaveLatent", [dict(LAT_IN, link=2)], [], ["latents/x"]),
    ], "links": [[1, 1, 0, 10, 0, "LATENT"], [2, 10, 0, 2, 0, "LATENT"]],
        "definitions": {"subgraphs": [sub, inner_n]}}


def test_subgraph_flattened_ids_links_and_widget_values(info):
    api = wa.ui_to_api(_graph(), info)
    assert sorted(api, key=wa.exec_id_key) == ["1", "2", "10:5", "10:6:3", "10:11"]
    # inner node 1 renumbered to 11 (root has a node 1); its source is the instance's outer input
    assert api["10:11"]["inputs"]["samples"] == ["1", 0]
    # the subgraph input "scale" is not connected outside: the instance's widget value (2.0), not the inner 1.5
    assert api["10:11"]["inputs"]["scale_by"] == 2.0
    assert api["10:5"]["inputs"] == {"upscale_method": "nearest-exact", "scale_by": 3.0, "samples": ["10:11", 0]}
    assert api["10:6:3"]["inputs"]["samples"] == ["10:5", 0]  # into the nested subgraph
    assert api["2"]["inputs"]["samples"] == ["10:6:3", 0]  # out through both output nodes


def test_subgraph_widget_value_falls_back_to_the_inner_widget(info):
    api = wa.ui_to_api(_graph(instance_widgets=None), info)
    assert api["10:11"]["inputs"]["scale_by"] == 1.5


def test_subgraph_input_connected_outside_follows_the_outer_link(info):
    wf = _graph()
    wf["nodes"].append(_node(3, "PrimitiveNode", [], [{"name": "FLOAT", "type": "FLOAT", "links": [3]}], [0.5]))
    wf["nodes"][1]["inputs"][1]["link"] = 3
    wf["links"].append([3, 3, 0, 10, 1, "FLOAT"])
    assert wa.ui_to_api(wf, info)["10:11"]["inputs"]["scale_by"] == 0.5


@pytest.mark.parametrize("mode", [wa.MODE_BYPASS, wa.MODE_NEVER])
def test_bypassed_or_muted_node_inside_a_subgraph(info, mode):
    api = wa.ui_to_api(_graph(inner_mode=mode), info)
    assert "10:5" not in api
    if mode == wa.MODE_BYPASS:  # re-routed to its LATENT input
        assert api["10:6:3"]["inputs"]["samples"] == ["10:11", 0]
    else:  # the input pointing at a muted node is dropped
        assert "samples" not in api["10:6:3"]["inputs"]


def test_bypassed_instance_routes_around_its_subgraph(info):
    api = wa.ui_to_api(_graph(instance_mode=wa.MODE_BYPASS), info)
    assert sorted(api) == ["1", "2"]
    assert api["2"]["inputs"]["samples"] == ["1", 0]
    api = wa.ui_to_api(_graph(instance_mode=wa.MODE_NEVER), info)
    assert sorted(api) == ["1", "2"] and "samples" not in api["2"]["inputs"]


def test_subgraph_that_contains_itself_is_refused(info):
    wf = _graph()
    wf["definitions"]["subgraphs"][1]["nodes"].append(_node(9, "N"))
    with pytest.raises(wa.WorkflowFormatError, match="contains itself"):
        wa.ui_to_api(wf, info)


def _templates_dir():
    try:
        import comfyui_workflow_templates_json
    except ImportError:
        return None
    d = Path(comfyui_workflow_templates_json.__file__).resolve().parent / "templates"
    return d if d.is_dir() else None


@pytest.mark.parametrize("recorded", sorted(RECORDED.glob("*.prompt.json")), ids=lambda p: p.name.split(".")[0])
def test_stock_template_matches_the_real_frontend(pack, recorded):
    tdir = _templates_dir()
    if tdir is None:
        pytest.skip("comfyui-workflow-templates not installed (ComfyUI 0.33.0's requirements install it)")
    path = tdir / recorded.name.replace(".prompt.json", ".json")
    if not path.exists():
        pytest.skip(f"template {path.name} not in the installed comfyui-workflow-templates")
    wf = json.loads(path.read_text())
    info = wa.object_info_in_process()
    missing = [t for t in wa.node_types(wf) if t not in info and t not in wa.VIRTUAL_NODE_TYPES]
    if missing:
        pytest.skip(f"this ComfyUI lacks {missing}")
    ours = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in wa.ui_to_api(wf, info, strict=False).items()}
    assert ours == json.loads(recorded.read_text())


# ---------------------------------------------------------------------------------------------
# Graphs without subgraphs, small hand-made UI graphs (frontend rules; moved from test_workflows.py)
# ---------------------------------------------------------------------------------------------

def _ui(nodes, links):
    return {"last_node_id": max(n["id"] for n in nodes), "last_link_id": max([l[0] for l in links] or [0]),
            "nodes": nodes, "links": links, "groups": [], "config": {}, "extra": {}, "version": 0.4}


def _n(nid, t, inputs=(), outputs=(), widgets=None, mode=0, order=0):
    return {"id": nid, "type": t, "pos": [0, 0], "size": [1, 1], "flags": {}, "order": order, "mode": mode,
            "inputs": [dict(i) for i in inputs], "outputs": [dict(o) for o in outputs], "properties": {},
            "widgets_values": widgets if widgets is not None else []}


def test_converter_widget_order_seed_control_and_links(object_info):
    ck = _n(1, "CheckpointLoaderSimple", outputs=[{"name": "MODEL", "type": "MODEL", "links": [1]},
                                                  {"name": "CLIP", "type": "CLIP", "links": []},
                                                  {"name": "VAE", "type": "VAE", "links": []}], widgets=["a.safetensors"])
    ks = _n(2, "KSampler", inputs=[{"name": "model", "type": "MODEL", "link": 1}],
            widgets=[5, "randomize", 12, 6.5, "euler", "karras", 0.7], order=1)
    api = wa.ui_to_api(_ui([ck, ks], [[1, 1, 0, 2, 0, "MODEL"]]), object_info)
    assert api["1"] == {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "a.safetensors"},
                        "_meta": {"title": "Load Checkpoint"}}
    assert api["2"]["inputs"] == {"seed": 5, "steps": 12, "cfg": 6.5, "sampler_name": "euler", "scheduler": "karras",
                                  "denoise": 0.7, "model": ["1", 0]}
    ks["widgets_values"] = [5, 12, 6.5, "euler", "karras", 0.7]  # control value missing
    with pytest.raises(wa.WorkflowFormatError, match="6 widgets_values"):
        wa.ui_to_api(_ui([ck, ks], [[1, 1, 0, 2, 0, "MODEL"]]), object_info)


def test_converter_upload_widget_and_noise_seed(object_info):
    li = _n(1, "LoadImage", widgets=["example.png", "image"])
    rn = _n(2, "RandomNoise", widgets=[7, "fixed"])
    api = wa.ui_to_api(_ui([li, rn], []), object_info)
    assert api["1"]["inputs"] == {"image": "example.png"}
    assert api["2"]["inputs"] == {"noise_seed": 7}
    assert [s.name for s in wa.widget_slots(object_info["LoadImage"])] == ["image", "upload"]
    assert [s.kind for s in wa.widget_slots(object_info["RandomNoise"])] == ["value", "control"]


def test_converter_bypass_mute_reroute_primitive_note(object_info):
    model_out = {"name": "MODEL", "type": "MODEL"}
    ck = _n(1, "CheckpointLoaderSimple", outputs=[dict(model_out, links=[1]), {"name": "CLIP", "type": "CLIP", "links": []},
                                                  {"name": "VAE", "type": "VAE", "links": [6]}], widgets=["a.safetensors"])
    # bypassed model patch: its consumer gets the patch's MODEL input instead
    tma = _n(2, "TemporalMomentumAttention", inputs=[{"name": "model", "type": "MODEL", "link": 1}],
             outputs=[dict(model_out, links=[2])], widgets=[0.5], mode=4, order=1)
    rr = _n(3, "Reroute", inputs=[{"name": "", "type": "*", "link": 2}],
            outputs=[{"name": "", "type": "MODEL", "links": [3]}], order=2)
    prim = _n(4, "PrimitiveNode", outputs=[{"name": "INT", "type": "INT", "links": [4], "widget": {"name": "seed"}}],
              widgets=[1234, "fixed"], order=0)
    ks = _n(5, "KSampler", inputs=[{"name": "model", "type": "MODEL", "link": 3},
                                   {"name": "latent_image", "type": "LATENT", "link": 5},
                                   {"name": "seed", "type": "INT", "widget": {"name": "seed"}, "link": 4}],
            widgets=[1, "fixed", 20, 8.0, "euler", "normal", 1.0], order=3)
    muted = _n(6, "EmptyLatentImage", outputs=[{"name": "LATENT", "type": "LATENT", "links": [5]}],
               widgets=[64, 64, 1], mode=2)
    dec = _n(7, "VAEDecode", inputs=[{"name": "samples", "type": "LATENT", "link": None},
                                     {"name": "vae", "type": "VAE", "link": 6}], order=4)
    note = _n(8, "Note", widgets=["hello"])
    links = [[1, 1, 0, 2, 0, "MODEL"], [2, 2, 0, 3, 0, "MODEL"], [3, 3, 0, 5, 0, "MODEL"], [4, 4, 0, 5, 2, "INT"],
             [5, 6, 0, 5, 1, "LATENT"], [6, 1, 2, 7, 1, "VAE"]]
    api = wa.ui_to_api(_ui([ck, tma, rr, prim, ks, muted, dec, note], links), object_info)
    assert set(api) == {"1", "5", "7"}  # bypassed, muted, reroute, primitive and note nodes are not sent
    assert api["5"]["inputs"]["model"] == ["1", 0]  # through the bypassed patch and the reroute
    assert api["5"]["inputs"]["seed"] == 1234  # the primitive's value
    assert "latent_image" not in api["5"]["inputs"]  # pointed at a muted node: dropped
    assert api["7"]["inputs"] == {"vae": ["1", 2]}


def test_converter_bypass_prefers_same_slot_then_type(object_info):
    """A bypassed ControlNetApplyAdvanced passes positive->positive and negative->negative."""
    cond = lambda nid, links: _n(nid, "CLIPTextEncode", inputs=[{"name": "clip", "type": "CLIP", "link": None}],
                                 outputs=[{"name": "CONDITIONING", "type": "CONDITIONING", "links": links}], widgets=["x"])
    p, n = cond(1, [1]), cond(2, [2])
    cn = _n(3, "ControlNetApplyAdvanced",
            inputs=[{"name": "positive", "type": "CONDITIONING", "link": 1},
                    {"name": "negative", "type": "CONDITIONING", "link": 2},
                    {"name": "control_net", "type": "CONTROL_NET", "link": None},
                    {"name": "image", "type": "IMAGE", "link": None}, {"name": "vae", "type": "VAE", "link": None}],
            outputs=[{"name": "positive", "type": "CONDITIONING", "links": [3]},
                     {"name": "negative", "type": "CONDITIONING", "links": [4]}],
            widgets=[1.0, 0.0, 1.0], mode=4, order=1)
    ks = _n(4, "KSampler", inputs=[{"name": "positive", "type": "CONDITIONING", "link": 3},
                                   {"name": "negative", "type": "CONDITIONING", "link": 4}],
            widgets=[1, "fixed", 20, 8.0, "euler", "normal", 1.0], order=2)
    links = [[1, 1, 0, 3, 0, "CONDITIONING"], [2, 2, 0, 3, 1, "CONDITIONING"], [3, 3, 0, 4, 0, "CONDITIONING"],
             [4, 3, 1, 4, 1, "CONDITIONING"]]
    api = wa.ui_to_api(_ui([p, n, cn, ks], links), object_info)
    assert api["4"]["inputs"]["positive"] == ["1", 0]
    assert api["4"]["inputs"]["negative"] == ["2", 0]


def test_converter_rejects_unknown_nodes_and_group_nodes(object_info):
    """(Subgraphs are converted: the subgraph tests above.)"""
    with pytest.raises(wa.WorkflowFormatError, match="unknown node type"):
        wa.ui_to_api(_ui([_n(1, "NoSuchNode")], []), object_info)
    wf = _ui([_n(1, "Note", widgets=["x"])], [])
    wf["extra"] = {"groupNodes": {"g": {}}}
    with pytest.raises(wa.WorkflowFormatError, match="group nodes"):
        wa.ui_to_api(wf, object_info)


def test_converter_reads_v3_core_node_definitions(live_info):
    """V3 (comfy_api) core nodes come through GET_NODE_INFO_V1: widgets and control values as V1."""
    from comfy_api.internal import _ComfyNodeInternal
    import nodes
    assert issubclass(nodes.NODE_CLASS_MAPPINGS["PrimitiveInt"], _ComfyNodeInternal)
    assert issubclass(nodes.NODE_CLASS_MAPPINGS["LatentBatchSeedBehavior"], _ComfyNodeInternal)
    prim = _n(1, "PrimitiveInt", outputs=[{"name": "INT", "type": "INT", "links": []}], widgets=[5, "fixed"])
    lb = _n(2, "LatentBatchSeedBehavior", inputs=[{"name": "samples", "type": "LATENT", "link": None}],
            outputs=[{"name": "LATENT", "type": "LATENT", "links": []}], widgets=["random"])
    api = wa.ui_to_api(_ui([prim, lb], []), live_info)
    assert api["1"]["inputs"] == {"value": 5}
    assert api["2"]["inputs"] == {"seed_behavior": "random"}


def test_widget_slots_of_every_registered_node(live_info):
    """The widget layout is computable for every node ComfyUI registers (V1 and V3), names unique."""
    assert len(live_info) > 300
    for k, info in live_info.items():
        slots = wa.widget_slots(info)
        values = [s for s in slots if s.kind == "value"]
        assert len({s.name for s in values}) == len(values), k
