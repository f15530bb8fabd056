"""Boot the real ComfyUI in-process for tests and build tiny random-weight models with its own classes.

ComfyUI is found at ``$COMFYUI_PATH``, else ``~/comfy/ComfyUI``. No mocks: everything here is the
real ComfyUI. Facts used are in docs/comfyui.md.
"""
from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
_BOOTED = {}


def comfyui_path() -> Path:
    return Path(os.environ.get("COMFYUI_PATH") or Path.home() / "comfy" / "ComfyUI").expanduser()


def comfyui_version() -> str | None:
    """``__version__`` of the ComfyUI at :func:`comfyui_path` (its ``comfyui_version.py``), read as
    text without importing ComfyUI; None when absent. For reports only, never to choose a code path."""
    import re
    f = comfyui_path() / "comfyui_version.py"
    m = re.search(r"__version__\s*=\s*[\"']([^\"']+)", f.read_text()) if f.is_file() else None
    return m.group(1) if m else None


def comfyui_missing_reason() -> str | None:
    p = comfyui_path()
    if not (p / "main.py").is_file() or not (p / "comfy" / "model_patcher.py").is_file():
        return f"ComfyUI not found at {p} (set COMFYUI_PATH or put ComfyUI at ~/comfy/ComfyUI)"
    return None


def boot():
    """Import ComfyUI (CPU), its built-in extra nodes, and load this pack as ComfyUI loads a custom
    node folder. Returns the loaded pack module (``sys.modules`` entry ComfyUI created)."""
    if "pack" in _BOOTED:
        return _BOOTED["pack"]
    root = str(comfyui_path())
    if root not in sys.path:
        sys.path.insert(0, root)
    import comfy.options
    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args
    args.cpu = True
    args.disable_auto_launch = True
    import utils.extra_config  # noqa: F401  (before `import nodes`; docs/comfyui.md, Running ComfyUI in-process)
    import nodes
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=False, init_api_nodes=False))
    ok = asyncio.run(nodes.load_custom_node(str(REPO_ROOT)))
    if not ok:
        raise RuntimeError(f"ComfyUI failed to load the pack from {REPO_ROOT}")
    pack = sys.modules[str(REPO_ROOT).replace(".", "_x_")]
    _BOOTED["pack"] = pack
    return pack


