"""What every `_meta` record carries: the code and library versions that produced the partition."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable

LIBRARIES = ("multipolar", "huggingface_hub", "polars", "pyarrow", "duckdb", "prefect", "altair")

# What a dashboard or report says of data that is not a crawl of the real Hub, by `_meta.source_kind`.
SOURCE_LABELS = {
    "standin": "Stand-in Hub data — not the real Hub",
    "synthetic": "Synthetic data — not the real Hub",
    "import": "Imported data — not crawled from the Hub by this project",
}
UNRECORDED_SOURCE = "Data source not recorded — treat these numbers as unverified"


def series_source_kind(kinds: Iterable[str]) -> str:
    """The one source kind a series of dates is labelled by: `hub` only when every date is the real Hub's,
    else the least trustworthy kind among them (a kind no code writes before any other)."""
    others = set(kinds) - {"hub"}
    if not others:
        return "hub"
    return next(k for k in (*sorted(others - set(SOURCE_LABELS)), "synthetic", "import", "standin") if k in others)


def source_label(kind: object) -> str | None:
    """The visible warning for data of source kind `kind` (None for the real Hub)."""
    if kind == "hub":
        return None
    return SOURCE_LABELS.get(str(kind), UNRECORDED_SOURCE)


@functools.cache
def code_version() -> str:
    """The git commit of the running code (with `+dirty` for local changes, `+unchecked` when git cannot say
    whether there are any), else the package version. Only a checkout of Multipolar itself is asked: code
    installed or copied into another repository (a wheel in a project's virtual environment, an export) is
    not that repository's commit."""
    here = Path(__file__).resolve().parent.parent
    try:
        top = _git(here, "rev-parse", "--show-toplevel")
        if top.returncode or Path(top.stdout.strip()).resolve() != here:
            return _package_version()
        if _git(here, "ls-files", "--error-unmatch", "warehouse/provenance.py").returncode:
            return _package_version()  # this file is not the checkout's own
        head = _git(here, "rev-parse", "HEAD")
        if head.returncode:
            return _package_version()
        status = _git(here, "status", "--porcelain", "--untracked-files=no")
        sha = head.stdout.strip()
        if status.returncode:
            return f"{sha}+unchecked"
        return f"{sha}+dirty" if status.stdout.strip() else sha
    except (OSError, subprocess.SubprocessError):
        return _package_version()


def short_code_version() -> str:
    """`code_version()` with the commit cut to 12 characters, and its `+dirty` or `+unchecked` kept; else the
    package version alone."""
    version = code_version()
    sha, plus, state = version.partition("+")
    if len(sha) == 40 and all(c in "0123456789abcdef" for c in sha):
        return sha[:12] + plus + state
    return version.removeprefix("multipolar ")


def _git(here: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # A checkout another user owns (a shared one a service account runs, one mounted into a container) is one git
    # refuses to read ("dubious ownership"), which would record a dirty tree as the package version. Its code is
    # running already, so trusting the checkout's own git config for these reads adds nothing to trust.
    command = ["git", "-c", f"safe.directory={here}", "-C", str(here), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=5)


def _package_version() -> str:
    return f"multipolar {_version('multipolar')}"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "unknown"


@functools.cache
def library_versions() -> dict[str, str]:
    """Versions of the libraries that shape the data."""
    return {name: _version(name) for name in LIBRARIES} | {"python": platform.python_version()}


def base_provenance() -> dict[str, Any]:
    """Fields common to every `_meta` record."""
    return {"code_version": code_version(), "libraries": library_versions()}
