"""`models` kept as each day's counts, and each model's metadata kept once per change.

A model's metadata (its author, dates, tags, lineage, size…) rarely changes from one day to the next, while its
counts do. A day's `models` partition therefore holds the counts (`MODEL_DAYS`), and each row points at its
metadata by position: row `metadata_row` of version `metadata_version` of `model_metadata`. Publishing a day
compares every model's metadata with the day before's, on a 64-bit hash of its columns, and writes one new
version holding only the rows that are new or changed. A version is written once and never changed, so the
days pointing at it stay right whatever is published or replaced later; once no published day points at it
(its day was replaced, or its publish stopped before the day), it is removed.

Readers get the whole row back: `scan_models` (also `Layout.scan(MODELS, day)`) is a LazyFrame of the `models`
schema that reads only the columns a query uses. A day written whole, before metadata was kept apart, reads as
it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
from polars.io.plugins import register_io_source

from warehouse.layout import Layout, file_version
from warehouse.provenance import base_provenance
from warehouse.publish import (
    ROW_GROUP_SIZE,
    RowGroupWriter,
    check_staged,
    place,
    publish_staged,
    read_meta,
    read_record,
    refuse_if_published,
    remove_folder,
    sha256_of,
    staging_file,
    write_json_atomic,
)
from warehouse.tables import DAILY_COLUMNS, METADATA_COLUMNS, MODEL_DAYS, MODEL_METADATA, MODELS

POINTER = ("metadata_version", "metadata_row")
HASHED = METADATA_COLUMNS[1:]  # a model's metadata but its id: compared within one model only
HASH_SEED = 0
# A day's pointers run up one by one through long stretches of the same version: delta-encoded, they cost
# about 0.2 MB a day at 3 M models, against 8 MB for plain encoding.
DAY_ENCODINGS = {"metadata_row": "DELTA_BINARY_PACKED"}


def metadata_hash(frame: pl.DataFrame) -> pl.Series:
    """A 64-bit hash of each row's metadata. polars does not promise the same hash across its versions: after
    an upgrade that changes it, every model reads as changed once, and its metadata is kept again."""
    return frame.select(pl.struct(HASHED).hash(HASH_SEED).alias("metadata_hash")).to_series()


def is_split(layout: Layout, day: dt.date) -> bool:
    """Whether `day`'s `models` partition points at `model_metadata` (rather than holding every column)."""
    return "metadata_version" in pl.scan_parquet(str(layout.partition_file(MODELS, day)), glob=False).collect_schema()


class NotPublished(LookupError):
    """No partition of the table is published for the date asked for."""


def scan_models(layout: Layout, day: dt.date | str) -> pl.LazyFrame:
    """`day`'s `models` (a date, or its ISO text), every column of the schema, each model's metadata gathered
    from where it is kept; NotPublished, naming the dates there are, when the day is not published.

    Only the columns a query uses are read. A filter on the counts (`model_id`, downloads…) is applied to the
    day's file, whose row groups its statistics can skip, before any metadata is looked up; a filter on the
    metadata is applied once its own columns are gathered, and the other columns are gathered for the rows it
    keeps. A few rows' metadata is read from the row groups holding them only."""
    day = dt.date.fromisoformat(day) if isinstance(day, str) else day
    try:
        split = is_split(layout, day)
    except (OSError, pl.exceptions.PolarsError):
        if layout.meta_file(MODELS, day).exists():
            raise
        dates = layout.published_dates(MODELS)
        there = f"{len(dates)} dates, {dates[0]} … {dates[-1]}" if len(dates) > 1 else ", ".join(map(str, dates))
        there = there or "none"
        raise NotPublished(f"models of {day} are not published in {layout.root} (published: {there})") from None
    if not split:
        return pl.scan_parquet(str(layout.partition_file(MODELS, day)), glob=False)

    def source(
        columns: list[str] | None, predicate: pl.Expr | None, n_rows: int | None, _batch_size: int | None
    ) -> Iterator[pl.DataFrame]:
        yield read_models(layout, day, columns, predicate=predicate, n_rows=n_rows)

    return register_io_source(source, schema=MODELS.schema, explain_name="models", explain_detail=str(day))


# Reads of a day that overlapped its replacement (a forced publish), as `multipolar sql` reads a query again.
READ_ATTEMPTS = 10


