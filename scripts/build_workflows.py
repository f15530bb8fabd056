#!/usr/bin/env python
"""Generate the shipped UI-format workflows in ``workflows/`` from compact Python descriptions.

Widget values are given by input name and laid out in the order the node definitions dictate
(``tests/comfyui/workflow_api.py``), so a file never has its widgets shifted. Needs ComfyUI (found
like the tests find it: ``$COMFYUI_PATH`` or ``~/comfy/ComfyUI``); it is booted in-process on the
CPU with this pack loaded. Third-party nodes that are not installed (AnimateDiff-Evolved) come from
the recorded definitions in ``scripts/external_node_defs.json``.

    python scripts/build_workflows.py            # (re)write workflows/*.json and workflows/inputs/
    python scripts/build_workflows.py --check    # exit 1 if a file differs from what would be written

It also writes the twins of the stock templates (``scripts/build_template_twins.py``, from the installed
``comfyui-workflow-templates``; on a ComfyUI without that package they are left as they are).

Files are written with ComfyUI 0.3.64's definitions (the floor); run on a newer ComfyUI, a file counts
as current when only output slots that no link uses differ (``workflow_api.drift_view``).

The API-format graph that ``POST /prompt`` takes is never stored: it is derived from these files
(``workflow_api.ui_to_api``) by the tests and by ``scripts/e2e_server_run.py``.
"""
from __future__ import annotations

import argparse
import io
import json
import sys
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_DIR = REPO / "workflows"
INPUTS = WORKFLOW_DIR / "inputs"
sys.path.insert(0, str(REPO / "tests" / "comfyui"))

import workflow_api as wa  # noqa: E402

PACK_CNR_ID = "comfyui-training-free-video"
CORE_CNR_ID = "comfy-core"
EXTERNAL_DEFS = Path(__file__).resolve().parent / "external_node_defs.json"

# Model file names users have from the official releases (ComfyUI's own examples use these).
SD15_CKPT = "v1-5-pruned-emaonly.safetensors"
SD15_SCRIBBLE_CN = "control_v11p_sd15_scribble.pth"
AD_MOTION_MODEL = "mm_sd_v15_v2.ckpt"
WAN_UNET = "wan2.1_t2v_1.3B_fp16.safetensors"
WAN_TE = "umt5_xxl_fp8_e4m3fn_scaled.safetensors"
WAN_VAE = "wan_2.1_vae.safetensors"
WAN22_HIGH = "wan2.2_t2v_high_noise_14B_fp8_scaled.safetensors"   # the stock video_wan2_2_14B_t2v template's
WAN22_LOW = "wan2.2_t2v_low_noise_14B_fp8_scaled.safetensors"
WAN22_5B = "wan2.2_ti2v_5B_fp16.safetensors"                       # video_wan2_2_5B_ti2v
WAN22_VAE = "wan2.2_vae.safetensors"
FLUX_UNET = "flux1-dev.safetensors"
FLUX_CLIP_L = "clip_l.safetensors"
FLUX_T5 = "t5xxl_fp16.safetensors"
FLUX_VAE = "ae.safetensors"
CONTROL_FRAMES = "tfv_scribble_ball_8f.webp"  # written to workflows/inputs/ by this script
SD15_IP2P_CKPT = "instruct-pix2pix-00-22000.safetensors"  # timbrooks/instruct-pix2pix release
SD15_LORA = "your_sd15_lora.safetensors"  # placeholder: any SD1.5 LoRA in ComfyUI/models/loras
EDIT_FRAMES = "tfv_summer_park_8f.webp"  # written to workflows/inputs/ by this script

# Where each model file comes from: ``properties.models`` of every loader that loads it (the frontend's
# missing-models dialog offers these downloads). Entries of the stock templates (comfyui-workflow-templates
# 0.11.44, the loaders' properties.models; hash/hash_type where a stock template gives them) are copied as
# they are there, with the template named; the others point at the model's official release.
_WAN21_REPACK = "https://huggingface.co/Comfy-Org/Wan_2.1_ComfyUI_repackaged/resolve/main/split_files/"
_WAN22_REPACK = "https://huggingface.co/Comfy-Org/Wan_2.2_ComfyUI_Repackaged/resolve/main/split_files/"
MODEL_SOURCES = {
    # official releases (no stock template has these files)
    SD15_CKPT: {"url": "https://huggingface.co/stable-diffusion-v1-5/stable-diffusion-v1-5/resolve/main/"
                       "v1-5-pruned-emaonly.safetensors",  # the SD1.5 archive of the runwayml release
                "directory": "checkpoints"},
    SD15_SCRIBBLE_CN: {"url": "https://huggingface.co/lllyasviel/ControlNet-v1-1/resolve/main/"
                              "control_v11p_sd15_scribble.pth", "directory": "controlnet"},  # ControlNet 1.1
    SD15_IP2P_CKPT: {"url": "https://huggingface.co/timbrooks/instruct-pix2pix/resolve/main/"
                            "instruct-pix2pix-00-22000.safetensors", "directory": "checkpoints"},
    AD_MOTION_MODEL: {"url": "https://huggingface.co/guoyww/animatediff/resolve/main/mm_sd_v15_v2.ckpt",
                      "directory": "animatediff_models"},  # AnimateDiff v2 (guoyww), AnimateDiff-Evolved's folder
    # wan2.1_flf2v_720_f16 (the stock entries with hashes)
    WAN_TE: {"url": _WAN21_REPACK + "text_encoders/umt5_xxl_fp8_e4m3fn_scaled.safetensors?download=true",
             "hash": "c3355d30191f1f066b26d93fba017ae9809dce6c627dda5f6a66eaa651204f68", "hash_type": "SHA256",
             "directory": "text_encoders"},
    WAN_VAE: {"url": _WAN21_REPACK + "vae/wan_2.1_vae.safetensors?download=true",
              "hash": "2fc39d31359a4b0a64f55876d8ff7fa8d780956ae2cb13463b0223e15148976b", "hash_type": "SHA256",
              "directory": "vae"},
    # text_to_video_wan
    WAN_UNET: {"url": _WAN21_REPACK + "diffusion_models/wan2.1_t2v_1.3B_fp16.safetensors?download=true",
               "directory": "diffusion_models"},
    # video_wan2_2_14B_t2v, video_wan2_2_5B_ti2v
    WAN22_HIGH: {"url": _WAN22_REPACK + "diffusion_models/" + WAN22_HIGH, "directory": "diffusion_models"},
    WAN22_LOW: {"url": _WAN22_REPACK + "diffusion_models/" + WAN22_LOW, "directory": "diffusion_models"},
    WAN22_5B: {"url": _WAN22_REPACK + "diffusion_models/" + WAN22_5B, "directory": "diffusion_models"},
    WAN22_VAE: {"url": _WAN22_REPACK + "vae/" + WAN22_VAE, "directory": "vae"},
    # flux_dev_full_text_to_image (FLUX.1 [dev]: non-commercial licence; the official release,
    # black-forest-labs/FLUX.1-dev, is a gated repository: accept its licence on Hugging Face first)
    FLUX_UNET: {"url": "https://huggingface.co/Comfy-Org/flux1-dev/resolve/main/flux1-dev.safetensors",
                "directory": "diffusion_models"},
    FLUX_CLIP_L: {"url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/clip_l.safetensors",
                  "directory": "text_encoders"},
    FLUX_T5: {"url": "https://huggingface.co/comfyanonymous/flux_text_encoders/resolve/main/t5xxl_fp16.safetensors",
              "directory": "text_encoders"},
    FLUX_VAE: {"url": "https://huggingface.co/Comfy-Org/Lumina_Image_2.0_Repackaged/resolve/main/split_files/vae/"
                      "ae.safetensors", "directory": "vae"},
}
PLACEHOLDER_MODELS = {SD15_LORA}  # the user's own file: no download
GATED_MODELS = {FLUX_UNET: "https://huggingface.co/black-forest-labs/FLUX.1-dev"}  # official page (licence)


def model_entries(widget_values) -> list[dict]:
    """``properties.models`` for a node: one ``{name, url, [hash, hash_type,] directory}`` per widget value
    that is a file of MODEL_SOURCES, in widget order (the stock templates' key order)."""
    return [{"name": v, **MODEL_SOURCES[v]} for v in widget_values if isinstance(v, str) and v in MODEL_SOURCES]


def pack_version() -> str:
    """The pack's version from pyproject.toml (what ``properties.ver`` of this pack's nodes says)."""
    import re  # (tomllib is Python 3.11+; the pack supports 3.10)
    return re.search(r'^version\s*=\s*"([^"]+)"', (REPO / "pyproject.toml").read_text(), re.M).group(1)


NEGATIVE_SD15 = "blurry, low quality, deformed, watermark, text"
NEGATIVE_WAN = ("Bright tones, overexposed, static, blurred details, subtitles, worst quality, low quality, "
                "JPEG compression residue, ugly, deformed, still picture, cluttered background")


