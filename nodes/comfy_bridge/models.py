"""ComfyUI bridge: model facts.

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

import math
from typing import Any
import torch

import comfy.model_management
import comfy.patcher_extension
import comfy.samplers

WrappersMP = comfy.patcher_extension.WrappersMP
InterruptedError_ = comfy.model_management.InterruptProcessingException


def model_sampling(model) -> Any:
    """The (possibly object-patched, e.g. ModelSamplingSD3 shift) model_sampling of a MODEL."""
    return model.get_model_object("model_sampling")


def sigma_table(ms) -> torch.Tensor:
    """The model's ascending table of training sigmas (``[1000]`` for SD and discrete flow)."""
    return ms.sigmas.detach().float().cpu()


def calculate_sigmas(model, scheduler: str, steps: int) -> torch.Tensor:
    """ComfyUI's schedule ``[steps + 1]`` (last 0) for a MODEL, CPU float32."""
    return comfy.samplers.calculate_sigmas(model_sampling(model), scheduler, steps).cpu()

SCHEDULERS = comfy.samplers.SCHEDULER_NAMES


def is_max_denoise(ms, sigmas: torch.Tensor) -> bool:
    """ComfyUI's ``Sampler.max_denoise`` rule: sigmas[0] at (rel 1e-5) or above sigma_max."""
    max_sigma = float(ms.sigma_max)
    s0 = float(sigmas[0])
    return math.isclose(max_sigma, s0, rel_tol=1e-05) or s0 > max_sigma


def intermediate_device() -> torch.device:
    return comfy.model_management.intermediate_device()


def throw_if_interrupted() -> None:
    """Raise ComfyUI's interrupt exception if the user pressed Cancel."""
    comfy.model_management.throw_exception_if_processing_interrupted()


def diffusion_model(model) -> torch.nn.Module:
    """The network inside a MODEL (UNet, Wan DiT, ...)."""
    return model.get_model_object("diffusion_model")
