"""Packaging and loading as the ComfyUI ecosystem reads them: the pack loads as ComfyUI loads a custom node
folder, and every node is properly described (tooltips on every input, category, display name, description,
output names/tooltips; moved from test_pack_loading.py); one category tree, search aliases on every node
(served by the server where it supports them), a thumbnail next to every shipped workflow that the server's
template routes list and serve, the registry fields of pyproject.toml, LICENSE and the Manager entry."""
from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.request

import pytest

from comfy_harness import REPO_ROOT, comfyui_path
import workflow_api as wa

sys.path.insert(0, str(REPO_ROOT / "scripts"))
try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib

# The papers' terms must be the node names users search for.
PAPER_TERMS = ["Dependency Noise", "Temporal Momentum Attention", "Forward-Inversion", "SmoothInit",
               "Fast-SmoothInit", "NI-VSDS", "Static Video", "Anchor"]
WORKFLOWS = sorted((REPO_ROOT / "workflows").glob("*.json"))
# what users type into the node search (issue 13); each must find at least one node by alias
USER_SEARCHES = ("freeinit", "consistency", "noise init", "text2video", "smooth noise", "zs2", "i4vgen",
                 "animate image", "smoothinit", "dependency noise", "long video", "image to video")


def _pack_nodes(pack):
    return dict(pack.NODE_CLASS_MAPPINGS)


def test_one_category_tree(pack):
    CATEGORY_ROOT, METHODS = pack.nodes.registry.CATEGORY_ROOT, pack.nodes.registry.METHODS
    cats = {k: cls.CATEGORY for k, cls in _pack_nodes(pack).items()}
    bad = {k: c for k, c in cats.items() if c.split("/")[0] != CATEGORY_ROOT or c.split("/")[1:] not in
           ([m] for m in METHODS)}
    assert not bad, f"nodes outside {CATEGORY_ROOT}/<method>: {bad}"
    assert {c.split("/")[1] for c in cats.values()} == set(METHODS)


def test_every_node_has_search_aliases(pack):
    nodes = _pack_nodes(pack)
    for k, cls in nodes.items():
        al = getattr(cls, "SEARCH_ALIASES", None)
        assert isinstance(al, list) and al, f"{k}: no SEARCH_ALIASES (add aliases to its registry.Spec)"
        assert all(isinstance(a, str) and a == a.strip().lower() and a for a in al), f"{k}: {al}"
        assert len(set(al)) == len(al), f"{k}: duplicate aliases {al}"
    for term in USER_SEARCHES:
        assert any(term in cls.SEARCH_ALIASES for cls in nodes.values()), f"no node has the alias {term!r}"


def test_every_node_is_declared_once_by_its_spec(pack):
    """The mappings ComfyUI reads are derived from one registry.Spec per node (nodes/registry.py): the
    class attributes, the display name and the error prefix all come from it."""
    registry = pack.nodes.registry
    classes, names = registry.mappings()
    assert classes == dict(pack.NODE_CLASS_MAPPINGS) and names == dict(pack.NODE_DISPLAY_NAME_MAPPINGS)
    assert len(classes) == 17
    for k, cls in classes.items():
        spec = cls.SPEC
        assert spec.id == k and cls.NODE_NAME == spec.display_name == names[k]
        assert cls.CATEGORY == f"{registry.CATEGORY_ROOT}/{spec.method}" and cls.FUNCTION == spec.function
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES) == len(cls.OUTPUT_TOOLTIPS) == len(spec.outputs)
        assert set(cls.INPUT_TYPES()["required"]) == set(spec.inputs)
    with pytest.raises(ValueError, match="declared twice"):
        registry.node(registry.Spec(id="DependencyNoise", display_name="x", method="ZS2", function="f", inputs={},
                                    outputs=(), description=""))


def test_a_bad_input_is_named_by_the_node_once(pack):
    """One error convention (nodes/errors.py): the core raises the message only, the node's declared
    function adds "<display name>: " exactly once, whether the error comes from the core, the node or a
    helper that already named it."""
    import importlib
    zs2 = importlib.import_module(f"{pack.__name__}.nodes.zs2")
    with pytest.raises(ValueError) as e:        # the core (Dependency Noise settings)
        zs2.DependencyNoise().get_noise(0, -1.0, 10, 15, "dependency", 0.9)
    assert str(e.value) == "Dependency Noise: kl_lambda must be a finite number >= 0, got -1.0."
    with pytest.raises(ValueError) as e:        # the core's frame schedule, through another node
        zs2.DependencyNoiseModelPatch().patch(None, 0.01, 10, 15, "dependency", 0.9, kl_lambda_schedule="0,01")
    assert str(e.value).startswith("Dependency Noise (KSampler): kl_lambda_schedule: '0,01' is ambiguous")
    with pytest.raises(ValueError) as e:        # the node itself
        zs2.TemporalMomentumAttention().patch(None, 1.5)
    assert str(e.value) == "Temporal Momentum Attention: momentum must be in [0, 1], got 1.5."
    errors = importlib.import_module(f"{pack.__name__}.nodes.errors")
    with pytest.raises(ValueError) as e:        # already named: not named again
        with errors.naming("B"):
            with errors.naming("A"):
                raise ValueError("x: bad")
    assert str(e.value) == "A: x: bad"


