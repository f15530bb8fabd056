"""The one module that touches ComfyUI internals.

Everything else in the pack talks to ComfyUI through the functions here: model calls with CFG
(always through ComfyUI's ``CFGGuider`` so ControlNet, area/mask conds, hooks, PREDICT_NOISE
wrappers and AnimateDiff-Evolved's ``sampling_function`` patch all apply), ``model_sampling``,
model patches and wrappers, progress bars, previews, interruption and ComfyUI's folders.
Public extension points only (docs/comfyui.md). The core (``samplers/``, ``attention/``) stays
pure torch and receives a ``denoise(x, sigma, cfg) -> x0`` callable plus the model_sampling.

One module per concern; this package re-exports all of them, so node code says ``bridge.name``.
"""
from .models import (  # noqa: F401  model facts
    model_sampling,
    sigma_table,
    calculate_sigmas,
    SCHEDULERS,
    is_max_denoise,
    intermediate_device,
    throw_if_interrupted,
    diffusion_model,
    WrappersMP,
    InterruptedError_,
)
from .calls import (  # noqa: F401  model calls
    ModelCalls,
    make_denoiser,
    SamplingContext,
    run_in_sampling,
    _OWN_LOOP,
)
from .patches import (  # noqa: F401  patches
    add_sampler_noise_wrapper,
    _OUTER_SAMPLE_SAMPLER_INDEX,
    _OUTER_SAMPLE_SEED_INDEX,
    add_outer_noise_wrapper,
)
from .chunks import (  # noqa: F401  chunked sampling (ZS^2 long videos)
    own_loop_active,
    add_sampler_wrappers,
    with_transformer_option,
    transformer_option,
    _controls,
    conds_frame_slice,
)
from .attention import (  # noqa: F401  attention patches, cross-batch detection
    add_attn1_patch,
    ATTENTION_OVERRIDE_KEY,
    attention_override,
    add_attention_override,
    add_checked_attention_override,
    _DIT_IMAGE_MODELS,
    dit_image_model_family,
    _ADE_KEY,
    _CROSS_BATCH_MARKER,
    _iter_patch_objects,
    model_attends_across_batch,
    unet_self_attention_keys,
    call_momentum,
    TemporalMomentumPatch,
    AttentionCallInfo,
    TemporalMomentumAttentionOverride,
)
from .dit_tokens import (  # noqa: F401  where a DiT's image tokens are (TMA text_tokens keep)
    dit_image_token_span,
    dit_attention_batch,
    _IMAGE_TOKEN_LAYOUT,
)
from .folders import (  # noqa: F401  folders
    output_directory,
    input_directory,
)
from .latents import (  # noqa: F401  latent layout, progress (I4VGen)
    latent_dimensions,
    latent_channels,
    latent_format_name,
    process_latent_in,
    iteration_progress,
)
from .memory import (  # noqa: F401  memory (SmoothInit)
    soft_empty_cache,
    sampler_cfg,
    guider_applies_cfg,
    guider_rule,
)
from .video_vae import (  # noqa: F401  video VAEs (I4VGen static video)
    causal_video_frames_fn,
    vae_latent_channels,
    picture_frames_for,
    encode_still_clip,
    decode_first_picture_frame,
)
from .nested import (  # noqa: F401  nested (audio+video) latents
    NestedLatentError,
    is_nested_latent,
    nested_latent_shapes,
    packed_latent_shapes,
    outer_sample_latent_shapes,
    nested_latent_message,
    refuse_nested_latent,
    unpack_streams,
    pack_streams,
    audio_time_axes,
    as_nested,
    nested_of,
    stream_std,
    refuse_packed_latent,
)
from .order import (  # noqa: F401  order of SAMPLER_SAMPLE wrappers (core context windows / FreeNoise)
    RANK_CHUNKS,
    RANK_NOISE,
    ranked,
    place_sampler_sample_wrappers,
    sampler_sample_order,
)
from .passes import (  # noqa: F401  multi-pass samplers (FreeInit)
    SamplerPasses,
    MultiPassSampler,
    add_outer_sampler_wrapper,
)
from .experts import (  # noqa: F401  two-stage sampling with two models (FreeInit on Wan 2.2 14B)
    OuterCall,
    add_outer_stage_wrapper,
    FirstStage,
    first_stage,
    store_first_stage,
    is_output_of,
    rerun_first_stage,
    resume_sampling,
    second_stage_latent,
)
