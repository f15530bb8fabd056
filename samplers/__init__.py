"""Pure-torch samplers and noise models (no ComfyUI import). Sigma space: docs/algorithms.md section 0."""
