"""The refresh flow: crawl → snapshot → attribute → metrics → crossovers → later dates → reproduce → dashboard, a
thin Prefect shell."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from flows import hub, progress, steps
from flows.crawl import crawl_to_staging, staged_crawl
from flows.scope import parse_scope
from flows.snapshot import publish_models
from warehouse.layout import Layout
from warehouse.lock import writer_lock
from warehouse.publish import is_published, read_meta
from warehouse.tables import MODELS


@task(name="crawl", cache_policy=NONE)
def crawl(warehouse: str, day: dt.date, scope: str, endpoint: str) -> dict[str, Any]:
    """Crawl the Hub into staging, resuming from the last completed page (the client retries each request)."""
    layout = Layout.at(warehouse)
    result = crawl_to_staging(layout, day, parse_scope(scope), endpoint, progress=progress.report_crawl)
    return {"pages": result.state.pages, "items": result.state.items, "requests": result.state.requests}


@task(name="publish-models", cache_policy=NONE)
def publish(warehouse: str, day: dt.date, scope: str, force: bool, source_kind: str | None) -> dict[str, Any]:
    """Publish the staged crawl as the dated `models` partition."""
    layout = Layout.at(warehouse)
    result = staged_crawl(layout, day)
    if result is None:
        raise RuntimeError(f"no completed crawl is staged for {day}")
    return publish_models(layout, day, parse_scope(scope), result, force=force, source_kind=source_kind)


@task(name="attribute", cache_policy=NONE)
def attribute(warehouse: str, day: dt.date, force: bool) -> dict[str, Any]:
    """Credit every model of the snapshot under each rule."""
    return steps.attribute_date(Layout.at(warehouse), day, force=force)


@task(name="metrics", cache_policy=NONE)
def metrics(warehouse: str, day: dt.date, force: bool) -> dict[str, Any]:
    """Shares and concentration of the snapshot."""
    return steps.metrics_date(Layout.at(warehouse), day, force=force)


@task(name="crossovers", cache_policy=NONE)
def crossovers(warehouse: str, day: dt.date, force: bool, kept: dict | None = None) -> dict[str, Any]:
    """Crossovers over the series up to the snapshot (`kept`: the shares partitions read for earlier dates, by
    `steps.crossovers_date`)."""
    return steps.crossovers_date(Layout.at(warehouse), day, force=force, kept=kept)


@task(name="later-dates", cache_policy=NONE)
def later_dates(warehouse: str, day: dt.date) -> dict[str, Any]:
    """Bring the dates published after `day` up to date with it (`steps.update_later_dates`); a refresh of the
    latest date does nothing here."""
    redone = steps.update_later_dates(Layout.at(warehouse), day)
    if not redone:
        return {"status": "none to update"}
    return {"status": "updated", **{name: ", ".join(days) for name, days in redone.items()}}


@task(name="dashboard", cache_policy=NONE)
def dashboard_task(warehouse: str, force: bool) -> dict[str, Any]:
    """The dashboard page and PNGs."""
    return steps.dashboard_step(Layout.at(warehouse), force=force)


@task(name="reproduce", cache_policy=NONE)
def reproduce(warehouse: str) -> dict[str, Any]:
    """Our numbers beside each published claim, as a report file and the run's artifact."""
    outcome = steps.reproduction_step(Layout.at(warehouse), with_markdown=True)
    markdown = outcome.pop("markdown", None)
    if markdown:
        create_markdown_artifact(key="reproduction", markdown=markdown)
    return outcome


def run_date() -> dt.date:
    """The date a run given none crawls: the UTC date its flow run began, the same for each of its retries, so that
    one retried after midnight resumes that date's crawl rather than starting the next date's; today outside a run."""
    from prefect.context import FlowRunContext

    context = FlowRunContext.get()
    began = context.flow_run.start_time if context and context.flow_run else None
    if began is None or began.tzinfo is None:
        return dt.datetime.now(dt.UTC).date()
    return began.astimezone(dt.UTC).date()


