"""The steps after the crawl, each publishing its tables for one date, redone when their inputs change.

Every derived partition records the sha256 of the partitions it was computed from (and the registry version,
or the hash of the code that computes it); a step is pending when its output is missing or those inputs have
changed since.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import io
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

import polars as pl

from warehouse.layout import Layout, listings_kept
from warehouse.provenance import base_provenance, code_version, series_source_kind
from warehouse.publish import (
    publish_frame,
    publish_plan,
    read_meta,
    records_kept,
    write_json_atomic,
    write_text_atomic,
)
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, CROSSOVERS, MODELS, REGISTRY, SHARES, Table

REPORTS_RECORD = "reports.json"  # under <root>/reports: what each report there was made from


def _sha(layout: Layout, table: Table, day: dt.date | None) -> str | None:
    meta = read_meta(layout, table, day) if day else None
    return meta["sha256"] if meta else None


def between_basis(layout: Layout, day: dt.date) -> dt.date | None:
    """The date `day`'s `between` window is measured from: the latest date before it that is no stale copy (an
    imported date that repeats the counts of the one before, `same_counts_as`) nor partial snapshot (one that lists
    under half the models of the date before, `models_of_date_before`: measured from it, the gains of every model
    it missed would not be known) nor crawl begun after `day`'s (`--backdate`: its counts are later ones), when both
    were listed with the same scope. A model missing from a day crawled
    with a narrower scope (`top:N`, `orgs:`) is not a new model, and its all-time downloads are no day's gain:
    across a change of scope there is no `between` window. Nor has a stale copy one: it observed no gain of its
    own."""
    return _between(layout, day)[0]


def _between(layout: Layout, day: dt.date) -> tuple[dt.date | None, str | None]:
    """`between_basis` and, when there is none though a date comes before, why."""
    basis = layout.date_before(MODELS, day)
    if basis is None:
        return None, None
    meta = read_meta(layout, MODELS, day) or {}
    if meta.get("same_counts_as"):
        return None, f"none: this date repeats the counts of {meta['same_counts_as']}"
    # From the date before back to the first that is no stale copy nor partial snapshot: most often the date
    # before, one record read.
    while basis is not None:
        before = read_meta(layout, MODELS, basis) or {}
        if not observed_nothing(before) and not counted_later(before, meta, day):
            if before.get("scope") != meta.get("scope"):
                return None, "none: the date before was listed with another scope"
            return basis, None
        basis = layout.date_before(MODELS, basis)
    return None, "none: every date before is a stale copy, a partial snapshot or crawled after this one (--backdate)"


def counted_later(before: dict[str, Any], meta: dict[str, Any], day: dt.date) -> bool:
    """Whether a date before `day` (its `models` record `before`) holds counts the Hub gave after `day`'s own: a
    crawl recorded under an earlier date (`--backdate`) begun after `day`'s crawl, or, for a `day` that records no
    crawl time, on a later day. Measured from it, every model's gain would fall below zero."""
    if not before.get("backdated_from"):
        return False
    began, began_before = _started(meta), _started(before)
    if began is not None and began_before is not None:
        return began_before >= began
    return dt.date.fromisoformat(before["backdated_from"]) > day


def _started(meta: dict[str, Any]) -> dt.datetime | None:
    """When a crawled date's crawl began (its record's `started_at`, with a zone), or None."""
    try:
        started = dt.datetime.fromisoformat(meta["started_at"]) if meta.get("source_kind") != "import" else None
    except (KeyError, TypeError, ValueError):
        return None
    return started if started is not None and started.tzinfo is not None else None


def listed_at(layout: Layout, basis: dt.date) -> dt.datetime | None:
    """When the Hub was listed for `basis`: the start of its crawl, when the crawl ran on that date (not an
    import, which records no time, nor a crawl recorded under another date). A model absent then and created
    after it was not there to be listed; without this moment, one created on `basis` counts as there then."""
    meta = read_meta(layout, MODELS, basis) or {}
    if meta.get("source_kind") == "import" or not isinstance(meta.get("started_at"), str):
        return None
    try:
        started = dt.datetime.fromisoformat(meta["started_at"])
    except ValueError:
        return None
    if started.tzinfo is None:
        return None
    started = started.astimezone(dt.UTC)
    return started if started.date() == basis else None


