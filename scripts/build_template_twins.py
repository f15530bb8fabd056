#!/usr/bin/env python
"""Build this pack's twins of ComfyUI's stock workflow templates FROM the installed stock JSON.

A twin is the stock template file (``comfyui-workflow-templates``, ComfyUI 0.33.0 pins 0.11.44) with every
stock node, subgraph, switch, note and widget value kept, plus:

* the pack's node(s) inserted between the template's model(s) and its sampler(s), in the graph (or
  subgraph) where the sampler is;
* an A/B switch: a ``PrimitiveBoolean`` titled ``TFV_AB_TITLE`` and one ``ComfySwitchNode`` per sampler
  model input (on_true: through the pack's node; on_false: the stock model), as the stock templates'
  own Lightning switch does. Off, the graph computes exactly the stock template (the switch is lazy: the
  pack's node is not even run). Inside a subgraph the boolean is also exposed on the subgraph node as
  ``enable_<method>``, next to the template's own switches;
* one MarkdownNote titled ``TFV_NOTE_TITLE`` saying what was added;
* sampler seeds' (and RandomNoise's) control set to ``fixed`` (same seed, A/B comparable);
* ``extra.training_free_video``: source template, template package version, method, A/B switch.

A template update is one regeneration: ``python scripts/build_workflows.py`` calls ``build_all`` here.
Without the template package (ComfyUI 0.3.64) the twins are left as they are, with a message.
"""
from __future__ import annotations

import copy
import json
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "comfyui"))
sys.path.insert(0, str(REPO / "scripts"))

import workflow_api as wa  # noqa: E402
from template_coverage import TWIN_KEY, templates_dir, templates_version  # noqa: E402

TFV_AB_TITLE = "Training-free video: enable (A/B)"
TFV_NOTE_TITLE = "Training-free video twin"
PACK_CNR_ID = "comfyui-training-free-video"
SAMPLERS = ("KSamplerAdvanced", "KSampler", "SamplerCustom", "CFGGuider", "BasicGuider", "LTXVDualCFGGuider")
SEED_NODES = ("RandomNoise",)  # SamplerCustomAdvanced's seed (MiniMax H3 r2v ships it "randomize")


@dataclass
class Twin:
    """One twin: ``source`` template, the pack ``node`` inserted and its widget values, ``ab_input`` the
    name the A/B boolean gets on a subgraph node, and the ComfyUI features it needs."""
    name: str
    source: str
    node: str
    widgets: dict
    method: str
    note: str
    ab_input: str = "enable_freeinit"
    needs: str = "ComfyUI >= 0.33.0 (subgraphs, ComfySwitchNode, PrimitiveBoolean)"
    meta: dict = field(default_factory=dict)
    stage: str | None = None  # "base": of several sampler stages, the one starting from noise (see _base_stage)


FREEINIT = {"iterations": 3, "filter": "butterworth", "d_s": 0.25, "d_t": 0.25, "order": 4, "min_signal": 0.068,
            "coarse_to_fine": False}

