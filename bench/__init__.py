"""shoal's benchmark suite: ``python -m bench`` compares shoal with Ray and Dask.

Every system runs in its own fresh subprocess for each group of rows, one
system at a time, interleaved (shoal, ray, dask, shoal, ray, dask, ...).  Rows
are written once against a small adapter interface (``bench.adapters``).
See ``python -m bench --help``.
"""
