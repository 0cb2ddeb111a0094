"""Paths are identity: the one place that turns (table, snapshot date) into a location.

The root is a local folder or an object store (`s3://bucket/prefix`, credentials and endpoint from the
usual AWS variables). Work in progress (`_staging`) always stays on local disk: beside the data for a
local root, under `$MULTIPOLAR_STAGING` (default `~/.cache/multipolar/staging/<root hash>`) otherwise.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import polars as pl

from warehouse.tables import Table

DEFAULT_ROOT = "./data"
PART_NAME = "part-00000.parquet"
_DATE_DIR = re.compile(r"^snapshot_date=(\d{4}-\d{2}-\d{2})$")
_VERSION_DIR = re.compile(r"^version-(\d{6})$")
_BUCKET = re.compile(r"[a-zA-Z0-9.\-_]{1,255}")  # the names the S3 client accepts
REQUESTS_AT_ONCE = 16  # small reads sent to an object store at once (`Layout.each`)
T = TypeVar("T")
R = TypeVar("R")


class WarehouseRefused(ValueError):
    """A warehouse root that cannot be used as given."""


def resolve_root(root: str | os.PathLike[str] | None = None) -> Any:
    """The warehouse root: the argument, else `MULTIPOLAR_WAREHOUSE`, else `./data` (a Path, or a UPath)."""
    chosen = root if root not in (None, "") else os.environ.get("MULTIPOLAR_WAREHOUSE") or DEFAULT_ROOT
    if "://" in str(chosen):
        from upath import UPath

        scheme, _, rest = str(chosen).partition("://")
        bucket = rest.partition("/")[0]
        # Credentials run up to an @, which may come after a slash: an AWS secret key often holds one.
        userinfo, at, _ = rest.partition("@")
        if at and ":" in userinfo:
            # Not repeated: it would be printed, and kept in Prefect's database with the flow run's parameters.
            raise WarehouseRefused(
                "the warehouse URL carries credentials (user:secret@bucket): give them in the usual variables "
                "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) instead"
            )
        if scheme.lower() in ("s3", "s3a") and not _BUCKET.fullmatch(bucket):
            shown = chosen if "@" not in rest else f"{scheme}://(not shown)"
            raise WarehouseRefused(
                f"an object-store warehouse cannot be at {shown}: an S3 bucket is named by letters, digits, dots, "
                "hyphens and underscores alone; give s3://bucket/prefix"
            )
        if found := sorted(set("*?[") & set(str(chosen))):
            raise WarehouseRefused(
                f"an object-store warehouse cannot be at {chosen}: its files are read through glob patterns, "
                f"where {' and '.join(found)} would be read as patterns, not as the path; choose a prefix without them"
            )
        return UPath(str(chosen).rstrip("/"))
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class Layout:
    """Locations inside one warehouse root."""

    root: Any  # Path for a local folder, UPath for an object store

    @classmethod
    def at(cls, root: str | os.PathLike[str] | None = None) -> Layout:
        return cls(resolve_root(root))

    @property
    def remote(self) -> bool:
        """Whether the root is an object store (no rename, no flock)."""
        return not isinstance(self.root, Path)

    def scan(self, table: Table, day: dt.date) -> pl.LazyFrame:
        """A lazy read of one partition, local or remote; `models` with each model's metadata in its row."""
        if table.name == "models":
            from warehouse.metadata import scan_models

            return scan_models(self, day)
        return pl.scan_parquet(str(self.partition_file(table, day)), glob=False)

    def table_dir(self, table: Table) -> Path:
        return self.root / table.location

    def partition_dir(self, table: Table, day: dt.date) -> Path:
        return self.table_dir(table) / f"snapshot_date={day.isoformat()}"

    def partition_file(self, table: Table, day: dt.date) -> Path:
        return self.partition_dir(table, day) / PART_NAME

    def meta_dir(self, table: Table) -> Path:
        return self.root / "_meta" / table.name

    def meta_file(self, table: Table, day: dt.date) -> Path:
        return self.meta_dir(table) / f"{day.isoformat()}.json"

    def version_file(self, table: Table, version: int) -> Path:
        """The file of one version of a table kept by version rather than by date (`model_metadata`)."""
        return self.table_dir(table) / f"version-{version:06d}" / PART_NAME

    def version_meta_file(self, table: Table, version: int) -> Path:
        return self.meta_dir(table) / f"version-{version:06d}.json"

    def published_versions(self, table: Table) -> list[int]:
        """Versions on disk with their `_meta` record, oldest first."""
        found = map(_VERSION_DIR.match, _names(self.table_dir(table), folders=True))
        versions = sorted(int(m.group(1)) for m in found if m)
        recorded = _names(self.meta_dir(table))
        return [v for v in versions if f"version-{v:06d}.json" in recorded]

    def version_numbers(self, table: Table) -> list[int]:
        """Every version with a folder or a `_meta` record, published or left by a write that stopped."""
        base, meta = self.table_dir(table), self.meta_dir(table)
        names = _names(base) | {name.removesuffix(".json") for name in _names(meta)}
        return sorted({int(m.group(1)) for m in map(_VERSION_DIR.match, names) if m})

    @property
    def staging(self) -> Path:
        if not self.remote:
            return self.root / "_staging"
        base = os.environ.get("MULTIPOLAR_STAGING") or Path.home() / ".cache" / "multipolar" / "staging"
        return Path(base) / hashlib.sha256(str(self.root).encode()).hexdigest()[:16]

    def crawl_staging(self, day: dt.date) -> Path:
        """Work in progress of one date's crawl: page files and the cursor checkpoint."""
        return self.staging / "crawl" / day.isoformat()

    @property
    def lock_file(self) -> Path:
        return self.root / "_lock"

    @property
    def dashboard_dir(self) -> Path:
        return self.root / "dashboard"

    def partition_dates(self, table: Table) -> list[dt.date]:
        """Dates that have a partition directory on disk (published or not)."""
        found = map(_DATE_DIR.match, _names(self.table_dir(table), folders=True))
        return sorted(dt.date.fromisoformat(m.group(1)) for m in found if m)

    def published_dates(self, table: Table) -> list[dt.date]:
        """Dates whose partition is complete: data on disk and its `_meta` record written last. The records
        are listed once, not looked up a date at a time (a request each on an object store); within
        `listings_kept`, once for the pass."""
        kept, key = _LISTED.get(), _listing_key(self, table)
        if kept is not None and key in kept:
            return list(kept[key])
        recorded = _names(self.meta_dir(table))
        dates = [d for d in self.partition_dates(table) if f"{d.isoformat()}.json" in recorded]
        if kept is not None:
            kept[key] = tuple(dates)
        return dates

    def date_before(self, table: Table, day: dt.date) -> dt.date | None:
        """The latest published date of `table` before `day` (published or not itself), or None."""
        earlier = [d for d in self.published_dates(table) if d < day]
        return earlier[-1] if earlier else None

    def list_afresh(self, tables: Iterable[Table]) -> None:
        """On an object store, forget what was listed before and list every file of `tables` and every `_meta`
        record anew, a request per 1,000 files: looking one up or opening it then needs no request of its
        own for its size, date and ETag."""
        if not self.remote:
            return
        fs = self.root.fs
        fs.invalidate_cache()
        locations = sorted({"_meta", *(t.location for t in tables)})
        self.each(lambda location: fs.find(f"{self.root.path}/{location}"), locations)

    def each(self, work: Callable[[T], R], items: Iterable[T]) -> list[R]:
        """`work` on every item, in order; on an object store a few at a time, as each waits on requests."""
        if not self.remote:
            return [work(item) for item in items]
        with ThreadPoolExecutor(max_workers=REQUESTS_AT_ONCE) as pool:
            return list(pool.map(work, items))

    def published_files(self, table: Table) -> list[Path]:
        """The data files of every published partition, oldest first."""
        return [self.partition_file(table, d) for d in self.published_dates(table)]