TWINS = [
    Twin("template_wan22_14b_i2v_freeinit", "video_wan2_2_14B_i2v", "TFVFreeInitTwoExperts", FREEINIT,
         "FreeInit (KSampler, two experts)",
         "FreeInit on Wan 2.2 14B image-to-video (two experts): FreeInit (KSampler, two experts) sits inside the "
         "subgraph between the two ModelSamplingSD3 and the two KSamplerAdvanced. The start image conditions "
         "through WanImageToVideo's concat latent, which every FreeInit pass keeps.\n\n"
         "enable_freeinit (on the subgraph node) is the A/B switch: off, the graph is the stock template (same "
         "seed, same video). Lightning (enable_turbo_mode) works with it: 4 steps at CFG 1 need no negative.\n\n"
         "Model calls: stock 20 steps x 2 (CFG 3.5) = 40; FreeInit 3 passes = 120 (60 per expert). Lightning: "
         "4 x 1 = 4; FreeInit 12."),
    Twin("template_wan22_14b_t2v_freeinit", "video_wan2_2_14B_t2v", "TFVFreeInitTwoExperts", FREEINIT,
         "FreeInit (KSampler, two experts)",
         "FreeInit on Wan 2.2 14B text-to-video (two experts), the 0.11.44 template with its Lightning switch: "
         "FreeInit (KSampler, two experts) sits inside the subgraph between the two ModelSamplingSD3 and the two "
         "KSamplerAdvanced.\n\nenable_freeinit is the A/B switch: off, the graph is the stock template.\n\n"
         "Model calls: stock 20 x 2 (CFG 3.5) = 40; FreeInit 3 passes = 120. Lightning: 4 x 1 = 4; FreeInit 12."),
    Twin("template_wan22_5b_ti2v_freeinit", "video_wan2_2_5B_ti2v", "TFVFreeInitModelPatch", FREEINIT,
         "FreeInit (KSampler)",
         "FreeInit on Wan 2.2 5B text/image-to-video: FreeInit (KSampler) between ModelSamplingSD3 and the "
         "KSampler. The template's Load Image is bypassed (text-to-video); un-bypassed, Wan22ImageToVideoLatent "
         "puts the image in the first latent frame with a noise mask.\n\n"
         "The boolean titled 'Training-free video: enable (A/B)' is the A/B switch: off, the graph is the stock "
         "template.\n\nModel calls: stock 20 x 2 (CFG 5) = 40; FreeInit 3 passes = 120."),
]

def _minimax_h3_note(task: str, stock_steps: str) -> str:
    return (f"FreeInit on MiniMax H3 {task} (joint video + stereo audio latent): FreeInit (KSampler) sits inside "
            "the subgraph between the template's model switch (Lightning LoRA or not) and BasicGuider, so "
            "SamplerCustomAdvanced samples through it. Each FreeInit pass re-noises the video latent keeping its "
            "low frequencies; the audio (widget audio: keep initial noise, the default) starts every pass from "
            "its own initial noise and follows the refined video through the joint model (low-pass along time "
            "treats it as FreeInit treats video). The keyframe / reference latents ride in the conditioning "
            "and are kept by every pass.\n\n"
            "No negative prompt is needed: FreeInit changes the initial noise only, and BasicGuider (CFG 1, as "
            "in the stock template) has no negative.\n\n"
            f"enable_freeinit is the A/B switch: off, the graph is the stock template (same seed, same video "
            f"and audio). Lightning (the template's switch) works with it.\n\n"
            f"Model calls: {stock_steps}; FreeInit 3 passes = 3x.")


MINIMAX_H3_TWINS = [
    Twin("template_minimax_h3_i2v_freeinit", "video_minimax_h3_i2v", "TFVFreeInitModelPatch", FREEINIT,
         "FreeInit (KSampler)", _minimax_h3_note("image-to-video (first frame as a keyframe)",
                                                 "stock 20 steps x 1 (BasicGuider) = 20, Lightning 8")),
    Twin("template_minimax_h3_r2v_freeinit", "video_minimax_h3_r2v", "TFVFreeInitModelPatch", FREEINIT,
         "FreeInit (KSampler)", _minimax_h3_note("reference-to-video (two reference images)",
                                                 "stock 20 steps x 1 (BasicGuider) = 20, Lightning 4")),
    Twin("template_minimax_h3_t2v_freeinit", "video_minimax_h3_t2v", "TFVFreeInitModelPatch", FREEINIT,
         "FreeInit (KSampler)", _minimax_h3_note("text-to-video",
                                                 "stock 20 steps x 1 (BasicGuider) = 20, Lightning 8")),
]
TWINS += MINIMAX_H3_TWINS


