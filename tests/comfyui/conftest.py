"""ComfyUI tests: run inside the real ComfyUI, skip (with the reason printed by -rs) when absent."""
import pytest

from comfy_harness import boot, comfyui_missing_reason, one_torch_thread, unthrottled_progress


@pytest.fixture(scope="session")
def pack():
    """The pack as ComfyUI loaded it from its folder (ComfyUI booted in-process on the CPU); progress
    updates unthrottled for the session (``comfy_harness.unthrottled_progress``)."""
    reason = comfyui_missing_reason()
    if reason:
        pytest.skip(reason)
    loaded = boot()
    with unthrottled_progress():
        yield loaded


@pytest.fixture(autouse=True)
def _needs_comfyui(pack):
    return pack


_ADE_STATUS = {}


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the whole test module (``comfy_harness.one_torch_thread``); a module opts in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``, which sets it up before the module's model
    fixtures."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def ade(pack):
    """ComfyUI-AnimateDiff-Evolved, loaded from the tested ComfyUI's custom_nodes/ when it is there;
    None otherwise (tests that need it skip with the reason, see ``ade_models``)."""
    from ade_support import ade_missing_reason, load_ade
    module = load_ade()
    reason = ade_missing_reason()
    _ADE_STATUS["line"] = ("imported" if module is not None and not reason
                           else f"NOT imported: {reason or 'load_ade() returned no module'}")
    return module


def pytest_terminal_summary(terminalreporter):
    """Name the ComfyUI the session ran against and whether AnimateDiff-Evolved imported in it (the CI
    log shows these lines next to each run's totals)."""
    from comfy_harness import _BOOTED, comfyui_path, comfyui_version
    reason = comfyui_missing_reason()
    if reason:
        terminalreporter.write_line(f"ComfyUI: none ({reason})")
        return
    booted = "booted" if "pack" in _BOOTED else "not booted (no ComfyUI test selected)"
    terminalreporter.write_line(f"ComfyUI {comfyui_version()} at {comfyui_path()}: {booted}")
    if "pack" in _BOOTED:
        terminalreporter.write_line("ComfyUI-AnimateDiff-Evolved: "
                                    + _ADE_STATUS.get("line", "not loaded (no test selected needs it)"))


@pytest.fixture(scope="session")
def ade_models(pack, ade, tmp_path_factory):
    """Written once per session for every AnimateDiff test: a FULL-size random SD1.5 checkpoint and a
    random AnimateDiff v2 motion module (mm_sd_v15_v2 layout) in temporary ``checkpoints`` /
    ``animatediff_models`` folders registered with ComfyUI (about 3 GB, deleted at the end)."""
    import shutil
    from ade_support import ade_missing_reason, write_ade_models
    from checkpoints import registered_folder
    reason = ade_missing_reason()
    if ade is None or reason:
        pytest.skip(reason or "ComfyUI-AnimateDiff-Evolved could not be loaded")
    root = tmp_path_factory.mktemp("tfv_ade_models")
    try:
        m = write_ade_models(root, ade)
        with registered_folder("checkpoints", m["checkpoints"]), \
                registered_folder("animatediff_models", m["animatediff_models"]):
            yield m
    finally:
        shutil.rmtree(root, ignore_errors=True)  # 3 GB of random weights


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