def test_every_workflow_has_a_small_jpeg_thumbnail():
    from PIL import Image
    assert WORKFLOWS
    for wf in WORKFLOWS:
        thumb = wf.with_suffix(".jpg")
        assert thumb.exists(), f"{thumb.name} missing: run python scripts/make_thumbnails.py {wf.stem}"
        assert thumb.stat().st_size < 100_000, f"{thumb.name}: {thumb.stat().st_size} bytes"
        im = Image.open(thumb)
        assert im.format == "JPEG" and 256 <= im.width <= 1024 and 128 <= im.height <= 1024, (thumb.name, im.size)
    stray = sorted(p.name for p in (REPO_ROOT / "workflows").glob("*.jpg") if not p.with_suffix(".json").exists())
    assert not stray, f"thumbnails without a workflow: {stray}"


def _get(url: str):
    with urllib.request.urlopen(url, timeout=60) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read()


def test_server_serves_aliases_templates_and_thumbnails(pack, tmp_path):
    """A real ComfyUI server (main.py --cpu, this pack in a temporary --base-directory's custom_nodes/):
    /object_info carries our aliases where the server serves SEARCH_ALIASES (its core nodes have them,
    ComfyUI 0.33.0) and no alias key where it does not (0.3.64 ignores the attribute);
    /workflow_templates lists every workflow under the pack's folder name, and the thumbnail URL the
    frontend requests (/api/workflow_templates/<pack>/<name>.jpg) serves the JPEG."""
    import nodes as comfy_nodes
    from PIL import Image
    import make_thumbnails as mt
    served_by_core = hasattr(comfy_nodes.CLIPTextEncode, "SEARCH_ALIASES")
    with mt.server(comfyui_path().resolve(), None, tmp_path / "server.log") as (url, _base):
        info = json.loads(_get(url + "/object_info")[2])
        for k, cls in _pack_nodes(pack).items():
            assert info[k]["category"] == cls.CATEGORY
            if served_by_core:
                assert info[k]["search_aliases"] == cls.SEARCH_ALIASES, k
            else:
                assert "search_aliases" not in info[k], k
        listed = json.loads(_get(url + "/workflow_templates")[2])
        assert sorted(listed.get(mt.LINK_NAME, [])) == [wf.stem for wf in WORKFLOWS], listed.keys()
        for wf in WORKFLOWS:
            status, ctype, body = _get(f"{url}/api/workflow_templates/{mt.LINK_NAME}/{wf.stem}{mt.THUMB_EXT}")
            assert status == 200 and ctype == "image/jpeg", (wf.stem, status, ctype)
            assert body == wf.with_suffix(".jpg").read_bytes()
            Image.open(io.BytesIO(body)).verify()
            status, _, body = _get(f"{url}/api/workflow_templates/{mt.LINK_NAME}/{wf.name}")
            assert json.loads(body) == json.loads(wf.read_text())


def test_registry_fields_as_comfyui_parses_them(pack):
    """pyproject.toml through ComfyUI's own parser of registry metadata (comfy_config, both versions)."""
    try:
        from comfy_config import config_parser
    except ImportError:
        pytest.fail("ComfyUI has no comfy_config: the registry parser moved; update this test")
    cfg = config_parser.extract_node_configuration(str(REPO_ROOT))
    raw = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    assert cfg.project.version == pack.__version__ == raw["project"]["version"]
    assert cfg.project.supported_os == ["OS Independent"]
    assert cfg.project.license.text == "MIT"
    assert cfg.project.supported_comfyui_version == raw["tool"]["comfy"]["requires-comfyui"]
    assert cfg.tool_comfy.publisher_id and cfg.tool_comfy.display_name and cfg.tool_comfy.icon
    assert cfg.project.urls.repository and cfg.project.urls.issues
    lic = (REPO_ROOT / "LICENSE").read_text()
    assert lic.startswith("MIT License") and "the comfyui-training-free-video authors" in lic


def test_readme_manager_entry_matches_pyproject():
    raw = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    readme = (REPO_ROOT / "README.md").read_text()
    blocks = [json.loads(b) for b in re.findall(r"```json\n(.*?)```", readme, re.S)]
    entry = next(b for b in blocks if isinstance(b, dict) and "install_type" in b)
    assert set(entry) == {"author", "title", "id", "reference", "files", "install_type", "description"}
    repo = raw["project"]["urls"]["Repository"]
    assert entry["id"] == raw["project"]["name"]
    assert entry["reference"] == repo and entry["files"] == [repo] and entry["install_type"] == "git-clone"
    assert entry["title"] == raw["tool"]["comfy"]["DisplayName"]
    assert entry["author"] == raw["tool"]["comfy"]["PublisherId"]


# --------------------------------------------------------------------------- loading, node descriptions
# (moved from test_pack_loading.py)

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