def _ltx_note(model: str, mode: str, guider: str, base_nfe: str, refine_nfe: str, extra: str = "") -> str:
    """The note of an LTX-2.x twin (two sampler stages: base from noise at half size, latent-upscale refine)."""
    return (f"FreeInit on {model} {mode} (audio+video): FreeInit (KSampler) sits inside the subgraph on the model "
            f"input of the BASE stage's {guider}, the SamplerCustomAdvanced whose ManualSigmas start from noise "
            f"(1.0 ... 0). FreeInit re-noises a pass's result to the first sigma and keeps its low frequencies, so it "
            f"belongs on the stage that starts from noise; the latent-upscale refine stage (sigmas 0.85 ... 0) "
            f"starts from the base result and runs as in the stock template. The video stream gets FreeInit's 3-D "
            f"low-pass; the audio stream keeps its own initial noise in every pass (input audio). The image frame "
            f"LTXVImgToVideoInplace puts in place (noise mask) stays the image's in every pass. The distilled "
            f"model runs at CFG 1 with ManualSigmas: FreeInit needs no negative prompt.{extra}\n\n"
            f"enable_freeinit (on the subgraph node) is the A/B switch: off, the graph is the stock template (same "
            f"seed, same video and audio; the base stage's noise seed is set to fixed).\n\n"
            f"Model calls: base stage stock {base_nfe}, FreeInit 3 passes = 3 x that; refine stage {refine_nfe} "
            f"in both.")


_LTX_ENHANCE = (" Prompt enhance (TextGenerateLTX2Prompt, an LLM) is the template's and runs once, before sampling, "
                "either way.")
TWINS += [
    Twin("template_ltx23_t2v_freeinit", "video_ltx2_3_t2v", "TFVFreeInitModelPatch", FREEINIT, "FreeInit (KSampler)",
         _ltx_note("LTX-2.3 22B", "text-to-video", "CFGGuider", "8 steps x 1 (CFG 1) = 8", "3 x 1 = 3",
                   _LTX_ENHANCE), stage="base"),
    Twin("template_ltx23_i2v_freeinit", "video_ltx2_3_i2v", "TFVFreeInitModelPatch", FREEINIT, "FreeInit (KSampler)",
         _ltx_note("LTX-2.3 22B", "image-to-video", "CFGGuider", "8 steps x 1 (CFG 1) = 8", "3 x 1 = 3",
                   _LTX_ENHANCE), stage="base"),
    Twin("template_ltx25_i2v_freeinit", "video_ltx2_5_i2v", "TFVFreeInitModelPatch", FREEINIT, "FreeInit (KSampler)",
         _ltx_note("LTX-2.5 22B", "image-to-video", "LTXVDualCFGGuider", "8 steps x 1 (CFG 1, 1) = 8", "3 x 1 = 3",
                   _LTX_ENHANCE), stage="base"),
    Twin("template_ltx25_t2v_freeinit", "video_ltx2_5_t2v", "TFVFreeInitModelPatch", FREEINIT, "FreeInit (KSampler)",
         _ltx_note("LTX-2.5 22B", "text-to-video", "LTXVDualCFGGuider", "8 steps x 1 (CFG 1, 1) = 8", "3 x 1 = 3",
                   _LTX_ENHANCE), stage="base"),
]


def _ltx_one_stage_note(model: str, guider: str, base_nfe: str, extra: str = "") -> str:
    """The note of an LTX-2.x first/last-frame twin (one sampler stage, from noise)."""
    return (f"FreeInit on {model} first/last-frame-to-video (audio+video): FreeInit (KSampler) sits inside the "
            f"subgraph on the model input of the template's one {guider} (its SamplerCustomAdvanced samples from "
            f"noise, ManualSigmas 1.0 ... 0). The first and last frames come in through LTXVAddGuide (guide frames "
            f"with a noise mask), which every FreeInit pass keeps. The video stream gets FreeInit's 3-D low-pass; "
            f"the audio stream keeps its own initial noise in every pass (input audio). CFG 1: FreeInit needs no "
            f"negative prompt.{extra}\n\nThe boolean titled 'Training-free video: enable (A/B)' (enable_freeinit "
            f"on the subgraph node) is the A/B switch: off, the graph is the stock template (same seed: the "
            f"noise seed is set to fixed).\n\nModel calls: stock {base_nfe}; FreeInit 3 passes = 3 x that.")


_LTX_AUDIO_IN = (" The given audio (LoadAudio -> LTXVAudioVAEEncode -> SetLatentNoiseMask) is kept by its noise "
                 "mask in every pass, as in the stock graph.")
