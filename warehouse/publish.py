"""Atomic publish: data is written in `_staging`, renamed into place, and its `_meta` record written last."""

from __future__ import annotations

import datetime as dt
import errno
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import partial
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.contract import SchemaViolation, conform, key_hash, key_of
from warehouse.layout import Layout, forget_listing
from warehouse.provenance import base_provenance
from warehouse.tables import MODELS, Table

ROW_GROUP_SIZE = 128_000
ZSTD_LEVEL = 9  # published partitions: written once, read for years
PAGE_ZSTD_LEVEL = 3  # the crawl's page files: written on its hot path, read once
# A row group of 3 M models' tags holds about 100 k distinct values (3 MB); past the page's limit, the rest
# of the column chunk is written plain.
DICTIONARY_PAGE_BYTES = 8 << 20
# How polars (`(os error 28)`) and Arrow (`[errno 28]`) report the OSError under their own
_OS_ERROR = re.compile(r"\(os error (\d+)\)|\[errno (\d+)\]", re.IGNORECASE)


class AlreadyPublished(RuntimeError):
    """The date is published already and `force` was not given."""


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def is_published(layout: Layout, table: Table, day: dt.date) -> bool:
    """Whether `day` of `table` has its data and its `_meta` record."""
    return layout.meta_file(table, day).is_file() and layout.partition_file(table, day).is_file()


def refuse_if_published(layout: Layout, table: Table, day: dt.date, *, force: bool) -> None:
    """Raise AlreadyPublished when `day` of `table` is published and `force` was not given."""
    if is_published(layout, table, day) and not force:
        raise AlreadyPublished(f"{table.name} {day} is already published (use --force to replace it)")


class DamagedRecord(ValueError):
    """A `_meta` record that is not a JSON object, or lacks what a record holds: what it vouches for can be
    neither trusted nor replaced. `why` says what is wrong with it, `mend` how to mend it."""

    MEND = (
        "restore it, or remove it to unpublish what it vouches for (its data is then ignored) and publish that "
        "date again"
    )

    def __init__(self, path: Path, why: str) -> None:
        super().__init__(f"the record {path} is damaged ({why}); {self.MEND}")
        self.path, self.why, self.mend = path, why, self.MEND


SHA256 = re.compile(r"[0-9a-f]{64}")


def read_json_object(path: Path, damaged: Callable[[str], Exception]) -> dict[str, Any] | None:
    """The JSON object at `path`, None when there is no file, or `damaged(why)` raised."""
    if not path.is_file():
        return None
    try:
        data = path.read_bytes()
    except FileNotFoundError:  # removed since: a writer replacing a date removes its record first
        return None
    try:
        record = json.loads(data)
    except ValueError as error:  # invalid JSON or text
        raise damaged(f"not JSON: {error}") from None
    if not isinstance(record, dict):
        raise damaged("not a JSON object")
    return record


def read_record(path: Path) -> dict[str, Any] | None:
    """The `_meta` record at `path`, None when there is none, or a DamagedRecord naming the file: not JSON, or
    without what every record holds (its table, file, row count, sha256 and time of publishing), or with one
    of them, or the metadata versions a day points at, of the wrong kind."""
    record = read_json_object(path, lambda why: DamagedRecord(path, why))
    if record is not None and (wrong := record_fault(record)):
        raise DamagedRecord(path, wrong)
    return record


def record_fault(record: dict[str, Any]) -> str | None:
    """What is missing from, or of the wrong kind in, a `_meta` record; None when nothing is."""
    for field in ("table", "file", "published_at"):
        if not isinstance(record.get(field), str):
            return f"{field} is {'missing' if field not in record else 'not text'}"
    rows = record.get("rows")
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < 0:
        return "rows is missing" if "rows" not in record else "rows is not a count"
    if not isinstance(record.get("sha256"), str) or not SHA256.fullmatch(record["sha256"]):
        return "sha256 is missing" if "sha256" not in record else "sha256 is not a sha256"
    if "snapshot_date" in record:
        try:
            dt.date.fromisoformat(str(record["snapshot_date"]))
        except ValueError:
            return "snapshot_date is not a date"
    for field in ("inputs", "metadata"):
        if field in record and not isinstance(record[field], dict):
            return f"{field} is not a JSON object"
    versions = (record.get("metadata") or {}).get("versions", [])
    if not isinstance(versions, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in versions):
        return "metadata.versions is not a list of version numbers"
    return None


