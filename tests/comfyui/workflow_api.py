"""ComfyUI workflow formats: the UI format (what users save and drag in) -> the API format (what
``POST /prompt`` and ``execution.validate_prompt`` take), driven by the node definitions.

The conversion follows the ComfyUI frontend's own ``graphToPrompt`` (frontend 1.27, shipped with
ComfyUI 0.3.64) so that the API graph the tests run is the one a user's "Queue" would send:

* Node definitions are ``/object_info`` entries (``object_info_in_process()`` builds them from
  ``nodes.NODE_CLASS_MAPPINGS`` exactly as ``server.py`` does, V1 ``INPUT_TYPES`` and V3
  ``GET_NODE_INFO_V1``; ``object_info_from_server(url)`` reads them over HTTP).
* ``widgets_values`` holds one entry per widget in widget order: the inputs of a widget type
  (INT, FLOAT, BOOLEAN, STRING, COMBO, ...; not ``forceInput``) in ``input_order`` (required, then
  optional, then inputs the frontend adds). An INT with ``control_after_generate`` (or, when the
  option is absent, named ``seed``/``noise_seed``) is followed by its control value ("fixed",
  "randomize", ...); a COMBO with ``control_after_generate`` is followed by the control value and a
  filter string; a COMBO with ``image_upload``/``video_upload``/``animated_image_upload`` adds an
  ``upload`` button widget after all inputs. Control/upload values are not sent to the API.
* A widget whose input slot is linked is replaced by the link. A link from a ``PrimitiveNode`` gives
  the primitive's value; ``Reroute`` nodes are followed to their source; ``Note``/``MarkdownNote``
  are dropped.
* ``mode`` 2 (muted, "never") and 4 (bypassed) nodes are not sent. A link from a bypassed node is
  re-routed to the bypassed node's input of the same slot index when its type fits, else to its first
  input of exactly the link's type, else the first compatible one; an input left pointing at a muted
  node (or at nothing) is removed, as the frontend does.
* Array widget values are wrapped as ``{"__value__": [...]}``.

* Subgraphs (``definitions.subgraphs``, frontend 1.2x+, the stock templates of ComfyUI 0.33.0) are
  flattened as the frontend's ``ExecutableNodeDTO`` does: an inner node gets the execution id
  ``"<instance id>:<inner id>"`` (``"<outer>:<middle>:<inner>"`` when nested); a link from the
  subgraph's input node follows the instance's input of that subgraph input (matched by name) out to
  its source, or, when that input is not connected, takes the instance's widget value (the
  instance's ``widgets_values`` hold one value per subgraph input that feeds an inner widget, in
  subgraph-input order); a link from an instance's output follows the subgraph's output node to its
  inner source. Inner nodes keep their own mode (muted/bypassed inner nodes are handled as above);
  a bypassed instance re-routes its outputs to its inputs like any bypassed node.

Legacy group nodes are not supported (a clear error says so).
"""
from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Input types for which the frontend (1.27) creates a widget rather than a socket: its core widget
# constructors plus the custom widgets of its core extensions.
WIDGET_TYPES = frozenset({
    "INT", "FLOAT", "BOOLEAN", "STRING", "MARKDOWN", "COMBO", "IMAGEUPLOAD", "FILEUPLOAD", "COLOR",
    "IMAGECOMPARE", "TREESELECT", "MULTISELECT", "CHART", "GALLERIA", "SELECTBUTTON", "TEXTAREA",
    "WEBCAM", "AUDIO_UI", "AUDIOUPLOAD", "AUDIO_RECORD", "LOAD_3D", "LOAD_3D_ANIMATION", "PREVIEW_3D",
    "PREVIEW_3D_ANIMATION", "COMFY_DYNAMICCOMBO_V3",
})
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"  # V3 io.DynamicCombo: a combo whose option adds its own inputs
# Frontend-only nodes (``isVirtualNode``): never sent to the API.
VIRTUAL_NODE_TYPES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
MODE_NEVER = 2  # "muted"
MODE_BYPASS = 4
UPLOAD_OPTIONS = ("image_upload", "video_upload", "animated_image_upload")
CONTROL_VALUES = ("fixed", "increment", "decrement", "randomize", "increment-wrap")


class WorkflowFormatError(ValueError):
    """A UI workflow that cannot be converted (unknown node type, wrong widget count, ...)."""


