"""What every `_meta` record carries: the code and library versions that produced the partition."""

from __future__ import annotations

import functools
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

LIBRARIES = ("multipolar", "huggingface_hub", "polars", "pyarrow", "duckdb", "prefect", "altair")


@functools.cache
def code_version() -> str:
    """The git commit of the running code (with `+dirty` for local changes), else the package version."""
    here = Path(__file__).resolve().parent.parent
    try:
        sha = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(here), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        return f"{sha}+dirty" if dirty else sha
    except (OSError, subprocess.SubprocessError):
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
