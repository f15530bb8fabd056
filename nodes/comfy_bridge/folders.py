"""ComfyUI bridge: folders.

Part of the one package that touches ComfyUI internals (see ``__init__``)."""
from __future__ import annotations

import folder_paths


def output_directory() -> str:
    return folder_paths.get_output_directory()


def input_directory() -> str:
    return folder_paths.get_input_directory()
