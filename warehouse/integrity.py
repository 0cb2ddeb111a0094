"""Whether every published partition still holds what its `_meta` record vouches for.

A partition's record names its file, its row count and the sha256 of its bytes at publishing. A file cut
short, overwritten or changed by a single bit since then is found by comparing the bytes with that sha256;
the quick check reads only each file's size, its Parquet markers and its footer's row count, which finds
a file cut short or replaced, not one changed in place.
"""

from __future__ import annotations

import contextlib
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.layout import Layout
from warehouse.publish import DamagedRecord, read_record, sha256_of, write_json_atomic
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, CROSSOVERS, MODEL_METADATA, MODELS, REGISTRY, SHARES, Table

MAGIC = b"PAR1"
DATED = (MODELS, REGISTRY, ATTRIBUTIONS, SHARES, CONCENTRATION, CROSSOVERS)
# How each table's partition of a date is made again, when it can be; `models` and `model_metadata` are what
# the Hub served that day, made again by nothing but a backup.
REMAKE = {
    REGISTRY.name: "multipolar attribute --date {date} --force",
    ATTRIBUTIONS.name: "multipolar attribute --date {date} --force",
    SHARES.name: "multipolar metrics --date {date} --force",
    CONCENTRATION.name: "multipolar metrics --date {date} --force",
    CROSSOVERS.name: "multipolar metrics --date {date} --force",
}
RESTORE = "restore it from a backup: what the Hub served then cannot be fetched again"


@dataclass(frozen=True)
class Partition:
    """One published file: a table's date, or a version of `model_metadata`."""

    table: Table
    name: str  # the date (YYYY-MM-DD) or `version-NNNNNN`
    file: Any  # Path or UPath
    meta_file: Any

    @property
    def mend(self) -> str:
        remake = REMAKE.get(self.table.name)
        return f"make it again: {remake.format(date=self.name)}" if remake else RESTORE


@dataclass(frozen=True)
class Problem:
    """What is wrong with one published partition, and how to mend it."""

    table: str
    partition: str
    file: str
    what: str
    mend: str

    def __str__(self) -> str:
        return f"{self.table} {self.partition}: {self.file} {self.what}; {self.mend}"


@dataclass(frozen=True)
class Report:
    """What a check of a warehouse found."""

    partitions: int
    bytes: int
    problems: list[Problem]


def published_partitions(layout: Layout) -> list[Partition]:
    """Every partition readers trust (its data and its `_meta` record), every table, oldest first."""
    found = [
        Partition(table, day.isoformat(), layout.partition_file(table, day), layout.meta_file(table, day))
        for table in DATED
        for day in layout.published_dates(table)
    ]
    found += [
        Partition(
            MODEL_METADATA,
            f"version-{version:06d}",
            layout.version_file(MODEL_METADATA, version),
            layout.version_meta_file(MODEL_METADATA, version),
        )
        for version in layout.published_versions(MODEL_METADATA)
    ]
    return found


# On an object store, the ETags of the records found whole before, in the local staging: a record whose
# ETag is the same holds the same bytes, so it is not fetched again.
RECORDS_READ = "records-read.json"


def check_records(layout: Layout) -> None:
    """Read the record of every published partition: the first damaged one raises its DamagedRecord.

    On an object store, only the records that changed since this machine last found them whole: their ETags
    come with the listing (a request per 1,000 records), and over a year of dates on S3 on loopback a writer
    starts in 2–3 s rather than 8 s (BENCHMARKS.md)."""
    partitions = published_partitions(layout)
    if not layout.remote:
        for partition in partitions:
            read_record(partition.meta_file)
        return
    fs = layout.root.fs
    layout.list_afresh([])  # every `_meta` record with its ETag, a request per 1,000
    seen_file = layout.staging / RECORDS_READ
    try:
        seen = json.loads(seen_file.read_text())
    except (OSError, ValueError):  # none yet, or cut short: every record is read
        seen = {}
    seen = seen if isinstance(seen, dict) else {}

    def etag(partition: Partition) -> str | None:
        try:
            return fs.info(partition.meta_file.path).get("ETag")
        except FileNotFoundError:
            return None

    tags = {partition.meta_file.path: etag(partition) for partition in partitions}
    changed = [
        p for p in partitions if not tags[p.meta_file.path] or seen.get(p.meta_file.path) != tags[p.meta_file.path]
    ]
    layout.each(lambda partition: read_record(partition.meta_file), changed)
    with contextlib.suppress(OSError):
        write_json_atomic(seen_file, {path: tag for path, tag in tags.items() if tag is not None})


