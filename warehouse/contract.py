"""Schema enforcement on write: the declared columns, cast strictly, a unique key, no surprises."""

from __future__ import annotations

import polars as pl

from warehouse.tables import Table


class SchemaViolation(ValueError):
    """A frame does not fit its table; the message names the column and the count of bad rows."""

    def __init__(self, table: str, column: str, bad_rows: int, reason: str) -> None:
        self.table, self.column, self.bad_rows, self.reason = table, column, bad_rows, reason
        super().__init__(f"table {table!r}, column {column!r}: {bad_rows} bad row(s): {reason}")


def conform(frame: pl.DataFrame, table: Table) -> pl.DataFrame:
    """`frame` cast to `table`'s schema and column order, or a SchemaViolation."""
    extra = [c for c in frame.columns if c not in table.schema]
    if extra:
        raise SchemaViolation(table.name, extra[0], frame.height, "column is not in the declared schema")
    missing = [c for c in table.schema if c not in frame.columns]
    if missing:
        raise SchemaViolation(table.name, missing[0], frame.height, "declared column is missing")

    columns = []
    for name, dtype in table.schema.items():
        column = frame.get_column(name)
        if column.dtype != dtype:
            cast = column.cast(dtype, strict=False)
            failed = int((cast.is_null() & column.is_not_null()).sum())
            if failed:
                raise SchemaViolation(table.name, name, failed, f"cannot cast {column.dtype} to {dtype}")
            column = cast
        columns.append(column)
    out = pl.DataFrame(columns)

    for name in table.not_null:
        nulls = out.get_column(name).null_count()
        if nulls:
            raise SchemaViolation(table.name, name, nulls, "null in a required column")
    if out.height:
        duplicated = int(out.select(pl.struct(table.key).is_duplicated().sum()).item())
        if duplicated:
            raise SchemaViolation(table.name, ",".join(table.key), duplicated, "duplicate key")
    return out
