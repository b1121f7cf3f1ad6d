"""shoal's samples: the library's three strategies (``shoal.shuffle.sort``) and the
raysort-style core program (``bench/sort_core.py``), on a fresh ``shoal.init``
with 2 CPUs.

Inputs are made by tasks (``records.generate``) and waited for before the clock
starts; the sort phase runs from the call to every output in the store; then one
task per output summarizes it.  The store's peak use and bytes spilled and restored come from
the state query ``shoal memory`` uses (``shoal.launch.sort_command.store_use``).
"""

from __future__ import annotations

from bench import sort_core
from bench.shuffle import records
from bench.shuffle.sample import Clock, Sample

STRATEGIES = {"shoal-simple": "simple", "shoal-premerge": "premerge", "shoal-push": "push"}


def run(sample: Sample, timeout: float) -> Sample:
    import shoal
    from shoal.launch.sort_command import store_use
    from shoal.shuffle.sort_bench import StorePeak

    init: dict = {"num_cpus": 2}
    if sample.store_bytes:
        init["object_store_memory"] = sample.store_bytes
    shoal.init(**init)
    try:
        with StorePeak(store_use) as peak:
            _sort(shoal, sample, timeout, store_use)
        sample.detail["peak_store_bytes"] = peak.peak
        sample.detail["store_capacity"] = peak.capacity
        sample.spilled_total = peak.spilled
    finally:
        shoal.shutdown()
    return sample


def _sort(shoal, sample: Sample, timeout: float, store_use) -> None:
    clock = Clock()
    inputs, sample.records, input_sum = records.generate_stored(
        shoal, sample.total_bytes, sample.partitions, timeout)
    sample.generate_s = clock.lap()
    before = store_use()
    spilled_before = before.spilled

    clock.sort_started()
    if sample.system in STRATEGIES:
        from shoal.shuffle import ShuffleStats, sort

        stats = ShuffleStats()
        outputs = sort(inputs, num_partitions=sample.partitions,
                       strategy=STRATEGIES[sample.system], stats=stats, progress=False)
        inputs.clear()  # the maps hold them: each is freed once mapped
    else:
        stats = None
        outputs = sort_core.sort_stored(shoal, inputs, timeout=timeout)
    shoal.wait(outputs, num_returns=len(outputs), timeout=timeout)
    sample.sort_s = clock.sort_ended()
    after = store_use()
    spilled_after = after.spilled
    if spilled_before is not None and spilled_after is not None:
        sample.spilled_bytes = spilled_after - spilled_before
    if before.restored is not None and after.restored is not None:
        sample.detail["restored_bytes"] = after.restored - before.restored
    if stats is not None:
        sample.detail["stages"] = {k: list(v) for k, v in stats.stages.items()}

    summarize = shoal.remote(records.summarize)
    summaries = []
    for index, ref in enumerate(outputs):
        summaries.append(summarize.remote(ref))
        outputs[index] = None  # freed once summarized
    parts = shoal.get(summaries, timeout=timeout)
    sample.validate_s = clock.lap()
    sample.problems = records.check_parts(parts, sample.records, input_sum)
    sample.ok = not sample.problems