@contextlib.contextmanager
def io_folders(input_dir: Path, output_dir: Path):
    """ComfyUI's input and output folders set to ``input_dir`` / ``output_dir`` (made if missing) for the
    block, then restored."""
    import folder_paths
    input_dir.mkdir(parents=True, exist_ok=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    old = folder_paths.get_input_directory(), folder_paths.get_output_directory()
    folder_paths.set_input_directory(str(input_dir))
    folder_paths.set_output_directory(str(output_dir))
    try:
        yield
    finally:
        folder_paths.set_input_directory(old[0])
        folder_paths.set_output_directory(old[1])


def _init_weights(module: torch.nn.Module, seed: int = 0) -> None:
    """ComfyUI's ops leave weights uninitialised: norms 1/0, biases 0, matrices N(0, 1/fan_in)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1:
                lname = name.lower()
                if name.endswith("weight") and ("norm" in lname or "ln" in lname or ".in_layers.0" in lname
                                                or ".out_layers.0" in lname or lname.startswith("out.0")):
                    p.fill_(1.0)
                else:
                    p.zero_()
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=g) / fan_in ** 0.5)
        for mod in module.modules():  # any norm layer: weight 1, bias 0
            if isinstance(mod, (torch.nn.GroupNorm, torch.nn.LayerNorm)):
                if getattr(mod, "weight", None) is not None:
                    mod.weight.fill_(1.0)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()


TINY_SD15_UNET = {
    "model_channels": 32, "num_res_blocks": [1, 1], "channel_mult": [1, 2],
    "transformer_depth": [1, 1], "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1, "context_dim": 16, "use_spatial_transformer": True,
    "legacy": False, "use_linear_in_transformer": False, "adm_in_channels": None,
    "use_temporal_resblock": False, "use_temporal_attention": False,
    "in_channels": 4, "out_channels": 4, "image_size": 32, "num_heads": 2,
    "num_head_channels": -1,
}


def tiny_sd15(model_type: str = "EPS", seed: int = 0):
    """A tiny SD1.5-architecture ModelPatcher with random weights (EPS or V_PREDICTION)."""
    import comfy.model_base
    import comfy.model_patcher
    import comfy.supported_models
    cfg = comfy.supported_models.SD15(dict(TINY_SD15_UNET))
    cfg.set_inference_dtype(torch.float32, None)
    mt = getattr(comfy.model_base.ModelType, model_type)
    model = comfy.model_base.BaseModel(cfg, model_type=mt, device="cpu")
    _init_weights(model.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def _tiny_wan_dit(config_class: str, channels: int, seed: int, shift: float, in_dim: int | None = None,
                  model_type: str = "t2v"):
    """A tiny Wan DiT (dim 32, 2 layers, ``channels`` out, ``in_dim`` (default ``channels``) in) as
    ``comfy.supported_models.<config_class>`` with random weights and ModelSamplingSD3(shift) applied."""
    import comfy.model_patcher
    import comfy.supported_models
    import comfy_extras.nodes_model_advanced as adv
    cfg = getattr(comfy.supported_models, config_class)({
        "image_model": "wan2.1", "model_type": model_type, "patch_size": (1, 2, 2), "in_dim": in_dim or channels,
        "out_dim": channels, "dim": 32, "ffn_dim": 64, "freq_dim": 32, "text_dim": 32, "text_len": 8,
        "num_heads": 2, "num_layers": 2, "dtype": torch.float32})
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    _init_weights(model.diffusion_model, seed)
    mp = comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))
    out = adv.ModelSamplingSD3().patch(mp, shift)
    return out[0] if isinstance(out, tuple) else out.result[0]


def tiny_wan(seed: int = 0, shift: float = 8.0):
    """A tiny Wan 2.1 text-to-video ModelPatcher (flow, CONST) with random weights, shift applied."""
    return _tiny_wan_dit("WAN21_T2V", 16, seed, shift)


def tiny_wan_i2v(seed: int = 0, shift: float = 8.0):
    """A tiny Wan 2.1 image-to-video ModelPatcher (``comfy.supported_models.WAN21_I2V``: 36 input channels = 16
    latent + 4 mask + 16 concat image latent, the layout Wan 2.2 14B i2v uses too), random weights, shift applied."""
    return _tiny_wan_dit("WAN21_I2V", 16, seed, shift, in_dim=36, model_type="i2v")


def tiny_wan22_5b(seed: int = 0, shift: float = 8.0):
    """A tiny Wan 2.2 5B (ti2v) ModelPatcher: ``comfy.supported_models.WAN22_T2V`` (model_base.WAN22, the
    48-channel Wan 2.2 latent format, per-frame timesteps from a noise mask) with the Wan 2.1 DiT at dim
    32, 2 layers, 48 input/output channels; random weights, shift applied. Latent ``[1, 48, T, H, W]``."""
    return _tiny_wan_dit("WAN22_T2V", 48, seed, shift)


def sd15_conds(seed: int = 0, tokens: int = 7, dim: int = 16):
    g = torch.Generator().manual_seed(seed)
    pos = [[torch.randn(1, tokens, dim, generator=g), {}]]
    neg = [[torch.randn(1, tokens, dim, generator=g), {}]]
    return pos, neg


def wan_conds(seed: int = 0, tokens: int = 8, dim: int = 32):
    return sd15_conds(seed, tokens, dim)


def sample_custom_advanced(noise, guider, sampler, sigmas, latent: dict) -> dict:
    """Run ComfyUI's SamplerCustomAdvanced node and return its first output (the LATENT dict), whether
    the node answers with a V1 tuple or a V3 ``NodeOutput`` (``.result``)."""
    import comfy_extras.nodes_custom_sampler as cs
    out = cs.SamplerCustomAdvanced().sample(noise, guider, sampler, sigmas, latent)
    return (out.result if hasattr(out, "result") else out)[0]


def sample_euler(guider, model, latent: dict, steps: int, seed: int = 0) -> torch.Tensor:
    """``guider`` sampled with euler over ``steps`` "simple" sigmas of ``model`` from RandomNoise(``seed``)
    (SamplerCustomAdvanced): the result's samples."""
    import comfy_extras.nodes_custom_sampler as cs
    sigmas = cs.BasicScheduler().get_sigmas(model, "simple", steps, 1.0)[0]
    sampler = cs.KSamplerSelect().get_sampler("euler")[0]
    return sample_custom_advanced(cs.Noise_RandomNoise(seed), guider, sampler, sigmas, latent)["samples"]


def empty_latent(batch: int = 1, size: int = 8) -> dict:
    """An empty SD1.5 LATENT ``[batch, 4, size, size]``."""
    return {"samples": torch.zeros(batch, 4, size, size)}


def smoothinit_patch(si, model, cfg: float = 0.0, K: int = 2, chunk: int = 0, method: str = "SmoothInit (custom)"):
    """SmoothInit (KSampler) on ``model`` (``si``: the pack's ``nodes.smoothinit``) with the tests' settings:
    ``cfg`` 0 follows the sampler's CFG, inversion_cfg 1, grid 50, sigma_sm 0.1 uniform, gamma 0.05 / 0.05."""
    return si.SmoothInitModelPatch().patch(model, method, cfg, 1.0, 50, K, 0.1, "uniform", 0.05, 0.05, chunk)[0]


def prompt_executor(server, cache_type=None):
    """ComfyUI's ``execution.PromptExecutor`` for ``server`` with the CLASSIC cache (default). Where
    its constructor takes ``cache_args`` (ComfyUI 0.33.0: ``execute`` reads ``cache_args["ram"]`` and
    ``["ram_inactive"]``), it gets what ``main.py`` gives it for the classic cache (``lru`` 0, RAM
    thresholds 0 = no RAM-pressure release)."""
    import inspect
    import execution
    if cache_type is None:
        cache_type = execution.CacheType.CLASSIC
    if "cache_args" in inspect.signature(execution.PromptExecutor.__init__).parameters:
        return execution.PromptExecutor(server, cache_type=cache_type,
                                        cache_args={"lru": 0, "ram": 0, "ram_inactive": 0})
    return execution.PromptExecutor(server, cache_type=cache_type)


PROGRESS_THROTTLES = ("PROGRESS_THROTTLE_MIN_INTERVAL", "PROGRESS_THROTTLE_MIN_PERCENT")


@contextlib.contextmanager
def unthrottled_progress():
    """Every ``comfy.utils.ProgressBar`` update reaches the progress hook inside the block, as in
    ComfyUI 0.3.64. Where ``comfy.utils`` throttles updates (0.33.0: an update less than
    ``PROGRESS_THROTTLE_MIN_INTERVAL`` = 0.1 s or ``PROGRESS_THROTTLE_MIN_PERCENT`` = 0.5 % after the
    last one sent is dropped, unless first, final or with a preview), both limits are 0 inside the
    block, so the tests that record a bar see all its steps whatever the machine's speed (conftest.py
    applies it to the whole session)."""
    import comfy.utils
    saved = {n: getattr(comfy.utils, n) for n in PROGRESS_THROTTLES if hasattr(comfy.utils, n)}
    for n in saved:
        setattr(comfy.utils, n, 0)
    try:
        yield
    finally:
        for n, v in saved.items():
            setattr(comfy.utils, n, v)


def pack_module(pack, name: str):
    """A submodule of the loaded pack, e.g. ``pack_module(pack, "nodes.comfy_bridge")``."""
    import importlib
    return importlib.import_module(f"{pack.__name__}.{name}")


def count_model_calls(model, counts: list):
    """Clone ``model`` with a DIFFUSION_MODEL wrapper that appends the batch size of every network call
    to ``counts`` (cond and uncond batched together count as one call of their summed batch)."""
    import comfy.patcher_extension
    m = model.clone()

    def counter(executor, *args, **kwargs):
        counts.append(int(args[0].shape[0]))
        return executor(*args, **kwargs)

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test.count", counter)
    return m


def ksampler_start_noise(model, seed, pos, neg, latent, steps=2, cfg=7.5, scheduler="simple", denoise=1.0):
    """Run KSampler (euler) and capture the (possibly replaced) unit noise the sampler starts from, by
    a SAMPLER_SAMPLE wrapper added last (innermost). Returns ``(noise on the CPU, samples)``."""
    import comfy.patcher_extension
    import nodes
    got = {}
    m = model.clone()

    def capture(executor, guider, sigmas, extra_args, callback, noise, *args, **kwargs):
        got["noise"] = noise.detach().cpu().clone()
        return executor(guider, sigmas, extra_args, callback, noise, *args, **kwargs)

    m.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.SAMPLER_SAMPLE, "test.capture", capture)
    out = nodes.KSampler().sample(m, seed, steps, cfg, "euler", scheduler, pos, neg, latent, denoise=denoise)[0]
    return got["noise"], out["samples"]


