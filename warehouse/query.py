"""Read-only, confined DuckDB over the published partitions: one view per table, and `credited`."""

from __future__ import annotations

import atexit
import datetime as dt
import json
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Collection
from functools import partial
from pathlib import Path

import duckdb
import polars as pl
import psutil

from warehouse.layout import Layout, file_version
from warehouse.lock import writer_at_work
from warehouse.metadata import POINTER, is_split
from warehouse.tables import ATTRIBUTIONS, DAILY_COLUMNS, MODEL_DAYS, MODEL_METADATA, MODELS, TABLES, Table

READ_ONLY_STATEMENTS = {"SELECT", "EXPLAIN"}
MEMORY_ENV = "MULTIPOLAR_DUCKDB_MEMORY"
MEMORY_FLOOR = 512 * 2**20
MEMORY_SIZE = re.compile(r"\d+(\.\d+)?\s*([KMGT]i?B|B)", re.IGNORECASE)
# How long a query is read again while a writer (`import --force`, a forced refresh) keeps replacing the
# partitions it reads, with at least as many reads for a query that takes long itself, and the longest pause
# between two reads.
READ_AGAIN_SECONDS = 60.0
READ_AGAIN_AT_LEAST = 10
READ_AGAIN_PAUSE = 1.0


class QueryRefused(ValueError):
    """The SQL asks for something other than reading the warehouse."""


class KeptReplacing(RuntimeError):
    """A writer replaced the partitions a query read, every time it was read, for `READ_AGAIN_SECONDS`."""


def sql_literal(text: str) -> str:
    """`text` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


# The views over the models: `models` and `credited` are made from `model_days` and `model_metadata`.
MODEL_VIEWS = ("models", "model_days", "model_metadata", "credited")
SNAPSHOTS = "snapshots"  # a view of the `models` records: how and when each date was taken, and what it is
PROVENANCE = "provenance"  # a view of every published partition's record: where, when and with what code
VIEWS = frozenset({*MODEL_VIEWS, *TABLES, SNAPSHOTS, PROVENANCE})  # every view a connection can make


def connect(layout: Layout, *, listed: bool = False, views: Collection[str] | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view per table over every published date, confined to the warehouse.

    `listed`: the caller has just listed an object store's files afresh (`Layout.list_afresh`).
    `views`: only these views (and those they are made from) are made; every view when None. DuckDB reads
    each file's schema when a view over it is made, one file after another: on an object store, 1-2 s for
    each table over a year of dates, so a query leaves out the views it does not read (`views_read`)."""
    spill = spill_folder(layout)
    con = duckdb.connect(":memory:", config={"temp_directory": str(spill), "memory_limit": memory_limit()})
    # Every time in the warehouse is UTC, as are its snapshot dates: so are a query's, whatever the machine's
    # zone (a day's `date_trunc` included). A setting of DuckDB's time zone extension, loaded by this SET.
    con.execute("SET TimeZone = 'UTC'")
    wanted, tables = views_made(views), tables_read(views)
    if layout.remote:
        con.register_filesystem(layout.root.fs)
        if not listed:
            layout.list_afresh(listed_for(tables))
    published = {table.name: layout.published_dates(table) for table in tables}
    split = set()
    if MODELS in tables and wanted & set(MODEL_VIEWS):
        split = _where(layout, partial(is_split, layout), published[MODELS.name])
        for view in model_views(layout, published[MODELS.name], split):
            con.execute(view)
    if SNAPSHOTS in wanted:
        con.from_arrow(snapshots_frame(layout, published[MODELS.name]).to_arrow()).create_view(SNAPSHOTS)
    if PROVENANCE in wanted:
        con.from_arrow(provenance_frame(layout, published).to_arrow()).create_view(PROVENANCE)
    for table in TABLES.values():
        if table is MODELS or table.name not in wanted:
            continue
        files = [layout.partition_file(table, day) for day in published[table.name]]
        if files:
            con.execute(f"CREATE VIEW {table.name} AS SELECT * FROM {_files(files, hive=True)}")
        else:
            empty = table.empty().with_columns(pl.lit(None, pl.Date).alias("snapshot_date"))
            con.from_arrow(empty.to_arrow()).create_view(table.name)
    if "credited" in wanted:
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


def spill_folder(layout: Layout) -> Path:
    """Where DuckDB spills what exceeds its memory limit: `_staging/duckdb` in the warehouse's staging, or,
    when that folder cannot be made or written (a read-only warehouse), `private_spill_folder()`.

    A query may read DuckDB's spill folder whatever `allowed_directories` says, so it must hold nothing but
    DuckDB's own files: never the working directory (DuckDB's default) or the temporary directory itself.
    """
    spill = layout.staging / "duckdb"
    try:
        spill.mkdir(parents=True, exist_ok=True)
    except OSError:
        return private_spill_folder()
    return spill if os.access(spill, os.W_OK | os.X_OK) else private_spill_folder()


