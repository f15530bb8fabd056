#!/usr/bin/env python
"""Write a FULL-SIZE SD1.5-format checkpoint with random weights, for end-to-end runs where no real
weights can be downloaded.

Built through ComfyUI's own model classes (comfy.supported_models.SD15 + model_base.BaseModel for
the real SD1.5 UNet config, SD1ClipModel for the full CLIP-L text encoder, AutoencoderKL for the SD
VAE) and saved in the checkpoint layout of ``v1-5-pruned-emaonly.safetensors``
(``model.diffusion_model.*``, ``cond_stage_model.transformer.*``, ``first_stage_model.*``) in fp16:
about 1.07 B parameters, 2.1 GB. ``CheckpointLoaderSimple`` loads it as SD1.5.

    python scripts/make_random_sd15_checkpoint.py                      # ~/comfy/ComfyUI/models/checkpoints/random_sd15.safetensors
    python scripts/make_random_sd15_checkpoint.py --out /some/dir/x.safetensors --seed 1

Never write it inside the repository. Needs ComfyUI ($COMFYUI_PATH or ~/comfy/ComfyUI) and ~8 GB RAM.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def comfyui_path() -> Path:
    return Path(os.environ.get("COMFYUI_PATH") or Path.home() / "comfy" / "ComfyUI").expanduser()


def import_comfy(root: Path) -> None:
    """Import ComfyUI's modules on the CPU without parsing this script's command line."""
    if not (root / "comfy" / "model_patcher.py").is_file():
        raise SystemExit(f"ComfyUI not found at {root} (set COMFYUI_PATH)")
    sys.path.insert(0, str(root))
    import comfy.options
    comfy.options.enable_args_parsing(False)
    from comfy.cli_args import args
    args.cpu = True
    import utils.extra_config  # noqa: F401  (before `import nodes`/folder_paths users; docs/comfyui.md)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    root = comfyui_path()
    ap.add_argument("--out", type=Path, default=root / "models" / "checkpoints" / "random_sd15.safetensors",
                    help="output .safetensors path (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="weights seed (default 0)")
    ap.add_argument("--fp32", action="store_true", help="store fp32 instead of fp16 (4.3 GB)")
    ap.add_argument("--no-verify", action="store_true", help="skip loading the file back as SD1.5")
    ap.add_argument("--force", action="store_true", help="overwrite an existing file")
    args = ap.parse_args(argv)
    out = args.out.expanduser().resolve()
    if REPO in out.parents:
        raise SystemExit(f"refusing to write model weights inside the repository: {out}")
    if out.exists() and not args.force:
        print(f"exists: {out} (use --force to rewrite)")
        return 0
    import_comfy(root)
    import torch
    sys.path.insert(0, str(REPO / "tests" / "comfyui"))
    from checkpoints import write_sd15_checkpoint

    t0 = time.time()
    write_sd15_checkpoint(out, "full", seed=args.seed, dtype=torch.float32 if args.fp32 else torch.float16)
    print(f"wrote {out} ({out.stat().st_size / 1e9:.2f} GB) in {time.time() - t0:.0f} s")

    if not args.no_verify:
        import comfy.sd
        t0 = time.time()
        model, clip, vae, _ = comfy.sd.load_checkpoint_guess_config(str(out), output_vae=True, output_clip=True)
        cfg = type(model.model.model_config).__name__
        n_unet = sum(p.numel() for p in model.model.diffusion_model.parameters())
        n_clip = sum(p.numel() for p in clip.cond_stage_model.parameters())
        n_vae = sum(p.numel() for p in vae.first_stage_model.parameters())
        print(f"loads as {cfg}: UNet {n_unet / 1e6:.1f} M, text encoder {n_clip / 1e6:.1f} M, "
              f"VAE {type(vae.first_stage_model).__name__} {n_vae / 1e6:.1f} M params ({time.time() - t0:.0f} s)")
        if cfg != "SD15":
            raise SystemExit(f"expected SD15, ComfyUI detected {cfg}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