def read_meta(layout: Layout, table: Table, day: dt.date) -> dict[str, Any] | None:
    """The `_meta` record of a partition, or None when it is not published (read once within `records_kept`)."""
    kept = _KEPT.get()
    if kept is None:
        return read_record(layout.meta_file(table, day))
    records, keys = kept
    key = (layout.root, table.name, day)  # no path made for a record kept: 20 µs, seconds for a year's pass
    if key not in records:
        path = layout.meta_file(table, day)
        records[key], keys[str(path)] = read_record(path), key
    return records[key]


# The records kept by (root, table, date), and the key of each by its path (to forget it when written).
_KEPT: ContextVar[tuple[dict[tuple[Any, str, dt.date], dict[str, Any] | None], dict[str, Any]] | None] = ContextVar(
    "kept", default=None
)


@contextmanager
def records_kept() -> Iterator[None]:
    """Within it, `read_meta` reads each record once and gives the same one after, until this process writes or
    removes that record (`forget_record`): for a pass that reads the records of every date for each date
    (`flows.steps.out_of_date`, and an import deriving a year of dates, whose crossovers read them all). Within
    another, it keeps the records in the same place, so that a record written within it is read afresh after."""
    token = _KEPT.set(({}, {}) if (kept := _KEPT.get()) is None else kept)
    try:
        yield
    finally:
        _KEPT.reset(token)


def forget_record(path: Any) -> None:
    """Read the record at `path` afresh next time within `records_kept`: it is being written or removed."""
    if (kept := _KEPT.get()) is not None and (key := kept[1].pop(str(path), None)) is not None:
        kept[0].pop(key, None)


def clear_publish_staging(layout: Layout) -> int:
    """Remove files a killed writer left in `_staging/publish`; call only while holding the writer lock."""
    folder = layout.staging / "publish"
    removed = 0
    for leftover in folder.glob("*") if folder.is_dir() else ():
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed


# The temporary sibling `write_bytes_atomic` writes a file through, renamed into place once whole.
TEMPORARY = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")


