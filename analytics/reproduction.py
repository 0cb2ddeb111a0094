"""The reproduction report: Multipolar's numbers beside each published China–US claim (finding.md §1).

Every claim is compared under its own attribution rule, population and the closest window the warehouse
has, on the latest snapshot date:
- E1 (Economies of Open Intelligence): China's and the US's share of *all* credited downloads, uploader
  rule, all models; EOI counts each model's first year, so `all_time` is our closest window.
- H2 (HF Spring 2026): shares among *country-attributable* downloads (41 % + 36.5 % < 100 %), so our
  Unknown region is taken out of the denominator; uploader rule, all models, the latest month (`30d`).
- A2 (ATOM): cumulative downloads of official lab repos of LLMs (`official`, `llm`, `all_time`); beside
  the absolute counts, China's share of China + US, which does not depend on how many models are tracked.
- A1 (ATOM): the crossover date (summer 2025) beside ours from the `crossovers` table.
When the closest window holds no downloads (the llmfit panel records trailing-30-day counts only), the
next window of the claim's list is used and the report says so.
"""

from __future__ import annotations

import datetime as dt
import html
import json
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from analytics.attribution import RULES
from warehouse.provenance import series_source_kind, source_label

CHINA, US, UNKNOWN = "China", "United States", "Unknown"
DIMENSION = "region"


@dataclass(frozen=True)
class Claim:
    """One published claim and the rule, population and windows (closest first) that match it."""

    key: str
    source: str
    statement: str
    measure: str  # share_of_all | share_of_known | downloads | crossover
    rule: str
    population: str
    published_window: str
    windows: tuple[str, ...]
    china: float | None
    us: float | None
    published_crossover: str | None
    their_population: str
    context: str


CLAIMS = (
    Claim(
        key="E1",
        source="Economies of Open Intelligence (Longpre et al., arXiv 2512.03073)",
        statement="China passed the US in share of open-model downloads",
        measure="share_of_all",
        rule="uploader",
        population="all",
        published_window="year to Aug 2025 (downloads in each new model's first year)",
        windows=("all_time", "between", "30d"),
        china=0.171,
        us=0.158,
        published_crossover=None,
        their_population="851 k models, all modalities, weekly history Jun 2020–Aug 2025",
        context=(
            "EOI keeps International/Online (23.8 %) and unaffiliated developers as buckets of their own; "
            "our Unknown region plays that part, so both shares are of all downloads, Unknown included. "
            "Where the snapshots record all-time counts, all_time (cumulative since creation) is our closest "
            "window; between spans only two snapshots."
        ),
    ),
    Claim(
        key="H2",
        source="State of Open Source on Hugging Face: Spring 2026",
        statement="China 41 % vs US 36.5 % of downloads",
        measure="share_of_known",
        rule="uploader",
        population="all",
        published_window="latest month (some coverage says the past year)",
        windows=("30d", "all_time"),
        china=0.41,
        us=0.365,
        published_crossover=None,
        their_population="the whole Hub (> 2 M public models)",
        context=(
            "41 % + 36.5 % = 77.5 %, so the denominator is downloads attributable to a country: "
            "ours is China / (downloads of known regions), Unknown left out."
        ),
    ),
    Claim(
        key="A2",
        source="The ATOM Report (Brand & Lambert, arXiv 2604.07190)",
        statement="Cumulative downloads of tracked open LLMs, Mar 2026: China 1.15 B vs US 723 M",
        measure="downloads",
        rule="official",
        population="llm",
        published_window="cumulative since release, to Mar 2026",
        windows=("all_time", "30d"),
        china=1.15e9,
        us=723e6,
        published_crossover=None,
        their_population="~1.5 k mainline open LLMs of official lab repos",
        context=(
            "Absolute counts depend on how many repos are tracked; China's share of China + US "
            "(61.4 % published) is the comparable figure."
        ),
    ),
    Claim(
        key="A1",
        source="The ATOM Report (Brand & Lambert, arXiv 2604.07190)",
        statement="China passed the US in open-LLM downloads in summer 2025 (July 2025)",
        measure="crossover",
        rule="official",
        population="llm",
        published_window="monthly and cumulative series, Nov 2023–Mar 2026",
        windows=("30d", "all_time"),
        china=None,
        us=None,
        published_crossover="2025-07",
        their_population="~1.5 k mainline open LLMs of official lab repos",
        context=(
            "A crossover needs a series that spans it: a series starting after July 2025 can only show "
            "whether China already leads when it begins."
        ),
    ),
)


