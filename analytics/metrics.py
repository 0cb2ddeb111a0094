"""Credited downloads, actor shares and concentration for one snapshot date.

Choices, in one place:
- Windows: `30d` (downloads_30d), `all_time` (downloads_all_time) and, when the previous snapshot is
  given, `between` (all-time downloads gained since it). A model listed then gains the change of its count;
  a model created since (after the previous snapshot's crawl began, when its record says so; else after the
  previous date) gains its whole all-time total. A gain that cannot be
  known counts 0: a model without an all-time count on either date, or absent from the previous snapshot
  though created before it (hidden then, or missed by that crawl), whose all-time total is no day's gain;
  those with an all-time count now, whose downloads are thus left out, are counted in `unknown_gains`.
  Without the previous date, every model absent then counts as new. The Hub's all-time counter can go
  down (recounts, repo resets): such negative deltas are kept as they are in `model_deltas`, summarised
  by `negative_deltas`, and count as 0 in shares and concentration, so one shrinking repo never offsets
  another actor's real downloads.
- Populations: `all`; `llm` (pipeline_tag text-generation or image-text-to-text); one size class per
  model from params_total (`size:<1B`, `size:1-9B`, `size:10-99B`, `size:100B+`, and `size:unknown`
  when the count is missing or not positive).
- Dimensions: country (ISO code), region, lab, developer_type; a null attribute is the actor `Unknown`.
- Attribution rows with weight 0 (models the `official` rule excludes) are dropped, so an excluded
  model counts in no denominator whether it is listed with weight 0 or absent.
- Shares include `Unknown` with its share of all credited downloads; concentration (see
  `analytics.concentration`) is over known actors only.
- A model without a count adds nothing to its actor's downloads. An actor none of whose models in a group
  has a count (an imported date with gaps, a `between` window whose gains are not known) has downloads 0
  and a null share: its share is not known, rather than none. Models that disappeared since the previous
  snapshot are not in this snapshot and credit nothing.
"""

from __future__ import annotations

import datetime as dt
from functools import reduce

import polars as pl

from analytics.concentration import GROUP, UNKNOWN, concentration_of, share_of_group
from analytics.order import Frame, read_by_merge

WINDOWS = ("30d", "all_time", "between")
LLM_PIPELINES = ("text-generation", "image-text-to-text")
SIZE_CLASSES = ("size:<1B", "size:1-9B", "size:10-99B", "size:100B+", "size:unknown")
POPULATIONS = ("all", "llm", *SIZE_CLASSES)
DIMENSIONS = ("country", "region", "lab", "developer_type")
MODEL_COLUMNS = ("model_id", "downloads_30d", "downloads_all_time", "pipeline_tag", "params_total")
CREDIT_COLUMNS = ("model_id", "rule", "weight", *DIMENSIONS)
# With the date's registry, a row's four dimensions are those of its registry row: grouped on its number.
ENTRY_COLUMNS = ("model_id", "rule", "weight", "entry")


def counted_sum(values: pl.Expr) -> pl.Expr:
    """The sum of `values` (aggregation); null when none of them is known, where polars' sum says 0."""
    return pl.when(values.count() > 0).then(values.sum())


def size_class(params: pl.Expr) -> pl.Expr:
    """The size-class population of a parameter count; unknown when missing or not positive."""
    return (
        pl.when(params.is_null() | (params <= 0))
        .then(pl.lit("size:unknown"))
        .when(params < 1_000_000_000)
        .then(pl.lit("size:<1B"))
        .when(params < 10_000_000_000)
        .then(pl.lit("size:1-9B"))
        .when(params < 100_000_000_000)
        .then(pl.lit("size:10-99B"))
        .otherwise(pl.lit("size:100B+"))
    )


def is_llm(pipeline_tag: pl.Expr) -> pl.Expr:
    """Whether a pipeline tag marks a language model (text or image-text to text)."""
    return pipeline_tag.is_in(LLM_PIPELINES).fill_null(False)


def populations(llm: pl.Expr, size: pl.Expr) -> pl.Expr:
    """The populations a model belongs to: all, llm when it is one, and its size class (nulls to drop)."""
    return pl.concat_list(pl.lit("all"), pl.when(llm).then(pl.lit("llm")), size)


def windows(previous_models: Frame | None) -> list[str]:
    """The windows a snapshot supports: `between` only with a previous snapshot."""
    return list(WINDOWS) if previous_models is not None else [w for w in WINDOWS if w != "between"]


