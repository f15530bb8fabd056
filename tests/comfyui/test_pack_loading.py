"""The pack loads as ComfyUI loads a custom node folder, and every node is properly described
(tooltips on every input, category, display name, description, output names/tooltips)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from comfy_harness import REPO_ROOT, comfyui_path
import workflow_api as wa

# The papers' terms must be the node names users search for.
PAPER_TERMS = ["Dependency Noise", "Temporal Momentum Attention", "Forward-Inversion", "SmoothInit",
               "Fast-SmoothInit", "NI-VSDS", "Static Video", "Anchor"]


def _pack_nodes(pack):
    return dict(pack.NODE_CLASS_MAPPINGS)


def test_comfyui_startup_loads_the_pack_without_import_errors(tmp_path):
    """A fresh ComfyUI process loads the pack from custom_nodes/ (a symlink, as users install it by
    git clone) through init_extra_nodes -- ComfyUI's own start-up path -- and logs no import failure."""
    custom = tmp_path / "custom_nodes"
    custom.mkdir()
    (custom / "comfyui-training-free-video").symlink_to(REPO_ROOT, target_is_directory=True)
    script = textwrap.dedent(f"""
        import asyncio, logging, sys, io, json
        sys.path.insert(0, {str(comfyui_path())!r})
        import comfy.options
        comfy.options.enable_args_parsing(False)
        from comfy.cli_args import args
        args.cpu = True
        buf = io.StringIO()
        logging.basicConfig(level=logging.INFO, stream=buf, force=True)
        import utils.extra_config
        import folder_paths
        folder_paths.folder_names_and_paths["custom_nodes"] = ([{str(custom)!r}], set())
        import nodes
        failed = asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        ours = sorted(k for k, v in nodes.NODE_CLASS_MAPPINGS.items()
                      if "training-free-video" in getattr(v, "RELATIVE_PYTHON_MODULE", ""))
        print(json.dumps({{"failed": failed, "ours": ours, "log": buf.getvalue()}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env,
                       cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-4000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    log = out["log"] + r.stderr
    ours = [ln for ln in log.splitlines() if "comfyui-training-free-video" in ln]
    assert ours, log[-4000:]  # the "Import times for custom nodes" line
    assert not [ln for ln in ours if "IMPORT FAILED" in ln or "Cannot import" in ln], "\n".join(ours)
    assert "comfyui-training-free-video/" not in log, log[-4000:]  # no traceback through our files
    assert not any("training-free-video" in str(f) for f in (out["failed"] or [])), out["failed"]
    assert len(out["ours"]) >= 10, out["ours"]
    for name in ("DependencyNoise", "TemporalMomentumAttention", "FastSmoothInitNoise", "NIVSDSAnimate"):
        assert name in out["ours"]


def test_pack_registers_nodes_of_all_three_methods(pack):
    names = set(_pack_nodes(pack))
    assert {"DependencyNoise", "DependencyNoiseModelPatch", "TemporalMomentumAttention"} <= names
    assert {"ForwardInversionNoise", "SmoothInitNoise", "FastSmoothInitNoise", "SmoothInitModelPatch"} <= names
    assert {"I4VGenStaticVideoFromLatent", "I4VGenStaticVideoFromImage", "NIVSDSAnimate",
            "I4VGenAnchorSelect"} <= names
    import nodes
    for k, cls in _pack_nodes(pack).items():
        assert nodes.NODE_CLASS_MAPPINGS[k] is cls


def test_every_input_has_a_tooltip(pack):
    missing = []
    for k, cls in _pack_nodes(pack).items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, s in (spec.get(section) or {}).items():
                opts = s[1] if isinstance(s, (list, tuple)) and len(s) > 1 and isinstance(s[1], dict) else {}
                if not str(opts.get("tooltip", "")).strip():
                    missing.append(f"{k}.{name}")
    assert not missing, f"inputs without tooltip: {missing}"


def test_every_node_has_category_display_name_description_and_outputs(pack):
    display = pack.NODE_DISPLAY_NAME_MAPPINGS
    for k, cls in _pack_nodes(pack).items():
        assert isinstance(getattr(cls, "CATEGORY", None), str) and cls.CATEGORY.strip(), k
        assert display.get(k, "").strip(), f"{k}: no display name"
        assert len(str(getattr(cls, "DESCRIPTION", "")).strip()) > 30, f"{k}: no DESCRIPTION"
        assert re.search(r"NFE|model calls", cls.DESCRIPTION), f"{k}: the DESCRIPTION does not state the NFE cost"
        assert callable(getattr(cls, cls.FUNCTION, None)), f"{k}: FUNCTION {cls.FUNCTION} missing"
        n = len(cls.RETURN_TYPES)
        assert len(getattr(cls, "RETURN_NAMES", ())) == n, f"{k}: RETURN_NAMES"
        tips = getattr(cls, "OUTPUT_TOOLTIPS", ())
        assert len(tips) == n and all(str(t).strip() for t in tips), f"{k}: OUTPUT_TOOLTIPS"


def test_display_names_use_the_papers_terms(pack):
    names = " | ".join(pack.NODE_DISPLAY_NAME_MAPPINGS.values())
    for term in PAPER_TERMS:
        assert term in names, f"no node named with the paper's term {term!r}: {names}"


def test_widget_defaults_are_valid(pack):
    """Every default lies in its [min, max] and every combo default is one of its choices (so a node
    dropped on the canvas validates as is)."""
    for k, cls in _pack_nodes(pack).items():
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for name, s in (spec.get(section) or {}).items():
                t = s[0]
                opts = s[1] if len(s) > 1 and isinstance(s[1], dict) else {}
                if isinstance(t, (list, tuple)):
                    if t and "default" in opts:
                        assert opts["default"] in t, f"{k}.{name}: default {opts['default']!r} not in {t}"
                elif t in ("INT", "FLOAT") and "default" in opts:
                    d = opts["default"]
                    assert opts.get("min", d) <= d <= opts.get("max", d), f"{k}.{name}: default {d} outside range"
                    if t == "INT":
                        assert isinstance(d, int), f"{k}.{name}: INT default {d!r}"


def test_object_info_of_every_pack_node_is_json(pack):
    """What GET /object_info serves for our nodes (the frontend builds widgets from it)."""
    for k in _pack_nodes(pack):
        info = wa.node_info(k)
        json.dumps(info)
        assert info["display_name"] == pack.NODE_DISPLAY_NAME_MAPPINGS[k]
        slots = wa.widget_slots(info)
        assert len({s.name for s in slots}) == len(slots), f"{k}: duplicate widget names"


def test_seed_inputs_get_the_control_widget(pack):
    """Seed inputs are INT widgets followed by the frontend's control_after_generate value."""
    for k in ("DependencyNoise", "NIVSDSAnimate"):
        slots = wa.widget_slots(wa.node_info(k))
        names = [s.name for s in slots]
        seed = "noise_seed" if "noise_seed" in names else "seed"
        assert names[names.index(seed) + 1] == "control_after_generate", (k, names)