@dataclass(frozen=True)
class Reproduction:
    """The report's content: one row per claim, one row per snapshot date, and general notes."""

    claims: pl.DataFrame
    timeline: pl.DataFrame
    as_of: dt.date
    window: str
    notes: list[str] = field(default_factory=list)
    label: str | None = None  # what the data is when not a crawl of the real Hub (`source_label`)


def published_claims() -> pl.DataFrame:
    """The declared claims as a frame."""
    return pl.DataFrame(
        [{k: v for k, v in c.__dict__.items() if k != "windows"} | {"windows": list(c.windows)} for c in CLAIMS]
    )


def coverage_frame(metas: list[tuple[dt.date, dict[str, Any]]]) -> pl.DataFrame:
    """Per `models` snapshot date: its row count and where it came from, from the `_meta` records."""
    rows = [
        {
            "snapshot_date": day,
            "models": meta.get("rows"),
            "source_kind": meta.get("source_kind", "hub"),
            "source": meta.get("source_file") or meta.get("endpoint"),
            "scope": meta.get("scope"),
            "note": snapshot_note(meta),
        }
        for day, meta in metas
    ]
    schema = {
        "snapshot_date": pl.Date,
        "models": pl.Int64,
        "source_kind": pl.String,
        "source": pl.String,
        "scope": pl.String,
        "note": pl.String,
    }
    return pl.DataFrame(rows, schema=schema, orient="row")


def snapshot_note(meta: dict[str, Any]) -> str | None:
    """What an imported date's record says of it: a stale copy or a partial snapshot against the date before,
    and 30-day counts for under half of its models."""
    said = []
    if meta.get("same_counts_as"):
        said.append(f"same counts as {meta['same_counts_as']}")
    elif meta.get("models_of_date_before"):
        said.append(f"partial: {meta.get('rows', 0):,} of {meta['models_of_date_before']:,} models")
    counted, rows = meta.get("models_with_30d_count"), meta.get("rows")
    if isinstance(counted, int) and isinstance(rows, int) and 2 * counted < rows:
        said.append(f"30-day counts for {counted:,} of {rows:,} models")
    return "; ".join(said) or None


def region_shares(shares: pl.DataFrame, day: dt.date, rule: str, population: str, window: str) -> dict[str, float]:
    """Share of each region on `day` (Unknown included) in one group, plus `downloads`, the group total. China's
    or the US's share is 0 when absent, None when not known (listed, none of its models counted); Unknown's is
    0 then, as no download of it is counted."""
    group = shares.filter(
        (pl.col("snapshot_date") == day)
        & (pl.col("rule") == rule)
        & (pl.col("population") == population)
        & (pl.col("time_window") == window)
        & (pl.col("dimension") == DIMENSION)
    )
    found = {a: s for a, s in group.select("actor", "share").iter_rows()}
    downloads = {a: d for a, d in group.select("actor", "downloads").iter_rows()}
    return {
        CHINA: found.get(CHINA, 0.0),
        US: found.get(US, 0.0),
        UNKNOWN: found.get(UNKNOWN) or 0.0,
        "downloads": float(sum(downloads.values())),
        "china_downloads": float(downloads.get(CHINA, 0.0)),
        "us_downloads": float(downloads.get(US, 0.0)),
    }


def group_total(shares: pl.DataFrame, day: dt.date, rule: str, population: str, window: str) -> float:
    """The credited downloads of one group on `day` (region dimension)."""
    return region_shares(shares, day, rule, population, window)["downloads"]


def actor_share(
    shares: pl.DataFrame, day: dt.date, rule: str, population: str, window: str, dimension: str, actor: str
) -> float:
    """One actor's share on `day` in one group (0 when absent)."""
    row = shares.filter(
        (pl.col("snapshot_date") == day)
        & (pl.col("rule") == rule)
        & (pl.col("population") == population)
        & (pl.col("time_window") == window)
        & (pl.col("dimension") == dimension)
        & (pl.col("actor") == actor)
    )
    return float(row["share"].sum()) if row.height else 0.0