def file_version(path: Any) -> tuple[object, object] | None:
    """Which file `path` is now: its inode and mtime on local disk, its ETag and time on an object store; None
    when there is none. A file replaced (renamed into place) is another version, which a reader that opens a
    file more than once compares before and after, to read again what a replacement overlapped."""
    try:
        if isinstance(path, Path):
            status = path.stat()
            return status.st_ino, status.st_mtime_ns
        info = path.fs.info(path.path)
    except FileNotFoundError:
        return None
    return info.get("ETag"), str(info.get("LastModified"))


_LISTED: ContextVar[dict[tuple[str, str], tuple[dt.date, ...]] | None] = ContextVar("listed", default=None)


def _listing_key(layout: Layout, table: Table) -> tuple[str, str]:
    return str(layout.meta_dir(table)), str(layout.table_dir(table))


@contextmanager
def listings_kept() -> Iterator[None]:
    """Within it, `Layout.published_dates` lists each table once and gives the same dates after, until this
    process publishes or removes one of its dates (`forget_listing`): for a pass that asks, for each date, for
    the dates of every table (`flows.steps.out_of_date`)."""
    token = _LISTED.set({})
    try:
        yield
    finally:
        _LISTED.reset(token)


def forget_listing(layout: Layout, table: Table) -> None:
    """List `table` afresh next time within `listings_kept`: one of its dates is being published or removed."""
    if (kept := _LISTED.get()) is not None:
        kept.pop(_listing_key(layout, table), None)


def _names(folder: Any, *, folders: bool = False) -> set[str]:
    """The names in `folder` (only its sub-folders', `folders`), from one listing; empty when it does not
    exist. No path is made per name: on an object store, making one costs about 0.1 ms, a second or two for
    a year of every table's dates."""
    if isinstance(folder, Path):
        try:
            with os.scandir(folder) as entries:
                return {e.name for e in entries if not folders or e.is_dir()}
        except (FileNotFoundError, NotADirectoryError):
            return set()
    try:
        entries = folder.fs.ls(folder.path, detail=True)
    except FileNotFoundError:
        return set()
    return {e["name"].rstrip("/").rsplit("/", 1)[-1] for e in entries if not folders or e["type"] == "directory"}