_LTX_REF_AUDIO = (" The reference voice (LTXVReferenceAudio) conditions every pass as it does the stock one; the ID "
                  "LoRA is on the model FreeInit patches.")
TWINS += [
    Twin("template_ltx23_ia2v_freeinit", "video_ltx2_3_ia2v", "TFVFreeInitModelPatch", FREEINIT, "FreeInit (KSampler)",
         _ltx_note("LTX-2.3 22B", "image+audio-to-video", "CFGGuider", "8 steps x 1 (CFG 1) = 8", "3 x 1 = 3",
                   _LTX_AUDIO_IN + _LTX_ENHANCE), stage="base"),
    Twin("template_ltx23_id_lora_freeinit", "video_ltx2_3_id_lora", "TFVFreeInitModelPatch", FREEINIT,
         "FreeInit (KSampler)",
         _ltx_note("LTX-2.3 22B (ID LoRA)", "image-to-video with a reference voice", "CFGGuider",
                   "8 steps x 2 (CFG 1, plus LTXVReferenceAudio's identity guidance: one extra pass without the "
                   "reference) = 16", "3 x 1 = 3", _LTX_REF_AUDIO), stage="base"),
    Twin("template_ltx23_flf2v_freeinit", "video_ltx2_3_flf2v", "TFVFreeInitModelPatch", FREEINIT,
         "FreeInit (KSampler)", _ltx_one_stage_note("LTX-2.3 22B (distilled)", "CFGGuider",
                                                    "8 steps x 1 (CFG 1) = 8")),
    Twin("template_ltx25_flf2v_freeinit", "video_ltx2_5_flf2v", "TFVFreeInitModelPatch", FREEINIT,
         "FreeInit (KSampler)", _ltx_one_stage_note("LTX-2.5 22B", "LTXVDualCFGGuider", "8 steps x 1 (CFG 1, 1) = 8",
                                                    _LTX_ENHANCE)),
]
TWINS_BY_NAME = {t.name: t for t in TWINS}


# ---------------------------------------------------------------------------------------------
# Editing a UI graph (the root graph or a subgraph definition) in place
# ---------------------------------------------------------------------------------------------

