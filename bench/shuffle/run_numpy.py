"""The machine's compute limit: one process, no cluster, no store, the same records
and the same map and reduce work in plain numpy.

``numpy-raysort`` runs bench/sort_core.py's kernels (the raysort-style program's
map split and reduce sort); ``numpy-shoal`` runs the library's kernels
(``shoal.shuffle.kernels.sort_map`` / ``sort_reduce``: radix sort of key
prefixes, table-driven range partitioning).  The timed phase maps every input
(each dropped once mapped), then reduces every key range; the outputs are kept,
as the clusters keep theirs.  One core does all the work, so the 2-core ideal is
half this time.
"""

from __future__ import annotations

from bench import sort_core
from bench.shuffle import records
from bench.shuffle.sample import Clock, Sample


def run(sample: Sample, timeout: float) -> Sample:
    if sample.system == "numpy-shoal":
        from shoal.shuffle import kernels
        from shoal.shuffle.partitioning import boundaries_from_samples

        bounds = boundaries_from_samples([], sample.partitions)

        def split(data, partitions):
            return kernels.sort_map(data, partitions, bounds)

        reduce = kernels.sort_reduce
    else:
        split, reduce = sort_core.split_task, sort_core.reduce_task
    clock = Clock()
    inputs, input_sum, start = [], 0, 0
    for count in records.input_counts(sample.total_bytes, sample.partitions):
        data, total = records.generate(start, count, 0)
        inputs.append(data)
        input_sum = (input_sum + total) & records.MASK64
        start += count
    sample.records = start
    sample.generate_s = clock.lap()

    clock.sort_started()
    columns: list[list] = [[] for _ in range(sample.partitions)]
    for index in range(len(inputs)):
        for column, block in zip(columns, split(inputs[index], sample.partitions),
                                 strict=True):
            column.append(block)
        inputs[index] = None
    outputs = []
    for index in range(len(columns)):
        outputs.append(reduce(*columns[index]))
        columns[index] = []
    sample.sort_s = clock.sort_ended()

    parts = [records.summarize(out) for out in outputs]
    sample.validate_s = clock.lap()
    sample.problems = records.check_parts(parts, sample.records, input_sum)
    sample.ok = not sample.problems
    return sample