def attribution_inputs(layout: Layout, day: dt.date, registry: str | None = None) -> dict[str, Any]:
    """What the attributions of `day` are computed from: its models, the registry (version `registry`, else that of
    the file now), and the rules' code (`code`)."""
    from analytics.attribution import rules_version
    from analytics.registry import registry_version

    registry = registry or registry_version()
    return {"code": rules_version(), "models_sha256": _sha(layout, MODELS, day), "registry_version": registry}


# How many times the registry is read again when it changes while it is read (an editor saving it).
REGISTRY_READS = 3


def registry_as_read() -> tuple[pl.DataFrame, str]:
    """The registry and its version, read so that the one is the other's: its file is read between two readings
    of its version that agree, so that an editor's save landing meanwhile is not published under the version
    before it (which would then count as current, the rows made with another registry), nor a file cut short by
    a save under way refused as broken."""
    from analytics.registry import REGISTRY_PATH, RegistryError, RegistryProblem, load_registry, registry_version

    for _ in range(REGISTRY_READS):
        version = registry_version()
        try:
            registry = load_registry()
        except RegistryError:
            if registry_version() == version:  # broken as saved, not cut short by a save under way
                raise
        else:
            if registry_version() == version:
                return registry, version
        time.sleep(0.2)
    told = f"changed each of the {REGISTRY_READS} times it was read (being written?): run again once it is saved"
    raise RegistryError(REGISTRY_PATH, [RegistryProblem(None, told)])


# The modules whose code computes the metrics, and the crossovers: a partition made by other code is made again.
METRICS_CODE = ("analytics/metrics.py", "analytics/concentration.py", "analytics/order.py")
CROSSOVERS_CODE = ("analytics/crossover.py",)


def metric_inputs(layout: Layout, day: dt.date) -> dict[str, Any]:
    """What the metrics of `day` are computed from: its models and attributions, the previous models, and the
    code that computes them (`code`)."""
    from analytics.attribution import code_hash

    previous = layout.date_before(MODELS, day)
    inputs = {
        "code": code_hash(METRICS_CODE),
        "models_sha256": _sha(layout, MODELS, day),
        "attributions_sha256": _sha(layout, ATTRIBUTIONS, day),
        "previous_date": previous.isoformat() if previous else None,
        "previous_models_sha256": _sha(layout, MODELS, previous),
    }
    basis, why = _between(layout, day)
    if why is not None:
        inputs["between"] = why
    elif basis is not None and basis != previous:  # stale copies between them
        inputs["between_from"] = basis.isoformat()
        inputs["between_from_models_sha256"] = _sha(layout, MODELS, basis)
    listed = listed_at(layout, basis) if basis is not None and why is None else None
    if listed is not None:
        inputs["between_listed_at"] = listed.isoformat()
    return inputs


def crossover_inputs(layout: Layout, day: dt.date) -> dict[str, Any]:
    """What the crossovers as of `day` are computed from: every shares partition up to `day`, and the dates left
    out of the series (`left_out`, when there are any)."""
    from analytics.attribution import code_hash

    dates = [d for d in layout.published_dates(SHARES) if d <= day]
    inputs: dict[str, Any] = {
        "code": code_hash(CROSSOVERS_CODE),
        "shares_sha256": {d.isoformat(): _sha(layout, SHARES, d) for d in dates},
    }
    if left_out := no_observation(layout, dates):
        inputs["left_out"] = [d.isoformat() for d in left_out]
    return inputs


def made_by_other_code(layout: Layout, day: dt.date) -> bool:
    """Whether the attributions, metrics or crossovers published for `day` were computed by other code than this."""
    from analytics.attribution import RULES_CODE, code_hash

    made_by = ((ATTRIBUTIONS, RULES_CODE), (SHARES, METRICS_CODE), (CONCENTRATION, METRICS_CODE))
    for table, code in (*made_by, (CROSSOVERS, CROSSOVERS_CODE)):
        meta = read_meta(layout, table, day)
        if meta is not None and (meta.get("inputs") or {}).get("code") != code_hash(code):
            return True
    return False


def no_observation(layout: Layout, dates: list[dt.date]) -> list[dt.date]:
    """Those of `dates` that observed nothing of their own: imported stale copies (`same_counts_as`) and partial
    snapshots (`models_of_date_before`), which the crossovers and the dashboard's views leave out."""
    return [d for d in dates if observed_nothing(read_meta(layout, MODELS, d) or {})]