def chosen_window(shares: pl.DataFrame, day: dt.date, claim: Claim) -> str | None:
    """The claim's closest window that has downloads on `day`, or None when none has."""
    for window in claim.windows:
        if group_total(shares, day, claim.rule, claim.population, window) > 0:
            return window
    return None


def points(share_gap: float | None) -> str:
    """A gap between two shares in percentage points, signed: +44.1 pp."""
    return "n/a" if share_gap is None else f"{100 * share_gap:+.1f} pp"


def percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def count(value: float | None) -> str:
    """Downloads in B / M / k."""
    if value is None:
        return "n/a"
    for size, unit in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g} {unit}"
    return f"{value:.0f}"


def claim_row(
    claim: Claim, shares: pl.DataFrame, crossovers: pl.DataFrame, coverage: pl.DataFrame, day: dt.date
) -> dict[str, Any]:
    """Our numbers for one claim on `day`, whether the direction agrees, and what explains the rest."""
    window = chosen_window(shares, day, claim)
    row: dict[str, Any] = {
        "claim": claim.key,
        "source": claim.source,
        "statement": claim.statement,
        "rule": claim.rule,
        "population": claim.population,
        "published_window": claim.published_window,
        "window": window,
        "snapshot_date": day,
        "published_china": claim.china,
        "published_us": claim.us,
        "published_crossover": claim.published_crossover,
        "our_china": None,
        "our_us": None,
        "our_crossover": None,
        "published_china_ahead": True,
        "our_china_ahead": None,
        "agrees": "n/a",
    }
    notes = []
    if window is None:
        row["published"], row["ours"] = _published_text(claim), "no downloads in any matching window"
        row["notes"] = f"{claim.context} The warehouse has no {claim.rule}/{claim.population} downloads."
        return row
    regions = region_shares(shares, day, claim.rule, claim.population, window)
    if claim.measure == "share_of_all":
        row["our_china"], row["our_us"] = regions[CHINA], regions[US]
        ours = f"China {percent(regions[CHINA])} vs US {percent(regions[US])}"
    elif claim.measure == "share_of_known":
        known = 1.0 - regions[UNKNOWN]
        row["our_china"] = regions[CHINA] / known if known > 0 and regions[CHINA] is not None else None
        row["our_us"] = regions[US] / known if known > 0 and regions[US] is not None else None
        ours = f"China {percent(row['our_china'])} vs US {percent(row['our_us'])} of known-region downloads"
    elif claim.measure == "downloads":
        # Not known (None) where the share is not: 0 downloads credited is then no count of them.
        row["our_china"] = None if regions[CHINA] is None else regions["china_downloads"]
        row["our_us"] = None if regions[US] is None else regions["us_downloads"]
        pair = (row["our_china"] or 0.0) + (row["our_us"] or 0.0)
        published_pair = claim.china / (claim.china + claim.us) if claim.china and claim.us else None
        ours = f"China {count(row['our_china'])} vs US {count(row['our_us'])}"
        if pair > 0 and row["our_china"] is not None and row["our_us"] is not None:
            ours += f"; China {percent(row['our_china'] / pair)} of China + US (published {percent(published_pair)})"
    else:
        ours, crossed_note = _crossover_text(crossovers, claim, window, day, row)
        notes.append(crossed_note)
    if claim.measure != "crossover":
        unknown = row["our_china"] is None or row["our_us"] is None
        row["our_china_ahead"] = None if unknown else row["our_china"] > row["our_us"]
    row["agrees"] = "n/a" if row["our_china_ahead"] is None else "yes" if row["our_china_ahead"] else "no"
    row["published"], row["ours"] = _published_text(claim), ours
    notes = [claim.context, *notes, *_differences(claim, shares, coverage, day, window, regions)]
    row["notes"] = " ".join(n for n in notes if n)
    return row


def _published_text(claim: Claim) -> str:
    if claim.measure == "crossover":
        return f"crossover {claim.published_crossover}"
    if claim.measure == "downloads":
        return f"China {count(claim.china)} vs US {count(claim.us)}"
    return f"China {percent(claim.china)} vs US {percent(claim.us)}"


