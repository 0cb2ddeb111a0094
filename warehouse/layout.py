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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.tables import Table

DEFAULT_ROOT = "./data"
PART_NAME = "part-00000.parquet"
_DATE_DIR = re.compile(r"^snapshot_date=(\d{4}-\d{2}-\d{2})$")


def resolve_root(root: str | os.PathLike[str] | None = None) -> Any:
    """The warehouse root: the argument, else `MULTIPOLAR_WAREHOUSE`, else `./data` (a Path, or a UPath)."""
    chosen = root if root not in (None, "") else os.environ.get("MULTIPOLAR_WAREHOUSE") or DEFAULT_ROOT
    if "://" in str(chosen):
        from upath import UPath

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
        """A lazy read of one partition, local or remote."""
        return pl.scan_parquet(str(self.partition_file(table, day)))

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
    def trash(self) -> Path:
        return self.staging / "trash"

    @property
    def lock_file(self) -> Path:
        return self.root / "_lock"

    @property
    def dashboard_dir(self) -> Path:
        return self.root / "dashboard"

    def partition_dates(self, table: Table) -> list[dt.date]:
        """Dates that have a partition directory on disk (published or not)."""
        base = self.table_dir(table)
        if not base.is_dir():
            return []
        found = (_DATE_DIR.match(p.name) for p in base.iterdir() if p.is_dir())
        return sorted(dt.date.fromisoformat(m.group(1)) for m in found if m)

    def published_dates(self, table: Table) -> list[dt.date]:
        """Dates whose partition is complete: data on disk and its `_meta` record written last."""
        return [d for d in self.partition_dates(table) if self.meta_file(table, d).is_file()]

    def published_files(self, table: Table) -> list[Path]:
        """The data files of every published partition, oldest first."""
        return [self.partition_file(table, d) for d in self.published_dates(table)]
