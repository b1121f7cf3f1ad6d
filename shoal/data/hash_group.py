"""Arrow's hash aggregation (``Table.group_by(keys).aggregate(specs)``) without
importing ``pyarrow.dataset``.

Why: ``Table.group_by`` runs through ``pyarrow.acero``, whose import pulls in
``pyarrow.dataset`` (and its shared library): 0.18-0.3 s on this machine, paid
by every process on its first aggregation, i.e. inside the first groupby a
cluster runs (both workers' first partial-state tasks and the driver's group
estimate).  The plan it builds, a table source feeding an aggregate node, is
all in ``pyarrow._acero`` (about a millisecond to import), so it is built
here the same way: same functions, same options, same output columns.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pyarrow as pa

try:  # the nodes Table.group_by uses (pyarrow >= 12), without pyarrow.dataset
    from pyarrow._acero import AggregateNodeOptions, Declaration, TableSourceNodeOptions
except ImportError:  # pragma: no cover - an Arrow build without acero's Cython module
    AggregateNodeOptions = Declaration = TableSourceNodeOptions = None


def _normalized(spec: tuple, grouped: bool) -> tuple[list[str], str, Any, str]:
    """(targets, function, options, output name) as ``TableGroupBy.aggregate``
    spells them: ``hash_`` functions when grouping, ``<targets>_<function>``
    (or the function alone, for no target) as the name."""
    target, func, *rest = spec
    options = rest[0] if rest else None
    targets = list(target) if isinstance(target, (list, tuple)) else [target]
    base = func[5:] if func.startswith("hash_") else func
    func = f"hash_{base}" if grouped else base
    name = "_".join(targets) + "_" + base if targets else base
    return targets, func, options, name


def group_by(table: pa.Table, keys: Sequence[str], specs: Sequence[tuple]) -> pa.Table:
    """``table.group_by(keys, use_threads=False).aggregate(specs)``."""
    if Declaration is None:  # pragma: no cover
        return table.group_by(list(keys), use_threads=False).aggregate(list(specs))
    aggregates = [_normalized(spec, bool(keys)) for spec in specs]
    plan = Declaration.from_sequence([
        Declaration("table_source", TableSourceNodeOptions(table)),
        Declaration("aggregate", AggregateNodeOptions(aggregates, keys=list(keys))),
    ])
    return plan.to_table(use_threads=False)
