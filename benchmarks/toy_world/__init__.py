"""The toy world: a tiny text-to-image model trained here (SD1.5 format) and a judge, so that the
papers' claims can be measured on a model that has learned something (issue 10).

``world``: seeded data generator and judge (pure torch). ``build``: trains and writes the checkpoint
into the cache (``python -m benchmarks.toy_world.build``). ``make_pictures``: README pictures from
``benchmarks/bench_toy_world.py``'s outputs.
"""