def read_models(
    layout: Layout,
    day: dt.date,
    columns: list[str] | None = None,
    *,
    predicate: pl.Expr | None = None,
    n_rows: int | None = None,
) -> pl.DataFrame:
    """`day`'s `models` with `columns` (all when None), in model_id order; only the rows `predicate` keeps,
    and the first `n_rows` of them.

    polars opens the day's file more than once (its footer, then its row groups), and the metadata versions it
    points at after: a day replaced meanwhile would mix two files, or find its old versions removed, so such a
    read is made again. The versions a day's file points at are never changed or removed while it is published."""
    for attempt in range(READ_ATTEMPTS):
        before = _file_identity(layout, day)
        try:
            frame = _read_models(layout, day, columns, predicate=predicate, n_rows=n_rows)
        except (OSError, pl.exceptions.PolarsError):
            if attempt + 1 < READ_ATTEMPTS and _file_identity(layout, day) != before:
                continue
            raise
        if _file_identity(layout, day) == before:
            return frame
    raise OSError(f"models of {day} were replaced while they were read, {READ_ATTEMPTS} times; read them again")


def _file_identity(layout: Layout, day: dt.date) -> tuple[object, object] | None:
    """Which file `day`'s `models` partition is now; None when there is none."""
    return file_version(layout.partition_file(MODELS, day))


def _read_models(
    layout: Layout,
    day: dt.date,
    columns: list[str] | None,
    *,
    predicate: pl.Expr | None,
    n_rows: int | None,
) -> pl.DataFrame:
    wanted = (list(columns) or ["model_id"]) if columns is not None else MODELS.columns  # [] for a count of rows
    tested = [] if predicate is None else [c for c in MODELS.columns if c in predicate.meta.root_names()]
    needed = [c for c in MODELS.columns if c in wanted or c in tested]
    daily = [c for c in needed if c in DAILY_COLUMNS]
    kept = [c for c in needed if c not in DAILY_COLUMNS]
    on_metadata = any(c not in DAILY_COLUMNS for c in tested)
    scan = pl.scan_parquet(str(layout.partition_file(MODELS, day)), glob=False)
    if not on_metadata:  # a filter on the day's own columns is applied as they are read
        scan = scan if predicate is None else scan.filter(predicate)
        scan = scan if n_rows is None else scan.head(n_rows)
    days = scan.select(*daily, *(POINTER if kept else ())).collect()
    if on_metadata:  # the metadata the filter tests first, then the rest for the rows it keeps
        days = pl.concat([days, gather_metadata(layout, days, [c for c in kept if c in tested])], how="horizontal")
        days = days.filter(predicate) if n_rows is None else days.filter(predicate).head(n_rows)
    rest = [c for c in kept if c not in days.columns]
    return pl.concat([days, gather_metadata(layout, days, rest)], how="horizontal").select(wanted)


# Below this share of the rows of the versions pointed at, metadata is read from the row groups holding the rows
# wanted (a 5-model lookup at 3 M models: 0.1 s against 0.6 s to gather from every row group).
FEW_ROWS = 1 / 8