def _crossover_text(
    crossovers: pl.DataFrame, claim: Claim, window: str, day: dt.date, row: dict[str, Any]
) -> tuple[str, str]:
    """Our crossover for the claim's series as of `day`, and how it relates to the published date."""
    found = crossovers.filter(
        (pl.col("snapshot_date") == day)
        & (pl.col("rule") == claim.rule)
        & (pl.col("population") == claim.population)
        & (pl.col("time_window") == window)
        & (pl.col("dimension") == DIMENSION)
        & (pl.col("challenger") == CHINA)
        & (pl.col("incumbent") == US)
    )
    if found.height == 0:
        return "no crossover row", "The crossovers table has no row for this series."
    record = found.row(0, named=True)
    if not record["dates"]:
        return f"none as of {day}", "No date of the series has both China's and the US's share known."
    row["our_china_ahead"] = (record["margin"] or 0) > 0
    # The series' latest date: the report's own, unless it is left out (a stale copy, say).
    first, last = record["first_date"], record.get("last_date") or day
    if record["status"] != "crossed":
        return (
            f"none as of {day} (margin {points(record['margin'])} on {last})",
            f"China does not stay ahead over our {record['dates']} dates from {first}.",
        )
    row["our_crossover"] = record["crossover_date"]
    if record["crossover_date"] == first:
        return (
            f"China ahead since our first date, {first} (margin {points(record['margin'])} on {last})",
            f"China already leads when our series begins ({first}), after the published "
            f"{claim.published_crossover}: consistent, but the crossing itself is outside our dates.",
        )
    return (
        f"crossed {record['crossover_date']} (margin {points(record['margin'])} on {last})",
        f"Our series ({first} … {day}) sees China overtake on {record['crossover_date']}, "
        f"against the published {claim.published_crossover}.",
    )


def _differences(
    claim: Claim, shares: pl.DataFrame, coverage: pl.DataFrame, day: dt.date, window: str, regions: dict[str, float]
) -> list[str]:
    """What explains the distance between the published number and ours: window, population, coverage, …"""
    notes = []
    if window != claim.windows[0]:
        notes.append(
            f"Window: {claim.published_window} published; ours is {window}, as the snapshots record no "
            f"{claim.windows[0]} downloads on {day} (an import of 30-day counts alone, such as the llmfit panel)."
        )
    else:
        notes.append(f"Window: {claim.published_window} published; ours is {window}.")
    models = coverage.filter(pl.col("snapshot_date") == day)
    size = (
        f"{models['models'][0]:,} models"
        if models.height and models["models"][0] is not None
        else "an unknown number of models"
    )
    kind = models["source_kind"][0] if models.height else "unknown source"
    notes.append(f"Coverage: {size} on {day} ({kind}) against {claim.their_population}.")
    if claim.population == "all":
        everything = group_total(shares, day, claim.rule, "all", window)
        llm = group_total(shares, day, claim.rule, "llm", window)
        if everything > 0:
            notes.append(
                f"Population: LLMs hold {percent(llm / everything)} of our all-model downloads; Hub-wide counts "
                "are dominated by small encoders and embedding models (sentence-transformers, BAAI, google-bert)."
            )
    if claim.measure != "share_of_known":
        notes.append(f"Unknown region: {percent(regions[UNKNOWN])} of credited downloads.")
    if claim.rule == "uploader":
        held = actor_share(shares, day, "uploader", claim.population, window, "developer_type", "intermediary")
        notes.append(
            f"Intermediaries (re-uploaders, quantizers, test fixtures) hold {percent(held)} under the uploader rule, "
            "credited to their own account rather than to the base model's lab."
        )
    else:
        uploaded = group_total(shares, day, "uploader", claim.population, window)
        kept = regions["downloads"]
        if uploaded > 0:
            notes.append(
                f"The official rule keeps {percent(kept / uploaded)} of the population's downloads "
                "(repos of the labs the registry lists); re-uploads, test fixtures, community fine-tunes and repos "
                "of accounts it does not list are left out."
            )
    return notes


