"""Peak memory of torch's CPU allocator during a call (profiler memory events): shared by
``bench_tma_flux.py`` and the TMA memory tests (``tests/core/test_temporal_momentum.py``)."""


def allocator_peak(fn):
    """``(peak, result)``: the peak of the bytes torch's CPU allocator holds during ``fn()`` above what
    it held before (profiler memory events in time order), and ``fn()``'s result."""
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = fn()
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == "[memory]"),
                    key=lambda e: e.start_ns())
    cur = peak = 0
    for e in events:
        cur += e.nbytes()
        peak = max(peak, cur)
    return peak, out