@flow(name="refresh", log_prints=False, validate_parameters=True)
def refresh(
    day: dt.date | None = None,
    scope: str = "full",
    endpoint: str | None = None,
    warehouse: str | None = None,
    force: bool = False,
    wait_seconds: float = 0.0,
    dashboard: bool = True,
    source_kind: str | None = None,
) -> dict[str, Any]:
    """Publish one dated snapshot of the Hub and everything derived from it."""
    logger = get_run_logger()
    began = time.monotonic()
    day = day or run_date()
    layout = Layout.at(warehouse)
    endpoint = hub.resolve_endpoint(endpoint)
    parse_scope(scope)  # fail before taking the lock on a bad scope
    summary: dict[str, Any] = {"date": day.isoformat(), "warehouse": str(layout.root), "scope": scope}
    with writer_lock(layout, f"refresh {day}", wait_seconds=wait_seconds) as waited:
        if waited >= 1:  # another writer held the lock: its time is not this run's
            summary["waited"] = round(waited, 1)
            began += waited
        if is_published(layout, MODELS, day) and not force:
            summary["models"] = "already published"
            logger.info("models %s already published; not crawled again (use --force to replace)", day)
        else:
            summary["crawl"] = crawl(str(layout.root), day, scope, endpoint)
            meta = publish(str(layout.root), day, scope, force, source_kind)
            summary["models"] = "published"
            summary["empty_listings"] = meta.get("empty_listings") or []
            if meta.get("models_of_date_before"):
                summary["models_of_date_before"] = meta["models_of_date_before"]
                logger.warning(
                    "models %s: %s listed, under half the %s of the date before: kept as a partial snapshot, left "
                    "out of the crossovers, the dashboard's views and the next date's between window",
                    day,
                    meta["rows"],
                    meta["models_of_date_before"],
                )
            resumed = f", resumed {meta['resumed']} time(s)" if meta.get("resumed") else ""
            logger.info(
                "published models %s: %s rows, %s requests, %s s crawling%s",
                day,
                meta["rows"],
                meta.get("requests"),
                meta.get("crawl_seconds"),
                resumed,
            )
        root = str(layout.root)
        summary["steps"] = {
            "attribute": attribute(root, day, force),
            "metrics": metrics(root, day, force),
            "crossovers": crossovers(root, day, force),
            "later dates": later_dates(root, day),
            "reproduce": reproduce(root),
        }
        if dashboard:
            summary["steps"]["dashboard"] = dashboard_task(root, force)
    meta = read_meta(layout, MODELS, day) or {}
    summary.update(rows=meta.get("rows"), requests=meta.get("requests"), seconds=round(time.monotonic() - began, 2))
    create_markdown_artifact(key="refresh-summary", markdown=summary_markdown(layout, day, summary))
    return summary


def summary_markdown(layout: Layout, day: dt.date, summary: dict[str, Any]) -> str:
    """The run's artifact: rows, requests, duration and the largest authors by 30-day downloads."""
    import polars as pl

    lines = [
        f"# Multipolar refresh {day}",
        "",
        "| figure | value |",
        "|---|---|",
        f"| models | {summary.get('models')} |",
        f"| rows | {summary.get('rows')} |",
        f"| requests | {summary.get('requests')} |",
        f"| seconds | {summary.get('seconds')} |",
    ]
    for step, outcome in (summary.get("steps") or {}).items():
        lines.append(f"| {step} | {_cell(describe(outcome))} |")
    if is_published(layout, MODELS, day):
        top = (
            layout.scan(MODELS, day)
            .group_by("author")
            .agg(pl.col("downloads_30d").sum().alias("downloads_30d"), pl.len().alias("models"))
            .sort("downloads_30d", descending=True, nulls_last=True)
            .head(10)
            .collect()
        )
        lines += ["", "## Top authors by 30-day downloads", "", "| author | models | downloads_30d |", "|---|---|---|"]
        lines += [f"| {_cell(r['author'])} | {r['models']} | {r['downloads_30d']} |" for r in top.iter_rows(named=True)]
    return "\n".join(lines)


def describe(outcome: dict[str, Any]) -> str:
    """A step's outcome in one line: its status, then its figures."""
    rest = ", ".join(f"{k} {v}" for k, v in outcome.items() if k != "status")
    return f"{outcome.get('status')}" + (f" ({rest})" if rest else "")


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")[:80]
