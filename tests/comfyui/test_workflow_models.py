"""Every loader of every shipped workflow says where its model files come from (``properties.models``,
the list the frontend's missing-models dialog offers for download), as the stock templates do.

For every node with a model-file widget (a combo whose value is a model file name), ``models`` has one
entry per such widget, in widget order: ``name`` equals the widget's file name and ``directory`` is the
ComfyUI folder the loader lists that widget's files from. The folder is not taken from a table: a probe
file is put into a temporary folder of every registered folder type, and the folder whose probe shows up
in the loader's combo choices is the loader's folder type. Placeholders (the user's own LoRA) carry no
entry. This pack's nodes carry ``cnr_id`` and ``ver`` (the pack's version), as the frontend writes them.
"""
from __future__ import annotations

import contextlib
import json
import re

import pytest

from comfy_harness import REPO_ROOT
import workflow_api as wa

WORKFLOW_FILES = sorted((REPO_ROOT / "workflows").glob("*.json"))
MODEL_SUFFIXES = (".safetensors", ".ckpt", ".pth", ".pt", ".sft", ".bin", ".gguf")


def _build_script():
    import importlib.util
    spec = importlib.util.spec_from_file_location("tfv_build_workflows_models",
                                                  REPO_ROOT / "scripts" / "build_workflows.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def loader_folders(pack, ade, tmp_path_factory):
    """{(class_type, input name): folder type} for every combo input of every live node that lists the
    files of a registered model folder (found by probe files, see the module docstring); AnimateDiff-Evolved
    loaded when it is in the tested ComfyUI (its motion-model loader is probed too)."""
    import folder_paths
    import nodes
    from checkpoints import registered_folder
    root = tmp_path_factory.mktemp("probe_models")
    probes = {}
    with contextlib.ExitStack() as stack:
        for folder, (_paths, exts) in list(folder_paths.folder_names_and_paths.items()):
            if folder in ("custom_nodes", "configs"):
                continue
            d = root / folder
            d.mkdir()
            name = f"tfv_probe_{folder}.safetensors"
            (d / name).write_bytes(b"")
            stack.enter_context(registered_folder(folder, d))
            folder_paths.filename_list_cache.pop(folder, None)
            probes[name] = folder
        found = {}
        for class_type, cls in nodes.NODE_CLASS_MAPPINGS.items():
            info = wa.node_info(class_type)
            for slot in wa.widget_slots(info):
                if slot.kind != "value":
                    continue
                choices = slot.spec[0] if isinstance(slot.spec[0], list) else wa._options(slot.spec).get("options")
                if not isinstance(choices, list):
                    continue
                hits = {probes[c] for c in choices if isinstance(c, str) and c in probes}
                if len(hits) == 1:
                    found[(class_type, slot.input)] = hits.pop()
    return found


def all_nodes(ui: dict) -> list[dict]:
    """The workflow's nodes and the inner nodes of its subgraph definitions (the template twins), without
    the subgraph instances themselves."""
    defs = wa.subgraph_definitions(ui)
    return [n for g in [ui, *defs.values()] for n in g.get("nodes", []) if n.get("type") not in defs]


def _model_widgets(node: dict, info: dict) -> list[tuple[str, str]]:
    """(input name, file name) of the node's widgets whose value is a model file name, in widget order (not
    strict: stock-template nodes inside the template twins were saved by other frontend versions)."""
    return [(k, v) for k, v in wa.named_widget_values(node, info, strict=False).items()
            if isinstance(v, str) and v.lower().endswith(MODEL_SUFFIXES)]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.stem for p in WORKFLOW_FILES])
def test_every_loader_names_its_files_download_and_folder(path, pack, loader_folders):
    import nodes
    live = nodes.NODE_CLASS_MAPPINGS
    bw = _build_script()
    ui = json.loads(path.read_text())
    needs = ui.get("extra", {}).get("training_free_video", {}).get("needs")
    missing = sorted({n["type"] for n in all_nodes(ui) if n["type"] not in live and n["type"] not in bw.external_defs()[0]
                      and n["type"] not in ("Note", "MarkdownNote") and n["type"] not in wa.VIRTUAL_NODE_TYPES})
    if missing and needs:   # a template twin on an older ComfyUI: its loaders' widgets may differ there too
        pytest.skip(f"{path.name} needs {needs}: {missing} not in this ComfyUI")
    twin = bool(ui.get("extra", {}).get("training_free_video", {}).get("source_template"))
    checked = 0
    for node in all_nodes(ui):
        if node["type"] in ("Note", "MarkdownNote") or node["type"] in wa.VIRTUAL_NODE_TYPES:
            continue
        if node["type"] not in live and node["type"] not in bw.external_defs()[0]:
            needs = ui.get("extra", {}).get("training_free_video", {}).get("needs")
            if needs:   # a template twin on an older ComfyUI
                pytest.skip(f"{path.name} needs {needs}: {node['type']} is not in this ComfyUI")
            raise KeyError(f"{path.name}: node type {node['type']} is not registered")
        info = wa.node_info(node["type"]) if node["type"] in live else bw.external_defs()[0][node["type"]]
        files = _model_widgets(node, info)
        models = node.get("properties", {}).get("models", [])
        real = [(k, f) for k, f in files if f not in bw.PLACEHOLDER_MODELS]
        where = f"{path.name} #{node['id']} {node['type']}"
        if twin:  # a stock template's own entries: kept as shipped (some list a file twice, or in another order)
            assert {m["name"] for m in models} == {f for _, f in real}, where
            by_name = {m["name"]: m for m in models}
            pairs = [((inp, f), by_name[f]) for inp, f in real]
        else:
            assert [m["name"] for m in models] == [f for _, f in real], where
            pairs = list(zip(real, models))
        for (inp, f), m in pairs:
            assert set(m) <= {"name", "url", "directory", "hash", "hash_type"}, where
            assert re.match(r"^https://huggingface\.co/[^/]+/[^/]+/resolve/main/", m["url"]), (where, m["url"])
            assert m["url"].split("?")[0].endswith("/" + f), (where, m["url"])
            if "hash" in m:
                assert m["hash_type"] == "SHA256" and re.fullmatch(r"[0-9a-f]{64}", m["hash"]), where
            folder = loader_folders.get((node["type"], inp))
            if folder is None and node["type"] in bw.external_defs()[0]:
                pytest.skip(f"{node['type']} (third-party) is not installed here: its folder cannot be probed")
            assert folder == m["directory"], (where, inp, folder, m["directory"])
            checked += 1
    assert checked >= 1, f"{path.name}: no loader found"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=[p.stem for p in WORKFLOW_FILES])
def test_pack_nodes_carry_cnr_id_and_version(path, pack):
    version = re.search(r'^version\s*=\s*"([^"]+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M).group(1)
    ui = json.loads(path.read_text())
    pack_types = set(pack.NODE_CLASS_MAPPINGS)
    ours = [n for n in all_nodes(ui) if n["type"] in pack_types]
    assert ours, path.name
    for n in ours:
        assert n["properties"].get("cnr_id") == "comfyui-training-free-video", (path.name, n["type"])
        assert n["properties"].get("ver") == version, (path.name, n["type"])
