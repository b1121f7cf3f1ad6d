"""``python -m bench.data``: shoal.data side by side with Ray Data and Dask
DataFrame (ETL, random_shuffle, sort, groupby, iter_batches).  See
bench/README.md, section "Data rows"."""