_private_spill: list[Path] = []
_private_spill_lock = threading.Lock()


def private_spill_folder() -> Path:
    """A folder of this process's own under the system's temporary directory, made empty and readable by
    its owner only (`tempfile.mkdtemp`), and removed when the process exits; made again if it is removed."""
    with _private_spill_lock:
        if not _private_spill or not _private_spill[-1].is_dir():
            folder = Path(tempfile.mkdtemp(prefix="multipolar-duckdb-"))
            atexit.register(shutil.rmtree, folder, ignore_errors=True)
            _private_spill.append(folder)
        return _private_spill[-1]


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
        f"FROM read_parquet([{listing}], hive_partitioning = false, file_row_number = true, union_by_name = true)"
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
    if hive:
        return dated(f"[{listing}], union_by_name = true")
    return f"read_parquet([{listing}], hive_partitioning = false, union_by_name = true)"


# A file's date is its own folder's, `snapshot_date=YYYY-MM-DD/`. DuckDB's hive partitioning would read
# every `name=value` folder of the path as a column, those above the warehouse too (`/data/rule=x/wh`
# would set every row's `rule`); a filter on the date taken from the file's name still skips other files.
FILE_DATE = sql_literal(r"/snapshot_date=(\d{4}-\d{2}-\d{2})/[^/]*$")


