"""Placement groups: create/removal, as Ray's microbenchmark measures it
(``placement group create/removal`` in ``ray_perf.py``): a batch of groups of one
small bundle is created, each waited for, then each removed; the rate is groups
per second."""

from __future__ import annotations

from bench.registry import row


@row("placement group create/removal", group="placement",
     na={"dask": "Dask has no placement groups"})
def pg_create_removal(api, ctx):
    util = api.mod.util
    n = ctx.pick(100, 20)

    def batch():
        groups = [util.placement_group([{"CPU": 0.001}]) for _ in range(n)]
        for group in groups:
            group.wait(timeout_seconds=30)
        for group in groups:
            util.remove_placement_group(group)

    return ctx.rate(batch, n)