def check_warehouse(layout: Layout, *, full: bool = True) -> Report:
    """Check every published partition against its record; `full` compares every byte with the recorded sha256,
    else only sizes, Parquet markers and row counts."""
    partitions = published_partitions(layout)
    if layout.remote:
        results = layout.each(lambda p: _check(p, full), partitions)
    else:
        with ThreadPoolExecutor(max_workers=2) as pool:  # hashlib lets go of the GIL while it hashes
            results = list(pool.map(lambda p: _check(p, full), partitions))
    problems = [problem for problem, _ in results if problem is not None]
    problems += _without_models(layout, partitions)
    return Report(len(partitions), sum(size for _, size in results), problems)


def _without_models(layout: Layout, partitions: list[Partition]) -> list[Problem]:
    """Derived partitions of a date whose `models` are not published (a replacement that stopped part way)."""
    days = {day.isoformat() for day in layout.published_dates(MODELS)}
    return [
        Problem(
            p.table.name,
            p.name,
            str(p.file),
            "is published for a date whose models are not",
            f"publish the date's models again, or remove the date: multipolar remove --date {p.name}",
        )
        for p in partitions
        if p.table not in (MODELS, MODEL_METADATA) and p.name not in days
    ]


def _check(partition: Partition, full: bool) -> tuple[Problem | None, int]:
    """What is wrong with `partition` (None when nothing is) and its size in bytes."""

    def problem(what: str, mend: str | None = None) -> Problem:
        return Problem(partition.table.name, partition.name, str(partition.file), what, mend or partition.mend)

    try:
        record = read_record(partition.meta_file)
    except DamagedRecord as error:
        return Problem(
            partition.table.name, partition.name, str(partition.meta_file), f"is damaged ({error.why})", error.mend
        ), 0
    if record is None:  # unpublished while being checked
        return None, 0
    try:
        size = partition.file.stat().st_size
    except FileNotFoundError:
        return problem("is missing"), 0
    try:
        with partition.file.open("rb") as source:
            what = _examine(source, size, record)
        recorded = record.get("sha256")
        if what is None and full and recorded and (found := sha256_of(partition.file)) != recorded:
            what = f"has changed since it was published (sha256 {found[:12]}…, recorded {recorded[:12]}…)"
    except OSError as error:
        what = f"cannot be read ({error.strerror or error})"
    return (None if what is None else problem(what)), size


def _examine(source: Any, size: int, record: dict[str, Any]) -> str | None:
    """What is wrong with the open file `source` against its `_meta` record's row count, or None."""
    head = source.read(len(MAGIC))
    source.seek(max(size - len(MAGIC), 0))
    tail = source.read(len(MAGIC))
    if size < 2 * len(MAGIC) or head != MAGIC or tail != MAGIC:
        return f"is not a whole Parquet file ({size:,} bytes, no Parquet marker at its {_ends(head, tail)})"
    try:
        rows = pq.read_metadata(source).num_rows
    except (pa.ArrowException, OSError) as error:
        return f"has a damaged Parquet footer ({' '.join(str(error).split())})"
    if record.get("rows") is not None and rows != record["rows"]:
        return f"holds {rows:,} rows where its record says {record['rows']:,}"
    return None


def _ends(head: bytes, tail: bytes) -> str:
    if head != MAGIC and tail != MAGIC:
        return "start or end"
    return "start" if head != MAGIC else "end: cut short?"
