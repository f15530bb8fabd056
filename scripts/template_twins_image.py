"""ZS^2 twins of ComfyUI's stock IMAGE templates, built FROM the installed stock JSON (issue 21 item 4).

Each twin is the stock template with every stock node, subgraph, switch, note and widget value kept, and only:

* the batch of the template's empty latent set to ``FRAMES``: the batch becomes the frames of one video;
* Temporal Momentum Attention (momentum 0.98, text_tokens keep) -> Dependency Noise (KSampler) (lambda 0.01,
  the paper's search sizes), inserted between the template's model and its sampler (KSampler model, or the
  BasicGuider / CFGGuider model of a SamplerCustomAdvanced graph: Dependency Noise (KSampler) replaces the
  initial noise of every sampler using the patched model, from the sampler's own seed);
* the root graph's Save Image replaced in place (same node id, same input link) by Save Animated WEBP;
* the A/B switch of ``build_template_twins`` (a PrimitiveBoolean, exposed on the subgraph node as
  ``enable_zs2``, and a lazy ComfySwitchNode on the sampler's model input): off, the pack's nodes do not run
  and the graph computes the stock template with the same seed (the batch of ``FRAMES`` independent images);
* the sampler's seed control ``fixed`` (same seed for A and B) and the twin note / metadata of the builder.

The A/B switch, the note, the metadata and the editing primitives are ``build_template_twins``' (the video
twins' builder); this module adds the ZS^2-specific steps. ``python scripts/build_workflows.py`` (on ComfyUI
0.33.0, with the template package) writes the twins into ``workflows/`` with every other workflow.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))

import build_template_twins as btt  # noqa: E402

FRAMES = 8
TMA = {"momentum": 0.98, "momentum_schedule": "", "text_tokens": "keep"}
DEPENDENCY_NOISE = {"kl_lambda": 0.01, "random_search": 10, "linear_search": 15, "noise_model": "dependency",
                    "alpha": 0.9, "kl_lambda_schedule": ""}
LATENTS = ("EmptyLatentImage", "EmptySD3LatentImage", "EmptyFlux2LatentImage")
METHOD = "ZS^2 (Temporal Momentum Attention + Dependency Noise)"
AB_INPUT = "enable_zs2"
NEEDS = "ComfyUI >= 0.33.0 (the template's model family, subgraphs, ComfySwitchNode, PrimitiveBoolean)"

_COMMON = (f"The {FRAMES} latents of the batch are the {FRAMES} frames of one video. Temporal Momentum Attention "
           "(momentum 0.98, text_tokens keep: each frame's own image tokens) makes every self/joint attention attend "
           "to a momentum average of the keys/values of the frames so far (ZS^2 Eq. 2); Dependency Noise (KSampler) "
           "replaces the sampler's initial noise, from its own seed, by ZS^2's dependency noise (neighbouring frames "
           "start from correlated noise). Save Animated WEBP replaces Save Image.\n\n"
           f"{AB_INPUT} (on the subgraph node) is the A/B switch: off, the pack's nodes do not run and the graph is the "
           f"stock template (same seed: the stock result, {FRAMES} independent images).\n\n")


@dataclass
class ImageTwin:
    """One ZS^2 twin of a stock image template; ``nfe`` says the model calls (ZS^2 adds none)."""
    name: str
    source: str
    model: str
    nfe: str

    def twin(self) -> btt.Twin:
        note = (f"ZS^2 zero-shot text-to-video on {self.model}: Temporal Momentum Attention -> Dependency Noise "
                f"(KSampler) sit inside the subgraph between the model and the sampler.\n\n" + _COMMON
                + f"Model calls (each on the {FRAMES} frames as one batch): {self.nfe}; ZS^2 adds none.")
        return btt.Twin(self.name, self.source, "TemporalMomentumAttention", dict(TMA), METHOD, note,
                        ab_input=AB_INPUT, needs=NEEDS)


IMAGE_TWINS = [
    ImageTwin("template_z_image_turbo_zs2", "image_z_image_turbo", "Z-Image Turbo (Lumina 2 / NextDiT)",
              "8 steps of res_multistep at CFG 1 = 8"),
    ImageTwin("template_krea2_turbo_zs2", "image_krea2_turbo_t2i", "Krea 2 Turbo",
              "8 steps of euler at CFG 1 = 8 (prompt enhancement and the LoRA switch as in the stock template)"),
    ImageTwin("template_flux2_zs2", "image_flux2", "Flux 2 [dev] (image edit with a reference image)",
              "20 steps of euler (BasicGuider, FluxGuidance 4) = 20; with the 8-step Turbo LoRA switch: 8"),
    ImageTwin("template_qwen_image_2512_zs2", "image_qwen_Image_2512", "Qwen-Image 2512",
              "50 steps of euler at CFG 4 = 100 (cond + uncond); with the 4-step Lightning LoRA switch at CFG 1: 4"),
    ImageTwin("template_krea2_turbo_int8_zs2", "image_krea2_turbo_t2i_int8", "Krea 2 Turbo (int8 weights)",
              "8 steps of euler at CFG 1 = 8 (prompt enhancement and the LoRA switch as in the stock template)"),
    ImageTwin("template_z_image_turbo_int8_zs2", "image_z_image_turbo_int8",
              "Z-Image Turbo (int8 weights; Lumina 2 / NextDiT)", "8 steps of res_multistep at CFG 1 = 8"),
    ImageTwin("template_flux2_t2i_zs2", "image_flux2_text_to_image", "Flux 2 [dev] (text to image)",
              "20 steps of euler (BasicGuider, FluxGuidance 4) = 20; with the 8-step Turbo LoRA switch: 8"),
    ImageTwin("template_flux2_klein_9b_zs2", "image_flux2_text_to_image_9b", "Flux 2 [klein] 9B base (text to image)",
              "20 steps of euler at CFG 5 (CFGGuider) = 40 (cond + uncond)"),
]
IMAGE_TWINS_BY_NAME = {t.name: t for t in IMAGE_TWINS}


def _save_animated(wf: dict, object_info: dict, frames_fps: float = 8.0) -> dict:
    """Replace the root graph's single SaveImage in place (same id, same ``images`` link) by
    SaveAnimatedWEBP (prefix ``zs2/<stock prefix>``, quality 90)."""
    saves = [n for n in wf["nodes"] if n["type"] == "SaveImage"]
    if len(saves) != 1:
        raise ValueError(f"expected one SaveImage in the root graph, found {len(saves)}")
    node = saves[0]
    values = {"filename_prefix": f"zs2/{node['widgets_values'][0]}", "fps": frames_fps, "lossless": False,
              "quality": 90, "method": "default"}
    slots = [s for s in btt.wa.widget_slots(object_info["SaveAnimatedWEBP"]) if s.kind == "value"]
    node["type"] = "SaveAnimatedWEBP"
    node["properties"] = dict(node.get("properties") or {}, **{"Node name for S&R": "SaveAnimatedWEBP"})
    node["widgets_values"] = [values[s.input] for s in slots]
    node["inputs"] = [i for i in node["inputs"] if i["name"] == "images"]
    return node


def build_image_twin(t: ImageTwin, stock: dict, object_info: dict, package: str, frames: int = FRAMES) -> dict:
    """The twin of ``stock`` (a UI workflow): ``build_template_twins.build_twin`` with Temporal Momentum
    Attention as the switched node, then Dependency Noise (KSampler) after it, the batch and the save."""
    wf = btt.build_twin(t.twin(), stock, object_info, package)
    g, _ = btt._graph_with_samplers(wf)
    ed = btt.Editor(wf, object_info)
    (tma,) = [n for n in g["nodes"] if n["type"] == "TemporalMomentumAttention"]
    (lid,) = tma["outputs"][0]["links"]  # TMA -> the A/B switch's on_true
    dn = ed.add_node(g, "DependencyNoiseModelPatch", [tma["pos"][0], tma["pos"][1] + 200], None,
                     dict(DEPENDENCY_NOISE))
    ed.reroute(g, lid, dn, 0)
    ed.link(g, tma, 0, dn, "model", "MODEL")
    latents = [n for n in g["nodes"] if n["type"] in LATENTS]
    if len(latents) != 1:
        raise ValueError(f"{t.source}: expected one empty latent in the sampler's graph, found {len(latents)}")
    lat = latents[0]
    slots = [s.input for s in btt.wa.widget_slots(object_info[lat["type"]])]
    lat["widgets_values"][slots.index("batch_size")] = frames
    for n in g["nodes"]:  # SamplerCustomAdvanced's seed (build_twin fixes the KSamplers')
        if n["type"] == "RandomNoise" and "randomize" in n["widgets_values"]:
            n["widgets_values"] = ["fixed" if v == "randomize" else v for v in n["widgets_values"]]
    _save_animated(wf, object_info)
    meta = wf["extra"][btt.TWIN_KEY]
    meta.update({"node": ["TemporalMomentumAttention", "DependencyNoiseModelPatch"], "frames": frames,
                 "latent_node": lat["id"], "nfe": t.nfe})
    return wf


def build_all(object_info: dict, tdir: Path | None = None, frames: int = FRAMES) -> dict[str, dict]:
    """``{twin name: UI workflow}``; empty (with a message) without the template package."""
    return btt.build_all(object_info, tdir, IMAGE_TWINS,
                         lambda t, stock, info, package: build_image_twin(t, stock, info, package, frames),
                         "image template twins")

