"""Read-only, confined DuckDB over the published partitions: one view per table, and `credited`."""

from __future__ import annotations

import datetime as dt
import os
import re
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import duckdb
import polars as pl
import psutil

from warehouse.layout import Layout
from warehouse.metadata import POINTER, is_split
from warehouse.tables import ATTRIBUTIONS, DAILY_COLUMNS, MODEL_DAYS, MODEL_METADATA, MODELS, TABLES, Table

READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}
MEMORY_ENV = "MULTIPOLAR_DUCKDB_MEMORY"
MEMORY_FLOOR = 512 * 2**20
MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)
ATTEMPTS = 10  # reads of a query that overlapped the replacement of a partition it read


class QueryRefused(ValueError):
    """The SQL asks for something other than reading the warehouse."""


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def connect(layout: Layout, *, listed: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per table over every published date, confined to the warehouse.

    `listed`: the caller has just listed an object store's files afresh (`Layout.list_afresh`)."""
    # DuckDB may read its own spill folder; keep it inside the warehouse's staging, not the working directory.
    spill = layout.staging / "duckdb"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(":memory:", config={"temp_directory": str(spill), "memory_limit": memory_limit()})
    if layout.remote:
        con.register_filesystem(layout.root.fs)
        if not listed:
            layout.list_afresh(LISTED)
    published = {table.name: layout.published_dates(table) for table in TABLES.values()}
    split = _where(layout, partial(is_split, layout), published[MODELS.name])
    for view in model_views(layout, published[MODELS.name], split):
        con.execute(view)
    for table in TABLES.values():
        if table is MODELS:
            continue
        files = [layout.partition_file(table, day) for day in published[table.name]]
        if files:
            listing = ", ".join(sql_literal(str(f)) for f in files)
            con.execute(
                f"CREATE VIEW {table.name} AS SELECT * FROM read_parquet([{listing}], "
                "hive_partitioning = true, union_by_name = true)"
            )
        else:
            empty = table.empty().with_columns(pl.lit(None, pl.Date).alias("snapshot_date"))
            con.from_arrow(empty.to_arrow()).create_view(table.name)
    credited = credited_view(layout, published[MODELS.name], published[ATTRIBUTIONS.name], split)
    if credited:
        con.execute(credited)
    else:
        con.from_arrow(credited_columns().to_arrow()).create_view("credited")
    con.execute(f"SET allowed_directories = [{sql_literal(str(layout.root) + '/')}]")
    for setting in ("enable_external_access", "autoinstall_known_extensions", "autoload_known_extensions"):
        con.execute(f"SET {setting} = false")
    con.execute("SET lock_configuration = true")
    return con


def model_views(layout: Layout, days: list[dt.date], split: set[dt.date]) -> list[str]:
    """`model_days` (each day's counts and where its metadata is kept), `model_metadata` (every version) and
    `models` (each day's whole rows: the two joined, and the days written whole)."""
    stored = [day for day in days if day in split]
    versions = layout.published_versions(MODEL_METADATA)
    views = [
        _view("model_days", MODEL_DAYS, [layout.partition_file(MODEL_DAYS, day) for day in stored], hive=True),
        metadata_view(layout, versions),
    ]
    whole = [layout.partition_file(MODELS, day) for day in days if day not in split]
    columns = ", ".join(f"{'d' if c in DAILY_COLUMNS else 'm'}.{c}" for c in MODELS.columns)
    parts = [f"SELECT {columns}, d.snapshot_date FROM model_days d JOIN model_metadata m USING ({JOINED_ON})"]
    if whole:
        parts.append(f"SELECT * FROM {_files(whole, hive=True)}")
    return [*views, "CREATE VIEW models AS " + " UNION ALL BY NAME ".join(parts)]


# A day's row points at its metadata by version and row: joined on these two integers rather than on
# (metadata_version, model_id), days of 3 M models read their metadata in about half the time.
JOINED_ON = ", ".join(POINTER)


def metadata_view(layout: Layout, versions: list[int]) -> str:
    """`model_metadata`: every version's rows, each with `metadata_row`, its row in its version's file."""
    files = [layout.version_file(MODEL_METADATA, v) for v in versions]
    if not files:
        return _view("model_metadata", MODEL_METADATA, [], pointer=True)
    listing = ", ".join(sql_literal(str(f)) for f in files)
    return (
        "CREATE VIEW model_metadata AS SELECT * EXCLUDE (file_row_number), "
        "CAST(file_row_number AS UINTEGER) AS metadata_row "
        f"FROM read_parquet([{listing}], file_row_number = true, union_by_name = true)"
    )


def _view(name: str, table: Table, files: list[Path], *, hive: bool = False, pointer: bool = False) -> str:
    """A view over `files` of `table`; typed and empty when there are none."""
    if files:
        return f"CREATE VIEW {name} AS SELECT * FROM {_files(files, hive=hive)}"
    columns = [f"CAST(NULL AS {_sql_type(dtype)}) AS {column}" for column, dtype in table.schema.items()]
    if hive:
        columns.append("CAST(NULL AS DATE) AS snapshot_date")
    if pointer:
        columns.append("CAST(NULL AS UINTEGER) AS metadata_row")
    return f"CREATE VIEW {name} AS SELECT {', '.join(columns)} WHERE false"


def _files(files: list[Path], *, hive: bool = False) -> str:
    listing = ", ".join(sql_literal(str(f)) for f in files)
    return f"read_parquet([{listing}], hive_partitioning = {str(hive).lower()}, union_by_name = true)"


def _sql_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.List):
        return f"{_sql_type(dtype.inner)}[]"
    return {
        pl.String: "VARCHAR",
        pl.Int32: "INTEGER",
        pl.Int64: "BIGINT",
        pl.UInt32: "UINTEGER",
        pl.UInt64: "UBIGINT",
        pl.Float64: "DOUBLE",
        pl.Boolean: "BOOLEAN",
        pl.Date: "DATE",
    }.get(dtype.base_type(), "TIMESTAMPTZ" if isinstance(dtype, pl.Datetime) else "VARCHAR")


