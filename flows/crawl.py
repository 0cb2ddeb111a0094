"""A resumable crawl: listing pages stream into `_staging`, with the cursor checkpointed after each page."""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from queue import Full, Queue
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from flows import hub
from flows.rows import RowReport, kept_head, model_rows
from flows.scope import Scope
from warehouse.layout import Layout
from warehouse.provenance import code_version
from warehouse.publish import (
    PAGE_ZSTD_LEVEL,
    DamagedRecord,
    polars_writing,
    read_meta,
    staging_file,
    write_frames,
    write_json_atomic,
    write_parquet,
)
from warehouse.tables import MODELS

CHECKPOINT = "checkpoint.json"


@dataclass
class CrawlState:
    """The checkpoint: which listing, which page, and the URL of the next page to fetch."""

    endpoint: str
    scope: str
    started_at: str
    listing: int = 0
    next_url: str | None = None
    pages: int = 0
    items: int = 0
    requests: int = 0
    done: bool = False
    resumed: int = 0
    seconds: float = 0.0
    report: dict[str, dict[str, int]] = field(default_factory=lambda: {"dropped": {}, "blanked": {}})
    code_versions: list[str] = field(default_factory=list)  # of every run that fetched pages of this crawl
    # The query parameters of each listing as this crawl asks them, which its next-page links carry on; None in a
    # checkpoint written before they were kept.
    queries: list[list[list[str]]] | None = None

    @classmethod
    def load(cls, path: Path) -> CrawlState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            return None


class StagedPageUnreadable(RuntimeError):
    """A page the crawl staged cannot be read back."""


@dataclass
class CrawlResult:
    """What the crawl staged: the page files, counts and the checkpointed state."""

    staging: Path
    state: CrawlState


ProgressFn = Callable[[CrawlState, int], None]


# The statuses of a Hub that refuses a request as malformed, as it does a cursor it no longer takes.
CURSOR_REFUSED = (400, 410, 422)


def crawl_to_staging(
    layout: Layout,
    day: dt.date,
    scope: Scope,
    endpoint: str,
    *,
    token: str | None = None,
    progress: ProgressFn | None = None,
    overlap: bool = True,
) -> CrawlResult:
    """Fetch every page of `scope` into `_staging/crawl/<day>`, resuming a checkpoint of the same query.

    A finished crawl whose snapshot is published already (a run killed after publishing it, before removing
    its staging) is not resumed: its pages are the old ones, so the crawl starts afresh.

    A listing without a limit is fetched ahead (`overlap`): each page is requested as soon as the page
    before names it, and converted and written while the next one is on its way. Without `overlap`,
    pages are fetched one after another, as a listing with a limit always is.
    """
    hub.configure_client()
    folder = layout.crawl_staging(day)
    asked = listing_queries(scope)
    state = CrawlState.load(folder / CHECKPOINT)
    if state is not None and state.done and is_published_crawl(layout, day, state):
        state = None
    if state is not None and (state.endpoint, state.scope) == (endpoint, scope.text) and state.queries != asked:
        # Begun by code that asked the Hub for other fields (before `private` was asked, say): its pages lack them,
        # and its next-page link would go on asking what that code asked, to the last page.
        logging.getLogger("multipolar.crawl").warning(
            "discarded the crawl of %s left in %s (%s pages): it was begun asking the Hub %s, not what this code "
            "asks; %s is crawled afresh",
            day,
            folder,
            state.pages,
            "a query that was not recorded" if state.queries is None else "another query",
            day,
        )
        state = None
    if state is not None and not state.done and (state.endpoint, state.scope) != (endpoint, scope.text):
        logging.getLogger("multipolar.crawl").warning(
            "discarded the unfinished crawl of %s left in %s (%s pages of scope %s from %s): this one is of scope %s "
            "from %s, and starts afresh",
            day,
            folder,
            state.pages,
            state.scope,
            state.endpoint,
            scope.text,
            endpoint,
        )
    if state is not None and (state.endpoint, state.scope) == (endpoint, scope.text):
        if not state.done:
            _discard_unrecorded(folder, state.pages)
        if state.pages and (damaged := _unreadable_page(folder)):
            # A page the checkpoint counts whose file cannot be read (cut short, overwritten): every page is
            # fetched again, as which pages the damage reached cannot be told.
            logging.getLogger("multipolar.crawl").warning(
                "discarded the crawl of %s left in %s: its page %s cannot be read (%s); %s is crawled afresh",
                day,
                folder,
                damaged[0].name,
                damaged[1],
                day,
            )
            state = None
    if state is None or (state.endpoint, state.scope) != (endpoint, scope.text):
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True, exist_ok=True)
        state = CrawlState(endpoint=endpoint, scope=scope.text, started_at=_now(), queries=asked)
        _save(folder, state)
    elif not state.done:
        state.resumed += 1
    if not state.done and code_version() not in state.code_versions:
        # A crawl resumed by other code: its pages were converted by each, and the record says so.
        if state.pages and not state.code_versions:
            state.code_versions.append("unrecorded")  # a checkpoint written before the versions were kept
        state.code_versions.append(code_version())
        _save(folder, state)

    resumed_at = state.pages
    headers = hub.request_headers(token, endpoint)
    report = RowReport()
    report.dropped.update(state.report["dropped"])
    report.blanked.update(state.report["blanked"])
    try:
        _crawl(folder, state, scope, endpoint, headers, report, overlap=overlap, progress=progress)
    except hub.HubError as error:
        if state.resumed and state.pages == resumed_at and error.status in CURSOR_REFUSED:
            # The Hub refused the first request after resuming: it may no longer take the checkpoint's next-page
            # link (an expired cursor), and every later run would resume from it again. A server error, a
            # missing page or a failed connection says nothing of the cursor: the next run resumes.
            raise hub.HubError(
                f"{error}; the crawl resumed from its checkpoint in {folder}, whose next-page link the Hub may no "
                f"longer accept: remove that folder to crawl {day} from the start"
            ) from None
        raise
    return CrawlResult(folder, state)