@dataclass(frozen=True)
class WidgetSlot:
    """One entry of a node's ``widgets_values``.

    ``input`` is the node input the value feeds (None for the frontend-only control, filter and
    upload widgets, which are saved in the UI file but never sent to the API)."""
    name: str
    input: str | None
    spec: tuple | None  # (type, options) of the input, None for frontend-only widgets
    kind: str  # "value", "control", "filter", "upload"


# ---------------------------------------------------------------------------------------------
# Node definitions
# ---------------------------------------------------------------------------------------------

def node_info(class_type: str) -> dict:
    """The ``/object_info`` entry of one node class, built in-process as ``server.py`` does.

    Requires ComfyUI to be imported (``nodes`` importable) with its nodes registered."""
    import nodes
    cls = nodes.NODE_CLASS_MAPPINGS[class_type]
    try:
        from comfy_api.internal import _ComfyNodeInternal
    except ImportError:  # older ComfyUI without the V3 API
        _ComfyNodeInternal = ()
    if _ComfyNodeInternal and issubclass(cls, _ComfyNodeInternal):
        return cls.GET_NODE_INFO_V1()
    inputs = cls.INPUT_TYPES()
    info = {
        "input": inputs,
        "input_order": {k: list(v.keys()) for k, v in inputs.items()},
        "output": list(cls.RETURN_TYPES),
        "output_is_list": list(getattr(cls, "OUTPUT_IS_LIST", [False] * len(cls.RETURN_TYPES))),
        "output_name": list(getattr(cls, "RETURN_NAMES", cls.RETURN_TYPES)),
        "name": class_type,
        "display_name": nodes.NODE_DISPLAY_NAME_MAPPINGS.get(class_type, class_type),
        "description": getattr(cls, "DESCRIPTION", ""),
        "python_module": getattr(cls, "RELATIVE_PYTHON_MODULE", "nodes"),
        "category": getattr(cls, "CATEGORY", "sd"),
        "output_node": bool(getattr(cls, "OUTPUT_NODE", False)),
    }
    if hasattr(cls, "OUTPUT_TOOLTIPS"):
        info["output_tooltips"] = list(cls.OUTPUT_TOOLTIPS)
    return info


def object_info_in_process(class_types=None) -> dict:
    """``{class_type: node_info}`` for the given class types (default: every registered node)."""
    import nodes
    names = list(nodes.NODE_CLASS_MAPPINGS) if class_types is None else list(class_types)
    return {n: node_info(n) for n in names if n in nodes.NODE_CLASS_MAPPINGS}


def object_info_from_server(base_url: str, timeout: float = 60.0) -> dict:
    """``GET /object_info`` of a running ComfyUI server (``base_url`` like http://127.0.0.1:8188)."""
    import urllib.request
    with urllib.request.urlopen(base_url.rstrip("/") + "/object_info", timeout=timeout) as r:
        return json.loads(r.read())


# ---------------------------------------------------------------------------------------------
# Widgets of a node definition
# ---------------------------------------------------------------------------------------------

def _input_type(spec) -> str:
    t = spec[0] if isinstance(spec, (list, tuple)) and spec else spec
    if isinstance(t, (list, tuple)):
        return "COMBO"
    return str(t)


def _options(spec) -> dict:
    if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict):
        return spec[1]
    return {}


def ordered_inputs(info: dict) -> list[tuple[str, Any, bool]]:
    """``[(name, spec, optional)]`` in the frontend's order: ``input_order`` required, then
    optional, then any remaining input (e.g. the ``upload`` widget the frontend adds)."""
    inputs = info.get("input", {})
    required = dict(inputs.get("required", {}) or {})
    optional = dict(inputs.get("optional", {}) or {})
    order = info.get("input_order") or {}
    out, seen = [], set()
    for name in order.get("required", list(required)):
        if name in required:
            out.append((name, required[name], False))
            seen.add(name)
    for name in order.get("optional", list(optional)):
        if name in optional and name not in seen:
            out.append((name, optional[name], True))
            seen.add(name)
    for name, spec in list(required.items()) + list(optional.items()):
        if name not in seen:
            out.append((name, spec, name in optional))
            seen.add(name)
    return out


def is_widget_input(spec) -> bool:
    opts = _options(spec)
    if opts.get("forceInput"):
        return False
    t = opts.get("widgetType") or _input_type(spec)
    return t in WIDGET_TYPES