def observed_nothing(meta: dict[str, Any]) -> bool:
    """Whether the `models` record `meta` is of a date that observed nothing of its own: a stale copy or a
    partial snapshot."""
    return bool(meta.get("same_counts_as") or meta.get("models_of_date_before"))


def _current(layout: Layout, tables: tuple[Table, ...], day: dt.date, inputs: dict[str, Any]) -> bool:
    """Whether every one of `tables` is published for `day`, computed from `inputs`, with the table's columns
    (a partition written by an older version of the table, such as attributions without `entry`, is not, nor
    is a file whose footer cannot be read, such as one cut short: it is made again)."""
    for table in tables:
        meta = read_meta(layout, table, day)
        file = layout.partition_file(table, day)
        if meta is None or not file.is_file() or meta.get("inputs") != inputs:
            return False
        try:
            if layout.scan(table, day).collect_schema().names() != table.columns:
                return False
        except pl.exceptions.PolarsError:
            return False
    return True


def pending_steps(layout: Layout, day: dt.date, *, dashboard: bool = True) -> list[str]:
    """The steps whose output for `day` is missing or computed from inputs that have changed."""
    pending = []
    inputs = attribution_inputs(layout, day)
    if not _current(layout, (REGISTRY, ATTRIBUTIONS), day, inputs):
        return ["attribute", "metrics", "crossovers"] + (["dashboard"] if dashboard else [])
    inputs = metric_inputs(layout, day)
    if not _current(layout, (SHARES, CONCENTRATION), day, inputs):
        return ["metrics", "crossovers"] + (["dashboard"] if dashboard else [])
    if not _current(layout, (CROSSOVERS,), day, crossover_inputs(layout, day)):
        pending.append("crossovers")
    if dashboard and (pending or not dashboard_current(layout)):
        pending.append("dashboard")
    return pending


def out_of_date(layout: Layout, *, after: dt.date | None = None) -> dict[dt.date, list[str]]:
    """The published dates (after `after`) whose derived tables are missing or were computed from inputs that
    have changed since, with the steps that would make them again: left so by a removal or a replacement that
    stopped part way, or by an edit of the registry after they were attributed."""
    found = {}
    # Each date's crossovers depend on the records of every date before, and each date asks for the dates
    # published: both are read once for the pass.
    with records_kept(), listings_kept():
        for day in layout.published_dates(MODELS):
            if (after is None or day > after) and (pending := pending_steps(layout, day, dashboard=False)):
                found[day] = pending
    return found


def registries_behind(layout: Layout) -> list[dt.date]:
    """The published dates attributed with a registry other than the one in use now."""
    from analytics.registry import registry_version

    current = registry_version()
    return [day for day in layout.published_dates(ATTRIBUTIONS) if _registry_of(layout, day) not in (None, current)]


def attribute_date(layout: Layout, day: dt.date, *, force: bool = False) -> dict[str, Any]:
    """Attribute the `day` snapshot under every rule; publish the `registry` used, then `attributions`.

    When the day before's attributions were made by the same rules with the same registry from its
    models as published now, they are updated (`analytics.attribution.attribution_update`): only models
    whose lineage inputs changed are attributed again. The rows are the same either way; `_meta` says
    which was done under `made`.
    """
    from analytics.attribution import attribution_plan, attribution_update, registry_rows, rules_version

    if not force and _current(layout, (REGISTRY, ATTRIBUTIONS), day, attribution_inputs(layout, day)):
        return {"status": "already published"}
    began = time.monotonic()
    registry, version = registry_as_read()
    inputs = attribution_inputs(layout, day, version)
    models = layout.scan(MODELS, day)
    basis = attribution_basis(layout, day, version)
    made: dict[str, Any] = {"from": None}
    if basis is None:
        plan = attribution_plan(models, registry)
    else:
        previous, attributions = basis
        plan, update = attribution_update(models, registry, layout.scan(MODELS, previous), attributions, streamed=True)
        made = {"from": None if update.full else previous.isoformat(), **asdict(update)}
    provenance = {"inputs": inputs, "registry_version": inputs["registry_version"]}
    registry_meta = publish_frame(layout, REGISTRY, day, registry_rows(registry), provenance, force=True)
    provenance |= {"rules_version": rules_version(), "made": made, "registry_sha256": registry_meta["sha256"]}
    meta = publish_plan(layout, ATTRIBUTIONS, day, plan, provenance, force=True)
    updated = {"updated_from": made["from"]} if made["from"] else {}
    return {"status": "published", "rows": meta["rows"], **updated, "seconds": round(time.monotonic() - began, 2)}


