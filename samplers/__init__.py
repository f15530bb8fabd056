"""Pure-torch samplers and noise models (no ComfyUI import). Sigma space: ALGORITHMS.md section 0."""
