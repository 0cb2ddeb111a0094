"""Publishing a crawl as the dated `models` snapshot, with its provenance."""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import urlsplit

from flows.crawl import CrawlResult, assemble, crawl_record, crawl_summary, discard, listed_any
from flows.hub import loopback
from flows.scope import EXPAND, Scope
from warehouse.layout import Layout
from warehouse.publish import publish_staged, read_meta
from warehouse.tables import MODELS


def source_kind_of(endpoint: str) -> str:
    """`standin` for a Hub served on this machine (tests, demos), else `hub`."""
    return "standin" if loopback(urlsplit(endpoint).hostname) else "hub"


class NothingListed(RuntimeError):
    """The crawl's listings returned no model at all: there is no snapshot to publish."""


def empty_listings(scope: Scope, result: CrawlResult) -> list[str]:
    """The listings of `scope` that returned no model (an `orgs:` namespace misspelled, say), as described."""
    return [
        listing.author or listing.describe()
        for index, listing in enumerate(scope.listings)
        if not listed_any(result.staging, index)
    ]


def partial_of(layout: Layout, day: dt.date, scope: Scope, rows: int) -> int | None:
    """The models of the date before `day`, when a crawl of `day` listing `rows` lists under half as many with the
    same scope (a Hub that ended its listing early): a partial snapshot, as an import's is flagged. None otherwise."""
    before = layout.date_before(MODELS, day)
    meta = (read_meta(layout, MODELS, before) or {}) if before else {}
    if meta.get("scope") != scope.text or not isinstance(meta.get("rows"), int):
        return None
    return meta["rows"] if rows * 2 < meta["rows"] else None


def publish_models(
    layout: Layout,
    day: dt.date,
    scope: Scope,
    result: CrawlResult,
    *,
    force: bool = False,
    source_kind: str | None = None,
) -> dict[str, Any]:
    """Assemble the staged pages into one deduplicated file and publish it; return its `_meta` record.

    A crawl that listed no model publishes nothing (NothingListed): an empty day would read as every share
    gone. The listings that returned none are recorded (`empty_listings`)."""
    empty = empty_listings(scope, result)
    if len(empty) == len(scope.listings):
        discard(result)
        raise NothingListed(
            f"the Hub at {result.state.endpoint} listed no models for --scope {scope.text}: nothing published"
            + (" (is each namespace spelled as on the Hub?)" if scope.text.startswith("orgs:") else "")
        )
    staged, rows = assemble(layout, day, result)
    summary = crawl_summary(result)
    provenance = {
        "source_kind": source_kind or source_kind_of(summary["endpoint"]),
        # The crawl's endpoint, scope, start and figures: a later crawl of `day` that finds this crawl's staging
        # left behind compares them with its checkpoint (`flows.crawl.is_published_crawl`).
        **crawl_record(result.state),
        # A checkpoint written before the versions were kept names none: its pages' code is not known.
        "crawl_code_versions": result.state.code_versions or ["unrecorded"],
        "query": [
            {"path": "/api/models", "params": listing.params(), "description": listing.describe()}
            for listing in scope.listings[:50]
        ],
        "listings": len(scope.listings),
        "empty_listings": empty[:50],
        "expand": list(EXPAND),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duplicates_removed": summary["items"] - rows - sum(summary["report"]["dropped"].values()),
        "dropped_items": summary["report"]["dropped"],
        "blanked_values": summary["report"]["blanked"],
    }
    if (before := partial_of(layout, day, scope, rows)) is not None:
        provenance["models_of_date_before"] = before
    crawled_on = dt.date.fromisoformat(result.state.started_at[:10])
    if crawled_on > day and provenance["source_kind"] == "hub":  # `--backdate`: the Hub as it was when crawled
        provenance["backdated_from"] = crawled_on.isoformat()
    try:
        meta = publish_staged(layout, MODELS, day, staged, provenance, force=force)
    finally:
        staged.unlink(missing_ok=True)
    discard(result)
    return meta