def dated(arguments: str) -> str:
    """`read_parquet(arguments)` with each row's `snapshot_date`, from its file's own folder, as its last column."""
    return (
        f"(SELECT * EXCLUDE (filename), CAST(regexp_extract(filename, {FILE_DATE}, 1) AS DATE) AS snapshot_date "
        f"FROM read_parquet({arguments}, hive_partitioning = false, filename = true))"
    )


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
            numbered = dated(f"{file}, file_row_number = true")
            return (
                f"SELECT {alias}.* EXCLUDE (file_row_number), a.* EXCLUDE (model_id, snapshot_date, model_row) "
                f"FROM {numbered} {alias} JOIN {dated(attributions)} a "
                f"ON a.model_row = {alias}.file_row_number"
            )
        credit = "* EXCLUDE (model_row)" if day in carried else "*"
        return (
            f"SELECT {alias}.*, a.* EXCLUDE (model_id, snapshot_date) "
            f"FROM {dated(file)} {alias} "
            f"JOIN (SELECT {credit} FROM {dated(attributions)}) a USING (model_id)"
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
    return "model_row" in pl.scan_parquet(str(layout.partition_file(ATTRIBUTIONS, day)), glob=False).collect_schema()


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
    DuckDB spills to the warehouse's staging folder instead (`spill_folder`).
    """
    given = os.environ.get(MEMORY_ENV, "").strip()
    if given:
        if not MEMORY_SIZE.fullmatch(given):
            raise QueryRefused(f"{MEMORY_ENV}={given!r} is not a memory size such as 8GB or 512MiB")
        return given
    available = psutil.virtual_memory().available
    return f"{max(available // 2, MEMORY_FLOOR) // 2**20}MiB"


# DuckDB runs a PIVOT without `IN` as two statements: one to find the values, one to pivot on them.
PIVOT_HINT = (
    "; a PIVOT without IN runs as more than one: list the values, as in "
    "PIVOT shares ON rule IN ('uploader', 'official', 'lineage') USING sum(downloads)"
)


def check_read_only(sql: str) -> None:
    """Refuse anything but one SELECT/EXPLAIN statement, naming what was refused."""
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise QueryRefused(f"cannot parse the query: {error}") from None
    if not statements:
        raise QueryRefused("the query is empty")
    for statement in statements:
        kind = statement.type.name
        if kind == "EXPLAIN":
            kind = explained_kind(statement.query)
            if kind != "SELECT":
                what = f"a {kind} statement" if kind != "UNKNOWN" else "anything but a SELECT"
                raise QueryRefused(
                    f"EXPLAIN of {what} is refused: EXPLAIN ANALYZE runs the statement it explains, and "
                    "`multipolar sql` only reads the warehouse (SELECT, EXPLAIN [ANALYZE] SELECT)"
                )
        if kind not in READ_ONLY_STATEMENTS:
            raise QueryRefused(
                f"{kind} statements are refused: `multipolar sql` only reads the warehouse (SELECT, EXPLAIN)"
                + (PIVOT_HINT if kind == "MULTI" and re.search(r"\bpivot\b", sql, re.IGNORECASE) else "")
            )
    if len(statements) > 1:
        # Only the last statement's result would be shown, the others' silently dropped.
        raise QueryRefused(f"the query holds {len(statements)} statements: give one at a time")


# EXPLAIN [ANALYZE] [(options)] <statement>: the statement, with and without what may be options.
EXPLAINED = re.compile(
    r"EXPLAIN\s+(?:ANALY[SZ]E\s+)?(?P<rest>(?:\((?:[^()]|\([^()]*\))*\)\s*)?(?P<after>.*))", re.IGNORECASE | re.DOTALL
)


def explained_kind(statement: str) -> str:
    """The kind of statement an EXPLAIN explains (SELECT, COPY, …), or UNKNOWN when that cannot be told."""
    found = EXPLAINED.fullmatch(statement.strip())
    for candidate in (found["rest"], found["after"]) if found else ():
        try:
            inner = duckdb.extract_statements(candidate)
        except duckdb.Error:
            continue
        if len(inner) == 1:
            return inner[0].type.name
    return "UNKNOWN"


def views_read(sql: str) -> set[str] | None:
    """The warehouse's views `sql` reads (lower case), from its syntax alone; None when that cannot tell: a
    statement other than SELECT (EXPLAIN), a table function (`query_table`, `query`) that could name a view
    in a string, `SHOW`, or a name that is neither a view of the warehouse nor the query's own (DuckDB's
    catalog, such as `information_schema.columns` or `duckdb_tables`, or a misspelt view)."""
    named: set[str] = set()
    own: set[str] = set()  # the query's common table expressions

    def walk(node: object) -> bool:
        if isinstance(node, list):
            return all(walk(value) for value in node)
        if not isinstance(node, dict):
            return True
        if node.get("type") in ("TABLE_FUNCTION", "SHOW_REF"):
            return False
        if node.get("type") == "BASE_TABLE":
            if node.get("catalog_name") not in ("", "memory") or node.get("schema_name") not in ("", "main"):
                return False
            named.add(str(node.get("table_name")).lower())
        for cte in (node.get("cte_map") or {}).get("map", []):
            own.add(str(cte.get("key")).lower())
        return all(walk(value) for value in node.values())

    with duckdb.connect(":memory:") as con:
        for statement in duckdb.extract_statements(sql):
            tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [statement.query]).fetchone()[0])
            if tree.get("error") or not walk(tree):
                return None
    read = {name for name in named if name in VIEWS or name not in own}
    return read if read <= VIEWS else None


def run_sql(layout: Layout, sql: str, *, waiting: Callable[[str], None] | None = None) -> pl.DataFrame:
    """The result of a read-only query over the warehouse's views, read from one unchanging set of files.

    Only the views the query reads are made (`views_read`). A read that a writer's replacement of a partition
    overlapped is made again, for up to `READ_AGAIN_SECONDS` (`waiting` is told once why it takes longer)."""
    check_read_only(sql)
    views = views_read(sql)
    tables = tables_read(views)
    began = time.monotonic()
    reads = 0
    while True:
        reads += 1
        before = _files_now(layout, tables)
        con = None
        try:
            # The files as `before` listed them, which a forced publish may replace or remove meanwhile.
            con = connect(layout, listed=True, views=views)
            frame = result_frame(con.sql(sql))
        except duckdb.PermissionException as error:
            said = str(error).splitlines()[0]
            # A path given relative to the warehouse is refused as it stands: say how to give it.
            relative = re.search(r'file "(?![a-z0-9+]+://|/)([^"]+)"', said)
            hint = f"; give it in full: '{layout.root}/{relative[1]}'" if relative else ""
            raise QueryRefused(f"refused: {said} (only the warehouse's own files can be read{hint})") from None
        except duckdb.CatalogException:
            if views is None:
                raise
            # A name DuckDB does not know (a view not made, a misspelt function): asked again over every
            # view, the query fails, if it still does, with the error, and the hint, that every view gives.
            views, tables = None, tables_read(None)
            continue
        except (duckdb.Error, OSError):
            if _files_now(layout, tables) == before:
                raise
            frame = None  # a forced publish replaced a file mid-read: the error is the mix, not the query
        finally:
            if con is not None:
                con.close()
        # DuckDB opens a file more than once per query (schema at bind, row groups at scan); a partition
        # renamed into place in between would mix two versions, so such a result is read again.
        if frame is not None and _files_now(layout, tables) == before:
            return frame
        _read_again(layout, tables, reads, time.monotonic() - began, waiting)


def _read_again(
    layout: Layout, tables: list[Table], reads: int, seconds: float, waiting: Callable[[str], None] | None
) -> None:
    """Pause before reading a query again that a replacement overlapped, or raise `KeptReplacing` when it has
    been read again for `READ_AGAIN_SECONDS`, `READ_AGAIN_AT_LEAST` times."""
    names = ", ".join(t.name for t in tables)
    if seconds >= READ_AGAIN_SECONDS and reads >= READ_AGAIN_AT_LEAST:
        raise KeptReplacing(
            f"{_writer(layout)} replaced partitions of {names} while the query read them, {reads} times in "
            f"{seconds:.0f} s; run it again once that writer has finished"
        )
    if reads == 3 and waiting is not None:
        waiting(f"{_writer(layout)} is replacing partitions of {names}: reading the query again until they settle")
    time.sleep(min(0.01 * 2**reads, READ_AGAIN_PAUSE, max(0.0, READ_AGAIN_SECONDS - seconds)))


def _writer(layout: Layout) -> str:
    """The writer at work, as its purpose and pid, for a reader to name it."""
    holder = writer_at_work(layout)
    return f"{holder.get('purpose', 'a writer')} (pid {holder.get('pid', '?')})" if holder else "a writer"


# Types polars cannot take from DuckDB (intervals, unions) or write as CSV or JSON (blobs; variants, which reach
# it as blobs; maps whose keys are not text, such as `histogram`'s), alone or nested.
AS_TEXT = re.compile(r"\b(INTERVAL|BLOB|VARIANT)\b|\bUNION\(|\bMAP\((?!VARCHAR,)")


def result_frame(relation: duckdb.DuckDBPyRelation) -> pl.DataFrame:
    """A query's result as a polars frame; a column of a type in `AS_TEXT` comes as DuckDB's text of it
    (`1 day`, `[1 day]`, `{0=12, 1=3}`), columns taken by position, as a result's names may repeat. A 128-bit
    integer (`HUGEINT`, what `sum` of integers gives), which reaches polars as a decimal, comes as an integer."""
    types = [str(dtype) for dtype in relation.types]
    if any(AS_TEXT.search(dtype) for dtype in types):
        relation = relation.project(
            ", ".join(
                f"{f'CAST(#{place} AS VARCHAR)' if AS_TEXT.search(dtype) else f'#{place}'} AS {_quoted(name)}"
                for place, (name, dtype) in enumerate(zip(relation.columns, types, strict=True), 1)
            )
        )
    frame = relation.pl()
    return frame.cast({name: _integral(dtype) for name, dtype in frame.schema.items() if _integral(dtype) != dtype})


def _integral(dtype: pl.DataType) -> pl.DataType:
    """`dtype` with each decimal without a fraction, alone or in a list or struct, as a 128-bit integer: the
    same values, which CSV and JSON then write as numbers rather than text."""
    if isinstance(dtype, pl.Decimal) and dtype.scale == 0:
        return pl.Int128()
    if isinstance(dtype, pl.List):
        return pl.List(_integral(dtype.inner))
    if isinstance(dtype, pl.Struct):
        return pl.Struct({field.name: _integral(field.dtype) for field in dtype.fields})
    return dtype


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def views_made(views: Collection[str] | None) -> set[str]:
    """The views a connection for `views` makes: those of them that exist and the views they are made from
    (every view when None)."""
    if views is None:
        return set(VIEWS)
    made = {view.lower() for view in views} & VIEWS
    if made & {"models", "credited"}:
        made |= {"model_days", "model_metadata"}
    return made


def tables_read(views: Collection[str] | None) -> list[Table]:
    """The tables whose files the views a connection for `views` makes read (every table when None)."""
    made = views_made(views)
    if PROVENANCE in made:
        made |= set(TABLES)
    if made & {*MODEL_VIEWS, SNAPSHOTS}:
        made.add(MODELS.name)
    if "credited" in made:
        made.add(ATTRIBUTIONS.name)
    return [table for table in TABLES.values() if table.name in made]


# The columns of the `snapshots` view: what each `models` record says of its date.
SNAPSHOT_COLUMNS = {
    "snapshot_date": pl.Date,
    "source_kind": pl.String,  # hub, standin, synthetic or import
    "source": pl.String,  # the Hub endpoint crawled, or the file imported
    "scope": pl.String,  # the crawl's --scope; null for an import
    "models": pl.Int64,
    "models_with_30d_count": pl.Int64,  # recorded by imports
    "same_counts_as": pl.Date,  # a stale copy: repeats every count of this date
    "models_of_date_before": pl.Int64,  # a partial snapshot: under half the models of the date before
    "backdated_from": pl.Date,  # a crawl recorded under an earlier date (--backdate)
    "requests": pl.Int64,
    "started_at": pl.Datetime("us", "UTC"),
    "published_at": pl.Datetime("us", "UTC"),
    "code_version": pl.String,
    "sha256": pl.String,
}


def snapshots_frame(layout: Layout, days: list[dt.date]) -> pl.DataFrame:
    """One row per published `models` date, from its record: where and how it was taken, and whether it is a
    stale copy or a partial snapshot (which the dashboard leaves out of its views)."""
    from warehouse.publish import read_meta

    def row(day: dt.date) -> dict[str, object]:
        meta = read_meta(layout, MODELS, day) or {}
        said = meta | {"snapshot_date": day, "source_kind": meta.get("source_kind", "hub"), "models": meta.get("rows")}
        said["source"] = meta.get("endpoint") or meta.get("source_file")
        return {column: _typed(said.get(column), kind) for column, kind in SNAPSHOT_COLUMNS.items()}

    return pl.DataFrame(layout.each(row, days), schema=SNAPSHOT_COLUMNS, orient="row")


# The columns of the `provenance` view: what each partition's record says, and the record itself.
PROVENANCE_COLUMNS = {
    "table_name": pl.String,
    "snapshot_date": pl.Date,  # null for a version of `model_metadata`
    "version": pl.Int64,  # a version of `model_metadata`; null for a dated partition
    "file": pl.String,  # relative to the warehouse's root
    "rows": pl.Int64,
    "sha256": pl.String,
    "published_at": pl.Datetime("us", "UTC"),
    "code_version": pl.String,  # the code that made the partition
    "source_kind": pl.String,  # of `models`: hub, standin, synthetic or import
    "rules_version": pl.String,  # of `attributions`
    "registry_version": pl.String,  # of `attributions`, `registry` and the metrics
    "record": pl.String,  # the whole `_meta` record, as JSON
}


def provenance_frame(layout: Layout, published: dict[str, list[dt.date]]) -> pl.DataFrame:
    """One row per published partition of every table, and per version of `model_metadata`, from its record."""
    from warehouse.metadata import read_version_meta
    from warehouse.publish import read_meta

    def row(item: tuple[Table, dt.date | int]) -> dict[str, object]:
        table, when = item
        meta = (read_version_meta(layout, when) if isinstance(when, int) else read_meta(layout, table, when)) or {}
        said = meta | {"table_name": table.name, "record": json.dumps(meta, sort_keys=True)}
        said |= {"version": when} if isinstance(when, int) else {"snapshot_date": when}
        return {column: _typed(said.get(column), kind) for column, kind in PROVENANCE_COLUMNS.items()}

    items: list[tuple[Table, dt.date | int]] = [
        (TABLES[name], day) for name in TABLES if name in published for day in published[name]
    ]
    items += [(MODEL_METADATA, v) for v in layout.published_versions(MODEL_METADATA)]
    return pl.DataFrame(layout.each(row, items), schema=PROVENANCE_COLUMNS, orient="row")


def _typed(value: object, kind: pl.DataType) -> object:
    """A record's value as the column's type, or None when it is not one."""
    try:
        if kind == pl.Int64:
            whole = isinstance(value, int) and not isinstance(value, bool)
            return value if whole and -(2**63) <= value < 2**63 else None
        if kind == pl.Date:
            return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)) if value else None
        if isinstance(kind, pl.Datetime):
            if not value:
                return None
            moment = dt.datetime.fromisoformat(str(value))  # a time without an offset is UTC, as every record's is
            return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None
    return value if isinstance(value, str) else None


def listed_for(tables: list[Table]) -> list[Table]:
    """What to list afresh on an object store to read `tables`: the kept metadata's versions with `models`."""
    return [*tables, MODEL_METADATA] if MODELS in tables else tables


def _files_now(layout: Layout, tables: list[Table]) -> list[tuple[str, object, object]]:
    """Which file each published partition of `tables` is now: path and version (inode and mtime, or ETag).

    On an object store, from listings made afresh (a request per 1,000 objects), not a request per file."""
    layout.list_afresh(listed_for(tables))
    found = []
    versions = []
    if MODELS in tables:
        versions = [layout.version_file(MODEL_METADATA, v) for v in layout.published_versions(MODEL_METADATA)]
    for table in tables:
        for path in [*layout.published_files(table), *(versions if table is MODELS else [])]:
            if (version := file_version(path)) is not None:
                found.append((str(path), *version))
    return found