def attribution_basis(layout: Layout, day: dt.date, registry: str | None = None) -> tuple[dt.date, pl.LazyFrame] | None:
    """The day before `day` and its attributions, when `day`'s can be made by updating them: made by
    these rules, with the registry in use (of version `registry`, when told), from that day's models as published
    now, and the file intact (checked on the very bytes that are then read, and decoded only if the update keeps
    rows)."""
    from analytics.attribution import rules_version

    previous = layout.date_before(MODELS, day)
    meta = read_meta(layout, ATTRIBUTIONS, previous) if previous else None
    if meta is None or meta.get("rules_version") != rules_version():
        return None
    if meta.get("inputs") != attribution_inputs(layout, previous, registry):
        return None
    data = _checked_bytes(layout, ATTRIBUTIONS, previous, meta.get("sha256"))
    return None if data is None else (previous, pl.scan_parquet(io.BytesIO(data)))


def _checked_bytes(layout: Layout, table: Table, day: dt.date, sha256: str | None) -> bytes | None:
    """The bytes of `table`'s `day` partition when their sha256 is `sha256`; None when not, or no file."""
    if sha256 is None:
        return None
    try:
        data = layout.partition_file(table, day).read_bytes()
    except FileNotFoundError:
        return None
    return data if hashlib.sha256(data).hexdigest() == sha256 else None


def metrics_date(layout: Layout, day: dt.date, *, force: bool = False) -> dict[str, Any]:
    """Compute and publish `shares` and `concentration` for `day`."""
    from analytics.metrics import metric_tables
    from warehouse.query import rows_point_at_models

    inputs = metric_inputs(layout, day)
    if not force and _current(layout, (SHARES, CONCENTRATION), day, inputs):
        return {"status": "already published"}
    began = time.monotonic()
    models = layout.scan(MODELS, day)
    attributions = layout.scan(ATTRIBUTIONS, day)
    basis = between_basis(layout, day)
    previous_models = layout.scan(MODELS, basis) if basis else None
    registry = registry_used(layout, day)
    by_row = rows_point_at_models(layout, day)
    tables = metric_tables(
        models,
        attributions,
        previous_models,
        registry=registry,
        streamed=True,
        by_row=by_row,
        previous_date=basis,
        listed_at=dt.datetime.fromisoformat(inputs["between_listed_at"]) if "between_listed_at" in inputs else None,
    )
    provenance: dict[str, Any] = {"inputs": inputs, "registry_version": _registry_of(layout, day)}
    if previous_models is not None:
        provenance["negative_all_time_deltas"] = tables["negative_deltas"].row(0, named=True)
        # Models whose gain since the date before is not known (counted 0 in `between`): see analytics.metrics.
        provenance["unknown_all_time_gains"] = tables["unknown_gains"].row(0, named=True)
    publish_frame(layout, SHARES, day, tables["shares"], provenance, force=True)
    publish_frame(layout, CONCENTRATION, day, tables["concentration"], provenance, force=True)
    return {
        "status": "published",
        "shares": tables["shares"].height,
        "seconds": round(time.monotonic() - began, 2),
    }


def registry_used(layout: Layout, day: dt.date) -> pl.DataFrame | None:
    """The `registry` partition of `day` when it is the very file `day`'s attributions were made with (its
    sha256 recorded in their `_meta`, checked on the bytes then read), so their `entry` numbers name its rows."""
    meta = read_meta(layout, ATTRIBUTIONS, day)
    data = _checked_bytes(layout, REGISTRY, day, meta.get("registry_sha256") if meta else None)
    return None if data is None else pl.read_parquet(io.BytesIO(data))