@contextlib.contextmanager
def one_torch_thread():
    """One torch thread inside the block: on a shared 2-core machine two threads run the tiny UNet
    20-30x slower (use it in a module-scoped autouse fixture)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


# --------------------------------------------------------------------------- tiny DiT image models

def _init_dit_weights(module: torch.nn.Module, seed: int = 0) -> None:
    """:func:`_init_weights`, plus every RMSNorm ``scale`` at 1 (Flux's q/k norms; 0 would flatten
    attention) and every buffer left uninitialised by ComfyUI (SD3's ``pos_embed``) small random."""
    _init_weights(module, seed)
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in module.named_parameters():
            if p.ndim == 1 and name.endswith(".scale"):
                p.fill_(1.0)
        for name, b in module.named_buffers():
            if name.endswith("pos_embed"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.5)


TINY_FLUX = {"image_model": "flux", "in_channels": 16, "out_channels": 16, "vec_in_dim": 8, "context_in_dim": 12,
             "hidden_size": 64, "mlp_ratio": 2.0, "num_heads": 2, "depth": 1, "depth_single_blocks": 1,
             "axes_dim": [4, 14, 14], "theta": 10000, "patch_size": 2, "qkv_bias": True, "guidance_embed": True}


def flux_unet_config(overrides: dict | None = None) -> dict:
    """``TINY_FLUX`` (updated with ``overrides``) as the tested ComfyUI's ``FluxParams`` takes it: where
    ``FluxParams`` has a required ``txt_ids_dims`` field (ComfyUI 0.33.0), Flux.1's value ``[]`` is
    added (what ``comfy.model_detection`` gives a Flux.1 checkpoint)."""
    import dataclasses
    import comfy.ldm.flux.model
    cfg = dict(TINY_FLUX)
    cfg.update(overrides or {})
    fields = {f.name for f in dataclasses.fields(comfy.ldm.flux.model.FluxParams)}
    if "txt_ids_dims" in fields:
        cfg.setdefault("txt_ids_dims", [])
    return cfg


def tiny_flux(seed: int = 0):
    """A tiny Flux-dev-architecture ModelPatcher (comfy.supported_models.Flux, one double and one
    single block, hidden 64, 2 heads, guidance embedding) with random weights."""
    import comfy.model_patcher
    import comfy.supported_models
    cfg = comfy.supported_models.Flux(flux_unet_config())
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    _init_dit_weights(model.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def flux_conds(seed: int = 0, tokens: int = 6, guidance: float | None = 3.5):
    """Flux conditioning: text ``[1, tokens, 12]`` + pooled ``[1, 8]`` (+ FluxGuidance's guidance);
    a second one as the negative."""
    g = torch.Generator().manual_seed(seed)

    def one():
        d = {"pooled_output": torch.randn(1, TINY_FLUX["vec_in_dim"], generator=g)}
        if guidance is not None:
            d["guidance"] = guidance
        return [[torch.randn(1, tokens, TINY_FLUX["context_in_dim"], generator=g), d]]

    return one(), one()


TINY_SD3 = {"in_channels": 16, "patch_size": 2, "depth": 2, "adm_in_channels": 8, "pos_embed_max_size": 16,
            "num_patches": 256, "context_embedder_config": {"target": "torch.nn.Linear",
                                                            "params": {"in_features": 12, "out_features": 128}},
            "qk_norm": "rms", "x_block_self_attn_layers": [0], "pos_embed_scaling_factor": None}


def tiny_qwen_image(seed: int = 0, num_layers: int = 2, attention_head_dim: int = 16,
                    axes_dims_rope: tuple = (4, 6, 6)):
    """A tiny Qwen-Image-architecture ModelPatcher (``comfy.supported_models.QwenImage``: ``num_layers``
    joint blocks, 2 heads of ``attention_head_dim`` (= sum of ``axes_dims_rope``), text dim 12) with
    random weights; its latents are ``[F, 16, 1, H, W]`` (one picture frame per batch entry)."""
    import comfy.model_patcher
    import comfy.supported_models
    cfg = comfy.supported_models.QwenImage({"image_model": "qwen_image", "num_layers": num_layers,
                                            "attention_head_dim": attention_head_dim, "num_attention_heads": 2,
                                            "joint_attention_dim": 12, "axes_dims_rope": tuple(axes_dims_rope),
                                            "in_channels": 64, "out_channels": 16})
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    _init_dit_weights(model.diffusion_model, seed)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def qwen_conds(seed: int = 0, tokens: int = 7):
    """(positive, negative) conditioning for :func:`tiny_qwen_image`: ``[1, tokens, 12]`` each."""
    g = torch.Generator().manual_seed(seed)
    return tuple([[torch.randn(1, tokens, 12, generator=g), {}]] for _ in range(2))


def tiny_sd3(seed: int = 0):
    """A tiny SD3.5-architecture ModelPatcher (comfy.supported_models.SD3: MMDiT depth 2 -> hidden
    128, 2 heads, RMS q/k norm, an extra image self-attention in block 0 as SD3.5 Medium) with
    random weights; flow (CONST) with shift 3."""
    import comfy.model_patcher
    import comfy.supported_models
    cfg = comfy.supported_models.SD3(dict(TINY_SD3))
    cfg.set_inference_dtype(torch.float32, None)
    model = cfg.get_model({}, device="cpu")
    _init_dit_weights(model.diffusion_model, seed)
    return comfy.model_patcher.ModelPatcher(model, load_device=torch.device("cpu"), offload_device=torch.device("cpu"))


def sd3_conds(seed: int = 0, tokens: int = 6):
    """SD3 conditioning: text ``[1, tokens, 12]`` + pooled ``[1, 8]``; a second one as the negative."""
    g = torch.Generator().manual_seed(seed)

    def one():
        return [[torch.randn(1, tokens, 12, generator=g), {"pooled_output": torch.randn(1, 8, generator=g)}]]

    return one(), one()
_CACHE: dict = {}


def wan21_vae():
    """The real Wan 2.1 VAE (``comfy.sd.VAE`` from a full-size random ``WanVAE`` state dict: ComfyUI
    builds the Wan 2.1 VAE with ``dim`` 96 whatever the weights, so it cannot be made smaller),
    built once per test session (about 3 s). A causal video VAE: ``(n + 3) // 4`` latent frames for
    n picture frames; at 32x32 pixels an encode or decode takes about a second on CPU."""
    if "wan21_vae" not in _CACHE:
        import comfy.ldm.wan.vae
        import comfy.sd
        from checkpoints import init_random
        m = comfy.ldm.wan.vae.WanVAE(dim=96, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                     temperal_downsample=[False, True, True])
        init_random(m, 5)
        _CACHE["wan21_vae"] = comfy.sd.VAE(sd=m.state_dict())
    return _CACHE["wan21_vae"]


def wan22_vae():
    """The real Wan 2.2 VAE (48 latent channels, 16x spatial, 4x temporal; ``comfy.sd.VAE`` from a
    full-size random ``vae2_2.WanVAE`` state dict: ComfyUI builds it with ``dim`` 160 whatever the
    weights), built once per test session."""
    if "wan22_vae" not in _CACHE:
        import comfy.ldm.wan.vae2_2
        import comfy.sd
        from checkpoints import init_random
        m = comfy.ldm.wan.vae2_2.WanVAE(dim=160, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                        temperal_downsample=[False, True, True])
        init_random(m, 7)
        vae = comfy.sd.VAE(sd=m.state_dict())
        assert vae.latent_channels == 48
        _CACHE["wan22_vae"] = vae
    return _CACHE["wan22_vae"]


def flux_vae():
    """The real Flux VAE architecture (16-channel AutoencoderKL, full size: ``comfy.sd.VAE`` detects it
    by the keys below -- 16 latent channels, 4 levels, no quant convs -- and builds the whole
    architecture) with random weights, built once per test session."""
    if "flux_vae" not in _CACHE:
        import comfy.sd
        from checkpoints import init_random
        skeleton = {"decoder.conv_in.weight": torch.zeros(512, 16, 3, 3),
                    "encoder.down.2.downsample.conv.weight": torch.zeros(512, 512, 3, 3)}
        vae = comfy.sd.VAE(sd=skeleton)
        init_random(vae.first_stage_model, 6)
        assert vae.latent_channels == 16 and type(vae.first_stage_model).__name__ == "AutoencodingEngine"
        _CACHE["flux_vae"] = vae
    return _CACHE["flux_vae"]


def release_cached_models() -> None:
    """Drop the session's cached models (they hold ModelPatchers) before ComfyUI shuts down."""
    _CACHE.clear()


def structure(obj):
    """A comparable snapshot of a MODEL's model_options / wrappers / object_patches: dict keys, list lengths
    and element identities (tensors by storage and shape), to check that a node did not mutate its input MODEL."""
    if isinstance(obj, dict):
        return {k: structure(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [type(obj).__name__, len(obj)] + [structure(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.data_ptr(), tuple(obj.shape))
    return ("obj", id(obj))