def widget_slots(info: dict, seed_by_name: bool = True) -> list[WidgetSlot]:
    """The node's widgets in order, i.e. the meaning of each ``widgets_values`` entry.

    ``seed_by_name``: an INT named ``seed``/``noise_seed`` without a ``control_after_generate``
    option gets a control widget (top-level inputs); the inputs of a DynamicCombo option do not
    (frontend 1.49: only an explicit option adds one there)."""
    slots: list[WidgetSlot] = []
    upload = None
    required = (info.get("input", {}) or {}).get("required", {}) or {}
    for name, spec, optional in ordered_inputs(info):
        if not is_widget_input(spec):
            continue
        opts = _options(spec)
        t = _input_type(spec)
        slots.append(WidgetSlot(name, name, tuple(spec) if isinstance(spec, (list, tuple)) else (spec,), "value"))
        if t == "INT":
            cag = opts.get("control_after_generate")
            if cag is None:
                cag = seed_by_name and name in ("seed", "noise_seed")
            if cag:
                cname = cag if isinstance(cag, str) else "control_after_generate"
                slots.append(WidgetSlot(cname, None, None, "control"))
        elif t == "COMBO" and opts.get("control_after_generate"):
            cag = opts["control_after_generate"]
            slots.append(WidgetSlot(cag if isinstance(cag, str) else "control_after_generate", None, None, "control"))
            slots.append(WidgetSlot("control_filter_list", None, None, "filter"))
        if upload is None and not optional and name in required and t == "COMBO" \
                and any(opts.get(k) is True for k in UPLOAD_OPTIONS):
            upload = name
    if upload is not None:  # Comfy.UploadImage adds required["upload"] (IMAGEUPLOAD) after all inputs
        slots.append(WidgetSlot("upload", None, None, "upload"))
    return slots


def default_widget_value(slot: WidgetSlot):
    """The value the frontend gives a fresh widget (node definition default)."""
    if slot.kind == "control":
        return "randomize"
    if slot.kind == "filter":
        return ""
    if slot.kind == "upload":
        return "image"
    spec = slot.spec
    opts = _options(spec)
    t = _input_type(spec)
    if "default" in opts:
        return opts["default"]
    if t == DYNAMIC_COMBO:
        keys = [o.get("key") for o in opts.get("options", [])]
        return keys[0] if keys else None
    if t == "COMBO":
        choices = spec[0] if isinstance(spec[0], (list, tuple)) else opts.get("options", [])
        return choices[0] if choices else None
    return {"INT": 0, "FLOAT": 0.0, "BOOLEAN": False, "STRING": ""}.get(t)


# ---------------------------------------------------------------------------------------------
# UI -> API
# ---------------------------------------------------------------------------------------------

def _types_compatible(a, b) -> bool:
    """LiteGraph.isValidConnection: '*'/'' match anything; comma lists match any member."""
    a = "" if a in (None, "*") else str(a)
    b = "" if b in (None, "*") else str(b)
    if not a or not b or a == b:
        return True
    a, b = a.lower(), b.lower()
    if "," not in a and "," not in b:
        return a == b
    return any(_types_compatible(x, y) for x in a.split(",") for y in b.split(","))


def _links_by_id(workflow: dict) -> dict:
    out = {}
    for link in workflow.get("links", []) or []:
        if isinstance(link, dict):  # schema 1.0 style
            out[link["id"]] = (link["id"], link["origin_id"], link["origin_slot"], link["target_id"],
                               link["target_slot"], link.get("type"))
        else:
            out[link[0]] = tuple(link[:6])
    return out


SUBGRAPH_INPUT_NODE = -10  # LiteGraph's ids of a subgraph's input and output nodes
SUBGRAPH_OUTPUT_NODE = -20
_SG_INSTANCE, _SG_INPUTS, _SG_OUTPUTS = "__subgraph_instance__", "__subgraph_inputs__", "__subgraph_outputs__"


def subgraph_definitions(workflow: dict) -> dict:
    """``{subgraph id: definition}`` of a workflow, including definitions nested in definitions."""
    out: dict = {}
    todo = [workflow]
    while todo:
        g = todo.pop()
        for sg in (g.get("definitions") or {}).get("subgraphs") or []:
            if sg["id"] not in out:
                out[sg["id"]] = sg
                todo.append(sg)
    return out