# ---------------------------------------------------------------------------------------------
# A tiny graph builder producing the frontend's UI format (version 0.4)
# ---------------------------------------------------------------------------------------------

class Out:
    """One output socket of a node, used as an input value of another node."""

    def __init__(self, node: "Node", slot: int):
        self.node, self.slot = node, slot

    @property
    def type(self) -> str:
        return self.node.out_types[self.slot]


class Node:
    def __init__(self, graph: "Graph", nid: int, class_type: str, info: dict, title: str | None,
                 col: int | None, color: str | None):
        self.graph, self.id, self.type, self.info = graph, nid, class_type, info
        self.title, self.col_override, self.color = title, col, color
        self.out_types = [str(t) for t in info.get("output", [])]
        self.out_names = [str(n) for n in info.get("output_name", info.get("output", []))]
        self.links_in: dict[str, Out] = {}
        self.widgets: dict[str, object] = {}
        self.control = "fixed"

    def __getitem__(self, key) -> Out:
        if isinstance(key, int):
            return Out(self, key)
        for names in (self.out_names, self.out_types):
            if key in names:
                return Out(self, names.index(key))
        raise KeyError(f"{self.type} has no output {key!r} (outputs {self.out_names})")


class Graph:
    def __init__(self, object_info: dict, name: str):
        self.object_info, self.name = object_info, name
        self.nodes: list[Node] = []
        self.notes: list[tuple[str, str, int | None]] = []

    def add(self, class_type: str, title: str | None = None, col: int | None = None, color: str | None = None,
            control: str = "fixed", **inputs) -> Node:
        info = self.object_info.get(class_type)
        if info is None:
            raise KeyError(f"{self.name}: node type {class_type!r} is not registered")
        node = Node(self, len(self.nodes) + 1, class_type, info, title, col, color)
        node.control = control
        slots = wa.widget_slots(info)
        widget_inputs = {s.input for s in slots if s.kind == "value"}
        socket_inputs = {name for name, spec, _ in wa.ordered_inputs(info) if not wa.is_widget_input(spec)}
        for name, value in inputs.items():
            if name not in widget_inputs and name not in socket_inputs:
                raise KeyError(f"{self.name}: {class_type} has no input {name!r}")
            if isinstance(value, Out):
                node.links_in[name] = value
            elif name in socket_inputs:
                raise TypeError(f"{self.name}: {class_type}.{name} is a socket; give another node's output")
            else:
                node.widgets[name] = value
        for s in slots:  # every widget value, in widget order
            if s.kind == "value" and s.input not in node.widgets:
                node.widgets[s.input] = wa.default_widget_value(s)
        self.nodes.append(node)
        return node

    def note(self, text: str, title: str = "Note", col: int | None = None):
        self.notes.append((title, text, col))

    # -- layout ---------------------------------------------------------------------------------
    def _columns(self) -> dict[int, int]:
        col: dict[int, int] = {}

        def depth(n: Node) -> int:
            if n.id not in col:
                col[n.id] = 1 + max((depth(o.node) for o in n.links_in.values()), default=-1)
            return col[n.id]

        for n in self.nodes:
            depth(n)
        consumers: dict[int, list[int]] = {}
        for n in self.nodes:
            for o in n.links_in.values():
                consumers.setdefault(o.node.id, []).append(n.id)
        # pull sources (loaders, empty latents) next to their first consumer
        for n in self.nodes:
            if not n.links_in and n.id in consumers:
                col[n.id] = max(0, min(col[c] for c in consumers[n.id]) - 1)
        for n in self.nodes:
            if n.col_override is not None:
                col[n.id] = n.col_override
        return col

    @staticmethod
    def _size(n: Node) -> list[int]:
        slots = wa.widget_slots(n.info)
        n_sockets = sum(1 for _, spec, _ in wa.ordered_inputs(n.info) if not wa.is_widget_input(spec))
        n_in = n_sockets + sum(1 for k in n.links_in if k in n.widgets)
        rows = max(n_in, len(n.out_types), 1)
        h = 10 + 22 * rows + 26 * len(slots)
        width = 320
        for s in slots:
            if s.kind == "value" and wa._options(s.spec).get("multiline"):
                h += 90
                width = 420
        if n.type == "LoadImage":
            h += 260
        if n.info.get("output_node"):  # image previews
            h += 280
            width = 360
        return [width, h]

    def to_ui(self) -> dict:
        col = self._columns()
        order = {n.id: i for i, n in enumerate(self._topological())}
        sizes = {n.id: self._size(n) for n in self.nodes}
        ncols = max(col.values()) + 1 if col else 1
        widths = [max([sizes[n.id][0] for n in self.nodes if col[n.id] == c] or [320]) for c in range(ncols)]
        note_w = 460 if self.notes else 0
        x0 = 40 + (note_w + 50 if note_w else 0)
        xs, x = [], x0
        for w in widths:
            xs.append(x)
            x += w + 60
        y_next = [60] * ncols
        pos = {}
        for n in self.nodes:
            c = col[n.id]
            pos[n.id] = [xs[c], y_next[c]]
            y_next[c] += sizes[n.id][1] + 70

        links, out_links = [], {}
        lid = 0
        inputs_ui = {}
        for n in self.nodes:
            sockets = [(name, spec) for name, spec, _ in wa.ordered_inputs(n.info) if not wa.is_widget_input(spec)]
            entries = []
            for name, spec in sockets:
                entries.append({"name": name, "type": wa._input_type(spec), "link": None})
            for s in wa.widget_slots(n.info):  # linked widgets follow the sockets, in widget order
                if s.kind == "value" and s.input in n.links_in:
                    entries.append({"name": s.input, "type": wa._input_type(s.spec), "widget": {"name": s.input},
                                    "link": None})
            for idx, e in enumerate(entries):
                src = n.links_in.get(e["name"])
                if src is None:
                    continue
                lid += 1
                e["link"] = lid
                links.append([lid, src.node.id, src.slot, n.id, idx, src.type])
                out_links.setdefault((src.node.id, src.slot), []).append(lid)
            inputs_ui[n.id] = entries

        nodes = []
        for n in self.nodes:
            values = []
            for s in wa.widget_slots(n.info):
                if s.kind == "value":
                    values.append(n.widgets[s.input])
                elif s.kind == "control":
                    values.append(n.control)
                elif s.kind == "filter":
                    values.append("")
                else:
                    values.append("image")
            cnr = CORE_CNR_ID
            mod = n.info.get("python_module", "nodes")
            if "custom_nodes" in str(mod) or n.type in self._pack_types():
                cnr = PACK_CNR_ID
            for prefix, cid in self.object_info.get("_cnr_ids", {}).items():
                if n.type.startswith(prefix):
                    cnr = cid
            props = {"cnr_id": cnr}
            if cnr == PACK_CNR_ID:
                props["ver"] = pack_version()
            props["Node name for S&R"] = n.type
            models = model_entries(values)
            if models:
                props["models"] = models
            node = {
                "id": n.id, "type": n.type, "pos": pos[n.id], "size": sizes[n.id], "flags": {},
                "order": order[n.id], "mode": 0,
                "inputs": inputs_ui[n.id],
                "outputs": [{"name": name, "type": t, "links": out_links.get((n.id, i), []), "slot_index": i}
                            for i, (name, t) in enumerate(zip(n.out_names, n.out_types))],
                "properties": props,
                "widgets_values": values,
            }
            if n.title:
                node["title"] = n.title
            if n.color:
                node["color"], node["bgcolor"] = COLORS[n.color]
            nodes.append(node)

        next_id = len(self.nodes)
        note_y = 60
        for title, text, _c in self.notes:
            next_id += 1
            lines = sum(max(1, -(-len(para) // 60)) for para in text.split("\n"))
            h = 50 + 16 * lines
            nodes.append({"id": next_id, "type": "Note", "pos": [40, note_y], "size": [note_w, h], "flags": {},
                          "order": len(nodes), "mode": 0, "inputs": [], "outputs": [],
                          "properties": {}, "title": title, "widgets_values": [text],
                          "color": "#432", "bgcolor": "#653"})
            note_y += h + 60
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"training-free-video/{self.name}")),
            "revision": 0,
            "last_node_id": next_id,
            "last_link_id": lid,
            "nodes": nodes,
            "links": links,
            "groups": [],
            "config": {},
            "extra": {"ds": {"scale": 0.8, "offset": [0, 0]}},
            "version": 0.4,
        }

    def _pack_types(self) -> set:
        return set(self.object_info.get("_pack_types", []))

    def _topological(self) -> list[Node]:
        done, out = set(), []

        def visit(n: Node):
            if n.id in done:
                return
            for o in n.links_in.values():
                visit(o.node)
            done.add(n.id)
            out.append(n)

        for n in self.nodes:
            visit(n)
        return out