def crossovers_date(
    layout: Layout, day: dt.date, *, force: bool = False, kept: dict[tuple[dt.date, str], list[Any]] | None = None
) -> dict[str, Any]:
    """Detect crossovers over every shares partition up to `day`, but for the dates that observed nothing of their
    own (`no_observation`), and publish them as of `day`. `kept` holds what was found in the shares partitions
    read before, by date and sha256: a caller finding the crossovers as of each date of a year reads and
    compares each partition once, not once per later date."""
    from analytics.crossover import MATCHUPS, crossovers

    with records_kept():  # the shares records, read for the inputs, are not read again for the series
        inputs = crossover_inputs(layout, day)
        if not force and _current(layout, (CROSSOVERS,), day, inputs):
            return {"status": "already published"}
        left_out = [dt.date.fromisoformat(d) for d in inputs.get("left_out", [])]
        if kept is None or not inputs["shares_sha256"]:
            whole = shares_series(layout, until=day)
            found = [
                crossovers(whole, challenger=c, incumbent=i, dimension=m, left_out=left_out) for c, i, m in MATCHUPS
            ]
        else:
            found = _kept_crossovers(layout, inputs, kept, left_out)
    frame = pl.concat(found, how="vertical")
    publish_frame(layout, CROSSOVERS, day, frame, {"inputs": inputs}, force=True)
    crossed = frame.filter(
        (pl.col("status") == "crossed")
        & (pl.col("dimension") == "region")
        & (pl.col("time_window") == "30d")
        & (pl.col("population") == "llm")
    )
    return {"status": "published", "crossed (30d, llm, region)": ", ".join(sorted(crossed["rule"])) or "none"}


def _kept_crossovers(
    layout: Layout, inputs: dict[str, Any], kept: dict[tuple[dt.date, str], list[Any]], left_out: list[dt.date]
) -> list[pl.DataFrame]:
    """`crossovers` of each matchup over the dates in the crossovers' `inputs`, each partition read once into
    `kept` while its sha256 stays the one recorded, as each matchup's `observations` and `series_of` it: a date's
    own, whatever dates come before or after it."""
    from analytics.crossover import MATCHUPS, crossovers_of, observations, series_of

    shas = [(dt.date.fromisoformat(d), sha) for d, sha in inputs["shares_sha256"].items()]
    if unread := [d for d, sha in shas if (d, sha) not in kept]:
        read = series(layout, SHARES, dates=unread)
        parts = read.partition_by("snapshot_date", maintain_order=True, as_dict=True)
        for d, sha in shas:
            if d in unread:
                part = parts.get((d,), read.clear())
                kept[(d, sha)] = [(observations(part, c, i, dim), series_of(part, dim)) for c, i, dim in MATCHUPS]
    found = []
    for k, (c, i, _) in enumerate(MATCHUPS):
        observed = [kept[(d, sha)][k][0] for d, sha in shas if d not in left_out]
        every = pl.concat([kept[key][k][1] for key in shas], how="vertical")
        observed_all = pl.concat(observed, how="vertical") if observed else kept[shas[0]][k][0].clear()
        found.append(crossovers_of(observed_all, every, challenger=c, incumbent=i))
    return found


def series(
    layout: Layout, table: Table, *, until: dt.date | None = None, dates: list[dt.date] | None = None
) -> pl.DataFrame:
    """Every published partition of `table` (up to `until`), or those of `dates`, with its `snapshot_date`. A
    partition written before a column was added to the table has it null (such as `crossovers.observed`), until it
    is made again. A partition whose record is damaged is refused (`DamagedRecord`, naming it), as `check` names
    it: its data is not taken on trust by one reader and refused by another."""
    if dates is None:
        dates = [d for d in layout.published_dates(table) if until is None or d <= until]
    for d in dates:
        read_meta(layout, table, d)
    if not dates:
        return table.empty().with_columns(pl.lit(None, pl.Date).alias("snapshot_date"))
    if table is MODELS:  # each day's metadata gathered from where it is kept
        frames = [layout.scan(table, d).with_columns(pl.lit(d, pl.Date).alias("snapshot_date")) for d in dates]
        return pl.concat(frames, how="diagonal_relaxed").collect()
    # One scan of every file, read in parallel, against the table's schema: 0.04 s for a year of daily `shares`
    # against 1.0 s for a scan per file concatenated (365 dates of a 20,000-model world).
    # The date comes from each file's own partition, not from the path read as Hive folders: a `name=value`
    # folder above the warehouse (`/data/env=prod/wh`) is no column.
    files = {str(layout.partition_file(table, d)): d for d in dates}
    return (
        pl.scan_parquet(
            list(files),
            schema=table.schema,
            glob=False,  # a path is a path, whatever characters the warehouse's name holds
            hive_partitioning=False,
            missing_columns="insert",
            extra_columns="ignore",
            include_file_paths="_file",
        )
        .with_columns(pl.col("_file").replace_strict(files, return_dtype=pl.Date).alias("snapshot_date"))
        .drop("_file")
        .collect()
    )


