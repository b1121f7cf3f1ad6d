"""bench.shuffle: the same sort of gensort records on shoal's shuffle library, the
raysort-style core program on shoal and Ray, Ray Data, Dask and one numpy
process, side by side (issue 16; bench/README.md, "Shuffle side by side").

Modules: records (the data and its checks), sample (one sample's outcome and
the child's protocol), variants (the systems), run_shoal / run_ray / run_dask /
run_numpy (one sample of each), child (the subprocess), monitor (memory of the
system's processes), runner (scheduling, timeouts, clean-up), report (medians,
ratios, table, JSON).
"""