COLORS = {"green": ("#232", "#353"), "red": ("#322", "#533"), "blue": ("#223", "#335"),
          "purple": ("#323", "#535"), "yellow": ("#432", "#653")}


# ---------------------------------------------------------------------------------------------
# The workflows
# ---------------------------------------------------------------------------------------------

def _zs2_patches(g: Graph, model):
    """Temporal Momentum Attention (0.98) -> Dependency Noise (KSampler) (lambda 0.01, the paper's
    search sizes) on ``model``; returns the Dependency Noise node (its MODEL output is the ZS^2 model)."""
    tma = g.add("TemporalMomentumAttention", model=model, momentum=0.98)
    return g.add("DependencyNoiseModelPatch", model=tma["MODEL"], kl_lambda=0.01, random_search=10,
                 linear_search=15, noise_model="dependency", alpha=0.9)


def _save_webp(g: Graph, samples, vae, prefix: str, fps: float = 8.0):
    """VAE Decode -> Save Animated WEBP (quality 90) of ``samples`` into ``output/<prefix>``."""
    dec = g.add("VAEDecode", samples=samples, vae=vae)
    g.add("SaveAnimatedWEBP", images=dec["IMAGE"], filename_prefix=prefix, fps=fps, lossless=False,
          quality=90, method="default")


def _sd15_front(g: Graph, positive: str, negative: str = NEGATIVE_SD15):
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    pos = g.add("CLIPTextEncode", title="Positive prompt", color="green", clip=ckpt["CLIP"], text=positive)
    neg = g.add("CLIPTextEncode", title="Negative prompt", color="red", clip=ckpt["CLIP"], text=negative)
    return ckpt, pos, neg