def _exec_id(prefix: str, node_id) -> str:
    return f"{prefix}:{node_id}" if prefix else str(node_id)


def flatten(workflow: dict) -> tuple[dict, dict]:
    """The workflow's nodes and links with every subgraph instance expanded, keyed by execution id.

    Returns ``(nodes, links)``: ``nodes[exec_id]`` is a copy of the UI node with ``id`` set to its
    execution id and each input's ``link`` set to a key of ``links``; ``links[key]`` is
    ``(key, origin exec id, origin slot, target exec id, target slot, type)``. A subgraph instance
    stays as a node of type ``__subgraph_instance__`` (its inputs/outputs are the subgraph's, in the
    definition's order); its subgraph's input and output nodes are the pseudo nodes
    ``"<instance>:-10"`` / ``"<instance>:-20"``. Raises ``WorkflowFormatError`` for a subgraph that
    contains itself."""
    defs = subgraph_definitions(workflow)
    renames = _dedupe_node_ids(workflow, defs)
    nodes: dict = {}
    links: dict = {}

    def add(graph: dict, prefix: str, stack: tuple, hidden: bool):
        ren = renames.get(graph.get("id"), {}) if graph is not workflow else {}

        def rid(i):
            return ren.get(i, i)
        for link in _links_by_id(graph).values():
            key = (prefix, link[0])
            links[key] = (key, _exec_id(prefix, rid(link[1])), link[2], _exec_id(prefix, rid(link[3])), link[4], link[5])
        for n in graph.get("nodes", []) or []:
            eid = _exec_id(prefix, rid(n["id"]))
            node = dict(n, id=eid, inputs=[dict(i, link=None if i.get("link") is None else (prefix, i["link"]))
                                           for i in (n.get("inputs") or [])])
            if hidden:  # inside a muted or bypassed instance: the frontend sends none of its nodes
                node["hidden"] = True
            nodes[eid] = node
            sg = defs.get(n.get("type"))
            if sg is None:
                continue
            if sg["id"] in stack:
                raise WorkflowFormatError(f"subgraph {sg.get('name', sg['id'])!r} contains itself (node {eid})")
            saved = {i.get("name"): i for i in node["inputs"]}
            node.update(type=_SG_INSTANCE, subgraph=sg, outer_type=n.get("type"),
                        inputs=[{"name": si["name"], "type": si.get("type"),
                                 "link": (saved.get(si["name"]) or {}).get("link")} for si in sg.get("inputs", [])],
                        outputs=[{"name": so["name"], "type": so.get("type")} for so in sg.get("outputs", [])])
            nodes[_exec_id(eid, SUBGRAPH_INPUT_NODE)] = {"id": _exec_id(eid, SUBGRAPH_INPUT_NODE), "type": _SG_INPUTS,
                                                         "instance": eid, "inputs": [], "mode": 0}
            nodes[_exec_id(eid, SUBGRAPH_OUTPUT_NODE)] = {
                "id": _exec_id(eid, SUBGRAPH_OUTPUT_NODE), "type": _SG_OUTPUTS, "mode": 0,
                "inputs": [{"name": so["name"], "type": so.get("type"),
                            "link": (eid, so["linkIds"][0]) if so.get("linkIds") else None}
                           for so in sg.get("outputs", [])]}
            add(sg, eid, stack + (sg["id"],), hidden or n.get("mode", 0) in (MODE_NEVER, MODE_BYPASS))

    add(workflow, "", (), False)
    return nodes, links


def _dedupe_node_ids(workflow: dict, defs: dict) -> dict:
    """``{subgraph id: {old node id: new node id}}``: as the frontend does on load, a node of a
    subgraph definition whose id is already used by the root graph or an earlier definition (in
    ``definitions.subgraphs`` order) gets the next free id after the root's ``last_node_id``."""
    used = {n["id"] for n in workflow.get("nodes", []) or []}
    state = workflow.get("state") or {}
    nxt = max([workflow.get("last_node_id") or 0, state.get("lastNodeId") or 0] + list(used or [0]))
    out: dict = {}
    for sg_id, sg in defs.items():
        for n in sg.get("nodes", []) or []:
            if n["id"] in used:
                nxt += 1
                while nxt in used:
                    nxt += 1
                out.setdefault(sg_id, {})[n["id"]] = nxt
                used.add(nxt)
            else:
                used.add(n["id"])
    return out


