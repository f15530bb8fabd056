#!/usr/bin/env python
"""Generate the blueprints in ``subgraphs/`` (never edited by hand): the pack's methods as subgraphs a
user drops into their own graph as one node.

ComfyUI 0.33.0 serves every ``custom_nodes/<pack>/subgraphs/*.json`` (``app/subgraph_manager.py``,
``GET /global_subgraphs``); its frontend lists them in the node library under their file name. A file
has the shape of ComfyUI's own ``blueprints/*.json``: one top-level node whose ``type`` is the id of
the subgraph in ``definitions.subgraphs[0]``, which holds the inner nodes and links (LiteGraph's
subgraph input node is id -10, its output node -20), the named ``inputs`` / ``outputs``, a
``description``, a ``category``, and the inner widgets shown on the node (``properties.proxyWidgets``).
ComfyUI 0.3.64 has no blueprints.

The inner nodes are built with ``build_workflows.Graph`` (widget order from the live node definitions,
``cnr_id`` / ``ver``), so the same ComfyUI boot is needed:

    python scripts/build_blueprints.py            # (re)write subgraphs/*.json
    python scripts/build_blueprints.py --check    # exit 1 if a file differs from what would be written
"""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import build_workflows as bw  # noqa: E402

REPO = bw.REPO
SUBGRAPH_DIR = REPO / "subgraphs"
INPUT_NODE, OUTPUT_NODE = -10, -20
CATEGORY = "Training-Free Video"


class _Boundary:
    """Stands in for LiteGraph's subgraph input node (id -10) as the source of inner links."""
    id = INPUT_NODE
    links_in: dict = {}

    def __init__(self):
        self.out_types: list[str] = []
        self.names: list[str] = []


class Blueprint(bw.Graph):
    """A ``build_workflows.Graph`` whose sources may be named subgraph inputs and whose chosen outputs are
    the subgraph's outputs."""

    def __init__(self, object_info: dict, name: str, description: str):
        super().__init__(object_info, name)
        self.description = description
        self.boundary = _Boundary()
        self.outputs: list[tuple[str, bw.Out]] = []
        self.proxy: list[tuple[bw.Node, str]] = []

    def input(self, name: str, type_: str) -> bw.Out:
        """A named input of the subgraph (an input socket of the node the user drops in)."""
        self.boundary.names.append(name)
        self.boundary.out_types.append(type_)
        return bw.Out(self.boundary, len(self.boundary.names) - 1)

    def output(self, name: str, src: bw.Out):
        self.outputs.append((name, src))

    def show(self, node: bw.Node, *widgets: str):
        """Show these widgets of an inner node on the blueprint's node (proxyWidgets)."""
        self.proxy += [(node, w) for w in widgets]

    def to_blueprint(self) -> dict:
        ui = self.to_ui()
        sg_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"training-free-video/subgraph/{self.name}"))
        by_id = {n["id"]: n for n in ui["nodes"]}
        links, in_links = [], {i: [] for i in range(len(self.boundary.names))}
        for lid, src, slot, dst, dslot, type_ in ui["links"]:
            links.append({"id": lid, "origin_id": src, "origin_slot": slot, "target_id": dst, "target_slot": dslot,
                          "type": type_})
            if src == INPUT_NODE:
                in_links[slot].append(lid)
        lid = ui["last_link_id"]
        out_links = []
        for k, (name, src) in enumerate(self.outputs):
            lid += 1
            links.append({"id": lid, "origin_id": src.node.id, "origin_slot": src.slot, "target_id": OUTPUT_NODE,
                          "target_slot": k, "type": src.type})
            by_id[src.node.id]["outputs"][src.slot]["links"].append(lid)
            out_links.append(lid)
        xs = [n["pos"][0] for n in ui["nodes"]]
        x_end = max(n["pos"][0] + n["size"][0] for n in ui["nodes"])
        n_in, n_out = len(self.boundary.names), len(self.outputs)
        inputs = [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sg_id}/in/{name}")), "name": name, "type": t,
                   "linkIds": in_links[i], "localized_name": name, "label": name, "pos": [min(xs) - 140, 80 + 20 * i]}
                  for i, (name, t) in enumerate(zip(self.boundary.names, self.boundary.out_types))]
        outputs = [{"id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"{sg_id}/out/{name}")), "name": name, "type": src.type,
                    "linkIds": [out_links[k]], "localized_name": name, "label": name, "pos": [x_end + 100, 80 + 20 * k]}
                   for k, (name, src) in enumerate(self.outputs)]
        definition = {
            "id": sg_id, "version": 1,
            "state": {"lastGroupId": 0, "lastNodeId": ui["last_node_id"], "lastLinkId": lid, "lastRerouteId": 0},
            "revision": 0, "config": {}, "name": self.name,
            "inputNode": {"id": INPUT_NODE, "bounding": [min(xs) - 260, 50, 120, 40 + 20 * n_in]},
            "outputNode": {"id": OUTPUT_NODE, "bounding": [x_end + 80, 50, 120, 40 + 20 * n_out]},
            "inputs": inputs, "outputs": outputs, "widgets": [],
            "nodes": ui["nodes"], "groups": [], "links": links, "extra": {},
            "category": CATEGORY, "description": self.description,
        }
        instance = {
            "id": 1, "type": sg_id, "pos": [100, 100], "size": [320, 80 + 26 * (max(n_in, n_out) + len(self.proxy))],
            "flags": {}, "order": 0, "mode": 0,
            "inputs": [{"name": i["name"], "localized_name": i["name"], "label": i["name"], "type": i["type"],
                        "link": None} for i in inputs],
            "outputs": [{"name": o["name"], "localized_name": o["name"], "label": o["name"], "type": o["type"],
                         "links": []} for o in outputs],
            "properties": {"proxyWidgets": [[str(n.id), w] for n, w in self.proxy]},
            "widgets_values": [], "title": self.name,
        }
        return {"revision": 0, "last_node_id": 1, "last_link_id": 0, "nodes": [instance], "links": [],
                "version": 0.4, "definitions": {"subgraphs": [definition]}, "extra": {}}