def recorded_windows(per_model: pl.DataFrame, previous_models: Frame | None) -> list[str]:
    """The windows of `windows` whose counts the snapshot records. A snapshot whose every model lacks a count
    (an import of a panel without all-time downloads) has no shares in that window, rather than shares of
    nothing shown as zeros; `between` needs all-time counts on both dates."""
    counted = per_model.select(
        (pl.col(column).is_not_null().any() | (pl.len() == 0)).alias(column) for column in ("30d", "all_time")
    ).row(0, named=True)
    if previous_models is not None:
        before = (
            previous_models.lazy().select(pl.col("downloads_all_time").is_not_null().any() | (pl.len() == 0)).collect()
        )
        counted["between"] = counted["all_time"] and before.item()
    return [window for window in windows(previous_models) if counted[window]]


def all_time_gain(now: pl.Expr, previous: pl.Expr, listed_before: pl.Expr, new: pl.Expr) -> pl.Expr:
    """All-time downloads gained since the previous snapshot: the change for a model listed then (null when
    either count is missing), the whole total for a model `new` since, else null (not known)."""
    return pl.when(listed_before).then(now - previous).when(new).then(now)


def previous_all_time(previous_models: Frame) -> pl.LazyFrame:
    """Each model's all-time downloads at the previous snapshot, and that it was listed then."""
    return previous_models.lazy().select(
        "model_id", pl.col("downloads_all_time").alias("previous_all_time"), pl.lit(True).alias("listed_before")
    )


def model_deltas(models: Frame, previous_models: Frame) -> pl.LazyFrame:
    """Per model: all-time downloads now, at the previous snapshot (null if new) and the change, negatives kept
    (null where it is not known; a model absent then counts as new)."""
    listed = pl.col("listed_before").fill_null(False)
    return (
        models.lazy()
        .select("model_id", "downloads_all_time")
        .join(previous_all_time(previous_models), on="model_id", how="left")
        .with_columns(
            all_time_gain(pl.col("downloads_all_time"), pl.col("previous_all_time"), listed, ~listed).alias("delta")
        )
        .drop("listed_before")
    )


def negative_deltas(models: Frame, previous_models: Frame) -> pl.DataFrame:
    """How many models' all-time downloads fell since the previous snapshot, and the summed fall (≤ 0)."""
    return fallen(model_deltas(models, previous_models))


def fallen(deltas: Frame) -> pl.DataFrame:
    """`negative_deltas` from per-model rows that carry their all-time `delta`."""
    return (
        deltas.lazy()
        .filter(pl.col("delta") < 0)
        .select(pl.len().cast(pl.Int64).alias("models"), pl.col("delta").sum().cast(pl.Int64).alias("downloads"))
        .collect()
    )


def model_downloads(models: Frame, previous_models: Frame | None = None) -> pl.LazyFrame:
    """Per model: downloads in each window (negative gains clipped to 0), LLM flag and size class; with a
    previous snapshot, the all-time `delta` too, negatives kept, and whether the model was `listed_before`
    (a model absent then counts as new: `not_new_since` takes back the gains of those created before)."""
    frame = models.lazy()
    between = []
    if previous_models is not None:
        frame = frame.join(previous_all_time(previous_models), on="model_id", how="left", maintain_order="left")
        listed = pl.col("listed_before").fill_null(False)
        gain = all_time_gain(pl.col("downloads_all_time"), pl.col("previous_all_time"), listed, ~listed)
        between = [gain.clip(0).alias("between"), gain.alias("delta"), listed.alias("listed_before")]
    return frame.select(
        "model_id",
        # Missing counts stay null, which every sum leaves out, so a window with none is seen to be missing.
        pl.col("downloads_30d").alias("30d"),
        pl.col("downloads_all_time").alias("all_time"),
        *between,
        is_llm(pl.col("pipeline_tag")).alias("llm"),
        size_class(pl.col("params_total")).alias("size"),
    )


