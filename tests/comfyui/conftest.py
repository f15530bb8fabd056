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


@pytest.fixture(scope="module")
def mods(pack):
    """The modules the node tests call into, by short name: the pack's node modules (``si`` SmoothInit,
    ``fi`` FreeInit, ``zs2`` Dependency Noise / TMA, ``long`` ZS^2 Long Video, ``i4`` I4VGen, ``bridge``
    the ComfyUI bridge, ``registry`` the node declarations), its sampler cores (``core`` FreeInit's, ``si_core`` SmoothInit's) and ComfyUI's
    (``nodes``, ``cs`` custom-sampler nodes, ``pe`` patcher_extension, ``samplers``, ``sample``, ``kd``
    k-diffusion sampling, ``mm`` model_management, ``utils``). Module scope, as each test module had it."""
    import comfy.k_diffusion.sampling as kd
    import comfy.model_management as mm
    import comfy.patcher_extension
    import comfy.sample
    import comfy.samplers
    import comfy.utils
    import comfy_extras.nodes_custom_sampler as cs
    import nodes
    from comfy_harness import pack_module
    return {"si": pack_module(pack, "nodes.smoothinit"), "fi": pack_module(pack, "nodes.freeinit"),
            "zs2": pack_module(pack, "nodes.zs2"), "long": pack_module(pack, "nodes.zs2_long"),
            "i4": pack_module(pack, "nodes.i4vgen"), "bridge": pack_module(pack, "nodes.comfy_bridge"),
            "registry": pack_module(pack, "nodes.registry"),
            "core": pack_module(pack, "samplers.freeinit"), "si_core": pack_module(pack, "samplers.smoothinit"),
            "nodes": nodes, "cs": cs, "pe": comfy.patcher_extension, "samplers": comfy.samplers,
            "sample": comfy.sample, "kd": kd, "mm": mm, "utils": comfy.utils}


@pytest.fixture(scope="module")
def sd15(pack):
    """A tiny random-weight SD1.5 EPS model (``comfy_harness.tiny_sd15``, weight seed 0), one per test module."""
    from comfy_harness import tiny_sd15
    return tiny_sd15("EPS")


@pytest.fixture(scope="module")
def wan(pack):
    """A tiny random-weight Wan 2.1 t2v model (``comfy_harness.tiny_wan``, weight seed 0, shift 8), one per
    test module."""
    from comfy_harness import tiny_wan
    return tiny_wan()


@pytest.fixture(scope="module")
def zs2(pack):
    """The pack's ZS^2 node module (Dependency Noise, Temporal Momentum Attention)."""
    from comfy_harness import pack_module
    return pack_module(pack, "nodes.zs2")


@pytest.fixture(scope="module")
def bridge(pack):
    """The pack's ComfyUI bridge module (``nodes/comfy_bridge.py``)."""
    from comfy_harness import pack_module
    return pack_module(pack, "nodes.comfy_bridge")


@pytest.fixture(scope="module")
def conds(pack):
    """(positive, negative) conditioning for the tiny SD1.5 (``comfy_harness.sd15_conds``, seed 0)."""
    from comfy_harness import sd15_conds
    return sd15_conds(seed=0)


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
def live_info(pack, ade):
    """Definitions of every registered node (core + this pack [+ anything else installed])."""
    import workflow_api as wa
    return wa.object_info_in_process()


@pytest.fixture(scope="session")
def object_info(live_info):
    """Live definitions, plus the recorded third-party definitions for packs not installed."""
    import workflow_api as wa
    info = dict(live_info)
    for k, v in wa.recorded_external_defs().items():
        info.setdefault(k, v)
    return info


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
