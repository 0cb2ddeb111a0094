"""Scheduling commands: `serve`."""

from __future__ import annotations

from flows.cli import app  # noqa: F401