def not_new_since(
    per_model: pl.DataFrame,
    models: Frame,
    previous_date: dt.date,
    listed_at: dt.datetime | None = None,
    previous_models: Frame | None = None,
) -> pl.DataFrame:
    """`per_model` with no `between` gain for the models absent from the previous snapshot though created
    before it was listed (or when is not known): their all-time total is no gain since. `listed_at`, when known,
    is the moment the previous snapshot's crawl began: a model created after it was not there to be listed, so
    its whole total is gained since, even when it was created on the previous date. Without it, a model created
    on or before the previous date counts as there then. Only those few models' creation dates are read.
    With `previous_models`, a model listed then under an id that differs only in case (the Hub ignores it) is that
    model, and gains the change of its count (`case_renamed`)."""
    absent = per_model.filter(~pl.col("listed_before")).get_column("model_id")
    if absent.is_empty():
        return per_model
    created_at = pl.col("created_at")
    there_then = created_at <= listed_at if listed_at is not None else created_at.dt.date() <= previous_date
    created = (
        models.lazy()
        .filter(pl.col("model_id").is_in(absent.to_list()))
        .select("model_id", "created_at")
        .filter(created_at.is_null() | there_then)
        .collect()
        .get_column("model_id")
    )
    if created.is_empty():
        return per_model
    if previous_models is not None:
        per_model, renamed = case_renamed(per_model, created, previous_models)
        created = created.filter(~created.is_in(renamed.implode()))
        if created.is_empty():
            return per_model
    old = pl.col("model_id").is_in(created.to_list())
    return per_model.with_columns(pl.when(old).then(None).otherwise(pl.col(c)).alias(c) for c in ("between", "delta"))


def case_renamed(per_model: pl.DataFrame, absent: pl.Series, previous_models: Frame) -> tuple[pl.DataFrame, pl.Series]:
    """`per_model` with the models of `absent` (not listed in the previous snapshot under their id, though there
    then) that were listed then under an id differing only in case, and gone since, taken as listed then: they gain
    the change of their count. An id two models share in lower case is left as it is. Also the ids so taken."""
    lower = pl.col("model_id").str.to_lowercase()
    keys = absent.str.to_lowercase().unique()
    candidates = (
        previous_models.lazy().select("model_id", "downloads_all_time").filter(lower.is_in(keys.implode())).collect()
    )
    listed_now = per_model.get_column("model_id").filter(
        per_model.get_column("model_id").is_in(candidates["model_id"].implode())
    )
    then = (
        candidates.filter(~pl.col("model_id").is_in(listed_now.implode()))
        .select(lower.alias("key"), pl.col("downloads_all_time").alias("was"))
        .filter(pl.len().over("key") == 1)
    )
    now = pl.DataFrame({"model_id": absent}).with_columns(key=lower).filter(pl.len().over("key") == 1)
    twins = now.join(then, on="key").select("model_id", "was")
    if twins.is_empty():
        return per_model, twins.get_column("model_id")
    sorted_ids = per_model.get_column("model_id").flags["SORTED_ASC"]
    matched = per_model.join(twins, on="model_id", how="left", maintain_order="left")
    twin = pl.col("was").is_not_null()
    gain = pl.col("all_time") - pl.col("was")
    per_model = matched.with_columns(
        pl.when(twin).then(gain.clip(0)).otherwise("between").alias("between"),
        pl.when(twin).then(gain).otherwise("delta").alias("delta"),
        (pl.col("listed_before") | twin).alias("listed_before"),
    ).drop("was")
    if sorted_ids:
        per_model = per_model.with_columns(pl.col("model_id").set_sorted())
    return per_model, twins.get_column("model_id")


def unknown_gains(per_model: pl.DataFrame) -> pl.DataFrame:
    """How many models have an all-time count now but no known gain since the previous snapshot (counted 0 in
    `between`), and their summed all-time downloads."""
    unknown = per_model.filter(pl.col("delta").is_null() & pl.col("all_time").is_not_null())
    return unknown.select(
        pl.len().cast(pl.Int64).alias("models"), pl.col("all_time").sum().cast(pl.Int64).alias("all_time_downloads")
    )


def credited_downloads(
    models: Frame,
    attributions: Frame,
    *,
    previous_models: Frame | None = None,
    previous_date: dt.date | None = None,
    listed_at: dt.datetime | None = None,
) -> pl.LazyFrame:
    """Downloads credited to each actor, one row per time_window, population, rule, dimension and actor."""
    per_model = model_downloads(models, previous_models)
    if previous_models is not None and previous_date is not None:
        per_model = not_new_since(per_model.collect(), models, previous_date, listed_at, previous_models).lazy()
    return credited_from(per_model, attributions, windows(previous_models))


def credited_from(per_model: Frame, attributions: Frame, window_names: list[str]) -> pl.LazyFrame:
    """`credited_downloads` from `model_downloads`' rows."""
    return credited_by_actor(buckets_of(per_model, attributions, window_names), window_names)