def clear_write_leftovers(layout: Layout) -> int:
    """Remove the temporary siblings that writers killed before renaming them into place left in the folders a
    writer writes whole files into (`_meta` and each folder in it, the dashboard, the reports, each crawl's
    staging): each is a copy of a record, page or image no one reads, and without this they would pile up, one
    per writer killed so. Call only while holding the writer lock. How many were removed."""
    if layout.remote:  # written there in one PUT, with no temporary sibling
        return 0
    meta, crawls = layout.root / "_meta", layout.staging / "crawl"
    folders = [meta, *_folders_in(meta), layout.dashboard_dir, layout.root / "reports", *_folders_in(crawls)]
    removed = 0
    for folder in folders:
        try:
            with os.scandir(folder) as entries:
                names = [e.name for e in entries if TEMPORARY.fullmatch(e.name) and e.is_file(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            continue
        for name in names:
            (folder / name).unlink(missing_ok=True)
            removed += 1
    return removed


def _folders_in(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(e.path) for e in entries if e.is_dir(follow_symlinks=False)]
    except (FileNotFoundError, NotADirectoryError):
        return []


def staging_file(layout: Layout, table: Table, day: dt.date) -> Path:
    """A fresh file path in `_staging`, outside every reader's glob, on the warehouse's filesystem."""
    folder = layout.staging / "publish"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"{table.name}-{day.isoformat()}-{uuid.uuid4().hex}.parquet"


def write_parquet(
    frame: pl.DataFrame, path: Path, *, level: int = ZSTD_LEVEL, dictionary: tuple[str, ...] = ()
) -> None:
    """Write zstd Parquet and flush it to disk; a failed write (a full disk, say) is an OSError naming the file.

    The columns named in `dictionary` (a list column: its elements) are written dictionary-encoded."""
    if dictionary:
        write_frames([frame], path, frame.schema, level=level, dictionary=dictionary)
        return
    with polars_writing(path):
        by_row_group(frame).write_parquet(
            path, compression="zstd", compression_level=level, row_group_size=ROW_GROUP_SIZE
        )
    fsync(path)


def by_row_group(frame: pl.DataFrame, order: pl.Series | None = None) -> pl.DataFrame:
    """`frame`'s rows (in `order`, when given) gathered a row group at a time into buffers of their own.

    A list column held in chunks larger than a row group, as a frame built or sorted whole holds it, is
    written less compactly and more slowly (3 M models: 150.7 MB in 11-15 s, against 130.1 MB in 7 s).
    """
    lists = [name for name, dtype in frame.schema.items() if isinstance(dtype, pl.List)]
    if order is None and all(frame.height <= frame.get_column(n).n_chunks() * ROW_GROUP_SIZE for n in lists):
        return frame
    rows = pl.int_range(frame.height, dtype=pl.UInt32, eager=True) if order is None else order
    groups = [frame[rows.slice(start, ROW_GROUP_SIZE)] for start in range(0, frame.height, ROW_GROUP_SIZE)]
    return pl.concat(groups, rechunk=False) if groups else frame


def write_frames(
    frames: Iterable[pl.DataFrame],
    path: Path,
    schema: pl.Schema | dict[str, pl.DataType],
    *,
    level: int = ZSTD_LEVEL,
    dictionary: tuple[str, ...] = (),
) -> None:
    """Frames of `schema`, one after another, written as one file a row group at a time, and flushed to disk.

    pyarrow's writer dictionary-encodes the columns named in `dictionary` and reads them back as strings;
    polars' writer encodes only Categorical columns so, and readers would get them as Categorical. A 3 M-model
    `models` file: 119.2 MB against 130.1 MB, read whole in 0.40-0.42 s against 0.51-0.56 s; written in about
    11 s against 5-6 s, as pyarrow encodes the columns one after another.
    """
    with arrow_writing(path), RowGroupWriter(path, schema, level=level, dictionary=dictionary) as writer:
        for frame in frames:
            writer.write(frame)


class RowGroupWriter:
    """Frames of one schema written to one Parquet file a row group at a time, as they come; flushed to disk on
    a clean exit (see `write_frames`)."""

    def __init__(
        self,
        path: Path,
        schema: pl.Schema | dict[str, pl.DataType],
        *,
        level: int = ZSTD_LEVEL,
        dictionary: tuple[str, ...] = (),
        encodings: dict[str, str] | None = None,
    ) -> None:
        self.path, self.schema = path, schema
        self.columns = [f"{name}.list.element" if isinstance(schema[name], pl.List) else name for name in dictionary]
        self.options = {
            "compression": "zstd",
            "compression_level": level,
            "dictionary_pagesize_limit": DICTIONARY_PAGE_BYTES,
            **({"column_encoding": encodings} if encodings else {}),
        }
        self.held: list[pl.DataFrame] = []
        self.rows = 0

    def __enter__(self) -> RowGroupWriter:
        arrow_schema = pl.DataFrame(schema=self.schema).to_arrow().schema
        with arrow_writing(self.path):
            self.writer = pq.ParquetWriter(self.path, arrow_schema, use_dictionary=self.columns, **self.options)
        return self

    def write(self, frame: pl.DataFrame) -> None:
        self.held.append(frame)
        self.rows += frame.height
        while self.rows >= ROW_GROUP_SIZE:
            joined = pl.concat(self.held, rechunk=False)
            self._group(joined.slice(0, ROW_GROUP_SIZE))
            self.held, self.rows = [joined.slice(ROW_GROUP_SIZE)], joined.height - ROW_GROUP_SIZE

    def _group(self, frame: pl.DataFrame) -> None:
        with arrow_writing(self.path):
            self.writer.write_table(frame.to_arrow(), row_group_size=ROW_GROUP_SIZE)

    def __exit__(self, kind: object, *_rest: object) -> None:
        with arrow_writing(self.path):
            try:
                if kind is None and self.rows:
                    self._group(pl.concat(self.held, rechunk=False))
            finally:
                self.writer.close()
        if kind is None:
            fsync(self.path)


@contextmanager
def arrow_writing(path: object) -> Iterator[None]:
    """A pyarrow write to `path`: its failure (a full disk, say) is raised as an OSError naming the file. An
    OSError that names a file already (one the frames being written were read from, say) is left as it is."""
    try:
        yield
    except (OSError, pa.ArrowException) as error:
        if isinstance(error, OSError) and error.filename is not None:
            raise
        raise os_error_of(error, path) from None


def sink_parquet(plan: pl.LazyFrame, path: Path, *, level: int = ZSTD_LEVEL, dictionary: tuple[str, ...] = ()) -> None:
    """`write_parquet` for a plan: polars' streaming engine writes its batches as they are made, so the
    table is never held whole in memory; with `dictionary`, its batches go to `write_frames`."""
    with polars_writing(path):
        if dictionary:
            write_frames(plan.collect_batches(), path, plan.collect_schema(), level=level, dictionary=dictionary)
            return
        plan.sink_parquet(path, compression="zstd", compression_level=level, row_group_size=ROW_GROUP_SIZE)
    fsync(path)


class WriteFailed(OSError):
    """A write that failed for a reason its writer did not name as the system's."""


# Free space under which a failed write is taken to have found the disk full: polars does not always say so
# (a page cut short may read "Invalid thrift: transport error").
NEARLY_FULL = 4 * 2**20
# What polars says of bytes it read that are not whole Parquet: a streamed plan's input, not the file written.
READ_DAMAGE = ("out of specification", "magic bytes", "thrift", "decompress", "corrupt")


@contextmanager
def polars_writing(path: object) -> Iterator[None]:
    """A polars write to `path`: its failure (a full disk, say) is raised as an OSError naming the file."""
    try:
        yield
    except pl.exceptions.PolarsError as error:
        found = os_error_of(error, path)
        if isinstance(found, OSError):
            raise found from None
        if isinstance(path, Path) and _free_bytes(path.parent) < NEARLY_FULL:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from None
        said = " ".join(str(error).split())
        if any(word in said.lower() for word in READ_DAMAGE):
            raise  # a plan's input that cannot be read: the reader's error, for the caller to find which file
        raise WriteFailed(errno.EIO, f"writing failed ({said})", str(path)) from None


def _free_bytes(folder: Path) -> int:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return NEARLY_FULL


def os_error_of(error: Exception, path: object) -> Exception:
    """The OSError inside a polars or Arrow error (`… (os error 28)`, `[errno 28]`), naming `path`; else the
    error itself."""
    found = _OS_ERROR.search(str(error))
    if found is None:
        return error
    code = int(found.group(1) or found.group(2))
    return OSError(code, os.strerror(code), str(path))


def publish_frame(
    layout: Layout,
    table: Table,
    day: dt.date,
    frame: pl.DataFrame,
    provenance: dict[str, Any],
    *,
    force: bool = False,
) -> dict[str, Any]:
    """Check `frame` against `table`, publish it as the `day` partition and return its `_meta` record."""
    refuse_if_published(layout, table, day, force=force)
    conformed = conform(frame, table)
    if table.order and not conformed.get_column(table.order).is_sorted():
        conformed = by_row_group(conformed, conformed.get_column(table.order).arg_sort())
    if table is MODELS:
        from warehouse.metadata import publish_models_frame

        return publish_models_frame(layout, day, conformed, provenance, force=force)
    write = partial(write_parquet, conformed, dictionary=table.dictionary)
    return _publish_written(layout, table, day, write, provenance, rows=conformed.height, force=force)


def publish_plan(
    layout: Layout,
    table: Table,
    day: dt.date,
    plan: pl.LazyFrame,
    provenance: dict[str, Any],
    *,
    force: bool = False,
) -> dict[str, Any]:
    """`publish_frame` for a plan: streamed into `_staging`, checked there against `table`, then published."""
    refuse_if_published(layout, table, day, force=force)
    write = partial(sink_parquet, plan, dictionary=table.dictionary)
    return _publish_written(layout, table, day, write, provenance, force=force)


def _publish_written(
    layout: Layout,
    table: Table,
    day: dt.date,
    write: Callable[[Path], None],
    provenance: dict[str, Any],
    *,
    rows: int | None = None,
    force: bool,
) -> dict[str, Any]:
    """`write` a fresh file in `_staging`, publish it, and leave no staged file behind either way."""
    staged = staging_file(layout, table, day)
    try:
        write(staged)
        return publish_staged(layout, table, day, staged, provenance, rows=rows, force=force)
    finally:
        staged.unlink(missing_ok=True)


def check_staged(table: Table, staged: Path) -> int:
    """Validate a staged Parquet file against `table` without loading it whole; return its row count."""
    scan = pl.scan_parquet(staged, glob=False)
    schema = dict(scan.collect_schema())
    if list(schema) != table.columns:
        extra = [c for c in schema if c not in table.schema] or [c for c in table.schema if c not in schema]
        raise SchemaViolation(table.name, extra[0] if extra else "?", 0, "columns differ from the declared schema")
    for name, dtype in table.schema.items():
        if schema[name] != dtype:
            raise SchemaViolation(table.name, name, 0, f"type {schema[name]} is not the declared {dtype}")
    order = [(pl.col(table.order) < pl.col(table.order).shift(1)).sum().alias("disordered")] if table.order else []
    # Rows in the order of their one-column key repeat a key only on neighbouring rows: compared so, the check
    # holds no hash of every key (a 3 M-model file checked in a process of its own: a peak of 0.38 GB, against
    # 0.57 GB counting distinct hashes).
    by_order = table.order is not None and table.key == (table.order,)
    if by_order:
        repeats = (pl.col(table.key[0]) == pl.col(table.key[0]).shift(1)).sum()
    else:
        repeats = pl.len() - key_hash(table.key).n_unique()
    stats = scan.select(
        pl.len().alias("rows"),
        *[pl.col(c).null_count().alias(f"null:{c}") for c in table.not_null],
        repeats.alias("duplicates"),
        *order,
    ).collect(engine="streaming")
    row = stats.row(0, named=True)
    if row["disordered"] if by_order else row["duplicates"]:
        # Out of order, a repeat need not be on a neighbouring row; and hashes can collide: count the keys.
        row["duplicates"] = scan.select(pl.len() - key_of(table.key).n_unique()).collect().item()
    for name in table.not_null:
        if row[f"null:{name}"]:
            raise SchemaViolation(table.name, name, row[f"null:{name}"], "null in a required column")
    if row["duplicates"]:
        raise SchemaViolation(table.name, ",".join(table.key), row["duplicates"], "duplicate key")
    if row.get("disordered"):
        raise SchemaViolation(table.name, table.order, row["disordered"], f"rows out of {table.order} order")
    return int(row["rows"])


def publish_staged(
    layout: Layout,
    table: Table,
    day: dt.date,
    staged: Path,
    provenance: dict[str, Any],
    *,
    rows: int | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Move a validated staged file into its partition atomically, then write `_meta` last.

    A whole `models` file is kept as the day's rows and the metadata they point at (`warehouse.metadata`)."""
    refuse_if_published(layout, table, day, force=force)
    if table is MODELS:
        from warehouse.metadata import publish_models

        return publish_models(layout, day, staged, provenance, force=force)
    if rows is None:
        rows = check_staged(table, staged)
    meta = {
        **base_provenance(),
        **provenance,
        "table": table.name,
        "snapshot_date": day.isoformat(),
        "rows": rows,
        "file": str(layout.partition_file(table, day).relative_to(layout.root)),
        "sha256": sha256_of(staged),
        "published_at": _now(),
    }
    # A replaced date is unpublished until its new record is written: a crash in between leaves a file no
    # record vouches for, which readers skip and the next run publishes again, never the old record
    # describing the new file.
    forget_record(layout.meta_file(table, day))
    forget_listing(layout, table)
    layout.meta_file(table, day).unlink(missing_ok=True)
    place(layout, staged, layout.partition_file(table, day))
    write_json_atomic(layout.meta_file(table, day), meta)
    forget_listing(layout, table)
    return meta


def unpublish(layout: Layout, table: Table, day: dt.date) -> bool:
    """Remove `day` of `table`: its `_meta` record first, so readers stop trusting it at once, then its data.
    Whether there was anything to remove. Call only while holding the writer lock."""
    record, folder = layout.meta_file(table, day), layout.partition_dir(table, day)
    found = record.exists() or folder.exists()
    forget_record(record)
    forget_listing(layout, table)
    record.unlink(missing_ok=True)
    remove_folder(layout, folder)
    forget_listing(layout, table)
    return found


def remove_folder(layout: Layout, folder: Any) -> None:
    """Remove `folder` and everything in it, on local disk or an object store (nothing when it is not there)."""
    if layout.remote:
        if folder.exists():
            folder.fs.rm(folder.path, recursive=True)
        return
    shutil.rmtree(folder, ignore_errors=True)
    if folder.is_symlink() or folder.is_file():  # a file or a link where the folder was
        folder.unlink()


def place(layout: Layout, staged: Path, target: Path) -> None:
    """Move a staged file to `target` in one step: readers see the old file or the new one, never a mix."""
    if layout.remote:
        # No rename on an object store: the upload is one PUT, and readers trust it only once `_meta` exists.
        target.fs.put_file(str(staged), target.path)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)
        fsync(target.parent)


def write_json_atomic(path: Path, payload: dict[str, Any]) -> None:
    """Write JSON through a temporary sibling and a rename, so the file is whole or absent."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str))


def write_text_atomic(path: Path, text: str) -> None:
    """Write UTF-8 text through a temporary sibling and a rename, so the file is whole or absent."""
    write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write bytes through a temporary sibling and a rename, so the file is whole or absent."""
    forget_record(path)
    if not isinstance(path, Path):  # an object store: one PUT is already whole or absent
        path.write_bytes(data)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")  # a name TEMPORARY matches
    try:
        with tmp.open("wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
        fsync(path.parent)
    except OSError as error:
        if error.filename is None:  # a write or flush that failed says not which file: a full disk, say
            raise OSError(error.errno, error.strerror or str(error), str(path)) from None
        raise
    finally:
        tmp.unlink(missing_ok=True)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def fsync(path: Path) -> None:
    """Flush a file, or a directory's entries, to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