def timeline(
    shares: pl.DataFrame, concentration: pl.DataFrame, coverage: pl.DataFrame, *, window: str = "30d"
) -> pl.DataFrame:
    """Per snapshot date: China's and the US's share among LLMs and the effective poles, under each rule."""
    keep = (pl.col("population") == "llm") & (pl.col("time_window") == window) & (pl.col("dimension") == DIMENSION)
    head = (
        shares.filter(keep & pl.col("actor").is_in([CHINA, US]))
        .with_columns(pl.concat_str("rule", pl.col("actor").replace({CHINA: "_china", US: "_us"})).alias("column"))
        # A share not known is NaN through the pivot, told apart from an actor absent, and null again after it.
        .with_columns(pl.col("share").fill_null(float("nan")))
        .pivot(on="column", index="snapshot_date", values="share", aggregate_function="first")
    )
    poles = (
        concentration.filter(keep)
        .with_columns(pl.concat_str("rule", pl.lit("_poles")).alias("column"))
        .pivot(on="column", index="snapshot_date", values="effective_poles", aggregate_function="first")
    )
    dates = pl.concat([shares.filter(keep).select("snapshot_date"), concentration.filter(keep).select("snapshot_date")])
    frame = (
        dates.unique()
        .join(coverage.select("snapshot_date", "models", "note"), on="snapshot_date", how="left")
        .join(head, on="snapshot_date", how="left")
        .join(poles, on="snapshot_date", how="left")
    )
    columns = ["snapshot_date", "models", *[f"{r}_{m}" for r in RULES for m in ("china", "us", "poles")], "note"]
    frame = frame.with_columns(
        pl.lit(None, pl.String if c == "note" else pl.Float64).alias(c) for c in columns if c not in frame.columns
    )
    # An actor absent on a date has share 0 there, as in crossover detection; one whose share is not known, null.
    shares_columns = [c for c in columns if c.endswith(("_china", "_us"))]
    return (
        frame.select(columns).with_columns(pl.col(shares_columns).fill_null(0.0).fill_nan(None)).sort("snapshot_date")
    )


def reproduce(
    shares: pl.DataFrame,
    concentration: pl.DataFrame,
    crossovers: pl.DataFrame,
    coverage: pl.DataFrame,
    *,
    window: str = "30d",
    claims: tuple[Claim, ...] = CLAIMS,
    largest: dict[str, Any] | None = None,
) -> Reproduction:
    """The reproduction report of a warehouse's metric series (each frame with `snapshot_date`); `largest`, the
    latest date's largest LLM repo (`largest_llm_repo`), is named when it alone moves the shares."""
    day = shares["snapshot_date"].max()
    rows = [claim_row(c, shares, crossovers, coverage, day) for c in claims]
    notes = _general_notes(shares, coverage, day)
    if largest is not None and (note := _largest_note(shares, day, largest)):
        notes.insert(1, note)
    return Reproduction(
        claims=pl.DataFrame(rows, infer_schema_length=None),
        timeline=timeline(shares, concentration, coverage, window=window),
        as_of=day,
        window=window,
        notes=notes,
        label=source_label(series_source_kind(coverage["source_kind"].fill_null("hub"))),
    )


# A repo holding at least this share of a group's downloads is named, with the shares without it.
LARGEST_NOTED = 0.05


def largest_llm_repo(models: pl.LazyFrame, attributions: pl.LazyFrame) -> dict[str, Any] | None:
    """The LLM repo with the most 30-day downloads, with its downloads and region under the uploader rule."""
    from analytics.metrics import is_llm

    top = (
        models.filter(is_llm(pl.col("pipeline_tag")))
        .select("model_id", "downloads_30d")
        .sort("downloads_30d", descending=True, nulls_last=True)
        .head(1)
        .collect()
    )
    if top.is_empty() or not top.item(0, "downloads_30d"):
        return None
    model = top.item(0, "model_id")
    credit = (
        attributions.filter((pl.col("model_id") == model) & (pl.col("rule") == "uploader")).select("region").collect()
    )
    region = credit.item(0, "region") if credit.height else None
    return {"model_id": model, "downloads": float(top.item(0, "downloads_30d")), "region": region or UNKNOWN}