class _Resolver:
    def __init__(self, workflow: dict, object_info: dict | None = None, strict: bool = True):
        self.nodes, self.links = flatten(workflow)
        self.object_info = object_info or {}
        self.strict = strict

    def subgraph_widget_value(self, instance: dict, slot: int):
        """("value", v) of a subgraph instance's widget for subgraph input ``slot``, or None when that
        input feeds no inner widget. The instance's ``widgets_values`` has one entry per widget
        input in order; without one, the inner widget's own value is what the frontend shows."""
        sg = instance["subgraph"]
        widget_inputs = []  # (subgraph input index, first inner widget target)
        for k, si in enumerate(sg.get("inputs", [])):
            for lid in si.get("linkIds") or []:
                link = self.links.get((instance["id"], lid))
                target = self.nodes.get(link[3]) if link else None
                ins = (target or {}).get("inputs") or []
                if target is not None and link[4] < len(ins) and ins[link[4]].get("widget"):
                    widget_inputs.append((k, target, ins[link[4]]["widget"]["name"]))
                    break
        for pos, (k, target, wname) in enumerate(widget_inputs):
            if k != slot:
                continue
            values = instance.get("widgets_values")
            if isinstance(values, list) and pos < len(values):
                return ("value", values[pos])
            if isinstance(values, dict) and sg["inputs"][k]["name"] in values:
                return ("value", values[sg["inputs"][k]["name"]])
            info = self.object_info.get(target.get("type"))
            if info is not None:
                return ("value", api_widget_values(target, info, self.strict).get(wname))
            return None
        return None

    def resolve_input(self, node: dict, slot: int, type_, visited: set):
        """Follow the link into ``node``'s input ``slot``: ("link", src_id, src_slot),
        ("value", v) for a primitive or a subgraph widget, or None when nothing is connected."""
        key = (node["id"], "I", slot)
        if key in visited:
            raise WorkflowFormatError(f"circular link through node {node['id']} input {slot}")
        visited.add(key)
        inputs = node.get("inputs") or []
        if slot >= len(inputs):
            return None
        inp = inputs[slot]
        link_id = inp.get("link")
        if link_id is None:
            return None
        if not isinstance(link_id, tuple):
            link_id = ("", link_id)
        link = self.links.get(link_id)
        if link is None:
            raise WorkflowFormatError(f"node {node['id']} input {inp.get('name')!r}: link {link_id[1]} not found")
        src = self.nodes.get(link[1])
        if src is None:
            raise WorkflowFormatError(f"link {link_id[1]}: source node {link[1]} not found")
        return self.resolve_output(src, link[2], type_ if type_ is not None else inp.get("type"), visited)

    def resolve_output(self, node: dict, slot: int, type_, visited: set):
        key = (node["id"], "O", slot)
        if key in visited:
            raise WorkflowFormatError(f"circular link through node {node['id']} output {slot}")
        visited.add(key)
        t = node.get("type")
        if t == _SG_INPUTS:  # up and out of the subgraph, through the instance's input
            instance = self.nodes[node["instance"]]
            ins = instance["inputs"]
            if slot < len(ins) and ins[slot].get("link") is not None:
                return self.resolve_input(instance, slot, None, visited)
            return self.subgraph_widget_value(instance, slot)
        if node.get("mode", 0) == MODE_BYPASS:
            idx = self._bypass_slot(node, slot, type_)
            return None if idx < 0 else self.resolve_input(node, idx, None, visited)
        if t == _SG_INSTANCE:  # into the subgraph, through its output node
            return self.resolve_input(self.nodes[_exec_id(node["id"], SUBGRAPH_OUTPUT_NODE)], slot, type_, visited)
        if t == _SG_OUTPUTS:
            return self.resolve_input(node, slot, type_, visited)
        if t == "PrimitiveNode":
            vals = node.get("widgets_values") or []
            return ("value", vals[0]) if vals else None
        if t in VIRTUAL_NODE_TYPES:  # Reroute: same input index as the output
            if slot < len(node.get("inputs") or []):
                return self.resolve_input(node, slot, type_, visited)
            return None
        return ("link", node["id"], slot)

    @staticmethod
    def _bypass_slot(node: dict, slot: int, type_) -> int:
        inputs = node.get("inputs") or []
        outputs = node.get("outputs") or []
        if type_ in (None, "", "*"):
            return slot if len(inputs) > slot else 0
        out_type = outputs[slot].get("type") if slot < len(outputs) else None
        if slot < len(inputs) and _types_compatible(inputs[slot].get("type"), out_type) \
                and _types_compatible(inputs[slot].get("type"), type_):
            return slot
        for i, inp in enumerate(inputs):
            if inp.get("type") == type_:
                return i
        for i, inp in enumerate(inputs):
            if _types_compatible(inp.get("type"), out_type) and _types_compatible(inp.get("type"), type_):
                return i
        return -1


