"""``Schema``: what ``Dataset.schema()`` returns (names, types and a table
repr, as Ray prints it)."""

from __future__ import annotations

import pyarrow as pa

from shoal.data.block import PythonObjectType


class Schema:
    def __init__(self, base: pa.Schema) -> None:
        self.base_schema = base

    @property
    def names(self) -> list[str]:
        return list(self.base_schema.names)

    @property
    def types(self) -> list[pa.DataType]:
        return list(self.base_schema.types)

    @staticmethod
    def type_name(t: pa.DataType) -> str:
        if isinstance(t, pa.FixedShapeTensorType):
            dtype = t.value_type.to_pandas_dtype().__name__
            return f"numpy.ndarray(shape={tuple(t.shape)}, dtype={dtype})"
        if isinstance(t, PythonObjectType):
            return "object"
        return str(t)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Schema) and self.base_schema.equals(other.base_schema)

    def __hash__(self) -> int:
        return hash(tuple(self.names))

    def __repr__(self) -> str:
        names = self.names
        types = [self.type_name(t) for t in self.types]
        width = max([len("Column")] + [len(n) for n in names])
        lines = [f"{'Column'.ljust(width)}  Type", f"{'------'.ljust(width)}  ----"]
        lines += [f"{n.ljust(width)}  {t}" for n, t in zip(names, types, strict=False)]
        return "\n".join(lines)