def shares_series(layout: Layout, *, until: dt.date | None = None) -> pl.DataFrame:
    """The `shares` of every published date, with `snapshot_date`."""
    return series(layout, SHARES, until=until)


def _registry_of(layout: Layout, day: dt.date) -> str | None:
    meta = read_meta(layout, ATTRIBUTIONS, day)
    return meta.get("registry_version") if meta else None


def dashboard_inputs(layout: Layout) -> dict[str, Any]:
    """The metric partitions the dashboard is drawn from."""
    return {
        table.name: {d.isoformat(): _sha(layout, table, d) for d in layout.published_dates(table)}
        for table in (SHARES, CONCENTRATION, CROSSOVERS)
    }


def made_by() -> dict[str, Any]:
    """When and by what code a dashboard or report was made, as a `_meta` record says it of a partition."""
    return {**base_provenance(), "made_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}


def dashboard_current(layout: Layout) -> bool:
    """Whether the published dashboard was drawn from the metric partitions published now."""
    record = layout.dashboard_dir / "dashboard.json"
    try:
        return json.loads(record.read_text()).get("inputs") == dashboard_inputs(layout)
    except (OSError, ValueError):
        return False


def dashboard_provenance(layout: Layout) -> dict[str, Any]:
    """What the dashboard's footer and labels say about the data behind it."""
    dates = layout.published_dates(SHARES)
    latest = read_meta(layout, MODELS, dates[-1]) if dates else None
    latest = latest or {}
    metas = [read_meta(layout, MODELS, d) or {} for d in dates]
    registries = [_registry_of(layout, d) for d in dates]
    kind = series_source_kind({meta.get("source_kind", "hub") for meta in metas})
    scopes = Counter(meta["scope"] for meta in metas if meta.get("scope"))
    return {
        "source": latest.get("endpoint") or latest.get("source_file"),
        "source_kind": kind,
        "scopes": dict(scopes),
        "stale_dates": [d.isoformat() for d, meta in zip(dates, metas, strict=True) if meta.get("same_counts_as")],
        "partial_dates": [
            d.isoformat() for d, meta in zip(dates, metas, strict=True) if meta.get("models_of_date_before")
        ],
        "dates": [d.isoformat() for d in dates],
        "rows": latest.get("rows"),
        "rows_by_date": {d.isoformat(): meta.get("rows") for d, meta in zip(dates, metas, strict=True)},
        "counted_by_date": {
            d.isoformat(): meta.get("models_with_30d_count") for d, meta in zip(dates, metas, strict=True)
        },
        "registry_version": registries[-1] if dates else None,
        # The dates whose shares come from attributions made with another registry than the latest date's.
        "other_registry_dates": [d.isoformat() for d, r in zip(dates, registries, strict=True) if r != registries[-1]],
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "metrics_code_versions": sorted(
            {str((read_meta(layout, SHARES, d) or {}).get("code_version", "not recorded")) for d in dates}
        ),
    }


@contextmanager
def _local_folder(target: Any) -> Iterator[Path]:
    """A local folder to write into: `target` itself, or a temporary one uploaded to an object store."""
    if isinstance(target, Path):
        target.mkdir(parents=True, exist_ok=True)
        yield target
        return
    with tempfile.TemporaryDirectory(prefix="multipolar-") as tmp:
        yield Path(tmp)
        for item in Path(tmp).iterdir():
            target.fs.put_file(str(item), f"{target.path}/{item.name}")


def draw_dashboard(layout: Layout, folder: Path):
    """Write the dashboard of every published metric partition into a local `folder`."""
    from dashboards.page import write_dashboard

    with records_kept():  # the records read for the provenance are not read again for the series
        provenance = dashboard_provenance(layout)
        # A stale copy (an imported date repeating the counts of the one before) is no observation of its own, and
        # a partial one (under half the models of the date before) would jump every line: both are left out of the
        # views and named in the footer.
        left_out = {*provenance["stale_dates"], *provenance["partial_dates"]}
        observed = ~pl.col("snapshot_date").is_in([dt.date.fromisoformat(d) for d in left_out])
        # The crossovers as known on the latest date drawn, which a stale copy after it does not move.
        crossovers = series(layout, CROSSOVERS).filter(observed)
        shares, concentration = shares_series(layout), series(layout, CONCENTRATION)
    return write_dashboard(
        shares.filter(observed),
        concentration.filter(observed),
        crossovers.filter(pl.col("snapshot_date") == pl.col("snapshot_date").max()),
        provenance | drawn_dates(provenance, left_out),
        folder,
    )


def drawn_dates(provenance: dict[str, Any], left_out: set[str]) -> dict[str, Any]:
    """The dates the dashboard draws, and the models of the latest of them, as the footer gives them."""
    dates = [d for d in provenance["dates"] if d not in left_out]
    latest = dates[-1] if dates else None
    return {"dates": dates, "rows": provenance["rows_by_date"].get(latest), "rows_date": latest}


def dashboard_step(layout: Layout, *, force: bool = False) -> dict[str, Any]:
    """Draw the dashboard from every published metric partition into `<root>/dashboard`."""
    if not layout.published_dates(SHARES):
        return {"status": "skipped: no metrics published"}
    if not force and dashboard_current(layout):
        return {"status": "already published"}
    began = time.monotonic()
    with records_kept():  # the metric records, read for the inputs, are not read again to draw from them
        inputs = dashboard_inputs(layout)
        with _local_folder(layout.dashboard_dir) as folder:
            result = draw_dashboard(layout, folder)
    html = layout.dashboard_dir / result.html.name
    write_json_atomic(layout.dashboard_dir / "dashboard.json", {"inputs": inputs, "html": str(html)} | made_by())
    return {
        "status": "published",
        "html": str(html),
        "bytes": result.page_bytes,
        "seconds": round(time.monotonic() - began, 2),
    }


def reproduction_of(layout: Layout, *, window: str = "30d"):
    """The reproduction report of every published metric: our numbers beside each published claim."""
    from analytics import reproduction

    coverage = reproduction.coverage_frame(
        [(d, read_meta(layout, MODELS, d) or {}) for d in layout.published_dates(MODELS)]
    )
    latest = layout.published_dates(SHARES)[-1:]
    largest = None
    if latest and latest[0] in layout.published_dates(ATTRIBUTIONS):
        largest = reproduction.largest_llm_repo(layout.scan(MODELS, latest[0]), layout.scan(ATTRIBUTIONS, latest[0]))
    return reproduction.reproduce(
        series(layout, SHARES),
        series(layout, CONCENTRATION),
        series(layout, CROSSOVERS),
        coverage,
        window=window,
        largest=largest,
    )


def reproduction_step(layout: Layout, *, with_markdown: bool = False) -> dict[str, Any]:
    """Write `<root>/reports/reproduction.md`; what was done, and with `with_markdown` the report itself (for a
    flow run's artifact)."""
    from analytics.reproduction import to_markdown

    if not layout.published_dates(SHARES):
        return {"status": "skipped: no metrics published"}
    with records_kept():  # each record once, for every report made and what it is made from
        # In the window `reproduce --window` last wrote it in; 30d unless told.
        window = _reports_made(layout).get("reproduction.md", {}).get("window", "30d")
        report = reproduction_of(layout, window=window)
        if report.timeline.is_empty() and window != "30d":
            window, report = "30d", reproduction_of(layout)
        markdown = to_markdown(report)
        target = write_report(layout, "reproduction.md", markdown, window=window)
        outcome = {"status": "published", "report": str(target)}
        if others := other_reports(layout):
            outcome["also"] = ", ".join(others)
    return outcome | {"markdown": markdown} if with_markdown else outcome


def other_reports(layout: Layout) -> list[str]:
    """Make again the reports `reproduce` wrote into `<root>/reports` in other formats or windows, so that every
    report there says what the data says now. A window that now has no LLM shares leaves its report as it was,
    which `check` tells of. The reports made."""
    from analytics.reproduction import RENDERERS as render

    folder = layout.root / "reports"
    wanted = {
        name: record.get("window", "30d")
        for name, record in _reports_made(layout).items()
        if name != "reproduction.md" and (folder / name).exists()  # one removed since is not made again
    }
    made = []
    inputs = report_inputs(layout) if wanted else None  # the same for every report: the records read once
    for window in sorted({w for w in wanted.values() if isinstance(w, str)}):
        report = reproduction_of(layout, window=window)
        if report.timeline.is_empty():
            continue
        for name in sorted(n for n, w in wanted.items() if w == window):
            write_report(layout, name, render[name.rsplit(".", 1)[-1]](report), window=window, inputs=inputs)
            made.append(name)
    return made


def report_inputs(layout: Layout) -> dict[str, Any]:
    """The partitions a reproduction report is made from: every metric partition, every date's `models` record
    (the coverage) and the latest metric date's attributions (its largest repo)."""
    latest = layout.published_dates(SHARES)[-1:]
    return dashboard_inputs(layout) | {
        MODELS.name: {d.isoformat(): _sha(layout, MODELS, d) for d in layout.published_dates(MODELS)},
        ATTRIBUTIONS.name: {d.isoformat(): _sha(layout, ATTRIBUTIONS, d) for d in latest},
    }


def write_report(layout: Layout, name: str, text: str, *, window: str, inputs: dict[str, Any] | None = None) -> Any:
    """Write report `name` into `<root>/reports`, whole or not at all, and record in `reports.json` what it was
    made from (`inputs`, read from the records when not given), for `check` to tell a report the data has moved
    past, and when and by what code. Call only while holding the writer lock."""
    folder = layout.root / "reports"
    made = _reports_made(layout)
    record = {"inputs": report_inputs(layout) if inputs is None else inputs, "window": window}
    kept = made.get(name) or {}
    if {key: kept.get(key) for key in record} == record and _bytes_of(folder / name) == text.encode("utf-8"):
        return folder / name  # as it is: not written again, so its time says when it last changed
    write_text_atomic(folder / name, text)
    made[name] = record | made_by()
    write_json_atomic(folder / REPORTS_RECORD, made)
    return folder / name


def _bytes_of(path: Any) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


REPORT_NAMES = ("reproduction.md", "reproduction.html", "reproduction.json")


def _reports_made(layout: Layout) -> dict[str, dict[str, Any]]:
    """What `reports.json` says each report was made from and in which window: only the reproduction reports,
    with a window the metrics have, are taken from it, whatever else it holds."""
    from analytics.metrics import WINDOWS

    try:
        made = json.loads((layout.root / "reports" / REPORTS_RECORD).read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(made, dict):
        return {}
    return {
        name: record
        for name, record in made.items()
        if name in REPORT_NAMES and isinstance(record, dict) and record.get("window", "30d") in WINDOWS
    }


def stale_reports(layout: Layout) -> dict[str, str]:
    """Each report in `<root>/reports` made from other partitions than those published now, with its window."""
    made = _reports_made(layout)
    if not made:
        return {}
    now = report_inputs(layout)
    folder = layout.root / "reports"
    return {
        name: str(record.get("window", "30d"))
        for name, record in sorted(made.items())
        if isinstance(record, dict) and record.get("inputs") != now and (folder / name).exists()
    }


def remove_date(layout: Layout, day: dt.date) -> dict[str, Any]:
    """Remove every table's `day` (derived tables first, `models` last), then the metadata versions no day points
    at any more, and bring the later dates up to date: the next date's `between` window starts a date earlier,
    and every later crossover is found again. Call only while holding the writer lock."""
    from warehouse.metadata import drop_unreferenced
    from warehouse.publish import unpublish

    removed = [
        t.name for t in (CROSSOVERS, CONCENTRATION, SHARES, ATTRIBUTIONS, REGISTRY, MODELS) if unpublish(layout, t, day)
    ]
    versions = drop_unreferenced(layout)
    return {"removed": removed, "metadata_versions_dropped": versions, "updated": update_later_dates(layout, day)}


def update_later_dates(layout: Layout, day: dt.date) -> dict[str, list[str]]:
    """Bring the dates published after `day` up to date with it: a date inserted or removed before them changes
    the next date's `between` window and every later date's crossovers. Each step is skipped where its inputs
    are unchanged (nothing to do after the latest date). An imported date after it is first compared with the
    date now before it (it may be, or no longer be, a stale copy: `compared again`). The dates each step
    published again, by step."""
    from flows.backfill import compare_again, date_after

    redone: dict[str, list[str]] = {}
    if (after := date_after(layout, day)) is not None and (said := compare_again(layout, after)):
        redone["compared again"] = [said]
    # Each later date's crossovers read the records and shares of every date before it: each once.
    crossovers = functools.partial(crossovers_date, kept={})
    with records_kept():
        for later in (d for d in layout.published_dates(MODELS) if d > day):
            for name, step in (("attribute", attribute_date), ("metrics", metrics_date), ("crossovers", crossovers)):
                if step(layout, later).get("status") == "published":
                    redone.setdefault(name, []).append(later.isoformat())
    return redone