def buckets_of(
    per_model: Frame,
    attributions: Frame,
    window_names: list[str],
    registry: Frame | None = None,
    *,
    by_row: bool = False,
) -> pl.LazyFrame:
    """Downloads per rule, LLM flag, size class and the four credited dimensions: models sharing them
    collapse first, so every later step is small.

    With `registry`, the date's REGISTRY table the attributions were made with, the rows are grouped on
    their registry row (`entry`, null for an unreviewed namespace) and its dimensions joined to the few
    groups; a row of positive weight credits exactly its registry row's dimensions. Without it, on the
    four strings themselves (3 M models: 0.27 s against 0.44 s for the join and the grouping).

    `by_row`, each attribution row takes its model's downloads from row `model_row` of `per_model`, which
    must then be the models the attributions were made from, in the same order (see `metric_tables`)."""
    weight = pl.col("weight")
    keys = ("entry",) if registry is not None else DIMENSIONS
    credits = attributions.lazy().filter(weight > 0)
    if by_row:
        model = pl.DataFrame(per_model).select(*window_names, "llm", "size")
        gathered = [pl.lit(model.get_column(c)).gather(pl.col("model_row")).alias(c) for c in model.columns]
        rows = credits.select("model_row", "rule", "weight", *keys).with_columns(gathered)
    else:
        columns = ENTRY_COLUMNS if registry is not None else CREDIT_COLUMNS
        rows = credits.select(columns).join(per_model.lazy(), on="model_id", how="inner")
    buckets = rows.group_by("rule", "llm", "size", *keys).agg(counted_sum(pl.col(w) * weight) for w in window_names)
    if registry is None:
        return buckets
    dimensions = registry.lazy().select(pl.col("entry").cast(pl.Int32), *DIMENSIONS)
    return buckets.join(dimensions, on="entry", how="left").drop("entry")


def credited_by_actor(buckets: pl.LazyFrame, window_names: list[str]) -> pl.LazyFrame:
    """`credited_downloads` from `buckets_of`' groups."""
    return pl.concat([actor_downloads(buckets, dimension, window_names) for dimension in DIMENSIONS])


def actor_downloads(buckets: pl.LazyFrame, dimension: str, window_names: list[str]) -> pl.LazyFrame:
    """Credited downloads along one dimension, one row per time_window, population, rule and actor."""
    summed = [counted_sum(pl.col(w)).alias(w) for w in window_names]
    return (
        buckets.group_by("rule", "llm", "size", pl.col(dimension).fill_null(UNKNOWN).alias("actor"))
        .agg(summed)
        .with_columns(populations(pl.col("llm"), pl.col("size")).alias("population"))
        .explode("population")
        .drop_nulls("population")
        .group_by("rule", "population", "actor")
        .agg(summed)
        .unpivot(
            window_names, index=["rule", "population", "actor"], variable_name="time_window", value_name="downloads"
        )
        .with_columns(pl.lit(dimension).alias("dimension"), pl.col("downloads").cast(pl.Float64))
        .select(*GROUP, "actor", "downloads")
    )


def metric_groups(
    attributions: Frame, previous_models: Frame | None = None, window_names: list[str] | None = None
) -> pl.LazyFrame:
    """Every (time_window, population, rule, dimension) a snapshot reports, whether or not it has downloads:
    in `window_names` (those it records, `recorded_windows`), else in every window it supports."""
    axes = [
        pl.LazyFrame(
            {"time_window": windows(previous_models) if window_names is None else window_names},
            schema={"time_window": pl.String},
        ),
        pl.LazyFrame({"population": POPULATIONS}),
        attributions.lazy().select(pl.col("rule").unique()),
        pl.LazyFrame({"dimension": DIMENSIONS}),
    ]
    return reduce(lambda grid, axis: grid.join(axis, how="cross"), axes).select(GROUP)


def shares_of(credited: pl.LazyFrame) -> pl.LazyFrame:
    """Each actor's downloads and share of its group's credited downloads, Unknown included, in group and
    actor order: the group's total adds the downloads in that order, so the same rows give the same shares
    to the last bit, whatever order they came in."""
    return (
        credited.sort(*GROUP, "actor")
        .with_columns(share_of_group(pl.col("downloads"), GROUP).alias("share"))
        .select(*GROUP, "actor", pl.col("downloads").fill_null(0.0), "share")
    )


def window_start(previous_date: dt.date | None) -> pl.Expr:
    """Where each row's window starts: `previous_date` for `between`, null for the trailing windows."""
    return pl.when(pl.col("time_window") == "between").then(pl.lit(previous_date, pl.Date)).alias("window_start")