def _crawl(
    folder: Path,
    state: CrawlState,
    scope: Scope,
    endpoint: str,
    headers: dict[str, str],
    report: RowReport,
    *,
    overlap: bool,
    progress: ProgressFn | None,
) -> None:
    """Fetch the listings' pages from where `state` stands, writing each page and the checkpoint after it."""
    began = time.monotonic()
    sent_before = hub.REQUESTS.value - state.requests  # the state counts every request sent, retries included
    while not state.done:
        listing = scope.listings[state.listing]
        # A listing with a limit may stop before its last page: fetch it page by page, never one too many.
        ahead = overlap and listing.limit is None
        listed = hub.pages(endpoint, listing, headers, start_url=state.next_url, ahead=ahead)
        # The models a listing with a limit has taken, its staged pages' when resumed: those it drops (private repos,
        # no id) do not count, nor one listed again as the order shifts while it is paged (downloads change).
        taken = listed_ids(folder, state.listing) if listing.limit is not None else set()
        for page in prefetched(listed) if ahead else listed:
            items = page.items
            if listing.limit is not None:
                items = kept_head(items, listing.limit - len(taken), taken)
            frame = model_rows(items, report)
            write_parquet(frame, _page_file(folder, state.listing, state.pages), level=PAGE_ZSTD_LEVEL)
            state.pages += 1
            state.items += len(items)
            state.requests = hub.REQUESTS.value - sent_before
            state.report = report.as_dict()
            state.seconds = round(state.seconds + time.monotonic() - began, 3)
            began = time.monotonic()
            if listing.limit is not None:
                taken.update(frame.get_column("model_id"))
            limit_reached = listing.limit is not None and len(taken) >= listing.limit
            state.next_url = None if limit_reached else page.next_url
            ended = state.next_url is None
            if ended:  # the listing's last page: its checkpoint moves on to the next listing, or says all is done
                _next_listing(state, scope)
            _save(folder, state)
            if progress:
                progress(state, len(scope.listings))
            if ended:
                break
        else:  # the pages stopped without a last one saying so
            _next_listing(state, scope)
            _save(folder, state)


def listing_queries(scope: Scope) -> list[list[list[str]]]:
    """The query parameters of each listing of `scope`, as a checkpoint keeps them."""
    return [[list(pair) for pair in listing.params()] for listing in scope.listings]


def _next_listing(state: CrawlState, scope: Scope) -> None:
    state.listing += 1
    state.next_url = None
    state.done = state.listing >= len(scope.listings)