# ---------------------------------------------------------------------------------------------
# The blueprints (file name = the name the node library shows)

def freeinit_one_model(g: Blueprint):
    model = g.input("model", "MODEL")
    fi_ = g.add("TFVFreeInitModelPatch", model=model, iterations=3, filter="butterworth", d_s=0.25, d_t=0.25,
                order=4, min_signal=0.068, coarse_to_fine=False)
    ks = g.add("KSampler", model=fi_["MODEL"], positive=g.input("positive", "CONDITIONING"),
               negative=g.input("negative", "CONDITIONING"), latent_image=g.input("latent_image", "LATENT"),
               seed=42, steps=30, cfg=6.0, sampler_name="uni_pc", scheduler="simple", denoise=1.0)
    g.output("LATENT", ks["LATENT"])
    g.show(fi_, "iterations", "coarse_to_fine")
    g.show(ks, "seed", "steps", "cfg", "sampler_name", "scheduler")


def freeinit_wan22_two_experts(g: Blueprint):
    fi_ = g.add("TFVFreeInitTwoExperts", high_noise_model=g.input("high_noise_model", "MODEL"),
                low_noise_model=g.input("low_noise_model", "MODEL"), iterations=3, filter="butterworth", d_s=0.25,
                d_t=0.25, order=4, min_signal=0.068, coarse_to_fine=False)
    pos, neg = g.input("positive", "CONDITIONING"), g.input("negative", "CONDITIONING")
    k1 = g.add("KSamplerAdvanced", title="KSamplerAdvanced (high noise)", model=fi_["high_noise_model"],
               add_noise="enable", noise_seed=42, steps=20, cfg=3.5, sampler_name="euler", scheduler="simple",
               positive=pos, negative=neg, latent_image=g.input("latent_image", "LATENT"), start_at_step=0,
               end_at_step=10, return_with_leftover_noise="enable")
    k2 = g.add("KSamplerAdvanced", title="KSamplerAdvanced (low noise)", model=fi_["low_noise_model"],
               add_noise="disable", noise_seed=0, steps=20, cfg=3.5, sampler_name="euler", scheduler="simple",
               positive=pos, negative=neg, latent_image=k1["LATENT"], start_at_step=10, end_at_step=10000,
               return_with_leftover_noise="disable")
    g.output("LATENT", k2["LATENT"])
    g.show(fi_, "iterations", "coarse_to_fine")
    g.show(k1, "noise_seed")


def fast_smoothinit(g: Blueprint):
    si_ = g.add("SmoothInitModelPatch", model=g.input("model", "MODEL"), method="Fast-SmoothInit-10", cfg=0.0,
                inversion_cfg=1.0, grid_steps=50)
    g.output("MODEL", si_["MODEL"])
    g.show(si_, "method", "cfg")


def zs2_image_model(g: Blueprint):
    tma = g.add("TemporalMomentumAttention", model=g.input("model", "MODEL"), momentum=0.98)
    dep = g.add("DependencyNoiseModelPatch", model=tma["MODEL"], kl_lambda=0.01, random_search=10, linear_search=15,
                noise_model="dependency", alpha=0.9)
    g.output("MODEL", dep["MODEL"])
    g.show(tma, "momentum")
    g.show(dep, "kl_lambda")