def gather_metadata(layout: Layout, days: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    """The metadata `columns` (`metadata_hash` may be one) each row of `days` points at, in its order.

    The versions pointed at are scanned as one and gathered from in one query, which polars runs column by
    column on every core: at 3 M models, six columns in 0.51-0.56 s against 0.33 s to read them whole. For a
    few rows, only the row groups that hold them are read."""
    if not columns:
        return pl.DataFrame()
    versions = days.get_column("metadata_version").unique().sort().to_list()
    if not versions:
        return pl.DataFrame(schema={c: MODEL_METADATA.schema[c] for c in columns})
    lengths = [version_rows(layout, v) for v in versions]
    starts = pl.Series([0, *lengths[:-1]], dtype=pl.UInt32).cum_sum()
    start = days.get_column("metadata_version").replace_strict(versions, starts, return_dtype=pl.UInt32)
    files = [str(layout.version_file(MODEL_METADATA, v)) for v in versions]
    positions = (start + days.get_column("metadata_row")).rename("position")
    scan = pl.scan_parquet(files, glob=False)
    if positions.len() >= FEW_ROWS * sum(lengths):
        return scan.select(columns).select(pl.all().gather(positions)).collect()
    # A filter on the row index skips the row groups holding none of the rows when the index values are given
    # as a list: given as a Series, every row group was read (5 rows of 3 M: 0.26 s against 0.05 s).
    found = scan.with_row_index("position").filter(pl.col("position").is_in(positions.unique().to_list()))
    rows = found.select("position", *columns).collect()
    return positions.to_frame().join(rows, on="position", how="left", maintain_order="left").select(columns)


def version_rows(layout: Layout, version: int) -> int:
    """The rows of a published version, from its `_meta` record; an error naming it when it is not published."""
    meta = read_version_meta(layout, version)
    if meta is None:
        raise FileNotFoundError(
            f"model_metadata version {version} is not published ({layout.version_meta_file(MODEL_METADATA, version)})"
        )
    return int(meta["rows"])


def read_version_meta(layout: Layout, version: int) -> dict[str, Any] | None:
    return read_record(layout.version_meta_file(MODEL_METADATA, version))


def prior_day(layout: Layout, day: dt.date) -> dt.date | None:
    """The latest published day before `day`, when its models point at kept metadata; else None."""
    before = layout.date_before(MODELS, day)
    return before if before is not None and is_split(layout, before) else None


def prior_pointers(layout: Layout, day: dt.date | None) -> pl.DataFrame:
    """Each model of `day` with its pointer and its metadata's hash, in model_id order (none for no day)."""
    schema = {"model_id": pl.String(), **{c: MODEL_DAYS.schema[c] for c in POINTER}, "prior_hash": pl.UInt64()}
    if day is None:
        return pl.DataFrame(schema=schema)
    days = pl.read_parquet(str(layout.partition_file(MODELS, day)), columns=["model_id", *POINTER], glob=False)
    hashes = gather_metadata(layout, days, ["metadata_hash"]).get_column("metadata_hash").alias("prior_hash")
    return days.with_columns(hashes).rechunk()


def publish_models(
    layout: Layout, day: dt.date, staged: Path, provenance: dict[str, Any], *, force: bool = False
) -> dict[str, Any]:
    """Publish a staged whole `models` file as `day`'s rows and, first, the metadata version they point at.

    The staged file is checked whole first, then read a row group at a time: memory holds the day before's
    pointers (about 0.2 GB at 3 M models) and one row group. Returns the day's `_meta` record."""
    refuse_if_published(layout, MODELS, day, force=force)
    rows = check_staged(MODELS, staged)
    batches = (pl.from_arrow(batch) for batch in pq.ParquetFile(staged).iter_batches(batch_size=ROW_GROUP_SIZE))
    return _publish_split(layout, day, batches, rows, provenance, force=force)


def publish_models_frame(
    layout: Layout, day: dt.date, frame: pl.DataFrame, provenance: dict[str, Any], *, force: bool = False
) -> dict[str, Any]:
    """`publish_models` for a frame already checked against `MODELS` and in model_id order."""
    refuse_if_published(layout, MODELS, day, force=force)
    batches = (frame.slice(start, ROW_GROUP_SIZE) for start in range(0, frame.height, ROW_GROUP_SIZE))
    return _publish_split(layout, day, batches, frame.height, provenance, force=force)


def _publish_split(
    layout: Layout,
    day: dt.date,
    batches: Iterable[pl.DataFrame],
    rows: int,
    provenance: dict[str, Any],
    *,
    force: bool,
) -> dict[str, Any]:
    before = prior_day(layout, day)
    prior = prior_pointers(layout, before)
    version = max(layout.version_numbers(MODEL_METADATA), default=0) + 1
    days_file = staging_file(layout, MODEL_DAYS, day)
    kept_file = staging_file(layout, MODEL_METADATA, day)
    try:
        written, pointed = _split(batches, prior, version, days_file, kept_file)
        if written:
            _publish_version(layout, version, day, kept_file, written)
        record = {
            **provenance,
            "metadata": {
                "compared_with": before.isoformat() if before else None,
                "new_version": version if written else None,
                "rows_kept": written,
                "versions": sorted(pointed),
            },
        }
        meta = publish_staged(layout, MODEL_DAYS, day, days_file, record, rows=rows, force=force)
        drop_unreferenced(layout)
        return meta
    finally:
        days_file.unlink(missing_ok=True)
        kept_file.unlink(missing_ok=True)


def _split(
    batches: Iterable[pl.DataFrame], prior: pl.DataFrame, version: int, days_file: Path, kept_file: Path
) -> tuple[int, set[int]]:
    """Write the day's rows to `days_file` and the metadata not kept already to `kept_file`; return the rows
    kept and the versions the day points at.

    `batches` come in model_id order, as does `prior`: each batch is paired with the prior rows of its range."""
    ids = prior.get_column("model_id")
    kept = 0
    pointed: set[int] = set()
    with (
        RowGroupWriter(days_file, MODEL_DAYS.schema, encodings=DAY_ENCODINGS) as days,
        RowGroupWriter(kept_file, MODEL_METADATA.schema, dictionary=MODEL_METADATA.dictionary) as metadata,
    ):
        for batch in batches:
            if batch.height == 0:
                continue
            hashes = metadata_hash(batch)
            first, last = batch.item(0, "model_id"), batch.item(-1, "model_id")
            start = ids.search_sorted(first, side="left")
            window = prior.slice(start, ids.search_sorted(last, side="right") - start)
            paired = (
                batch.select("model_id")
                .with_columns(hashes)
                .join(window, on="model_id", how="left", maintain_order="left")
            )
            same = (paired.get_column("metadata_hash") == paired.get_column("prior_hash")).fill_null(False)
            new = ~same
            numbers = (new.cast(pl.UInt32).cum_sum() - 1 + kept).cast(pl.UInt32)
            rows = batch.select(DAILY_COLUMNS).with_columns(
                pl.when(same)
                .then(paired.get_column("metadata_version"))
                .otherwise(version)
                .cast(pl.Int32)
                .alias(POINTER[0]),
                pl.when(same)
                .then(paired.get_column("metadata_row"))
                .otherwise(numbers)
                .cast(pl.UInt32)
                .alias(POINTER[1]),
            )
            days.write(rows)
            pointed.update(rows.get_column(POINTER[0]).unique().to_list())
            if new.any():
                fresh = batch.filter(new).select(METADATA_COLUMNS).with_columns(hashes.filter(new))
                metadata.write(fresh.select(pl.lit(version, pl.Int32).alias(POINTER[0]), pl.all()))
                kept += fresh.height
    return kept, pointed


def referenced_versions(layout: Layout) -> set[int]:
    """The metadata versions some published day points at: from each day's `_meta` record, or its file."""
    found: set[int] = set()
    for day in layout.published_dates(MODELS):
        listed = ((read_meta(layout, MODELS, day) or {}).get("metadata") or {}).get("versions")
        if listed is not None:
            found.update(listed)
        elif is_split(layout, day):
            file = str(layout.partition_file(MODELS, day))
            found.update(
                pl.read_parquet(file, columns=[POINTER[0]], glob=False).get_column(POINTER[0]).unique().to_list()
            )
    return found


def drop_unreferenced(layout: Layout) -> list[int]:
    """Remove the metadata versions no published day points at (left by a day replaced with `--force`, or by
    a publish that stopped between its metadata and its day); return their numbers. Call only while holding
    the writer lock. Its `_meta` record goes first, so a version is never half there and still trusted."""
    referenced = referenced_versions(layout)
    dropped = [v for v in layout.version_numbers(MODEL_METADATA) if v not in referenced]
    for version in dropped:
        layout.version_meta_file(MODEL_METADATA, version).unlink(missing_ok=True)
        remove_folder(layout, layout.version_file(MODEL_METADATA, version).parent)
    return dropped


def _publish_version(layout: Layout, version: int, day: dt.date, staged: Path, rows: int) -> dict[str, Any]:
    """Put a written version in place, then its `_meta` record: from then on days may point at it."""
    target = layout.version_file(MODEL_METADATA, version)
    meta = {
        **base_provenance(),
        "table": MODEL_METADATA.name,
        "version": version,
        "written_for": day.isoformat(),
        "rows": rows,
        "file": str(target.relative_to(layout.root)),
        "sha256": sha256_of(staged),
        "hash": f"polars {pl.__version__} struct hash, seed {HASH_SEED}",
        "published_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    place(layout, staged, target)
    write_json_atomic(layout.version_meta_file(MODEL_METADATA, version), meta)
    return meta
