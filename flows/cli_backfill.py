"""Backfill and reproduction commands: `import` and `reproduce`."""

from __future__ import annotations

from flows.cli import app  # noqa: F401
