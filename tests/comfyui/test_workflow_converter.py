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
