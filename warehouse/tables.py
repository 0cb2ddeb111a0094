"""Every table of the warehouse: its columns, types, key and place, declared once."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

UTC_TIME = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class Table:
    """A dated, hive-partitioned table: `<root>/<location>/snapshot_date=YYYY-MM-DD/part-00000.parquet`."""

    name: str
    location: str
    schema: dict[str, pl.DataType]
    key: tuple[str, ...]
    not_null: tuple[str, ...] = ()
    description: str = ""
    order: str | None = None  # rows are published in this column's order
    # Columns (of a list, its elements) written dictionary-encoded: their values repeat from row to row.
    dictionary: tuple[str, ...] = ()

    @property
    def columns(self) -> list[str]:
        return list(self.schema)

    def empty(self) -> pl.DataFrame:
        """An empty frame of this table's schema."""
        return pl.DataFrame(schema=self.schema)


MODELS = Table(
    name="models",
    location="models",
    schema={
        "model_id": pl.String(),
        "author": pl.String(),
        "created_at": UTC_TIME,
        "last_modified": UTC_TIME,
        "downloads_30d": pl.Int64(),
        "downloads_all_time": pl.Int64(),
        "likes": pl.Int64(),
        "trending_score": pl.Float64(),
        "pipeline_tag": pl.String(),
        "library_name": pl.String(),
        "tags": pl.List(pl.String()),
        "base_models": pl.List(pl.String()),
        "base_relation": pl.String(),
        "params_total": pl.Int64(),
        "gated": pl.String(),
    },
    key=("model_id",),
    not_null=("model_id", "author"),
    description="One row per public model listed by the Hub on the snapshot date, in model_id order.",
    order="model_id",
    dictionary=("author", "pipeline_tag", "library_name", "tags", "base_models", "base_relation", "gated"),
)

# What a day's models file holds of each model: what the Hub counts for it that day. The rest of a model's row,
# its metadata, is kept once per change in `model_metadata`, and the day's row points at it.
DAILY_COLUMNS = ("model_id", "downloads_30d", "downloads_all_time", "likes", "trending_score")
METADATA_COLUMNS = tuple(c for c in MODELS.columns if c not in DAILY_COLUMNS[1:])

MODEL_DAYS = Table(
    name="models",
    location="models",
    schema={
        **{c: MODELS.schema[c] for c in DAILY_COLUMNS},
        "metadata_version": pl.Int32(),
        "metadata_row": pl.UInt32(),
    },
    key=("model_id",),
    not_null=("model_id", "metadata_version", "metadata_row"),
    description="How `models` is stored: one row per model listed on the snapshot date, in model_id order, with "
    "the day's counts; its metadata is row `metadata_row` of `model_metadata` version `metadata_version`.",
    order="model_id",
)

MODEL_METADATA = Table(
    name="model_metadata",
    location="model_metadata",
    schema={
        "metadata_version": pl.Int32(),
        **{c: MODELS.schema[c] for c in METADATA_COLUMNS},
        "metadata_hash": pl.UInt64(),
    },
    key=("model_id",),
    not_null=("metadata_version", "model_id", "author", "metadata_hash"),
    description="The metadata of models, kept once per change: each version holds the rows of the models a "
    "published day found new or changed, in model_id order (`<location>/version-NNNNNN/part-00000.parquet`).",
    order="model_id",
    dictionary=tuple(c for c in MODELS.dictionary if c in METADATA_COLUMNS),
)

# What the registry says of a namespace, and what an attribution credits (null for an unreviewed namespace).
CREDIT: dict[str, pl.DataType] = {
    "lab": pl.String(),
    "country": pl.String(),
    "region": pl.String(),
    "developer_type": pl.String(),
}

ATTRIBUTIONS = Table(
    name="attributions",
    location="attributions",
    schema={
        "model_id": pl.String(),
        # The model's row in the date's `models` file (its `model_days` file when the metadata is kept
        # apart), from 0: the date's two tables join on it as on the id, by an integer.
        "model_row": pl.UInt32(),
        "rule": pl.String(),
        "credited_namespace": pl.String(),
        **CREDIT,
        "reviewed": pl.Boolean(),
        "entry": pl.Int32(),
        "lineage_depth": pl.Int32(),
        "weight": pl.Float64(),
        "evidence": pl.String(),
    },
    key=("model_id", "rule", "credited_namespace"),
    not_null=("model_id", "rule", "weight", "reviewed"),
    description="Who each model is credited to, under each attribution rule (weights of a model sum to 1).",
)

REGISTRY = Table(
    name="registry",
    location="registry",
    schema={"entry": pl.Int32(), "namespace": pl.String(), **CREDIT, "evidence": pl.String()},
    key=("namespace",),
    not_null=("entry", "namespace", "developer_type", "evidence"),
    description="The registry the date's attributions were made with: each reviewed namespace, numbered in "
    "namespace order (`entry`), and its evidence.",
)

SHARES = Table(
    name="shares",
    location="metrics/shares",
    schema={
        "time_window": pl.String(),
        "population": pl.String(),
        "rule": pl.String(),
        "dimension": pl.String(),
        "actor": pl.String(),
        "downloads": pl.Float64(),
        "share": pl.Float64(),
        "window_start": pl.Date(),
    },
    key=("time_window", "population", "rule", "dimension", "actor"),
    not_null=("time_window", "population", "rule", "dimension", "actor", "downloads"),
    description="Downloads and share of each actor, per window, population, rule and dimension.",
)

CONCENTRATION = Table(
    name="concentration",
    location="metrics/concentration",
    schema={
        "time_window": pl.String(),
        "population": pl.String(),
        "rule": pl.String(),
        "dimension": pl.String(),
        "downloads": pl.Float64(),
        "hhi": pl.Float64(),
        "effective_poles": pl.Float64(),
        "entropy": pl.Float64(),
        "exp_entropy": pl.Float64(),
        "gini": pl.Float64(),
        "cr1": pl.Float64(),
        "cr3": pl.Float64(),
        "cr5": pl.Float64(),
        "actors": pl.Int64(),
        "window_start": pl.Date(),
    },
    key=("time_window", "population", "rule", "dimension"),
    not_null=("time_window", "population", "rule", "dimension", "actors"),
    description="Concentration of downloads over actors (known actors only), per window, population, rule, dimension.",
)

CROSSOVERS = Table(
    name="crossovers",
    location="metrics/crossovers",
    schema={
        "time_window": pl.String(),
        "population": pl.String(),
        "rule": pl.String(),
        "dimension": pl.String(),
        "challenger": pl.String(),
        "incumbent": pl.String(),
        "status": pl.String(),
        "crossover_date": pl.Date(),
        "observed": pl.Boolean(),
        "margin": pl.Float64(),
        "first_date": pl.Date(),
        "dates": pl.Int64(),
        "last_date": pl.Date(),
    },
    key=("time_window", "population", "rule", "dimension", "challenger", "incumbent"),
    not_null=("time_window", "population", "rule", "dimension", "challenger", "incumbent", "status"),
    description="As of the snapshot date: the first date from which the challenger stays ahead, or none.",
)

TABLES: dict[str, Table] = {t.name: t for t in (MODELS, ATTRIBUTIONS, REGISTRY, SHARES, CONCENTRATION, CROSSOVERS)}


def table(name: str) -> Table:
    """The table named `name`, or a clear error listing the known ones."""
    try:
        return TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; known tables: {', '.join(TABLES)}") from None