def prefetched(listed: Iterator[hub.Page], depth: int = 1) -> Iterator[hub.Page]:
    """The pages of `listed`, fetched by a background thread while the caller converts and writes each one.

    The Hub's latency, not CPU, bounds a crawl: overlapping the two makes a crawl take about the sum of
    its requests' latencies. Pages arrive in order and a fetch error is raised where its page would have
    been, so the caller still writes and checkpoints every page before it.
    """
    queue: Queue[tuple[str, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[str, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def fetch() -> None:
        try:
            for page in listed:
                if not put(("page", page)):
                    return
        except BaseException as error:  # handed to the caller, raised in its thread
            put(("error", error))
            return
        put(("end", None))

    worker = threading.Thread(target=fetch, name="crawl-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = queue.get()
            if kind == "end":
                return
            if kind == "error":
                raise value
            yield value
    finally:
        stop.set()
        worker.join(timeout=hub.REQUEST_TIMEOUT * 2)


def staged_crawl(layout: Layout, day: dt.date) -> CrawlResult | None:
    """The completed crawl staged for `day`, or None."""
    folder = layout.crawl_staging(day)
    state = CrawlState.load(folder / CHECKPOINT)
    return CrawlResult(folder, state) if state is not None and state.done else None


BUCKET_ROWS = 125_000  # rows sorted at once when the pages are assembled in id order
SPREAD_PAGES = 100  # page files read at once when they are spread over the buckets
SAMPLE_EVERY = 97  # one id in this many is sampled for the bounds of the ranges


def assemble(layout: Layout, day: dt.date, result: CrawlResult) -> tuple[Path, int]:
    """One staged `models` file from the page files, in `model_id` order: the first sighting of each id wins.

    Memory stays bounded at any size. Repeats a shifting listing produces are found on a 64-bit hash of
    each id (8 bytes a model), confirmed on the ids sharing one. The ids are then cut into ranges of about
    `BUCKET_ROWS` rows (from a sample); the pages are spread over one file per range, a few pages at a
    time; and each range is sorted alone and written in turn.
    """
    pages = sorted(result.staging.glob("page-*.parquet"))
    target = staging_file(layout, MODELS, day)
    if not pages:
        write_parquet(MODELS.empty(), target, level=PAGE_ZSTD_LEVEL)
        return target, 0
    scan = pl.scan_parquet(pages, schema=MODELS.schema, glob=False).with_row_index("_row")
    with _pages_read(result, day):
        hashes, sample = _hashed_ids(pages)
        rows, repeats = _repeated_rows(scan, hashes)
    del hashes
    buckets = result.staging / "buckets"
    shutil.rmtree(buckets, ignore_errors=True)
    buckets.mkdir()
    try:
        bounds = _id_bounds(sample, rows)
        with _pages_read(result, day):
            _spread(pages, repeats, bounds, buckets)
        # Read once, as it is published (`warehouse.metadata`): written fast rather than small.
        write_frames(_in_id_order(buckets, bounds.len() + 1), target, MODELS.schema, level=PAGE_ZSTD_LEVEL)
    finally:
        shutil.rmtree(buckets, ignore_errors=True)
    return target, rows - repeats.len()


@contextmanager
def _pages_read(result: CrawlResult, day: dt.date) -> Iterator[None]:
    """Reads of the staged pages: a page that cannot be read (damaged or removed since the checkpoint counted it)
    is told in one line, and the checkpoint removed, so that the next run crawls the date afresh."""
    try:
        yield
    except (pl.exceptions.PolarsError, FileNotFoundError) as error:
        (result.staging / CHECKPOINT).unlink(missing_ok=True)
        raise StagedPageUnreadable(
            f"a staged page of the crawl of {day} in {result.staging} cannot be read "
            f"({' '.join(str(error).split())}): run again, which crawls {day} afresh"
        ) from None


def _hashed_ids(pages: list[Path]) -> tuple[pl.Series, pl.Series]:
    """A 64-bit hash of each page row's id, in row order, and one id in `SAMPLE_EVERY`; read `SPREAD_PAGES`
    pages at a time (3 M models: the process grows by 0.10 GB, against 0.27 GB reading every page at once)."""
    hashes, sample, first = [], [], 0
    for start in range(0, len(pages), SPREAD_PAGES):
        ids = pl.read_parquet(pages[start : start + SPREAD_PAGES], columns=["model_id"], glob=False).get_column(
            "model_id"
        )
        hashes.append(ids.hash())
        sample.append(ids.gather_every(SAMPLE_EVERY, offset=-first % SAMPLE_EVERY))
        first += ids.len()
    return pl.concat(hashes, rechunk=True), pl.concat(sample)


def _id_bounds(sample: pl.Series, rows: int) -> pl.Series:
    """Ids cutting the snapshot into ranges of about `BUCKET_ROWS` rows, from a sample of its ids, in order."""
    count = -(-rows // BUCKET_ROWS)
    sample = sample.sort()
    return sample.gather([sample.len() * k // count for k in range(1, count)]).unique(maintain_order=True)


def _spread(pages: list[Path], repeats: pl.Series, bounds: pl.Series, buckets: Path) -> None:
    """Write each page row but the repeats into the file of its id range, `SPREAD_PAGES` pages at a time."""
    bucket = pl.lit(bounds).search_sorted(pl.col("model_id"), side="right").cast(pl.UInt32).alias("_bucket")
    first = 0
    for start in range(0, len(pages), SPREAD_PAGES):
        chunk = pl.scan_parquet(pages[start : start + SPREAD_PAGES], schema=MODELS.schema, glob=False)
        chunk = chunk.with_row_index("_row", offset=first).collect()
        first += chunk.height
        chunk = chunk.filter(~pl.col("_row").is_in(repeats.implode())).drop("_row").with_columns(bucket)
        for (number,), rows in chunk.partition_by("_bucket", as_dict=True, include_key=False).items():
            path = buckets / f"{number:05d}-{start:07d}.parquet"
            with polars_writing(path):
                rows.write_parquet(path, compression="lz4", statistics=False)


def _in_id_order(buckets: Path, count: int) -> Iterator[pl.DataFrame]:
    """The rows of the bucket files in id order, one range read and sorted at a time."""
    for number in range(count):
        files = sorted(buckets.glob(f"{number:05d}-*.parquet"))
        if files:
            yield pl.read_parquet(files, schema=MODELS.schema, glob=False).sort("model_id")


def _repeated_rows(scan: pl.LazyFrame, hashes: pl.Series) -> tuple[int, pl.Series]:
    """The rows scanned, and the numbers of those whose id was seen on an earlier row: found on the ids'
    `hashes`, confirmed on the ids sharing one."""
    rows = hashes.len()
    # Equal hashes are neighbours once sorted: a sorted copy takes 8 bytes a row (3 M models: the process
    # grows by 0.03 GB, against 0.21 GB for `is_duplicated`'s table of every hash).
    ordered = hashes.sort()
    twice = ordered.filter(ordered == ordered.shift(1))
    del ordered
    shared = hashes.is_in(twice.implode()).arg_true().cast(pl.UInt32())
    if shared.is_empty():
        return rows, shared
    candidates = scan.select("_row", "model_id").filter(pl.col("_row").is_in(shared.implode())).collect()
    return rows, candidates.filter(~pl.col("model_id").is_first_distinct()).get_column("_row")


def crawl_record(state: CrawlState) -> dict[str, Any]:
    """The fields of a crawled `models` `_meta` record taken from the crawl's checkpoint, under their `_meta` names.

    Together they identify the crawl: `started_at` to the second, with its endpoint, scope and figures, which
    are fixed once the crawl is done.
    """
    return {
        "endpoint": state.endpoint,
        "scope": state.scope,
        "started_at": state.started_at,
        "requests": state.requests,
        "pages": state.pages,
        "items_listed": state.items,
        "resumed": state.resumed,
        "crawl_seconds": state.seconds,
    }


def is_published_crawl(layout: Layout, day: dt.date, state: CrawlState) -> bool:
    """Whether the published `models` of `day` are this crawl's: its `_meta` record holds the crawl's record.

    A damaged record vouches for no crawl: the staged one is then kept, to be published again.
    """
    try:
        meta = read_meta(layout, MODELS, day)
    except DamagedRecord:
        return False
    return meta is not None and all(meta.get(key) == value for key, value in crawl_record(state).items())


def discard(result: CrawlResult) -> None:
    """Remove a crawl's staging once its snapshot is published."""
    shutil.rmtree(result.staging, ignore_errors=True)


def crawl_summary(result: CrawlResult) -> dict[str, Any]:
    """The crawl's figures for `_meta` and the run summary."""
    state = asdict(result.state)
    state.pop("next_url", None)
    state.pop("listing", None)
    return state


def _page_items(folder: Path, listing: int) -> Iterator[int]:
    """How many items each staged page of one listing holds, page by page (read as they are asked for)."""
    for page in sorted(folder.glob(f"page-{listing:05d}-*.parquet")):
        yield pl.scan_parquet(page, glob=False).select(pl.len()).collect().item()


def listed_any(folder: Path, listing: int) -> bool:
    """Whether the staged pages of one listing hold any item (reading pages only up to the first that does)."""
    return any(_page_items(folder, listing))


def listed_ids(folder: Path, listing: int) -> set[str]:
    """The model ids the staged pages of one listing hold."""
    paths = sorted(folder.glob(f"page-{listing:05d}-*.parquet"))
    if not paths:
        return set()
    return set(pl.read_parquet(paths, columns=["model_id"], glob=False).get_column("model_id"))


def _discard_unrecorded(folder: Path, pages: int) -> None:
    """Remove page files written after the last checkpoint (a run killed mid-page): they are fetched again."""
    for path in folder.glob("page-*.parquet"):
        if int(path.stem.rsplit("-", 1)[1]) >= pages:
            path.unlink()


def _unreadable_page(folder: Path) -> tuple[Path, str] | None:
    """The first page file of `folder` whose Parquet footer cannot be read, with what the reader said."""
    for path in sorted(folder.glob("page-*.parquet")):
        try:
            pq.read_metadata(path)
        except (OSError, pa.ArrowException) as error:
            return path, " ".join(str(error).split())
    return None


def _page_file(folder: Path, listing: int, page: int) -> Path:
    return folder / f"page-{listing:05d}-{page:07d}.parquet"


def _save(folder: Path, state: CrawlState) -> None:
    write_json_atomic(folder / CHECKPOINT, asdict(state))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
