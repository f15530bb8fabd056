"""The pack imports on a machine without ComfyUI: as the installed package and as ComfyUI would
import the folder (a package named after its directory), with empty node mappings; and every module
of the pure-torch core (samplers/, attention/) imports without touching ``comfy``."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run_clean(code: str, tmp_path: Path) -> dict:
    """Run ``code`` in a fresh interpreter whose sys.path has no ComfyUI (no PYTHONPATH, cwd a temp dir)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "COMFYUI_PATH")}
    prelude = textwrap.dedent("""
        import sys, json, importlib.util
        sys.path = [p for p in sys.path if p and "ComfyUI" not in p]
        assert importlib.util.find_spec("comfy") is None or importlib.util.find_spec("comfy.model_patcher") is None
        assert importlib.util.find_spec("folder_paths") is None
    """)
    r = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                       cwd=str(tmp_path), env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-4000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_installed_package_imports_without_comfyui(tmp_path):
    out = _run_clean("""
        import training_free_video as p
        from training_free_video.samplers import sigma_space, gaussian_mixture
        import training_free_video.samplers, training_free_video.attention
        print(json.dumps({"nodes": len(p.NODE_CLASS_MAPPINGS), "names": len(p.NODE_DISPLAY_NAME_MAPPINGS),
                          "comfy_loaded": any(m == "comfy" or m.startswith("comfy.") for m in sys.modules),
                          "version": p.__version__}))
    """, tmp_path)
    assert out == {"nodes": 0, "names": 0, "comfy_loaded": False, "version": out["version"]}


def test_folder_imports_like_comfyui_loads_it_without_comfyui(tmp_path):
    """ComfyUI imports a custom node folder as a package named after the folder; without ComfyUI the
    same import must still succeed (empty mappings), e.g. for linters, the registry or docs tools."""
    out = _run_clean(f"""
        import importlib.util
        root = {str(REPO_ROOT)!r}
        spec = importlib.util.spec_from_file_location("tfv_folder_pack", root + "/__init__.py",
                                                      submodule_search_locations=[root])
        mod = importlib.util.module_from_spec(spec)
        sys.modules["tfv_folder_pack"] = mod
        spec.loader.exec_module(mod)
        print(json.dumps({{"nodes": len(mod.NODE_CLASS_MAPPINGS)}}))
    """, tmp_path)
    assert out == {"nodes": 0}


CORE_PACKAGES = ("samplers", "attention")


def test_every_core_module_imports_without_comfy(tmp_path):
    """Every module of the pure-torch core (samplers/, attention/; found with pkgutil, so a new module is
    covered without editing this test) imports from this checkout in a clean interpreter in which any
    import of ``comfy`` / ``comfy_extras`` raises, and leaves no such module in sys.modules. The top-level
    package's ``__init__`` (which loads the ComfyUI nodes when ComfyUI is present) is not run: the core
    packages are imported under an empty parent package whose path is this checkout."""
    out = _run_clean(f"""
        import importlib, importlib.abc, pkgutil, types
        attempts = []

        class NoComfy(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] in ("comfy", "comfy_extras"):
                    attempts.append((name, current[0]))
                    raise ImportError(f"the pure-torch core must not import {{name}}")
                return None

        sys.meta_path.insert(0, NoComfy())
        root = {str(REPO_ROOT)!r}
        parent = types.ModuleType("training_free_video")
        parent.__path__ = [root]
        sys.modules["training_free_video"] = parent
        current = [None]
        modules, failed = [], {{}}
        for pkg in {list(CORE_PACKAGES)!r}:
            names = ["training_free_video." + pkg]
            names += ["training_free_video." + pkg + "." + m.name
                      for m in pkgutil.iter_modules([root + "/" + pkg]) if not m.ispkg]
            for name in names:
                current[0] = name
                try:
                    importlib.import_module(name)
                    modules.append(name)
                except Exception as e:
                    failed[name] = repr(e)
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("comfy", "comfy_extras"))
        files = {{m: sys.modules[m].__file__ for m in modules}}
        print(json.dumps({{"modules": modules, "failed": failed, "attempts": attempts, "loaded": loaded,
                          "files": files}}))
    """, tmp_path)
    assert out["failed"] == {}
    assert out["attempts"] == [] and out["loaded"] == []
    expected = {f"training_free_video.{pkg}.{p.stem}" for pkg in CORE_PACKAGES
                for p in (REPO_ROOT / pkg).glob("*.py") if p.stem != "__init__"}
    assert expected <= set(out["modules"]), sorted(expected - set(out["modules"]))
    assert len(expected) >= 10                      # samplers/ and attention/ as of issue 23, at least
    assert all(Path(f).resolve().is_relative_to(REPO_ROOT) for f in out["files"].values()), out["files"]