def credited_view(
    layout: Layout, model_dates: list[dt.date], attribution_dates: list[dt.date], split: set[dt.date] = frozenset()
) -> str | None:
    """`credited`: every attribution row with its model's columns, one join per date both tables have.

    One join of the whole `models` and `attributions` views builds one hash table of every date's rows;
    joined date by date, each hash table is one day's (about twice as fast over 90 days of 3 M models),
    and a filter on `snapshot_date` skips the other dates' files. A date's attributions made from its
    models as published now are joined on `model_row`, the model's row in its file, an integer; others
    (made before `model_row`, or from models since replaced) on the id. A day whose metadata is kept
    apart is joined to it after (`model_metadata`, one join for every such day).
    """
    dates = sorted(set(model_dates) & set(attribution_dates))
    carried = _where(layout, partial(has_model_row, layout), dates)  # each date's footer read once
    by_row = _where(layout, partial(made_from_models_as_published, layout), sorted(carried))

    def joined(table: Table, day: dt.date, alias: str) -> str:
        file = sql_literal(str(layout.partition_file(table, day)))
        attributions = sql_literal(str(layout.partition_file(ATTRIBUTIONS, day)))
        if day in by_row:
            numbered = f"read_parquet({file}, hive_partitioning = true, file_row_number = true)"
            return (
                f"SELECT {alias}.* EXCLUDE (file_row_number), a.* EXCLUDE (model_id, snapshot_date, model_row) "
                f"FROM {numbered} {alias} JOIN read_parquet({attributions}, hive_partitioning = true) a "
                f"ON a.model_row = {alias}.file_row_number"
            )
        credit = "* EXCLUDE (model_row)" if day in carried else "*"
        return (
            f"SELECT {alias}.*, a.* EXCLUDE (model_id, snapshot_date) "
            f"FROM read_parquet({file}, hive_partitioning = true) {alias} "
            f"JOIN (SELECT {credit} FROM read_parquet({attributions}, hive_partitioning = true)) a USING (model_id)"
        )

    joins = [joined(MODELS, day, "m") for day in dates if day not in split]
    daily = [joined(MODEL_DAYS, day, "d") for day in dates if day in split]
    if daily:
        columns = ", ".join(f"{'d' if c in DAILY_COLUMNS else 'm'}.{c}" for c in MODELS.columns)
        credit = ", ".join(f"d.{c}" for c in CREDITED_FROM_ATTRIBUTIONS)
        joins.append(
            f"SELECT {columns}, d.snapshot_date, {credit} FROM ({' UNION ALL BY NAME '.join(daily)}) d "
            f"JOIN model_metadata m USING ({JOINED_ON})"
        )
    return "CREATE VIEW credited AS " + " UNION ALL BY NAME ".join(joins) if joins else None


def _where(layout: Layout, test: Callable[[dt.date], bool], days: list[dt.date]) -> set[dt.date]:
    """The days that pass `test`, which reads a little of each (a few days at a time on an object store)."""
    return {day for day, passed in zip(days, layout.each(test, days), strict=True) if passed}


# What `credited` takes from each attribution row: everything but the keys its join consumed.
CREDITED_FROM_ATTRIBUTIONS = [c for c in ATTRIBUTIONS.columns if c not in ("model_id", "model_row")]


def has_model_row(layout: Layout, day: dt.date) -> bool:
    """Whether `day`'s attributions carry `model_row` (those made before it was added do not)."""
    return "model_row" in pl.scan_parquet(str(layout.partition_file(ATTRIBUTIONS, day))).collect_schema()