def i4vgen_chain(g: Blueprint):
    model = g.input("model", "MODEL")
    pos, neg = g.input("positive", "CONDITIONING"), g.input("negative", "CONDITIONING")
    static = g.add("I4VGenStaticVideoFromLatent", samples=g.input("anchor", "LATENT"), model=model,
                   vae=g.input("vae", "VAE"), frames=16, layout="auto", batch_index=0)
    anim = g.add("NIVSDSAnimate", model=model, positive=pos, negative=neg, latent_image=static["static_video"], seed=7,
                 steps=25, cfg=7.5, scheduler="ddim_uniform", p=0.6, step_sizes="10,10,10,1")
    regen = g.add("KSampler", title="KSampler (regeneration, denoise = p_re)", model=model, positive=pos,
                  negative=neg, latent_image=anim["animated"], seed=43, steps=25, cfg=7.5, sampler_name="ddim",
                  scheduler="ddim_uniform", denoise=0.8)
    g.output("LATENT", regen["LATENT"])
    g.show(static, "frames")
    g.show(anim, "p", "step_sizes")
    g.show(regen, "steps", "cfg", "denoise")


BLUEPRINTS = {
    "FreeInit KSampler (one video model)": (
        freeinit_one_model,
        "FreeInit on a one-model video graph (Wan 2.1, Wan 2.2 5B, Hunyuan, LTXV, AnimateDiff): put it where the "
        "KSampler was. MODEL -> FreeInit (KSampler) -> KSampler (uni_pc, simple, 30 steps, CFG 6). 3 passes: "
        "iterations x the KSampler's model calls (3 x 30 x 2 = 180 instead of 60; coarse_to_fine: 2x)."),
    "FreeInit KSampler (Wan 2.2 two experts)": (
        freeinit_wan22_two_experts,
        "FreeInit on Wan 2.2 14B's two experts, as the stock video_wan2_2_14B_t2v samples them: FreeInit (KSampler, "
        "two experts) -> KSamplerAdvanced high noise (steps 0-10 of 20, CFG 3.5, euler) -> KSamplerAdvanced low "
        "noise (steps 10-20). Connect both experts after their ModelSamplingSD3. 3 x 20 x 2 = 120 model calls "
        "instead of 40."),
    "Fast-SmoothInit-10 (before any sampler)": (
        fast_smoothinit,
        "SmoothInit (KSampler) with Fast-SmoothInit-10 on a MODEL: any sampler node using the output starts from "
        "optimised noise computed with its own prompts, seed, first sigma and CFG (cfg 0 follows the sampler's; "
        "set it on distilled CFG-1 models). + 30 model calls. DiT video models (Wan): the DiT-safe preset."),
    "ZS2 video from an image model (TMA + Dependency Noise)": (
        zs2_image_model,
        "ZS^2 on an image model (SD1.x/2.x/XL; TMA also on Flux, SD3, Qwen-Image): Temporal Momentum Attention "
        "(momentum 0.98) -> Dependency Noise (KSampler) (lambda 0.01). The batch of the latent is the frames of "
        "one video (Empty Latent Image batch_size 8). No extra model calls."),
    "I4VGen (static video - NI-VSDS - regeneration)": (
        i4vgen_chain,
        "I4VGen's chain from an anchor image latent: Static Video From Latent (16 frames) -> NI-VSDS Animate (p 0.6, "
        "step sizes 10,10,10,1, its own DDIM 25 schedule) -> KSampler regeneration at denoise = p_re 0.8. Defaults "
        "for SD1.5 + AnimateDiff or ZS^2; on Wan connect the video VAE (vae input) and use step sizes 1. Model calls: "
        "NI-VSDS int(25 x 0.6) + 1 = 16 CFG updates (32) + the regeneration."),
}


def build_all(object_info: dict) -> dict[str, dict]:
    out = {}
    for name, (fn, description) in BLUEPRINTS.items():
        g = Blueprint(object_info, name, description)
        fn(g)
        out[name] = g.to_blueprint()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare; exit 1 if a file would change")
    args = ap.parse_args(argv)
    files = {SUBGRAPH_DIR / f"{n}.json": bw.render(bp) for n, bp in build_all(bw.build_object_info()).items()}
    stale = [p for p, text in files.items() if not p.exists() or p.read_text() != text]
    stray = sorted(set(SUBGRAPH_DIR.glob("*.json")) - set(files))
    for p in stale:
        if not args.check:
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(files[p])
        print(("stale: " if args.check else "wrote: ") + str(p.relative_to(REPO)))
    for p in stray:
        print(f"not generated (remove it): {p.relative_to(REPO)}")
    if not stale and not stray:
        print("blueprints up to date")
    return 1 if (stale and args.check) or stray else 0


if __name__ == "__main__":
    sys.exit(main())
