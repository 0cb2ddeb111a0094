"""Concentration of credited downloads over actors: HHI, effective poles, entropy, Gini, top-k shares.

Every metric is computed over *known* actors with downloads > 0: the `Unknown` actor is left out and
the shares are renormalised among the known actors, so an unattributed mass never counts as one
giant pole. Zero-download actors change nothing in HHI, entropy or CR-k; leaving them out keeps the
Gini and the `actors` count about the actors that were actually downloaded. A group whose known actors
have no downloads at all reports `downloads = 0`, `actors = 0` and null metrics.
"""

from __future__ import annotations

import polars as pl

GROUP = ["time_window", "population", "rule", "dimension"]
UNKNOWN = "Unknown"

METRIC_COLUMNS = ["hhi", "effective_poles", "entropy", "exp_entropy", "gini", "cr1", "cr3", "cr5"]


def ordered_sum(values: pl.Expr) -> pl.Expr:
    """The sum of `values` added in their order (aggregation). Floating-point addition depends on the order
    of its terms, and polars' `sum` of a group may add partial sums in any order, so the same rows could
    give metrics that differ in the last bit, and a recomputed file another sha256."""
    return values.cum_sum().last()


def share_of_group(downloads: pl.Expr, group: list[str]) -> pl.Expr:
    """Each row's share of its group's downloads; null when the group has none, as a share of nothing is not
    known (a `between` window in which no model's gain is known, say), rather than 0, and null for a row
    whose downloads are null (not known)."""
    total = ordered_sum(downloads.fill_null(0.0)).over(group)
    return pl.when(total > 0).then(downloads / total)


def hhi(share: pl.Expr) -> pl.Expr:
    """Herfindahl–Hirschman index: the sum of squared shares (aggregation)."""
    return ordered_sum(share**2)


def entropy(share: pl.Expr) -> pl.Expr:
    """Shannon entropy in nats, −Σ s ln s over positive shares (aggregation)."""
    positive = share.filter(share > 0)
    return -ordered_sum(positive * positive.log())


def gini(values: pl.Expr) -> pl.Expr:
    """Gini coefficient of non-negative values, Σ(2i − n − 1)·x₍ᵢ₎ / (n Σx) over ascending x (aggregation)."""
    ordered = values.sort()
    n = pl.len()
    rank = pl.int_range(1, n + 1, dtype=pl.Int64)
    return ordered_sum((2 * rank - n - 1) * ordered) / (n * ordered_sum(ordered))


def top_share(share: pl.Expr, k: int) -> pl.Expr:
    """The summed share of the k largest actors, CR-k (aggregation)."""
    return ordered_sum(share.top_k(k).sort())


def known_actor_shares(credited: pl.LazyFrame) -> pl.LazyFrame:
    """Known actors with downloads, each with its share among the known actors of its group.

    In actor order within each group: a sum of floats depends on the order of its terms, and the rows may
    come in any order, so the same actors give the same metrics to the last bit (and the same file)."""
    return (
        credited.filter((pl.col("actor") != UNKNOWN) & (pl.col("downloads") > 0))
        .sort([*GROUP, "actor"])
        .with_columns(share_of_group(pl.col("downloads"), GROUP).alias("share"))
    )


def concentration_of(credited: pl.LazyFrame, groups: pl.LazyFrame) -> pl.LazyFrame:
    """One row of concentration metrics per group of `groups`, from credited downloads per actor."""
    share = pl.col("share")
    metrics = (
        known_actor_shares(credited)
        .group_by(GROUP)
        .agg(
            ordered_sum(pl.col("downloads")).alias("downloads"),
            hhi(share).alias("hhi"),
            entropy(share).alias("entropy"),
            gini(pl.col("downloads")).alias("gini"),
            top_share(share, 1).alias("cr1"),
            top_share(share, 3).alias("cr3"),
            top_share(share, 5).alias("cr5"),
            pl.len().cast(pl.Int64).alias("actors"),
        )
        .with_columns(
            (1 / pl.col("hhi")).alias("effective_poles"),
            pl.col("entropy").exp().alias("exp_entropy"),
        )
    )
    return (
        groups.join(metrics, on=GROUP, how="left")
        .with_columns(pl.col("downloads").fill_null(0.0), pl.col("actors").fill_null(0))
        .select(*GROUP, "downloads", *METRIC_COLUMNS, "actors")
    )