def _largest_note(shares: pl.DataFrame, day: dt.date, largest: dict[str, Any]) -> str | None:
    """How far one repo moves the China and US shares among LLMs on `day` (30d, uploader rule), when it holds at
    least `LARGEST_NOTED` of their downloads."""
    group = region_shares(shares, day, "uploader", "llm", "30d")
    total, held = group["downloads"], largest["downloads"]
    if total <= 0 or held / total < LARGEST_NOTED or held >= total or None in (group[CHINA], group[US]):
        return None
    china = group["china_downloads"] - (held if largest["region"] == CHINA else 0.0)
    us = group["us_downloads"] - (held if largest["region"] == US else 0.0)
    return (
        f"One repo, {largest['model_id']} ({largest['region']}), holds {percent(held / total)} of LLM downloads on "
        f"{day} (30d, uploader rule): without it China {percent(china / (total - held))} vs US "
        f"{percent(us / (total - held))}, against {percent(group[CHINA])} vs {percent(group[US])} with it."
    )


def _general_notes(shares: pl.DataFrame, coverage: pl.DataFrame, day: dt.date) -> list[str]:
    notes = []
    kinds = sorted(set(coverage["source_kind"].drop_nulls().to_list()))
    sources = sorted(set(coverage["source"].drop_nulls().to_list()))
    if kinds:
        dates = f"{coverage.height} date{'s' if coverage.height != 1 else ''}"
        notes.append(f"Snapshots: {dates}, source kind {', '.join(kinds)}; {', '.join(sources[:3])}.")
    noted = coverage.filter(pl.col("note").is_not_null()).sort("snapshot_date")
    stale = noted.filter(pl.col("note").str.starts_with("same counts")).get_column("snapshot_date").to_list()
    if stale:
        notes.append(
            f"{len(stale)} {'dates repeat' if len(stale) != 1 else 'date repeats'} every count of the date before "
            f"({', '.join(str(d) for d in stale)}): stale copies in the source, which add no observation of their "
            "own; a crossover held through them is held by fewer real snapshots."
        )
    if day in stale:
        note = noted.filter(pl.col("snapshot_date") == day).item(0, "note")
        source = note.split(";")[0].removeprefix("same counts as ")
        notes.append(f"The latest date, {day}, is one of them: its figures are those of {source}.")
    partial_days = noted.filter(pl.col("note").str.starts_with("partial")).get_column("snapshot_date").to_list()
    if partial_days:
        notes.append(
            f"Partial snapshots ({', '.join(str(d) for d in partial_days)}) list under half the models of the date "
            "before: their shares are of the few listed."
        )
    thin = noted.filter(pl.col("note").str.contains("30-day counts for")).get_column("snapshot_date").to_list()
    if thin:
        notes.append(
            f"On {len(thin)} {'dates' if len(thin) != 1 else 'date'} ({', '.join(str(d) for d in thin)}) under half "
            "the models have a 30-day count: their shares rest on the few counted."
        )
    scopes = coverage.get_column("scope").drop_nulls().unique(maintain_order=True).to_list()
    partial = [scope for scope in scopes if scope != "full"]
    if partial:
        notes.append(
            f"Crawled with --scope {', '.join(scopes)}: {'those' if len(scopes) > 1 else 'these'} snapshots list part "
            "of the Hub, so the shares are of the listed models' downloads, not of the whole Hub the claims measure."
        )
    latest = shares.filter((pl.col("snapshot_date") == day) & (pl.col("dimension") == DIMENSION))
    by_rule = {
        rule: latest.filter(pl.col("rule") == rule)
        .sort("time_window", "population", "actor")
        .select("downloads")
        .to_series()
        .to_list()
        for rule in ("uploader", "lineage")
    }
    if by_rule["uploader"] and by_rule["uploader"] == by_rule["lineage"]:
        notes.append(
            "Lineage credits equal uploader credits on the latest date: the snapshots carry no base_model "
            "tags, so every model is its own root."
        )
    notes.append(
        "Shares are of all credited downloads of the group, Unknown included; effective poles (1/HHI) are "
        "over known regions only."
    )
    return notes


# --- rendering -----------------------------------------------------------------------------------------

CLAIM_COLUMNS = ("claim", "source", "rule · population · window", "published", "Multipolar", "China ahead?", "agrees")


def _claim_cells(row: dict[str, Any]) -> list[str]:
    ahead = "n/a" if row["our_china_ahead"] is None else "yes" if row["our_china_ahead"] else "no"
    return [
        row["claim"],
        row["source"],
        f"{row['rule']} · {row['population']} · {row['window'] or 'none'}",
        row["published"],
        row["ours"],
        f"published yes; ours {ahead}",
        row["agrees"],
    ]