class Editor:
    """Adds nodes and links to a workflow and its subgraph definitions with ids no stock node or link
    uses (node ids are unique across the root and every definition, so the frontend renumbers nothing)."""

    def __init__(self, wf: dict, object_info: dict):
        self.wf, self.info = wf, object_info
        defs = wa.subgraph_definitions(wf)
        graphs = [wf] + list(defs.values())
        self.next_node = max(n["id"] for g in graphs for n in g.get("nodes", []))
        self.next_link = max([l[0] for l in wf.get("links", [])] + [l["id"] for d in defs.values() for l in d.get("links", [])]
                             + [wf.get("last_link_id") or 0, 0])

    def _node_id(self) -> int:
        self.next_node += 1
        self.wf["last_node_id"] = max(self.wf.get("last_node_id") or 0, self.next_node)
        return self.next_node

    def _link_id(self, g: dict) -> int:
        self.next_link += 1
        self.wf["last_link_id"] = max(self.wf.get("last_link_id") or 0, self.next_link)
        if g is not self.wf and "state" in g:
            g["state"]["lastLinkId"] = max(g["state"].get("lastLinkId") or 0, self.next_link)
            g["state"]["lastNodeId"] = max(g["state"].get("lastNodeId") or 0, self.next_node)
        return self.next_link

    @staticmethod
    def node(g: dict, nid: int) -> dict:
        return next(n for n in g["nodes"] if n["id"] == nid)

    @staticmethod
    def links(g: dict) -> list[tuple]:
        return [tuple(l[:6]) if isinstance(l, list) else (l["id"], l["origin_id"], l["origin_slot"], l["target_id"],
                                                          l["target_slot"], l.get("type")) for l in g.get("links", [])]

    def add_node(self, g: dict, class_type: str, pos, title: str | None = None, widgets: dict | None = None,
                 inputs: list | None = None, outputs: list | None = None) -> dict:
        """A node of ``class_type`` with its definition's sockets and widget values (``widgets`` by name,
        definition defaults otherwise); ``inputs``/``outputs`` override the slot lists."""
        info = self.info[class_type]
        widgets = dict(widgets or {})
        values = []
        for s in wa.widget_slots(info):
            if s.kind == "value":
                values.append(widgets.pop(s.input) if s.input in widgets else wa.default_widget_value(s))
            elif s.kind == "control":
                values.append("fixed")
            elif s.kind == "filter":
                values.append("")
            else:
                values.append("image")
        if widgets:
            raise KeyError(f"{class_type} has no widgets {sorted(widgets)}")
        if inputs is None:
            inputs = [{"name": name, "type": wa._input_type(spec), "link": None}
                      for name, spec, _ in wa.ordered_inputs(info) if not wa.is_widget_input(spec)]
        if outputs is None:
            outputs = [{"name": n, "type": t, "links": []}
                       for n, t in zip(info.get("output_name", info["output"]), info["output"])]
        custom = class_type in self.info.get("_pack_types", ()) or class_type.startswith("TFV")
        node = {"id": self._node_id(), "type": class_type, "pos": list(pos), "size": [320, 60 + 26 * len(values)],
                "flags": {}, "order": len(g["nodes"]), "mode": 0, "inputs": inputs, "outputs": outputs,
                "properties": ({"cnr_id": PACK_CNR_ID, "ver": self.info["_pack_version"]} if custom else {"cnr_id": "comfy-core"})
                | {"Node name for S&R": class_type},
                "widgets_values": values}
        if title:
            node["title"] = title
        g["nodes"].append(node)
        return node

    def link(self, g: dict, src: dict | int, slot: int, dst: dict, input_name: str, type_: str) -> int:
        """Connect ``src`` output ``slot`` (a node, or ``wa.SUBGRAPH_INPUT_NODE``) to ``dst``'s input
        ``input_name`` (added as a linked widget input when the node has no such slot)."""
        lid = self._link_id(g)
        ins = dst["inputs"]
        idx = next((i for i, x in enumerate(ins) if x["name"] == input_name), None)
        if idx is None:
            ins.append({"name": input_name, "type": type_, "widget": {"name": input_name}, "link": None})
            idx = len(ins) - 1
        ins[idx]["link"] = lid
        src_id = src["id"] if isinstance(src, dict) else src
        if isinstance(src, dict):
            src["outputs"][slot].setdefault("links", [])
            src["outputs"][slot]["links"] = (src["outputs"][slot]["links"] or []) + [lid]
        if g is self.wf:
            g["links"].append([lid, src_id, slot, dst["id"], idx, type_])
        else:
            g["links"].append({"id": lid, "origin_id": src_id, "origin_slot": slot, "target_id": dst["id"],
                               "target_slot": idx, "type": type_})
        return lid

    def reroute(self, g: dict, lid: int, new_src: dict, slot: int) -> None:
        """Make link ``lid`` start at ``new_src`` output ``slot`` instead of its stock origin."""
        for l in g["links"]:
            rec_id = l[0] if isinstance(l, list) else l["id"]
            if rec_id != lid:
                continue
            old = l[1] if isinstance(l, list) else l["origin_id"]
            old_slot = l[2] if isinstance(l, list) else l["origin_slot"]
            o = self.node(g, old)["outputs"][old_slot]
            o["links"] = [x for x in (o.get("links") or []) if x != lid]
            if isinstance(l, list):
                l[1], l[2] = new_src["id"], slot
            else:
                l["origin_id"], l["origin_slot"] = new_src["id"], slot
            new_src["outputs"][slot]["links"] = (new_src["outputs"][slot].get("links") or []) + [lid]
            return
        raise KeyError(f"link {lid} not found")

    def switch(self, g: dict, type_: str, pos, title: str) -> dict:
        """A ComfySwitchNode in the stock templates' layout (on_false, on_true, switch widget)."""
        return self.add_node(g, "ComfySwitchNode", pos, title, {"switch": False}, inputs=[
            {"name": "on_false", "type": type_, "link": None}, {"name": "on_true", "type": type_, "link": None}],
            outputs=[{"name": "output", "type": type_, "links": []}])


