"""The toy video world: a tiny Wan 2.1-format text-to-video model (DiT + causal video VAE) trained here
on toy-world videos of one object moving smoothly, so that the papers' video claims can be measured on a
model with a learned temporal prior (issue 24).

``videos``: seeded training videos (pure torch). ``build``: trains and writes the model files into the
cache (``python -m benchmarks.toy_video.build``). ``motion``: motion measurements of the training data.
"""