def made_from_models_as_published(layout: Layout, day: dt.date) -> bool:
    """Whether `day`'s attributions were made from the `models` file published for `day` now (by its sha256
    in both `_meta`)."""
    from warehouse.publish import read_meta

    made_from = (read_meta(layout, ATTRIBUTIONS, day) or {}).get("inputs", {}).get("models_sha256")
    models = read_meta(layout, MODELS, day) or {}
    return made_from is not None and made_from == models.get("sha256")


def rows_point_at_models(layout: Layout, day: dt.date) -> bool:
    """Whether each of `day`'s attribution rows can be joined to its model by `model_row`: they carry it,
    and were made from the `models` file published for `day` now."""
    return made_from_models_as_published(layout, day) and has_model_row(layout, day)


def credited_columns() -> pl.DataFrame:
    """An empty `credited`: the columns and types of the view when no date has both tables."""
    models = MODELS.empty().with_columns(pl.lit(None, pl.Date).alias("snapshot_date"))
    return pl.concat([models, ATTRIBUTIONS.empty().select(CREDITED_FROM_ATTRIBUTIONS)], how="horizontal")


def memory_limit() -> str:
    """DuckDB's memory limit: `MULTIPOLAR_DUCKDB_MEMORY` if set (e.g. `8GB`), else half the memory available now.

    DuckDB's own default, 80% of the machine's RAM, ignores what the calling process and others already hold;
    a join of raw tables over months of days then grows until the kernel kills the process. Under the limit,
    DuckDB spills to the warehouse's staging folder instead.
    """
    given = os.environ.get(MEMORY_ENV, "").strip()
    if given:
        if not MEMORY_SIZE.fullmatch(given):
            raise QueryRefused(f"{MEMORY_ENV}={given!r} is not a memory size such as 8GB or 512MiB")
        return given
    available = psutil.virtual_memory().available
    return f"{max(available // 2, MEMORY_FLOOR) // 2**20}MiB"


def check_read_only(sql: str) -> None:
    """Refuse anything but SELECT/EXPLAIN statements, naming what was refused."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(f"cannot parse the query: {error}") from None
    if not statements:
        raise QueryRefused("the query is empty")
    for statement in statements:
        kind = statement.type.name
        if kind not in READ_ONLY_STATEMENTS:
            raise QueryRefused(
                f"{kind} statements are refused: `multipolar sql` only reads the warehouse (SELECT, EXPLAIN)"
            )


def run_sql(layout: Layout, sql: str) -> pl.DataFrame:
    """The result of a read-only query over the warehouse's views, read from one unchanging set of files."""
    check_read_only(sql)
    for attempt in range(ATTEMPTS):
        before = _files_now(layout)
        con = None
        try:
            # The files as `before` listed them, which a forced publish may replace or remove meanwhile.
            con = connect(layout, listed=True)
            frame = con.sql(sql).pl()
        except duckdb.PermissionException as error:
            raise QueryRefused(
                f"refused: {str(error).splitlines()[0]} (only the warehouse's own files can be read)"
            ) from None
        except (duckdb.Error, OSError):
            if attempt + 1 < ATTEMPTS and _files_now(layout) != before:
                time.sleep(0.01 * attempt)
                continue  # a forced publish replaced a file mid-read: the error is the mix, not the query
            raise
        finally:
            if con is not None:
                con.close()
        # DuckDB opens a file more than once per query (schema at bind, row groups at scan); a partition
        # renamed into place in between would mix two versions, so such a result is read again.
        if _files_now(layout) == before:
            return frame
        time.sleep(0.01 * attempt)
    raise duckdb.IOException(f"partitions were replaced while the query read them, {ATTEMPTS} times; run it again")


# On an object store, every table's files and records are listed when a connection opens and when a query
# checks its files (`run_sql`), rather than looked up one by one. Over 365 dates of every table on S3 on
# loopback: `run_sql` of a count of `credited` by date takes 20 s against 119-159 s.
LISTED = (*TABLES.values(), MODEL_METADATA)


def _files_now(layout: Layout) -> list[tuple[str, object, object]]:
    """Which file each published partition is now: path and version (inode and mtime, or ETag)."""
    layout.list_afresh(LISTED)
    found = []
    versions = [layout.version_file(MODEL_METADATA, v) for v in layout.published_versions(MODEL_METADATA)]
    for table in TABLES.values():
        for path in [*layout.published_files(table), *(versions if table is MODELS else [])]:
            try:
                found.append((str(path), *_version(path)))
            except FileNotFoundError:
                continue
    return found


def _version(path) -> tuple[object, object]:
    if isinstance(path, Path):
        status = path.stat()
        return status.st_ino, status.st_mtime_ns
    info = path.fs.info(path.path)
    return info.get("ETag"), str(info.get("LastModified"))