def _sampler_model_links(ed: Editor, g: dict) -> list[tuple[dict, int]]:
    """(sampler node, link id into its ``model`` input) of every sampler of the graph, stock order."""
    out = []
    for n in g["nodes"]:
        if n["type"] in SAMPLERS:
            for inp in n.get("inputs") or []:
                if inp["name"] == "model" and inp.get("link") is not None:
                    out.append((n, inp["link"]))
    return out


def _first_sigma(g: dict, sampler: dict) -> float:
    """The first sigma of a SamplerCustomAdvanced's ``sigmas`` when it comes from ManualSigmas."""
    links = {l[0]: l for l in Editor.links(g)}
    lid = next(i["link"] for i in sampler["inputs"] if i["name"] == "sigmas")
    src = Editor.node(g, links[lid][1])
    if src["type"] != "ManualSigmas":
        raise ValueError(f"sampler {sampler['id']}: sigmas from {src['type']}, not ManualSigmas")
    return float(str(src["widgets_values"][0]).split(",")[0])


def _base_stage(g: dict, targets: list[tuple[dict, int]]) -> list[tuple[dict, int]]:
    """Of several guiders (each feeding one SamplerCustomAdvanced), the one of the stage that starts from
    noise: its sampler's ManualSigmas start highest (LTX-2.x: base 1.0 ... 0, latent-upscale refine 0.85 ... 0).
    ValueError when no single stage starts highest."""
    links = {l[0]: l for l in Editor.links(g)}
    first = {}
    for guider, lid in targets:
        outs = [links[x] for o in guider["outputs"] for x in (o.get("links") or [])]
        samplers = [Editor.node(g, l[3]) for l in outs if Editor.node(g, l[3])["type"] == "SamplerCustomAdvanced"]
        if len(samplers) != 1:
            raise ValueError(f"guider {guider['id']} feeds {len(samplers)} SamplerCustomAdvanced")
        first[guider["id"]] = (_first_sigma(g, samplers[0]), samplers[0])
    top = max(v[0] for v in first.values())
    base = [t for t in targets if first[t[0]["id"]][0] == top]
    if len(base) != 1:
        raise ValueError(f"{len(base)} sampler stages start at sigma {top}; expected one base stage")
    return base


def _graph_with_samplers(wf: dict) -> tuple[dict, dict | None]:
    """(graph holding the samplers, the subgraph node instancing it or None)."""
    defs = wa.subgraph_definitions(wf)
    for g in [wf] + list(defs.values()):
        if any(n["type"] in SAMPLERS for n in g.get("nodes", [])):
            if g is wf:
                return g, None
            inst = next(n for n in wf["nodes"] if n["type"] == g["id"])
            return g, inst
    raise ValueError("no sampler in the template")


