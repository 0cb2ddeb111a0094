"""One writer per warehouse: an advisory lock that dies with its process, so a stale lock never blocks."""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from warehouse.layout import Layout


class WarehouseLocked(RuntimeError):
    """Another live process is writing to this warehouse."""


@contextmanager
def writer_lock(layout: Layout, purpose: str, *, wait_seconds: float = 0.0) -> Iterator[None]:
    """Hold the warehouse's writer lock for the block, waiting up to `wait_seconds` for it."""
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(_held_message(layout)) from None
                time.sleep(0.2)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": purpose,
            "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _held_message(layout: Layout) -> str:
    try:
        holder = json.loads(layout.lock_file.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, {holder.get('purpose', 'a write')}"
    return (
        f"another Multipolar process is writing to {layout.root} ({who}, since {holder.get('since', '?')}); "
        "wait for it to finish or pass --wait SECONDS"
    )