def named_widget_values(node: dict, info: dict, strict: bool = True) -> dict:
    """``{widget name: value}`` for a UI node.

    ``strict``: the count must match the definition (files this pack writes). Not strict: as the
    frontend's ``LGraphNode.configure`` does, values are assigned by position, missing ones keep the
    definition default and extra ones are ignored (stock templates saved by other frontend versions,
    e.g. 0.11.44's ``CreateVideo`` without ``bit_depth`` or ``PreviewAny``'s display widgets)."""
    slots = widget_slots(info)
    values = node.get("widgets_values")
    if values is None:
        values = []
    if isinstance(values, dict):  # some custom nodes save a name -> value mapping
        return {s.name: values.get(s.name, default_widget_value(s)) for s in slots}
    if strict and len(values) != len(slots) and not any(_input_type(s.spec) == DYNAMIC_COMBO for s in slots if s.spec):
        raise WorkflowFormatError(
            f"node {node.get('id')} ({node.get('type')}): {len(values)} widgets_values but the node "
            f"definition has {len(slots)} widgets {[s.name for s in slots]}; regenerate the workflow "
            f"(python scripts/build_workflows.py) or fix the file")
    return {s.name: (values[i] if i < len(values) else default_widget_value(s)) for i, s in enumerate(slots)}


def api_widget_values(node: dict, info: dict, strict: bool = True) -> dict:
    """``{API input name: value}`` of a UI node's value widgets (control/filter/upload dropped).

    A ``DynamicCombo`` widget is followed by the widgets of its selected option's inputs (recursively),
    named ``"<combo>.<input>"`` as the backend expects them."""
    values = node.get("widgets_values")
    slots = widget_slots(info)
    if not any(s.spec and _input_type(s.spec) == DYNAMIC_COMBO for s in slots) or isinstance(values, dict):
        named = named_widget_values(node, info, strict)
        return {s.input: named[s.name] for s in slots if s.kind == "value"}
    values = list(values or [])
    out: dict = {}
    pos = 0

    def take(slot: WidgetSlot):
        nonlocal pos
        v = values[pos] if pos < len(values) else default_widget_value(slot)
        pos += 1
        return v

    def walk(slot_list: list[WidgetSlot], prefix: str):
        for s in slot_list:
            v = take(s)
            if s.kind != "value":
                continue
            name = prefix + s.input
            out[name] = v
            if _input_type(s.spec) == DYNAMIC_COMBO:
                for opt in _options(s.spec).get("options", []):
                    if opt.get("key") == v:
                        walk(widget_slots({"input": opt.get("inputs") or {}}, seed_by_name=False), name + ".")
                        break

    walk(slots, "")
    if strict and pos != len(values):
        raise WorkflowFormatError(
            f"node {node.get('id')} ({node.get('type')}): {len(values)} widgets_values but its widgets "
            f"(dynamic options expanded) take {pos}; regenerate the workflow or fix the file")
    return out


