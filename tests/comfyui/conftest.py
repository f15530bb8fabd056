"""ComfyUI tests: run inside the real ComfyUI, skip (with the reason printed by -rs) when absent."""
import pytest

from comfy_harness import boot, comfyui_missing_reason


@pytest.fixture(scope="session")
def pack():
    """The pack as ComfyUI loaded it from its folder (ComfyUI booted in-process on the CPU)."""
    reason = comfyui_missing_reason()
    if reason:
        pytest.skip(reason)
    return boot()


@pytest.fixture(autouse=True)
def _needs_comfyui(pack):
    return pack


def pytest_sessionfinish(session, exitstatus):
    """Release ComfyUI's loaded models while its modules still exist (otherwise ModelPatcher.__del__
    runs during interpreter shutdown and prints an ignored AttributeError)."""
    import gc
    import sys
    from comfy_harness import release_cached_models
    release_cached_models()
    mm = sys.modules.get("comfy.model_management")
    if mm is not None:
        mm.unload_all_models()
        mm.current_loaded_models.clear()
    gc.collect()