def zs2_text_to_video_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a horse galloping on a beach at sunset, photorealistic, high detail")
    dep = _zs2_patches(g, ckpt["MODEL"])
    lat = g.add("EmptyLatentImage", title="Empty Latent Image (batch = 8 frames)", width=512, height=512, batch_size=8)
    ks = g.add("KSampler", model=dep["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
               latent_image=lat["LATENT"], seed=42, steps=50, cfg=7.5, sampler_name="ddim",
               scheduler="ddim_uniform", denoise=1.0)
    _save_webp(g, ks["LATENT"], ckpt["VAE"], "zs2/t2v")
    g.note("ZS^2 zero-shot text-to-video on SD1.5 (papers: ZS^2, Sec. 3.1 and 4.1).\n\n"
           "The 8 latents of the batch are the 8 frames of one video.\n"
           "- Temporal Momentum Attention (momentum 0.98) makes every self-attention of the UNet attend to a "
           "momentum average of the keys/values of the frames so far.\n"
           "- Dependency Noise (KSampler) replaces KSampler's initial noise by ZS^2's dependency noise drawn from "
           "KSampler's seed (lambda 0.01: neighbouring frames start from correlated noise).\n\n"
           "Paper setting: SD1.5-family model, 8 frames at 512x512, DDIM. Any SD1.x/SD2.x/SDXL checkpoint works. "
           "The same noise as a NOISE for SamplerCustomAdvanced: the Dependency Noise node.")


def zs2_long_video_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a horse galloping on a beach at sunset, photorealistic, high detail")
    dep = _zs2_patches(g, ckpt["MODEL"])
    chunks = g.add("ZS2LongVideo", model=dep["MODEL"], chunk_frames=8)
    lat = g.add("EmptyLatentImage", title="Empty Latent Image (batch = 64 frames)", width=512, height=512,
                batch_size=64)
    ks = g.add("KSampler", model=chunks["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
               latent_image=lat["LATENT"], seed=42, steps=50, cfg=7.5, sampler_name="ddim",
               scheduler="ddim_uniform", denoise=1.0)
    _save_webp(g, ks["LATENT"], ckpt["VAE"], "zs2/long")
    g.note("ZS^2 long video: 64 frames with the memory of 8 (ZS^2 Sec. 5, auto-regressive mode).\n\n"
           "The zs2_text_to_video_sd15 graph plus ZS^2 Long Video (chunks), with a batch of 64 latents (the frames). "
           "KSampler samples them in 9 chunks of 8 frames (0-7, 7-14, ..., 56-63): the last frame of each chunk "
           "is frame 1 of the next, and its trajectory through all 50 steps is recorded and imposed there, so "
           "the seams are continuous. The model never sees more than 8 frames at once. The output is one latent "
           "with all 64 frames.\n\n"
           "Cost: 9 chunks x 50 steps (72 frame evaluations per step instead of 64). One progress bar over all "
           "chunks. chunk_frames = 8 is the paper's m; raise it if your GPU holds more frames per batch.")


def zs2_controlnet_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a red ball bouncing on a wooden floor, studio light, photorealistic")
    dep = _zs2_patches(g, ckpt["MODEL"])
    cn = g.add("ControlNetLoader", control_net_name=SD15_SCRIBBLE_CN)
    img = g.add("LoadImage", title="Control frames (animated image: one frame per video frame)",
                image=CONTROL_FRAMES)
    apply = g.add("ControlNetApplyAdvanced", positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                  control_net=cn["CONTROL_NET"], image=img["IMAGE"], vae=ckpt["VAE"], strength=0.9,
                  start_percent=0.0, end_percent=1.0)
    lat = g.add("EmptyLatentImage", title="Empty Latent Image (batch = 8 frames)", width=512, height=512, batch_size=8)
    ks = g.add("KSampler", model=dep["MODEL"], positive=apply["positive"], negative=apply["negative"],
               latent_image=lat["LATENT"], seed=42, steps=50, cfg=7.5, sampler_name="ddim",
               scheduler="ddim_uniform", denoise=1.0)
    _save_webp(g, ks["LATENT"], ckpt["VAE"], "zs2/controlnet")
    g.note("ZS^2 + ControlNet (ZS^2 paper Sec. 6.3): per-frame control.\n\n"
           f"Load Image reads an animated image (WEBP/GIF) as a batch of frames: frame i controls video frame i. "
           f"The example '{CONTROL_FRAMES}' (a scribble of a bouncing ball, 8 frames, in this pack's "
           "workflows/inputs/) goes into ComfyUI/input. Use as many control frames as latents in the batch, and a "
           "ControlNet that matches the control images (scribble here; depth, pose, canny... likewise).\n\n"
           "Temporal Momentum Attention + Dependency Noise (KSampler) make the frames one coherent video.")


def smoothinit_t2i_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a photo of an astronaut riding a horse on the moon, detailed, sharp focus")
    noise = g.add("RandomNoise", noise_seed=42)
    sigmas = g.add("BasicScheduler", model=ckpt["MODEL"], scheduler="ddim_uniform", steps=50, denoise=1.0)
    fsi = g.add("FastSmoothInitNoise", noise=noise["NOISE"], model=ckpt["MODEL"], positive=pos["CONDITIONING"],
                negative=neg["CONDITIONING"], cfg=7.5, inversion_cfg=1.0, grid_steps=50, preset="Fast-SmoothInit-10",
                sigmas=sigmas["SIGMAS"])
    guider = g.add("CFGGuider", model=ckpt["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                   cfg=7.5)
    sampler = g.add("KSamplerSelect", sampler_name="ddim")
    lat = g.add("EmptyLatentImage", width=512, height=512, batch_size=1)
    sca = g.add("SamplerCustomAdvanced", noise=fsi["noise"], guider=guider["GUIDER"], sampler=sampler["SAMPLER"],
                sigmas=sigmas["SIGMAS"], latent_image=lat["LATENT"])
    dec = g.add("VAEDecode", samples=sca["output"], vae=ckpt["VAE"])
    g.add("SaveImage", images=dec["IMAGE"], filename_prefix="smoothinit/t2i")
    g.note("Fast-SmoothInit text-to-image on SD1.5 (SmoothInit paper: the optimised initial noise helps images too).\n\n"
           "Random Noise -> Fast-SmoothInit Noise: 10 Forward-Inversions (a DDIM step at CFG 7.5 down one step of a "
           "50-step grid and a DDIM-inversion step at CFG 1 back) with a momentum rule; 30 model calls, about "
           "30% of the 100 calls of the 50-step CFG sampling after it. Its sigmas input takes the sampler's "
           "schedule, so the noise is optimised at the sigma the sampling really starts from.\n\n"
           "Same seed -> same optimised noise. Save Noise / Load Noise keep an expensive noise for reuse.")


def zs2_fast_smoothinit_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a corgi running through a field of flowers, sunny day, high detail")
    tma = g.add("TemporalMomentumAttention", model=ckpt["MODEL"], momentum=0.98)
    dep = g.add("DependencyNoise", noise_seed=42, kl_lambda=0.01, random_search=10, linear_search=15,
                noise_model="dependency", alpha=0.9)
    sigmas = g.add("BasicScheduler", model=tma["MODEL"], scheduler="ddim_uniform", steps=50, denoise=1.0)
    fsi = g.add("FastSmoothInitNoise", noise=dep["noise"], model=tma["MODEL"], positive=pos["CONDITIONING"],
                negative=neg["CONDITIONING"], cfg=7.5, inversion_cfg=1.0, grid_steps=50, preset="Fast-SmoothInit-10",
                sigmas=sigmas["SIGMAS"])
    guider = g.add("CFGGuider", model=tma["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                   cfg=7.5)
    sampler = g.add("KSamplerSelect", sampler_name="ddim")
    lat = g.add("EmptyLatentImage", title="Empty Latent Image (batch = 8 frames)", width=512, height=512, batch_size=8)
    sca = g.add("SamplerCustomAdvanced", noise=fsi["noise"], guider=guider["GUIDER"], sampler=sampler["SAMPLER"],
                sigmas=sigmas["SIGMAS"], latent_image=lat["LATENT"])
    _save_webp(g, sca["output"], ckpt["VAE"], "zs2/fast_smoothinit")
    g.note("ZS^2 text-to-video with Fast-SmoothInit on top of Dependency Noise (SamplerCustomAdvanced form).\n\n"
           "Dependency Noise draws temporally correlated noise for the 8 frames; Fast-SmoothInit Noise optimises it "
           "with the same TMA-patched model and prompts used for sampling (30 extra model calls); "
           "SamplerCustomAdvanced samples from the result.")


def _wan_front(g: Graph, positive: str, unet_name: str = WAN_UNET, vae_name: str = WAN_VAE):
    """One Wan model with the stock loaders: UNETLoader -> ModelSamplingSD3 (shift 8), the umT5 text encoder
    (positive, negative NEGATIVE_WAN), VAELoader. Wan 2.1 by default; ``WAN22_5B`` with ``WAN22_VAE`` is the
    stock video_wan2_2_5B_ti2v front. Returns (ModelSamplingSD3 node, positive, negative, vae)."""
    unet = g.add("UNETLoader", unet_name=unet_name, weight_dtype="default")
    ms = g.add("ModelSamplingSD3", model=unet["MODEL"], shift=8.0)
    clip = g.add("CLIPLoader", clip_name=WAN_TE, type="wan", device="default")
    pos = g.add("CLIPTextEncode", title="Positive prompt", color="green", clip=clip["CLIP"], text=positive)
    neg = g.add("CLIPTextEncode", title="Negative prompt", color="red", clip=clip["CLIP"], text=NEGATIVE_WAN)
    vae = g.add("VAELoader", vae_name=vae_name)
    return ms, pos, neg, vae


def wan_t2v_fast_smoothinit(g: Graph):
    ms, pos, neg, vae = _wan_front(g, "a fox walking through fresh snow in a pine forest, cinematic, detailed fur")
    si_ = g.add("SmoothInitModelPatch", model=ms["MODEL"], method="Fast-SmoothInit-10 DiT-safe", cfg=0.0,
                inversion_cfg=1.0, grid_steps=50)
    lat = g.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33, batch_size=1)
    ks = g.add("KSampler", model=si_["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
               latent_image=lat["LATENT"], seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple",
               denoise=1.0)
    _save_webp(g, ks["LATENT"], vae["VAE"], "wan/fast_smoothinit", fps=16.0)
    g.note("Wan 2.1 text-to-video (flow model) with Fast-SmoothInit through the plain KSampler.\n\n"
           "SmoothInit (KSampler) makes the KSampler start from optimised noise, computed with KSampler's own "
           "prompts, seed and first sigma (30 model calls). The DiT-safe preset (gamma_m 0.95) stays close to the "
           "base noise, as the paper recommends for DiT video models. cfg here is the CFG of the DDIM step (w1): "
           "0 follows KSampler's cfg (6.0).\n\n"
           f"Models: {WAN_UNET} (diffusion_models), {WAN_TE} (text_encoders), {WAN_VAE} (vae). 33 frames at "
           "832x480 (9 latent frames).")


def zs2_text_to_video_flux(g: Graph):
    unet = g.add("UNETLoader", unet_name=FLUX_UNET, weight_dtype="default")
    clip = g.add("DualCLIPLoader", clip_name1=FLUX_CLIP_L, clip_name2=FLUX_T5, type="flux", device="default")
    vae = g.add("VAELoader", vae_name=FLUX_VAE)
    pos = g.add("CLIPTextEncode", title="Prompt", color="green", clip=clip["CLIP"],
                text="a paper boat drifting down a rain-soaked city street, puddles reflecting neon signs, photorealistic")
    fg = g.add("FluxGuidance", conditioning=pos["CONDITIONING"], guidance=3.5)
    tma = g.add("TemporalMomentumAttention", model=unet["MODEL"], momentum=0.98)
    guider = g.add("BasicGuider", model=tma["MODEL"], conditioning=fg["CONDITIONING"])
    noise = g.add("DependencyNoise", noise_seed=42, kl_lambda=0.01, random_search=10, linear_search=15,
                  noise_model="dependency", alpha=0.9)
    sampler = g.add("KSamplerSelect", sampler_name="euler")
    sigmas = g.add("BasicScheduler", model=tma["MODEL"], scheduler="simple", steps=20, denoise=1.0)
    lat = g.add("EmptySD3LatentImage", title="Empty Latent (batch = 8 frames)", width=512, height=512, batch_size=8)
    sca = g.add("SamplerCustomAdvanced", noise=noise["noise"], guider=guider["GUIDER"], sampler=sampler["SAMPLER"],
                sigmas=sigmas["SIGMAS"], latent_image=lat["LATENT"])
    _save_webp(g, sca["output"], vae["VAE"], "zs2/flux_t2v")
    g.note("ZS^2 zero-shot text-to-video on Flux.1 [dev] (a DiT image model; papers: ZS^2, Sec. 3.1 and 4.1).\n\n"
           "The 8 latents of the batch are the 8 frames of one video.\n"
           "- Temporal Momentum Attention (momentum 0.98) makes every joint / single-stream attention of Flux "
           "attend to a momentum average of the keys/values of the frames so far (the projected, RoPE'd K and V).\n"
           "- Dependency Noise is the NOISE of SamplerCustomAdvanced: neighbouring frames start from correlated "
           "noise (lambda 0.01).\n\n"
           "The usual Flux graph: BasicGuider (no negative prompt, CFG 1) with FluxGuidance 3.5, euler / simple, 20 "
           "steps. Also works with SD3, Qwen-Image, Lumina 2, HiDream and Chroma models.\n\n"
           f"Models: {FLUX_UNET} (diffusion_models), {FLUX_CLIP_L} and {FLUX_T5} (text_encoders), {FLUX_VAE} (vae). "
           f"FLUX.1 [dev] is a gated model under a non-commercial licence: accept it on its official page "
           f"({GATED_MODELS[FLUX_UNET]}) before downloading.")


def wan_t2v_freeinit(g: Graph):
    ms, pos, neg, vae = _wan_front(g, "a fox walking through fresh snow in a pine forest, cinematic, detailed fur")
    fi_ = g.add("TFVFreeInitModelPatch", model=ms["MODEL"], iterations=3, filter="butterworth", d_s=0.25, d_t=0.25,
                order=4, min_signal=0.068, coarse_to_fine=False)
    lat = g.add("EmptyHunyuanLatentVideo", width=832, height=480, length=33, batch_size=1)
    ks = g.add("KSampler", model=fi_["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
               latent_image=lat["LATENT"], seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple",
               denoise=1.0)
    _save_webp(g, ks["LATENT"], vae["VAE"], "wan/freeinit", fps=16.0)
    g.note("Wan 2.1 text-to-video (flow model) with FreeInit on the plain KSampler.\n\n"
           "FreeInit (KSampler) makes KSampler sample 3 times: after each pass the video is re-noised with the same "
           "initial noise, its low spatio-temporal frequencies (3-D FFT over frames, height, width; butterworth "
           "d_s = d_t = 0.25) are kept and the high ones come from fresh noise, and the next pass starts there. "
           "One progress bar runs over all 90 steps, with a preview of each pass.\n\n"
           "Wan starts at sigma 1 (pure noise), which would discard the previous pass entirely; min_signal 0.068 keeps "
           "as much of it as SD's top timestep does (the regime FreeInit was designed for). coarse_to_fine = true "
           "runs 10 + 20 + 30 steps (2x the time of plain sampling instead of 3x).\n\n"
           f"Models: {WAN_UNET} (diffusion_models), {WAN_TE} (text_encoders), {WAN_VAE} (vae). 33 frames at "
           "832x480 (9 latent frames).")


def zs2_freeinit_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a corgi running through a field of flowers, sunny day, high detail")
    tma = g.add("TemporalMomentumAttention", model=ckpt["MODEL"], momentum=0.98)
    dep = g.add("DependencyNoise", noise_seed=42, kl_lambda=0.01, random_search=10, linear_search=15,
                noise_model="dependency", alpha=0.9)
    sigmas = g.add("BasicScheduler", model=tma["MODEL"], scheduler="ddim_uniform", steps=50, denoise=1.0)
    guider = g.add("CFGGuider", model=tma["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                   cfg=7.5)
    base = g.add("KSamplerSelect", sampler_name="ddim")
    fis = g.add("TFVFreeInitSampler", sampler=base["SAMPLER"], iterations=3, filter="butterworth", d_s=0.25,
                d_t=0.25, order=4, min_signal=0.068, coarse_to_fine=False)
    lat = g.add("EmptyLatentImage", title="Empty Latent Image (batch = 8 frames)", width=512, height=512, batch_size=8)
    sca = g.add("SamplerCustomAdvanced", noise=dep["noise"], guider=guider["GUIDER"], sampler=fis["sampler"],
                sigmas=sigmas["SIGMAS"], latent_image=lat["LATENT"])
    _save_webp(g, sca["output"], ckpt["VAE"], "zs2/freeinit")
    g.note("ZS^2 text-to-video on SD1.5 with FreeInit (SamplerCustomAdvanced form).\n\n"
           "Temporal Momentum Attention + Dependency Noise make SD1.5 a video model (the 8 latents of the batch are "
           "the 8 frames). FreeInit Sampler wraps the DDIM sampler: 3 full passes; between passes the result is "
           "re-noised with the same dependency noise, its low spatio-temporal frequencies are kept (3-D FFT over the "
           "8 frames, height, width) and the high ones are drawn fresh from the noise seed. Cost: 3x plain sampling "
           "(coarse_to_fine: 2x).\n\n"
           "The same with a plain KSampler: FreeInit (KSampler) on the model.")


def _i4vgen_flow_video(g: Graph, positive: str, anchor_latent: str, size: tuple[int, int], frames: int, steps: int,
                       cfg: float, prefix: str, fps: float, unet_name: str = WAN_UNET, vae_name: str = WAN_VAE):
    """I4VGen on a Wan flow video model: ``_wan_front`` (``unet_name``, ``vae_name``) -> a one-frame video
    latent of node type ``anchor_latent`` (``size`` = width, height; its vae input, if any, connected) ->
    KSampler (anchor image, seed 42) -> Static Video From Latent (``frames`` latent frames, through the VAE) ->
    NI-VSDS Animate (seed 7, p 0.6, step sizes "1", its own ``steps``-step simple schedule) -> KSampler
    regeneration at denoise = p_re 0.8 (seed 43) -> animated WEBP at ``fps``. Every sampler uses uni_pc /
    simple, ``steps`` and ``cfg``."""
    ms, pos, neg, vae = _wan_front(g, positive, unet_name, vae_name)
    takes_vae = "vae" in g.object_info[anchor_latent].get("input", {}).get("required", {})
    anchor_lat = g.add(anchor_latent, title="Anchor: one frame", width=size[0], height=size[1], length=1, batch_size=1,
                       **({"vae": vae["VAE"]} if takes_vae else {}))
    anchor = g.add("KSampler", title="KSampler (anchor image)", model=ms["MODEL"], positive=pos["CONDITIONING"],
                   negative=neg["CONDITIONING"], latent_image=anchor_lat["LATENT"], seed=42, steps=steps, cfg=cfg,
                   sampler_name="uni_pc", scheduler="simple", denoise=1.0)
    static = g.add("I4VGenStaticVideoFromLatent", samples=anchor["LATENT"], model=ms["MODEL"], vae=vae["VAE"],
                   frames=frames, layout="auto", batch_index=0)
    anim = g.add("NIVSDSAnimate", model=ms["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                 latent_image=static["static_video"], seed=7, steps=steps, cfg=cfg, scheduler="simple", p=0.6,
                 step_sizes="1")
    regen = g.add("KSampler", title="KSampler (regeneration, denoise = p_re)", model=ms["MODEL"],
                  positive=pos["CONDITIONING"], negative=neg["CONDITIONING"], latent_image=anim["animated"],
                  seed=43, steps=steps, cfg=cfg, sampler_name="uni_pc", scheduler="simple", denoise=0.8)
    _save_webp(g, regen["LATENT"], vae["VAE"], prefix, fps=fps)


def i4vgen_wan(g: Graph):
    _i4vgen_flow_video(g, "a sailing boat on a calm sea at golden hour, gentle waves, cinematic",
                       "EmptyHunyuanLatentVideo", (832, 480), frames=9, steps=30, cfg=6.0, prefix="i4vgen/wan", fps=16.0)
    g.note("I4VGen on a native flow video model (Wan 2.1), core nodes + this pack.\n\n"
           "1. Anchor image: the video model itself generates a one-frame clip.\n"
           "2. Static Video From Latent holds it still: with the Wan VAE connected it decodes the anchor frame, "
           "repeats it to 33 video frames and encodes that still clip once (9 latent frames; Wan's causal VAE "
           "puts 1 frame in latent frame 0 and 4 in each later one, so repeating the latent is not a still "
           "video).\n"
           "3. NI-VSDS Animate (p 0.6: int(30 * 0.6) + 1 = 19 updates, one fixed noise) gives the static video "
           "motion.\n"
           "4. Regeneration: a stock KSampler at denoise = p_re on the animated latent.\n\n"
           "Step sizes '1' and p_re 0.8 are the official LaVie settings (AnimateDiff: '10,10,10,1', p_re 1.0).")


def i4vgen_real_image_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a cat turning its head, soft window light, photorealistic")
    tma = g.add("TemporalMomentumAttention", model=ckpt["MODEL"], momentum=0.98)
    img = g.add("LoadImage", title="Your image (the anchor)", image="example.png")
    scale = g.add("ImageScale", image=img["IMAGE"], upscale_method="lanczos", width=512, height=512, crop="center")
    enc = g.add("VAEEncode", pixels=scale["IMAGE"], vae=ckpt["VAE"])
    static = g.add("I4VGenStaticVideoFromLatent", samples=enc["LATENT"], model=tma["MODEL"], frames=8,
                   layout="auto", batch_index=0)
    anim = g.add("NIVSDSAnimate", model=tma["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                 latent_image=static["static_video"], seed=7, steps=25, cfg=7.5, scheduler="ddim_uniform", p=0.6,
                 step_sizes="10,10,10,1")
    dep = g.add("DependencyNoiseModelPatch", model=tma["MODEL"], kl_lambda=0.01, random_search=10,
                linear_search=15, noise_model="dependency", alpha=0.9)
    regen = g.add("KSampler", title="KSampler (regeneration, denoise = p_re)", model=dep["MODEL"],
                  positive=pos["CONDITIONING"], negative=neg["CONDITIONING"], latent_image=anim["animated"],
                  seed=43, steps=25, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform", denoise=0.8)
    _save_webp(g, regen["LATENT"], ckpt["VAE"], "i4vgen/real_image")
    g.note("I4VGen from a real image (I4VGen paper Sec. 4.5, 'adaptation on real image'), SD1.5 only.\n\n"
           "Load Image -> VAE Encode -> Static Video (8 frames) -> NI-VSDS Animate -> KSampler at denoise = p_re "
           "(0.8 keeps the image's identity; 1.0 is the AnimateDiff default).\n\n"
           "The video model here is SD1.5 made temporal zero-shot by ZS^2: Temporal Momentum Attention, and "
           "Dependency Noise for the regeneration noise. With AnimateDiff-Evolved installed, use its motion model "
           "instead (see i4vgen_animatediff_sd15).")


def i4vgen_animatediff_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a waterfall in a lush green forest, mist, sunlight, high detail")
    cand_lat = g.add("EmptyLatentImage", title="Anchor candidates (4 images)", width=512, height=512, batch_size=4)
    cand = g.add("KSampler", title="KSampler (anchor candidates, image model)", model=ckpt["MODEL"],
                 positive=pos["CONDITIONING"], negative=neg["CONDITIONING"], latent_image=cand_lat["LATENT"], seed=42,
                 steps=25, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform", denoise=1.0)
    cand_img = g.add("VAEDecode", samples=cand["LATENT"], vae=ckpt["VAE"])
    sel = g.add("I4VGenAnchorSelect", images=cand_img["IMAGE"], mode="highest", scores_text="1, 0, 0, 0")
    g.add("PreviewImage", title="Chosen anchor", images=sel["anchor_image"])
    mm = g.add("ADE_LoadAnimateDiffModel", model_name=AD_MOTION_MODEL)
    apply = g.add("ADE_ApplyAnimateDiffModelSimple", motion_model=mm["MOTION_MODEL"])
    evo = g.add("ADE_UseEvolvedSampling", model=ckpt["MODEL"], m_models=apply["M_MODELS"],
                beta_schedule="autoselect")
    static = g.add("I4VGenStaticVideoFromLatent", samples=cand["LATENT"], batch_index=sel["index"],
                   model=evo["MODEL"], frames=16, layout="auto")
    anim = g.add("NIVSDSAnimate", model=evo["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                 latent_image=static["static_video"], seed=7, steps=25, cfg=7.5, scheduler="ddim_uniform", p=0.6,
                 step_sizes="10,10,10,1")
    regen = g.add("KSampler", title="KSampler (regeneration, denoise = p_re)", model=evo["MODEL"],
                  positive=pos["CONDITIONING"], negative=neg["CONDITIONING"], latent_image=anim["animated"],
                  seed=43, steps=25, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform", denoise=1.0)
    _save_webp(g, regen["LATENT"], ckpt["VAE"], "i4vgen/animatediff")
    g.note("I4VGen on SD1.5 + AnimateDiff (the paper's setting; needs ComfyUI-AnimateDiff-Evolved and "
           f"{AD_MOTION_MODEL} in models/animatediff_models).\n\n"
           "1. Anchor: 4 candidate images from the plain image model; I4VGen Anchor Select keeps the best by score "
           "(connect any reward/score node to its 'scores' input; here scores_text picks the first). Its index "
           "selects the candidate's own latent, no VAE round trip.\n"
           "2. Static Video From Latent: 16 frames.\n"
           "3. NI-VSDS Animate with the AnimateDiff model (official defaults: DDIM 25 steps, CFG 7.5, p 0.6 -> 16 "
           "updates, step sizes 10,10,10,1).\n"
           "4. Regeneration: KSampler at denoise = p_re = 1.0.")


def zs2_video_edit_ip2p_sd15(g: Graph):
    ckpt = g.add("CheckpointLoaderSimple", title="Load Checkpoint (InstructPix2Pix)", ckpt_name=SD15_IP2P_CKPT)
    pos = g.add("CLIPTextEncode", title="Instruction", color="green", clip=ckpt["CLIP"], text="make it autumn")
    neg = g.add("CLIPTextEncode", title="Negative prompt", color="red", clip=ckpt["CLIP"], text=NEGATIVE_SD15)
    img = g.add("LoadImage", title="Video to edit (animated WEBP/GIF: one image per frame)", image=EDIT_FRAMES)
    scale = g.add("ImageScale", image=img["IMAGE"], upscale_method="lanczos", width=512, height=512, crop="center")
    ip2p = g.add("InstructPixToPixConditioning", positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
                 vae=ckpt["VAE"], pixels=scale["IMAGE"])
    dep = _zs2_patches(g, ckpt["MODEL"])
    ks = g.add("KSampler", model=dep["MODEL"], positive=ip2p["positive"], negative=ip2p["negative"],
               latent_image=ip2p["latent"], seed=42, steps=30, cfg=7.5, sampler_name="ddim",
               scheduler="ddim_uniform", denoise=1.0)
    _save_webp(g, ks["LATENT"], ckpt["VAE"], "zs2/video_edit")
    g.note("ZS^2 instruction-guided video editing (ZS^2 paper Sec. 6.3, Video Instruct-Pix2Pix) with an "
           "InstructPix2Pix SD1.5 checkpoint.\n\n"
           "Load Image reads an animated WEBP/GIF as a batch of frames (every frame of the clip is one video frame; "
           f"the example '{EDIT_FRAMES}', a park in summer with a drifting sun, 8 frames, is in this pack's "
           "workflows/inputs/: copy it into ComfyUI/input). Image Scale sets the resolution the model works at. "
           "InstructPixToPixConditioning VAE-encodes every frame into the conditioning (frame i edits frame i) and "
           "gives the empty latent with one latent per frame.\n\n"
           "Temporal Momentum Attention + Dependency Noise (KSampler) sample the 8 edited frames as one coherent "
           "video; the instruction ('make it autumn', one of the paper's examples) is the positive prompt.\n\n"
           f"Model: {SD15_IP2P_CKPT} (models/checkpoints; any SD1.5 InstructPix2Pix checkpoint, 8 input "
           "channels). Stronger edits: raise cfg; closer to the input: lower it. Per-frame motion control: "
           "Temporal Momentum Attention's momentum_schedule and Dependency Noise's kl_lambda_schedule.")


def zs2_lora_sd15(g: Graph):
    ckpt = g.add("CheckpointLoaderSimple", ckpt_name=SD15_CKPT)
    lora = g.add("LoraLoader", model=ckpt["MODEL"], clip=ckpt["CLIP"], lora_name=SD15_LORA, strength_model=0.8,
                 strength_clip=0.8)
    pos = g.add("CLIPTextEncode", title="Positive prompt", color="green", clip=lora["CLIP"],
                text="a lighthouse on a rocky coast, waves crashing, dramatic clouds, high detail")
    neg = g.add("CLIPTextEncode", title="Negative prompt", color="red", clip=lora["CLIP"], text=NEGATIVE_SD15)
    dep = _zs2_patches(g, lora["MODEL"])
    lat = g.add("EmptyLatentImage", title="Empty Latent Image (batch = 8 frames)", width=512, height=512, batch_size=8)
    ks = g.add("KSampler", model=dep["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
               latent_image=lat["LATENT"], seed=42, steps=50, cfg=7.5, sampler_name="ddim",
               scheduler="ddim_uniform", denoise=1.0)
    _save_webp(g, ks["LATENT"], ckpt["VAE"], "zs2/lora")
    g.note("ZS^2 with a LoRA (ZS^2 paper Sec. 6.3: specialised models such as DreamBooth/LoRA work as they are).\n\n"
           "Load LoRA patches the SD1.5 model and its text encoder; the ZS^2 patches go on top of the LoRA model: "
           "Temporal Momentum Attention (momentum 0.98) and Dependency Noise (KSampler, lambda 0.01), then the "
           "plain KSampler samples the 8 frames of the batch as one video.\n\n"
           f"Pick your LoRA in lora_name ('{SD15_LORA}' is a placeholder; any SD1.5 LoRA in models/loras) and add "
           "its trigger words to the prompt. A DreamBooth checkpoint needs no LoRA node: load it in Load "
           "Checkpoint. Stack more LoRAs by chaining Load LoRA nodes before Temporal Momentum Attention.")


def smoothinit_animatediff_sd15(g: Graph):
    ckpt, pos, neg = _sd15_front(g, "a red panda eating bamboo in a forest, sunlight, high detail")
    mm = g.add("ADE_LoadAnimateDiffModel", model_name=AD_MOTION_MODEL)
    apply = g.add("ADE_ApplyAnimateDiffModelSimple", motion_model=mm["MOTION_MODEL"])
    evo = g.add("ADE_UseEvolvedSampling", model=ckpt["MODEL"], m_models=apply["M_MODELS"],
                beta_schedule="autoselect")
    si_ = g.add("SmoothInitModelPatch", model=evo["MODEL"], method="Fast-SmoothInit-10", cfg=0.0,
                inversion_cfg=1.0, grid_steps=50)
    lat = g.add("EmptyLatentImage", title="Empty Latent Image (batch = 16 frames)", width=512, height=512,
                batch_size=16)
    ks = g.add("KSampler", model=si_["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
               latent_image=lat["LATENT"], seed=42, steps=50, cfg=7.5, sampler_name="ddim", scheduler="ddim_uniform",
               denoise=1.0)
    _save_webp(g, ks["LATENT"], ckpt["VAE"], "smoothinit/animatediff")
    g.note("SmoothInit on SD1.5 + AnimateDiff, the SmoothInit paper's headline setting (needs "
           f"ComfyUI-AnimateDiff-Evolved and {AD_MOTION_MODEL} in models/animatediff_models).\n\n"
           "Load AnimateDiff Model -> Apply AnimateDiff Model -> Use Evolved Sampling make SD1.5 a 16-frame video "
           "model. SmoothInit (KSampler) with Fast-SmoothInit-10 then makes the plain KSampler start from optimised "
           "noise: 10 Forward-Inversions (a DDIM step at the KSampler's CFG 7.5 (cfg 0 = follow the sampler) one step down a 50-step grid, a DDIM-inversion "
           "step at CFG 1 back) with the motion module active, using KSampler's own prompts, seed and first sigma: "
           "30 model calls on top of the 100 of DDIM 50 steps at CFG 7.5.\n\n"
           "The SamplerCustomAdvanced form (Random Noise -> Fast-SmoothInit Noise with the scheduler's SIGMAS "
           "connected) gives the same noise.")


def _wan22_14b_front(g: Graph, positive: str):
    """The stock Wan 2.2 14B text-to-video front (video_wan2_2_14B_t2v, fp8_scaled path): two UNETLoaders
    (high-noise and low-noise experts) with ModelSamplingSD3 shift 8 each, the umT5 text encoder, the Wan
    2.1 VAE. Returns (high MODEL node, low MODEL node, positive, negative, vae)."""
    hi = g.add("UNETLoader", title="Load Diffusion Model (high noise)", unet_name=WAN22_HIGH, weight_dtype="default")
    lo = g.add("UNETLoader", title="Load Diffusion Model (low noise)", unet_name=WAN22_LOW, weight_dtype="default")
    ms_hi = g.add("ModelSamplingSD3", model=hi["MODEL"], shift=8.0)
    ms_lo = g.add("ModelSamplingSD3", model=lo["MODEL"], shift=8.0)
    clip = g.add("CLIPLoader", clip_name=WAN_TE, type="wan", device="default")
    pos = g.add("CLIPTextEncode", title="Positive prompt", color="green", clip=clip["CLIP"], text=positive)
    neg = g.add("CLIPTextEncode", title="Negative prompt", color="red", clip=clip["CLIP"], text=NEGATIVE_WAN)
    vae = g.add("VAELoader", vae_name=WAN_VAE)
    return ms_hi, ms_lo, pos, neg, vae


def _wan22_14b_samplers(g: Graph, high, low, pos, neg, steps: int = 20, switch: int = 10, cfg: float = 3.5):
    """The stock template's two KSamplerAdvanced (euler / simple): #1 on the high-noise expert (add_noise
    enable, steps 0..switch, return_with_leftover_noise enable), #2 on the low-noise expert (add_noise
    disable, steps switch..end); EmptyHunyuanLatentVideo 640x640, 81 frames. Returns #2."""
    lat = g.add("EmptyHunyuanLatentVideo", width=640, height=640, length=81, batch_size=1)
    k1 = g.add("KSamplerAdvanced", title="KSamplerAdvanced (high noise)", model=high, add_noise="enable",
               noise_seed=42, steps=steps, cfg=cfg, sampler_name="euler", scheduler="simple", positive=pos["CONDITIONING"],
               negative=neg["CONDITIONING"], latent_image=lat["LATENT"], start_at_step=0, end_at_step=switch,
               return_with_leftover_noise="enable")
    return g.add("KSamplerAdvanced", title="KSamplerAdvanced (low noise)", model=low, add_noise="disable",
                 noise_seed=0, steps=steps, cfg=cfg, sampler_name="euler", scheduler="simple",
                 positive=pos["CONDITIONING"], negative=neg["CONDITIONING"], latent_image=k1["LATENT"],
                 start_at_step=switch, end_at_step=10000, return_with_leftover_noise="disable")


def wan22_t2v_freeinit(g: Graph):
    hi, lo, pos, neg, vae = _wan22_14b_front(g, "a red fox trotting through tall autumn grass at sunrise, mist, "
                                                "cinematic, detailed fur")
    fi_ = g.add("TFVFreeInitTwoExperts", high_noise_model=hi["MODEL"], low_noise_model=lo["MODEL"], iterations=3,
                filter="butterworth", d_s=0.25, d_t=0.25, order=4, min_signal=0.068, coarse_to_fine=False)
    k2 = _wan22_14b_samplers(g, fi_["high_noise_model"], fi_["low_noise_model"], pos, neg)
    _save_webp(g, k2["LATENT"], vae["VAE"], "wan22/freeinit", fps=16.0)
    g.note("Wan 2.2 14B text-to-video (two experts) with FreeInit: the stock video_wan2_2_14B_t2v layout plus ONE "
           "node.\n\n"
           "FreeInit (KSampler, two experts) sits between the two models (after ModelSamplingSD3) and the two "
           "KSamplerAdvanced; nothing else changes. KSamplerAdvanced #1 (high-noise expert, steps 0-10) runs as "
           "usual; #2 (low-noise expert, steps 10-20) finishes that pass, then runs the other FreeInit passes: each "
           "re-noises the video with the same initial noise, keeps its low spatio-temporal frequencies (3-D FFT, "
           "butterworth d_s = d_t = 0.25) with fresh high ones, samples steps 0-10 on the high-noise expert and "
           "steps 10-20 on the low-noise expert. One progress bar in #2 (10 + 2 x 20 steps).\n\n"
           "Cost: iterations x steps x 2 (CFG) = 3 x 20 x 2 = 120 model calls instead of 40 (60 on each expert), "
           "and the two experts are loaded again for every pass. With the 4-step lightx2v LoRAs (CFG 1, switch at "
           "2): 3 x 4 x 1 = 12 instead of 4. coarse_to_fine shortens each stage's early passes.\n\n"
           f"Models: {WAN22_HIGH} and {WAN22_LOW} (diffusion_models), {WAN_TE} (text_encoders), {WAN_VAE} (vae). "
           "81 frames at 640x640, as the template.")


def wan22_t2v_smoothinit(g: Graph):
    hi, lo, pos, neg, vae = _wan22_14b_front(g, "a red fox trotting through tall autumn grass at sunrise, mist, "
                                                "cinematic, detailed fur")
    si_ = g.add("SmoothInitModelPatch", model=hi["MODEL"], method="Fast-SmoothInit-10 DiT-safe", cfg=0.0,
                inversion_cfg=1.0, grid_steps=50)
    k2 = _wan22_14b_samplers(g, si_["MODEL"], lo["MODEL"], pos, neg)
    _save_webp(g, k2["LATENT"], vae["VAE"], "wan22/smoothinit", fps=16.0)
    g.note("Wan 2.2 14B text-to-video (two experts) with Fast-SmoothInit: the stock video_wan2_2_14B_t2v layout "
           "plus ONE node on the high-noise expert.\n\n"
           "SmoothInit (KSampler) on the high-noise expert makes KSamplerAdvanced #1 start from optimised noise, "
           "computed with #1's prompts, seed, CFG (cfg 0 follows its 3.5) and first sigma: 10 Forward-Inversions "
           "(DiT-safe momentum 0.95), 30 model calls of the high-noise expert, which owns the high noise levels. "
           "KSamplerAdvanced #2 (add_noise disable) is untouched.\n\n"
           "With the 4-step lightx2v LoRAs the sampler's CFG is 1: following it would inject nothing (the "
           "injection is proportional to cfg - inversion_cfg), so the node stops with an error there; set its "
           "cfg (e.g. 3.5).\n\n"
           f"Models: {WAN22_HIGH} and {WAN22_LOW} (diffusion_models), {WAN_TE} (text_encoders), {WAN_VAE} (vae).")


def wan22_5b_t2v_freeinit(g: Graph):
    ms, pos, neg, vae = _wan_front(g, "a street musician playing guitar in a retro subway station, commuters passing "
                                      "by, the camera slowly moves right, cinematic", WAN22_5B, WAN22_VAE)
    fi_ = g.add("TFVFreeInitModelPatch", model=ms["MODEL"], iterations=3, filter="butterworth", d_s=0.25, d_t=0.25,
                order=4, min_signal=0.068, coarse_to_fine=True)
    lat = g.add("Wan22ImageToVideoLatent", vae=vae["VAE"], width=1280, height=704, length=121, batch_size=1)
    ks = g.add("KSampler", model=fi_["MODEL"], positive=pos["CONDITIONING"], negative=neg["CONDITIONING"],
               latent_image=lat["LATENT"], seed=42, steps=20, cfg=5.0, sampler_name="uni_pc", scheduler="simple",
               denoise=1.0)
    _save_webp(g, ks["LATENT"], vae["VAE"], "wan22/5b_freeinit", fps=24.0)
    g.note("Wan 2.2 5B text-to-video with FreeInit: the stock video_wan2_2_5B_ti2v layout (one model, the Wan 2.2 "
           "VAE: 48 latent channels, 16x spatial, 4x temporal; 121 frames at 1280x704 -> 31 x 44 x 80 latent) plus "
           "FreeInit (KSampler).\n\n"
           "3 passes with coarse_to_fine: 6 + 13 + 20 uni_pc steps at CFG 5 = 78 model calls instead of 40 (120 "
           "without coarse_to_fine). Between passes the video is re-noised with the same initial noise and its low "
           "spatio-temporal frequencies are kept.\n\n"
           f"Models: {WAN22_5B} (diffusion_models), {WAN_TE} (text_encoders), {WAN22_VAE} (vae).")


def wan22_5b_i4vgen(g: Graph):
    _i4vgen_flow_video(g, "a hot air balloon rising over a green valley at dawn, drifting clouds, the camera slowly "
                          "tilts up, cinematic", "Wan22ImageToVideoLatent", (1280, 704), frames=31, steps=20, cfg=5.0,
                       prefix="i4vgen/wan22_5b", fps=24.0, unet_name=WAN22_5B, vae_name=WAN22_VAE)
    g.note("I4VGen on Wan 2.2 5B (TI2V): the stock video_wan2_2_5B_ti2v loaders and sampler settings (uni_pc, "
           "simple, 20 steps, CFG 5, 1280x704, 121 frames at 24 fps), core nodes + this pack.\n\n"
           "1. Anchor image: the 5B makes a one-frame clip (Wan22ImageToVideoLatent length 1, a [1, 48, 1, 44, 80] "
           "latent; no start image).\n"
           "2. Static Video From Latent: the Wan 2.2 VAE decodes the anchor frame, holds it for 121 picture frames "
           "and encodes that still clip once: 31 latent frames (the VAE puts 1 frame in latent frame 0 and 4 in "
           "each later one).\n"
           "3. NI-VSDS Animate on its own 20-step simple schedule, p 0.6: int(20 * 0.6) + 1 = 13 updates with one "
           "fixed noise, step sizes '1' (with shift 8 the gains are 0 to 0.18, far below the limit 2; the first "
           "update, at sigma 1, moves nothing).\n"
           "4. Regeneration: a stock KSampler at denoise = p_re 0.8 on the animated latent.\n\n"
           "Cost in model calls on the 121-frame video (CFG: 2 per step): 26 (NI-VSDS) + 40 (regeneration) = 66 "
           "instead of 40, plus 40 on the one-frame anchor.\n\n"
           f"Models: {WAN22_5B} (diffusion_models), {WAN_TE} (text_encoders), {WAN22_VAE} (vae).")


WORKFLOWS = {
    "zs2_text_to_video_sd15": zs2_text_to_video_sd15,
    "zs2_controlnet_sd15": zs2_controlnet_sd15,
    "zs2_long_video_sd15": zs2_long_video_sd15,
    "smoothinit_t2i_sd15": smoothinit_t2i_sd15,
    "zs2_fast_smoothinit_sd15": zs2_fast_smoothinit_sd15,
    "wan_t2v_fast_smoothinit": wan_t2v_fast_smoothinit,
    "zs2_text_to_video_flux": zs2_text_to_video_flux,
    "wan_t2v_freeinit": wan_t2v_freeinit,
    "zs2_freeinit_sd15": zs2_freeinit_sd15,
    "i4vgen_wan": i4vgen_wan,
    "i4vgen_real_image_sd15": i4vgen_real_image_sd15,
    "i4vgen_animatediff_sd15": i4vgen_animatediff_sd15,
    "zs2_video_edit_ip2p_sd15": zs2_video_edit_ip2p_sd15,
    "zs2_lora_sd15": zs2_lora_sd15,
    "smoothinit_animatediff_sd15": smoothinit_animatediff_sd15,
    "wan22_t2v_freeinit": wan22_t2v_freeinit,
    "wan22_t2v_smoothinit": wan22_t2v_smoothinit,
    "wan22_5b_t2v_freeinit": wan22_5b_t2v_freeinit,
    "wan22_5b_i4vgen": wan22_5b_i4vgen,
}


# ---------------------------------------------------------------------------------------------
# Example inputs
# ---------------------------------------------------------------------------------------------

def control_frames_webp(size: int = 512, frames: int = 8) -> bytes:
    """An 8-frame scribble of a ball bouncing across the picture (white strokes on black), the
    per-frame control images of zs2_controlnet_sd15. Deterministic."""
    import math

    from PIL import Image, ImageDraw
    imgs = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        im = Image.new("RGB", (size, size), "black")
        d = ImageDraw.Draw(im)
        w = max(2, size // 128)
        floor = int(size * 0.85)
        d.line([(0, floor), (size, floor)], fill="white", width=w)
        r = size * 0.09
        cx = size * (0.15 + 0.7 * t)
        cy = floor - r - abs(math.sin(math.pi * 2 * t)) * size * 0.45
        d.ellipse([cx - r, cy - r, cx + r, cy + r], outline="white", width=w)
        imgs.append(im)
    buf = io.BytesIO()
    imgs[0].save(buf, format="WEBP", save_all=True, append_images=imgs[1:], duration=125, loop=0, lossless=True)
    return buf.getvalue()


def edit_frames_webp(size: int = 512, frames: int = 8) -> bytes:
    """An 8-frame clip to edit in zs2_video_edit_ip2p_sd15: a summer park (sky, sun, hills, a green tree,
    a path) while the sun drifts right and the view pans slowly left. Flat colours, deterministic."""
    from PIL import Image, ImageDraw
    imgs = []
    for i in range(frames):
        t = i / max(frames - 1, 1)
        pan = -int(size * 0.06 * t)
        im = Image.new("RGB", (size, size), (135, 195, 235))
        d = ImageDraw.Draw(im)
        sx, sy, sr = size * (0.2 + 0.25 * t), size * 0.18, size * 0.07
        d.ellipse([sx - sr, sy - sr, sx + sr, sy + sr], fill=(255, 225, 90))
        d.ellipse([pan - size * 0.3, size * 0.5, pan + size * 0.9, size * 1.1], fill=(95, 170, 70))
        d.ellipse([pan + size * 0.4, size * 0.55, pan + size * 1.6, size * 1.2], fill=(80, 150, 60))
        d.polygon([(pan + size * 0.45, size), (pan + size * 0.6, size * 0.62), (pan + size * 0.66, size * 0.62),
                   (pan + size * 0.75, size)], fill=(200, 180, 140))
        tx = pan + size * 0.3
        d.rectangle([tx - size * 0.025, size * 0.45, tx + size * 0.025, size * 0.72], fill=(110, 75, 45))
        for dx, dy, r in ((0, 0.36, 0.13), (-0.09, 0.44, 0.09), (0.09, 0.43, 0.1)):
            cx, cy, rr = tx + size * dx, size * dy, size * r
            d.ellipse([cx - rr, cy - rr, cx + rr, cy + rr], fill=(40, 130, 45))
        imgs.append(im)
    buf = io.BytesIO()
    imgs[0].save(buf, format="WEBP", save_all=True, append_images=imgs[1:], duration=125, loop=0, lossless=True)
    return buf.getvalue()


EXAMPLE_INPUTS = {CONTROL_FRAMES: control_frames_webp, EDIT_FRAMES: edit_frames_webp}


# ---------------------------------------------------------------------------------------------

def external_defs() -> dict:
    data = json.loads(EXTERNAL_DEFS.read_text())
    return {k: v for k, v in data.items() if not k.startswith("_") and k != "cnr_ids"}, data.get("cnr_ids", {})


def build_object_info() -> dict:
    """Live node definitions (ComfyUI booted in-process with this pack) plus recorded definitions
    of third-party nodes that are not installed."""
    from comfy_harness import boot
    pack = boot()
    import nodes
    info = wa.object_info_in_process()
    ext, cnr = external_defs()
    for k, v in ext.items():
        info.setdefault(k, v)
    info["_cnr_ids"] = cnr
    info["_pack_types"] = sorted(getattr(pack, "NODE_CLASS_MAPPINGS", {}).keys())
    info["_pack_version"] = pack_version()
    del nodes
    return info


def build_all(object_info: dict) -> dict[str, dict]:
    out = {}
    for name, fn in WORKFLOWS.items():
        g = Graph(object_info, name)
        fn(g)
        out[name] = g.to_ui()
    return out


def render(ui: dict) -> str:
    return json.dumps(ui, indent=2, ensure_ascii=False) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 if a file would change")
    args = ap.parse_args(argv)
    info = build_object_info()
    files = {WORKFLOWS_DIR_NAME(n): render(ui) for n, ui in build_all(info).items()}
    import build_template_twins  # twins of the installed stock templates (none without the template package)
    files.update({WORKFLOWS_DIR_NAME(n): render(ui) for n, ui in build_template_twins.build_all(info).items()})
    import template_twins_image  # ZS^2 twins of the stock image templates
    files.update({WORKFLOWS_DIR_NAME(n): render(ui) for n, ui in template_twins_image.build_all(info).items()})
    stale = []
    for path, text in files.items():
        # Compared as workflow_api.drift_view sees them: a newer ComfyUI's extra unlinked output slots
        # (0.33.0's Save nodes return their IMAGE) do not make a file stale.
        if not path.exists() or wa.drift_view(json.loads(path.read_text())) != wa.drift_view(json.loads(text)):
            stale.append(path)
            if not args.check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    for name, make in EXAMPLE_INPUTS.items():
        webp = INPUTS / name
        data = make()
        if not webp.exists() or webp.read_bytes() != data:
            stale.append(webp)
            if not args.check:
                webp.parent.mkdir(parents=True, exist_ok=True)
                webp.write_bytes(data)
    for p in stale:
        print(("stale: " if args.check else "wrote: ") + str(p.relative_to(REPO)))
    if not stale:
        print("workflows up to date")
    return 1 if (args.check and stale) else 0


def WORKFLOWS_DIR_NAME(name: str) -> Path:  # noqa: N802
    return WORKFLOW_DIR / f"{name}.json"


if __name__ == "__main__":
    sys.exit(main())