def shares(
    models: Frame,
    attributions: Frame,
    *,
    previous_models: Frame | None = None,
    previous_date: dt.date | None = None,
    listed_at: dt.datetime | None = None,
) -> pl.DataFrame:
    """The SHARES table of one snapshot: every actor's downloads and share, Unknown included."""
    credited = credited_downloads(
        models, attributions, previous_models=previous_models, previous_date=previous_date, listed_at=listed_at
    )
    return shares_of(credited).with_columns(window_start(previous_date)).collect()


def concentration(
    models: Frame,
    attributions: Frame,
    *,
    previous_models: Frame | None = None,
    previous_date: dt.date | None = None,
    listed_at: dt.datetime | None = None,
) -> pl.DataFrame:
    """The CONCENTRATION table of one snapshot, over known actors only (null metrics when none)."""
    credited = credited_downloads(
        models, attributions, previous_models=previous_models, previous_date=previous_date, listed_at=listed_at
    )
    groups = metric_groups(attributions, previous_models)
    return concentration_of(credited, groups).sort(GROUP).with_columns(window_start(previous_date)).collect()


def metric_tables(
    models: Frame,
    attributions: Frame,
    previous_models: Frame | None = None,
    *,
    registry: Frame | None = None,
    streamed: bool = False,
    by_row: bool = False,
    previous_date: dt.date | None = None,
    listed_at: dt.datetime | None = None,
) -> dict[str, pl.DataFrame]:
    """The shares and concentration tables of one snapshot date, from one pass over the models; with a
    previous snapshot, `negative_deltas` too, from the same join of the two. `previous_date`, the date of
    `previous_models`, is where the `between` window starts (`window_start`, null for the other windows);
    `listed_at`, when known, the moment its crawl began (see `not_new_since`).

    When every input is in `model_id` order, as published partitions are, the joins merge the sorted ids
    instead of hashing them (3 M models: 1.45 s against 2.18 s for the tables); other inputs are hashed.
    The inputs are read whole first; `streamed`, only their ids are, to check their order, and the rest
    as the joins run (the refresh's metrics step at 3 M models: a peak of 1.0–1.1 GB against 1.9 GB, in the
    same time).

    `registry` is the date's REGISTRY table, the one `attributions` were made with: their rows are then
    grouped on its row numbers rather than on four strings (3 M models: 0.8–0.9 s against 1.0–1.1 s for the
    tables). Attributions without `entry`, published before it was kept, are grouped on the strings.

    `by_row` says that `attributions` were made from `models` as given, row for row (as a date's are when
    their `_meta.inputs` name its models file): each attribution row then finds its model at `model_row`,
    an integer, and the attributions' ids are not read (3 M models: the tables in 0.73–0.91 s against
    0.96–1.15 s read whole, 0.83–1.10 s against 1.06–1.41 s streamed).
    Attributions without `model_row`, published before it was kept, are joined on the ids."""
    if registry is not None and not all("entry" in f.lazy().collect_schema() for f in (attributions, registry)):
        registry = None
    by_row = by_row and "model_row" in attributions.lazy().collect_schema()
    credit_columns = ENTRY_COLUMNS if registry is not None else CREDIT_COLUMNS
    inputs = [models.lazy().select(MODEL_COLUMNS)]
    if previous_models is not None:
        inputs.append(previous_models.lazy().select("model_id", "downloads_all_time"))
    credits = attributions.lazy().filter(pl.col("weight") > 0)
    if by_row:
        engine, (ours, *before) = read_by_merge(inputs, streamed=streamed)
    else:
        inputs.insert(1, credits.select(credit_columns))
        engine, (ours, credits, *before) = read_by_merge(inputs, streamed=streamed)
    per_model = model_downloads(ours, before[0] if before else None).collect(engine=engine)
    if engine == "streaming":  # the join kept the models' order
        per_model = per_model.with_columns(pl.col("model_id").set_sorted())
    if previous_models is not None and previous_date is not None:
        per_model = not_new_since(per_model, models, previous_date, listed_at, previous_models)
    window_names = recorded_windows(per_model, previous_models)
    buckets = buckets_of(per_model, credits, window_names, registry, by_row=by_row).collect(engine=engine)
    credited = credited_by_actor(buckets.lazy(), window_names).collect().lazy()
    groups = metric_groups(attributions, previous_models, window_names)
    start = window_start(previous_date)
    tables = {
        "shares": shares_of(credited).with_columns(start).collect(),
        "concentration": concentration_of(credited, groups).sort(GROUP).with_columns(start).collect(),
    }
    if previous_models is not None:
        tables["negative_deltas"] = fallen(per_model)
        tables["unknown_gains"] = unknown_gains(per_model)
    return tables