def _timeline_header(window: str) -> list[str]:
    header = ["date", "models (all)"]  # the snapshot's models, of every population
    for rule in RULES:
        header += [f"{rule} China", f"{rule} US", f"{rule} poles"]
    return [*header, "note"]


def _timeline_cells(row: dict[str, Any]) -> list[str]:
    cells = [str(row["snapshot_date"]), "" if row["models"] is None else f"{row['models']:,}"]
    for rule in RULES:
        poles = row[f"{rule}_poles"]
        cells += [percent(row[f"{rule}_china"]), percent(row[f"{rule}_us"]), "n/a" if poles is None else f"{poles:.2f}"]
    return [*cells, row.get("note") or ""]


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]


def to_markdown(report: Reproduction) -> str:
    """The report as Markdown: the claims, what explains each difference, then the per-date table."""
    claims = list(report.claims.iter_rows(named=True))
    lines = [
        "# Reproduction of the published China–US download findings",
        "",
        *([f"**{report.label}**", ""] if report.label else []),
        f"As of {report.as_of}. Region dimension; each claim under its own rule, population and closest window.",
        "",
        *_md_table(CLAIM_COLUMNS, [_claim_cells(r) for r in claims]),
        "",
        "## What explains the differences",
        "",
        *[f"- **{r['claim']}** ({_md_cell(r['statement'])}): {_md_cell(r['notes'])}" for r in claims],
        "",
        f"## China and US shares among LLMs by date (region, {report.window} window)",
        "",
        *_md_table(
            _timeline_header(report.window), [_timeline_cells(r) for r in report.timeline.iter_rows(named=True)]
        ),
        "",
        "## Notes",
        "",
        *[f"- {_md_cell(n)}" for n in report.notes],
    ]
    return "\n".join(lines)


def _html_table(header: list[str] | tuple[str, ...], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


STYLE = (
    "body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:80em;color:#222}"
    "table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left}"
    "th{background:#f3f3f3}td{vertical-align:top}"
)


def to_html(report: Reproduction) -> str:
    """The report as one self-contained HTML page (no scripts, no external resources, every value escaped)."""
    claims = list(report.claims.iter_rows(named=True))
    notes = "".join(
        f"<li><b>{html.escape(r['claim'])}</b> ({html.escape(r['statement'])}): {html.escape(r['notes'])}</li>"
        for r in claims
    )
    general = "".join(f"<li>{html.escape(n)}</li>" for n in report.notes)
    timeline_rows = [_timeline_cells(r) for r in report.timeline.iter_rows(named=True)]
    title_label = f" — {html.escape(report.label)}" if report.label else ""
    warning = "color:#fff;background:#b00020;padding:.3em .6em"
    label = f'<p style="{warning}"><b>{html.escape(report.label)}</b></p>' if report.label else ""
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>Multipolar reproduction {html.escape(str(report.as_of))}{title_label}</title><style>{STYLE}</style>"
        "</head><body><h1>Reproduction of the published China–US download findings</h1>"
        f"{label}"
        f"<p>As of {html.escape(str(report.as_of))}. Region dimension; each claim under its own rule, population "
        "and closest window.</p>"
        f"{_html_table(CLAIM_COLUMNS, [_claim_cells(r) for r in claims])}"
        f"<h2>What explains the differences</h2><ul>{notes}</ul>"
        f"<h2>China and US shares among LLMs by date (region, {html.escape(report.window)} window)</h2>"
        f"{_html_table(_timeline_header(report.window), timeline_rows)}"
        f"<h2>Notes</h2><ul>{general}</ul></body></html>\n"
    )


def to_json(report: Reproduction) -> str:
    """The report as JSON: the claims and the per-date table as lists of records."""
    payload = {
        "as_of": report.as_of,
        "window": report.window,
        "data_label": report.label,
        "claims": report.claims.to_dicts(),
        "timeline": report.timeline.to_dicts(),
        "notes": report.notes,
    }
    return json.dumps(payload, indent=2, default=str) + "\n"


# What writes the report in each format, by the suffix of its file (`reproduction.<suffix>`).
RENDERERS = {"md": to_markdown, "html": to_html, "json": to_json}
