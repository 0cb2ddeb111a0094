"""One writer per warehouse: an advisory lock that dies with its process, so a stale lock never blocks.

On a local root it is `flock` on `<root>/_lock`. An object store has no flock: the lock is the `_lock`
object itself, created only if absent (a conditional PUT), naming its holder; it is stale, and taken
over, when its holder is a dead process on this host or older than `MULTIPOLAR_LOCK_TTL_HOURS` (12).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import signal
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psutil

from warehouse.layout import Layout


class WarehouseLocked(RuntimeError):
    """Another live process is writing to this warehouse."""


class RemovalUnfinished(WarehouseLocked):
    """A removal of a date stopped part way: no other writer may start until it is finished."""


# Written by a removal as it starts and removed once it is done: while it is there, the removal is unfinished.
REMOVAL = "_meta/removing.json"


def removal_unfinished_said(layout: Layout, removing: str) -> str:
    """The line of every writer refused by a removal of `removing` that stopped part way."""
    return (
        f"a removal of {removing} from {layout.root} stopped part way; finish it first: "
        f"multipolar remove --date {removing}"
    )


def unfinished_removal(layout: Layout) -> str | None:
    """The date of a removal that stopped part way, or None."""
    marker = layout.root / REMOVAL
    try:
        return str(json.loads(marker.read_text())["date"]) if marker.exists() else None
    except (OSError, ValueError, KeyError, TypeError):
        return "?"


def writer_at_work(layout: Layout) -> dict | None:
    """Who holds the writer lock, when a live writer does (its pid, host, purpose and since); else None. Read
    without taking the lock, so that no writer starting meanwhile finds it held."""
    if layout.remote:
        raw, holder = _read_lock(layout.lock_file)
        return holder if raw is not None and not _stale(holder) else None
    try:
        holder = json.loads(layout.lock_file.read_text() or "{}")
    except (OSError, ValueError):
        return None
    if not isinstance(holder, dict) or not holder:
        return None  # no writer holds it: the holder is erased as the lock is let go
    if holder.get("host") != socket.gethostname():
        return holder  # a process of another machine, which cannot be looked up from here
    return None if _holder_gone(holder) else holder


def _holder_gone(holder: dict) -> bool:
    """Whether the writer `holder` names, a process of this host, is gone: no process has its pid, or the one that
    has it is a zombie (a writer killed holding the lock, not yet reaped) or started at another moment than the
    writer did (its pid used again, as in a container started anew under the same host name, whose first
    processes take the same pids)."""
    try:
        pid = int(holder.get("pid", 0))
    except (ValueError, TypeError):
        return True
    if pid <= 0:
        return True
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return True
        started = holder.get("started_after_boot")
        return isinstance(started, int | float) and abs(_after_boot(process) - started) > STARTED_WITHIN
    except psutil.NoSuchProcess:
        return True
    except psutil.AccessDenied:
        return False  # alive, another user's


def _after_boot(process: psutil.Process) -> float:
    """How long after the machine booted `process` started, as the kernel keeps it: no step of the clock moves it,
    where its start as a date (`create_time`, reckoned from a boot time the clock's steps move) would tell a live
    writer, its host's clock set by a second or more since it took the lock, from the process it is."""
    return process.create_time() - psutil.boot_time()


# How far apart two readings of one process's start may be (the boot time is told in whole seconds). A pid used
# again by a later process is so much later that its writer had time to take the lock and die.
STARTED_WITHIN = 1.0


@contextmanager
def writer_lock(layout: Layout, purpose: str, *, wait_seconds: float = 0.0) -> Iterator[float]:
    """Hold the warehouse's writer lock for the block, waiting up to `wait_seconds` for it; gives the seconds it
    waited for another writer to let it go (not those it then takes reading the records, which a writer spends
    whether or not another held the lock). Every published record is read first: a damaged one (DamagedRecord)
    stops the writer before it writes anything, rather than part way, when it comes to read it. What a killed
    writer left in `_staging/publish`, and the temporary siblings of the files it was writing whole, are removed."""
    from warehouse.integrity import check_records
    from warehouse.publish import clear_publish_staging, clear_write_leftovers

    with _exit_on_stop(), _writer_lock(layout, purpose, wait_seconds=wait_seconds) as waited:
        removing = unfinished_removal(layout)
        if removing is not None and not purpose.startswith("remove "):
            raise RemovalUnfinished(removal_unfinished_said(layout, removing))
        check_records(layout)
        # Files a writer killed mid-publish left behind: no writer but this one can be using them now.
        clear_publish_staging(layout)
        clear_write_leftovers(layout)  # and the temporary siblings of the files it was writing whole
        yield waited


@contextmanager
def _exit_on_stop() -> Iterator[None]:
    """A SIGTERM (`kill`, a scheduler's timeout, a pod stopped) or a SIGHUP (a closed terminal, a dropped ssh session)
    exits the block through `finally`, with code 143 or 129, so the lock is let go: an object-store lock left
    behind holds off the writers of every other host until its TTL. A handler already set (a refresh's, Prefect's,
    `nohup`'s) is left as it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    ours = [s for s in (signal.SIGTERM, signal.SIGHUP) if signal.getsignal(s) == signal.SIG_DFL]
    for stop in ours:
        signal.signal(stop, _exit)
    try:
        yield
    finally:
        for stop in ours:
            signal.signal(stop, signal.SIG_DFL)


@contextmanager
def _writer_lock(layout: Layout, purpose: str, *, wait_seconds: float = 0.0) -> Iterator[float]:
    if layout.remote:
        with _object_lock(layout, purpose, wait_seconds) as waited:
            yield waited
        return
    layout.root.mkdir(parents=True, exist_ok=True)
    fd = os.open(layout.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        asked = time.monotonic()
        deadline = asked + wait_seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise WarehouseLocked(_held_message(layout, wait_seconds)) from None
                time.sleep(0.2)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder(purpose)).encode(), 0)
        waited = time.monotonic() - asked
        try:
            yield waited
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _holder(purpose: str) -> dict[str, object]:
    return {
        "pid": os.getpid(),
        "started_after_boot": _after_boot(psutil.Process()),  # tells this process from a later one given its pid
        "host": socket.gethostname(),
        "purpose": purpose,
        "since": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "token": uuid.uuid4().hex,  # this holding of the lock, told apart from every other
    }


def _stale(holder: dict) -> bool:
    """A lock object whose holder is gone: a process of this host that is no more, or older than the TTL."""
    try:
        since = dt.datetime.fromisoformat(str(holder.get("since")))
    except ValueError:
        return True
    ttl = dt.timedelta(hours=float(os.environ.get("MULTIPOLAR_LOCK_TTL_HOURS", "12")))
    if dt.datetime.now(dt.UTC) - since > ttl:
        return True
    return holder.get("host") == socket.gethostname() and _holder_gone(holder)


def _read_lock(lock) -> tuple[bytes | None, dict]:
    """The lock object's bytes (None when there is none) and the holder they name ({} when unreadable)."""
    try:
        raw = lock.fs.cat_file(lock.path)
    except FileNotFoundError:
        return None, {}
    try:
        holder = json.loads(raw or b"{}")
    except ValueError:
        holder = {}
    return raw, holder if isinstance(holder, dict) else {}


# A takeover marker older than this was left by a writer that died taking the lock over: it is removed.
MARKER_GRACE = dt.timedelta(seconds=60)


def _take_over(lock, raw: bytes, ours: dict) -> bool:
    """Remove the stale lock object `raw`, if this process is the one to take it over; whether to try for the
    lock again at once (it removed the lock, or an abandoned marker). Two
    writers may find the same stale lock; each then creates the object `_lock.taken-<sha256 of raw>` only if
    absent (a conditional PUT), and only the one that created it removes the lock, after checking it still holds
    `raw`, then removes its marker. The other waits and tries again, and finds the new holder's lock."""
    marker = f"{lock.path}.taken-{hashlib.sha256(raw).hexdigest()[:32]}"
    try:
        with lock.fs.open(marker, "xb") as handle:
            handle.write(json.dumps(ours).encode())
    except FileExistsError:
        return _clear_abandoned(lock, marker)
    try:
        return _remove_if_unchanged(lock, raw)
    finally:
        lock.fs.rm_file(marker)


def _remove_if_unchanged(lock, raw: bytes) -> bool:
    """Remove the lock object if it still holds `raw`; whether it is gone. On S3, by a DELETE conditional on the
    ETag of the object found holding `raw` (If-Match): a lock another writer made once `raw` was removed is never
    removed, however the requests interleave. A store without conditional deletes removes it after the check."""
    lock.fs.invalidate_cache(lock.path)
    try:
        etag = lock.fs.info(lock.path).get("ETag")  # `raw` never comes back once removed: read after, it is raw's
    except FileNotFoundError:
        return True
    if _read_lock(lock)[0] != raw:
        return False
    call_s3 = getattr(lock.fs, "call_s3", None)
    if not (etag and call_s3):
        lock.fs.rm_file(lock.path)
        return True
    bucket, key, _ = lock.fs.split_path(lock.path)
    try:
        call_s3("delete_object", Bucket=bucket, Key=key, IfMatch=etag)
    except OSError as error:
        if _precondition_failed(error):
            return False
        raise
    finally:
        lock.fs.invalidate_cache(lock.path)
    return True


def _precondition_failed(error: OSError) -> bool:
    """Whether S3 refused a conditional request because the object is not the one it names (HTTP 412)."""
    response = getattr(error.__cause__, "response", None) or {}
    return response.get("Error", {}).get("Code") == "PreconditionFailed" or (
        response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 412
    )


def _clear_abandoned(lock, marker: str) -> bool:
    """Remove `marker` when it is older than MARKER_GRACE (its writer died between taking over and finishing);
    whether it is gone."""
    try:
        made = lock.fs.info(marker).get("LastModified")
    except FileNotFoundError:
        return True
    if isinstance(made, dt.datetime) and dt.datetime.now(dt.UTC) - made.astimezone(dt.UTC) >= MARKER_GRACE:
        lock.fs.rm_file(marker)
        return True
    return False


@contextmanager
def _object_lock(layout: Layout, purpose: str, wait_seconds: float) -> Iterator[float]:
    lock = layout.lock_file
    ours = _holder(purpose)
    mine = json.dumps(ours).encode()
    asked, held = time.monotonic(), False  # held: found held by another writer, and waited for
    deadline = asked + wait_seconds
    while True:
        try:
            with lock.fs.open(lock.path, "xb") as handle:  # conditional PUT: fails if the object exists
                handle.write(mine)
            break
        except FileExistsError:
            held = True
            raw, holder = _read_lock(lock)
            if raw is None:  # released meanwhile
                continue
            if holder and _stale(holder) and _take_over(lock, raw, ours):
                continue
            if time.monotonic() >= deadline:
                raise WarehouseLocked(_held_message(layout, wait_seconds)) from None
            time.sleep(0.5)
    # What this process listed before it held the lock may be out of date: a writer starts from the store as it is.
    lock.fs.invalidate_cache()
    _HELD.append((lock, mine))
    try:
        yield time.monotonic() - asked if held else 0.0  # not the first request's own time (a connection made)
    finally:
        _HELD.remove((lock, mine))
        # Only a lock this holding made is removed: past the TTL, another writer may have taken it over.
        _remove_if_unchanged(lock, mine)


# The object-store locks this process holds, each with the bytes it made it of.
_HELD: list[tuple[Any, bytes]] = []


def let_go_before_dying() -> None:
    """Remove the object-store lock this process holds, if any, while it is still its own: for a process about to
    kill itself (a run whose `serve` is gone), which would leave it to hold off the writers of other hosts until
    its TTL. A local lock needs nothing: it goes with its process."""
    for lock, mine in list(_HELD):
        with contextlib.suppress(Exception):  # the store may not answer: the process dies all the same
            _remove_if_unchanged(lock, mine)


def let_go_of_gone_runs(layout: Layout, *, within: float = 10.0) -> bool:
    """Remove the object-store lock a process of this host died holding, waiting up to `within` seconds while its
    holder is a live child of this process: for `serve`, whose running refresh Prefect kills outright as serve
    stops (a pod replaced), so that the run cannot let the lock go itself and other hosts' writers would be refused
    until its TTL. A local lock needs nothing: it goes with its process. Whether a lock was removed."""
    if not layout.remote:
        return False
    lock = layout.lock_file
    deadline = time.monotonic() + within
    while True:
        lock.fs.invalidate_cache(lock.path)
        raw, holder = _read_lock(lock)
        if raw is None or holder.get("host") != socket.gethostname():
            return False
        if _holder_gone(holder):
            return _remove_if_unchanged(lock, raw)
        if time.monotonic() >= deadline or not _a_child(holder):
            return False
        time.sleep(0.2)


def _a_child(holder: dict) -> bool:
    """Whether the process `holder` names is a child (or a child's child) of this process."""
    try:
        return int(holder.get("pid", 0)) in {child.pid for child in psutil.Process().children(recursive=True)}
    except (ValueError, TypeError, psutil.Error):
        return False


def _held_message(layout: Layout, waited: float) -> str:
    try:
        holder = json.loads(layout.lock_file.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    who = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')}, {holder.get('purpose', 'a write')}"
    if waited > 0:
        advice = f"still there after waiting {waited:g} s: wait for it to finish, or wait longer (--wait SECONDS)"
    else:
        advice = "wait for it to finish (`refresh` and `import` can wait: --wait SECONDS)"
    return f"another Multipolar process is writing to {layout.root} ({who}, since {holder.get('since', '?')}); {advice}"
