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

Subgraphs and legacy group nodes are not supported (a clear error says so).
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
    "PREVIEW_3D_ANIMATION",
})
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


def widget_slots(info: dict) -> list[WidgetSlot]:
    """The node's widgets in order, i.e. the meaning of each ``widgets_values`` entry."""
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
                cag = name in ("seed", "noise_seed")
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


class _Resolver:
    def __init__(self, workflow: dict):
        self.nodes = {n["id"]: n for n in workflow.get("nodes", [])}
        self.links = _links_by_id(workflow)

    def resolve_input(self, node: dict, slot: int, type_, visited: set):
        """Follow the link into ``node``'s input ``slot``: ("link", src_id, src_slot),
        ("value", v) for a primitive, or None when nothing is connected."""
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
        link = self.links.get(link_id)
        if link is None:
            raise WorkflowFormatError(f"node {node['id']} input {inp.get('name')!r}: link {link_id} not found")
        src = self.nodes.get(link[1])
        if src is None:
            raise WorkflowFormatError(f"link {link_id}: source node {link[1]} not found")
        return self.resolve_output(src, link[2], type_ if type_ is not None else inp.get("type"), visited)

    def resolve_output(self, node: dict, slot: int, type_, visited: set):
        key = (node["id"], "O", slot)
        if key in visited:
            raise WorkflowFormatError(f"circular link through node {node['id']} output {slot}")
        visited.add(key)
        if node.get("mode", 0) == MODE_BYPASS:
            idx = self._bypass_slot(node, slot, type_)
            return None if idx < 0 else self.resolve_input(node, idx, None, visited)
        t = node.get("type")
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


def named_widget_values(node: dict, info: dict) -> dict:
    """``{widget name: value}`` for a UI node, checking the count against the definition."""
    slots = widget_slots(info)
    values = node.get("widgets_values")
    if values is None:
        values = []
    if isinstance(values, dict):  # some custom nodes save a name -> value mapping
        return {s.name: values.get(s.name, default_widget_value(s)) for s in slots}
    if len(values) != len(slots):
        raise WorkflowFormatError(
            f"node {node.get('id')} ({node.get('type')}): {len(values)} widgets_values but the node "
            f"definition has {len(slots)} widgets {[s.name for s in slots]}; regenerate the workflow "
            f"(python scripts/build_workflows.py) or fix the file")
    return {s.name: v for s, v in zip(slots, values)}


def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """Convert a UI-format workflow to the API format ``{id: {"class_type", "inputs", "_meta"}}``.

    ``object_info`` maps class types to their ``/object_info`` definitions. Raises
    ``WorkflowFormatError`` for unknown node types, subgraphs/group nodes, wrong widget counts or
    broken links."""
    if (workflow.get("definitions") or {}).get("subgraphs"):
        raise WorkflowFormatError("subgraphs are not supported by this converter")
    if (workflow.get("extra") or {}).get("groupNodes"):
        raise WorkflowFormatError("legacy group nodes are not supported by this converter")
    res = _Resolver(workflow)
    order = sorted(workflow.get("nodes", []), key=lambda n: (n.get("order", 0), n["id"]))
    output: dict = {}
    for node in order:
        t = node.get("type")
        if t in VIRTUAL_NODE_TYPES or node.get("mode", 0) in (MODE_NEVER, MODE_BYPASS):
            continue
        info = object_info.get(t)
        if info is None:
            raise WorkflowFormatError(f"node {node['id']}: unknown node type {t!r} (missing custom node?)")
        slots = widget_slots(info)
        values = named_widget_values(node, info)
        inputs: dict = {}
        for s in slots:
            if s.kind != "value":
                continue
            v = values[s.name]
            inputs[s.input] = {"__value__": v} if isinstance(v, list) else v
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


def load_workflow(path) -> dict:
    return json.loads(Path(path).read_text())


def convert_file(path, object_info: dict) -> dict:
    return ui_to_api(load_workflow(path), object_info)


def node_types(workflow: dict) -> list[str]:
    return sorted({n["type"] for n in workflow.get("nodes", [])})


def find_nodes(api: dict, class_type: str) -> list[str]:
    """Ids of the API nodes of a class type, in id order."""
    return sorted((k for k, v in api.items() if v["class_type"] == class_type), key=lambda k: int(k) if k.isdigit() else k)


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