def build_twin(twin: Twin, stock: dict, object_info: dict, package: str) -> dict:
    wf = copy.deepcopy(stock)
    ed = Editor(wf, object_info)
    g, inst = _graph_with_samplers(wf)
    targets = _sampler_model_links(ed, g)
    if twin.node == "TFVFreeInitTwoExperts":
        adv = [(n, l) for n, l in targets if n["type"] == "KSamplerAdvanced"]
        if len(adv) != 2:
            raise ValueError(f"{twin.source}: expected two KSamplerAdvanced, found {len(adv)}")
        first = [x for x in adv if x[0]["widgets_values"][0] == "enable"]
        second = [x for x in adv if x[0]["widgets_values"][0] == "disable"]
        if len(first) != 1 or len(second) != 1:
            raise ValueError(f"{twin.source}: the experts' samplers are not add_noise enable/disable")
        targets = [first[0], second[0]]
        in_names = ["high_noise_model", "low_noise_model"]
    else:
        if len(targets) > 1 and twin.stage == "base":
            targets = _base_stage(g, targets)
        if len(targets) != 1:
            raise ValueError(f"{twin.source}: expected one sampler, found {len(targets)}")
        in_names = ["model"]
    x0 = min(n["pos"][0] for n, _ in targets)
    y0 = max(n["pos"][1] + (n.get("size") or [0, 400])[1] for n, _ in targets) + 80
    method = ed.add_node(g, twin.node, [x0, y0], None, twin.widgets)
    ab = ed.add_node(g, "PrimitiveBoolean", [x0 - 380, y0], TFV_AB_TITLE, {"value": True})
    links = {l[0]: l for l in ed.links(g)}
    for k, ((sampler, lid), name) in enumerate(zip(targets, in_names)):
        src_id, src_slot, type_ = links[lid][1], links[lid][2], links[lid][5]
        src = ed.node(g, src_id)
        ed.link(g, src, src_slot, method, name, "MODEL")
        sw = ed.switch(g, "MODEL", [x0 + 380, y0 + 200 * k], f"Switch (training-free video, {name})")
        ed.link(g, src, src_slot, sw, "on_false", type_)
        ed.link(g, method, k, sw, "on_true", "MODEL")
        ed.link(g, ab, 0, sw, "switch", "BOOLEAN")
        ed.reroute(g, lid, sw, 0)
    for n in [n for n, _ in targets] + [n for n in g["nodes"] if n["type"] in SEED_NODES]:  # same seed for A and B
        if n["type"] in SEED_NODES + ("KSamplerAdvanced", "KSampler") and "randomize" in n["widgets_values"]:
            n["widgets_values"] = ["fixed" if v == "randomize" else v for v in n["widgets_values"]]
    if inst is not None:  # expose the A/B boolean on the subgraph node, next to the template's switches
        sg_in = {"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"tfv:{twin.name}:{twin.ab_input}")), "name": twin.ab_input,
                 "type": "BOOLEAN", "linkIds": [], "localized_name": twin.ab_input, "label": twin.ab_input}
        g["inputs"].append(sg_in)
        lid = ed.link(g, wa.SUBGRAPH_INPUT_NODE, len(g["inputs"]) - 1, ab, "value", "BOOLEAN")
        sg_in["linkIds"].append(lid)
        inst["inputs"].append({"label": twin.ab_input, "name": twin.ab_input, "type": "BOOLEAN",
                               "widget": {"name": twin.ab_input}, "link": None})
        if inst.get("widgets_values"):  # one value per widget input, in subgraph-input order
            inst["widgets_values"].append(True)
    xs = [n["pos"][0] for n in wf["nodes"]]
    ys = [n["pos"][1] for n in wf["nodes"]]
    text = (f"## {twin.method}: twin of the stock `{twin.source}`\n\n{twin.note}\n\nBuilt by "
            f"comfyui-training-free-video's scripts/build_template_twins.py from {package}; everything else is the "
            f"stock template.")
    wf["nodes"].append({"id": ed._node_id(), "type": "MarkdownNote", "pos": [min(xs), min(ys) - 420],
                        "size": [560, 380], "flags": {}, "order": len(wf["nodes"]), "mode": 0, "inputs": [],
                        "outputs": [], "title": TFV_NOTE_TITLE, "properties": {}, "widgets_values": [text]})
    wf.setdefault("extra", {})[TWIN_KEY] = {"source_template": twin.source, "templates_package": package,
                                            "method": twin.method, "node": twin.node, "ab_switch": TFV_AB_TITLE,
                                            "ab_input": twin.ab_input if inst is not None else None,
                                            "needs": twin.needs}
    wf["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"tfv:{twin.name}"))
    return wf


def build_all(object_info: dict, tdir: Path | None = None, twins: list | None = None, build=None,
              what: str = "template twins") -> dict[str, dict]:
    """``{twin name: UI workflow}`` of ``twins`` (default: ``TWINS``), each made by ``build(twin, stock UI,
    object_info, package)`` (default: ``build_twin``); empty (with a message) when the template package is
    not installed."""
    tdir = tdir or templates_dir()
    if tdir is None:
        print(f"{what}: comfyui-workflow-templates not installed (ComfyUI 0.33.0 installs it); "
              "twins left as they are")
        return {}
    package = f"comfyui-workflow-templates {templates_version()}"
    build = build or build_twin
    return {t.name: build(t, json.loads((tdir / f"{t.source}.json").read_text()), object_info, package)
            for t in (TWINS if twins is None else twins)}
