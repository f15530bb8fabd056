"""Pure-torch attention helpers (no ComfyUI import)."""