def ui_to_api(workflow: dict, object_info: dict, strict: bool = True) -> dict:
    """Convert a UI-format workflow to the API format ``{id: {"class_type", "inputs", "_meta"}}``.

    ``object_info`` maps class types to their ``/object_info`` definitions. Nodes inside subgraphs
    get execution ids ``"<instance>:<inner>"`` (see the module docstring). Raises
    ``WorkflowFormatError`` for unknown node types, legacy group nodes, wrong widget counts or
    broken links. ``strict=False`` for files saved by a frontend (stock templates): widget values
    are assigned by position as the frontend does (see ``named_widget_values``)."""
    if (workflow.get("extra") or {}).get("groupNodes"):
        raise WorkflowFormatError("legacy group nodes are not supported by this converter")
    res = _Resolver(workflow, object_info, strict)
    output: dict = {}
    for node in sorted(res.nodes.values(), key=lambda n: (n.get("order", 0), exec_id_key(n["id"]))):
        t = node.get("type")
        if t in VIRTUAL_NODE_TYPES or t in (_SG_INSTANCE, _SG_INPUTS, _SG_OUTPUTS) or node.get("hidden") \
                or node.get("mode", 0) in (MODE_NEVER, MODE_BYPASS):
            continue
        info = object_info.get(t)
        if info is None:
            raise WorkflowFormatError(f"node {node['id']}: unknown node type {t!r} (missing custom node?)")
        inputs = {k: ({"__value__": v} if isinstance(v, list) else v)
                  for k, v in api_widget_values(node, info, strict).items()}
        for i, inp in enumerate(node.get("inputs") or []):
            r = res.resolve_input(node, i, None, set())
            if r is None:
                continue
            name = inp["name"]
            if r[0] == "value":
                if name in inputs or inp.get("widget"):
                    inputs[name] = {"__value__": r[1]} if isinstance(r[1], list) else r[1]
                continue
            inputs[name] = [str(r[1]), int(r[2])]
        output[str(node["id"])] = {"inputs": inputs, "class_type": t,
                                   "_meta": {"title": node.get("title") or info.get("display_name", t)}}
    for entry in output.values():  # inputs pointing at removed (muted) nodes are dropped
        for name in list(entry["inputs"]):
            v = entry["inputs"][name]
            if isinstance(v, list) and len(v) == 2 and v[0] not in output:
                del entry["inputs"][name]
    return output


def exec_id_key(node_id: str) -> tuple:
    """Sort key of an execution id (``"12"`` or ``"129:98"``): numerically, segment by segment."""
    return tuple(int(p) if p.lstrip("-").isdigit() else 0 for p in str(node_id).split(":"))


def load_workflow(path) -> dict:
    return json.loads(Path(path).read_text())


def convert_file(path, object_info: dict) -> dict:
    return ui_to_api(load_workflow(path), object_info)


def node_types(workflow: dict) -> list[str]:
    """The node types of a workflow, subgraph contents included (subgraph instance types excluded)."""
    defs = subgraph_definitions(workflow)
    graphs = [workflow] + list(defs.values())
    return sorted({n["type"] for g in graphs for n in g.get("nodes", []) if n["type"] not in defs})


def find_nodes(api: dict, class_type: str) -> list[str]:
    """Ids of the API nodes of a class type, in id order."""
    return sorted((k for k, v in api.items() if v["class_type"] == class_type), key=exec_id_key)


def recorded_external_defs() -> dict:
    """The recorded ``/object_info`` definitions of the third-party nodes the shipped workflows use
    (``scripts/external_node_defs.json``), by node type."""
    import json
    from pathlib import Path
    path = Path(__file__).resolve().parents[2] / "scripts" / "external_node_defs.json"
    data = json.loads(path.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_") and k != "cnr_ids"}

def set_inputs(api: dict, class_type: str, **values) -> dict:
    """Set widget inputs on every API node of ``class_type`` (in place); returns the api graph.
    Raises KeyError when no such node exists or an input name is not one of its inputs."""
    ids = find_nodes(api, class_type)
    if not ids:
        raise KeyError(f"no {class_type} node in the graph")
    for k in ids:
        for name, v in values.items():
            if name not in api[k]["inputs"]:
                raise KeyError(f"{class_type} node {k} has no input {name!r}")
            api[k]["inputs"][name] = v
    return api


def deepcopy(api: dict) -> dict:
    return copy.deepcopy(api)


def drift_view(workflow: dict) -> dict:
    """The parts of a UI workflow that a ComfyUI version must not change for the file to be current: a
    copy without the output slots that no link uses. Newer ComfyUIs add outputs to existing nodes
    (0.33.0: ``SaveImage``/``SaveAnimatedWEBP`` return their IMAGE), which the frontend adds to a
    loaded node from its definition; nodes, titles, widget values, inputs, links, linked outputs
    (slot index, name, type) and the layout are compared as they are."""
    wf = copy.deepcopy(workflow)
    for n in wf.get("nodes", []):
        n["outputs"] = [o for o in n.get("outputs", []) if o.get("links")]
    return wf
