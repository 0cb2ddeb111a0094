"""Measured calibration of a synthetic world: the numbers the generator is tuned to hit."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from flows.synthetic.catalogue import LLM_PIPELINES, RELATIONS, SYNTHETIC_LAB_REGIONS
from flows.synthetic.ecosystem import PLACEHOLDER_CREATED

MAX_DEPTH = 16
_COLUMNS = {
    "id": pl.String(),
    "createdAt": pl.String(),
    "downloads": pl.Int64(),
    "downloadsAllTime": pl.Int64(),
    "tags": pl.List(pl.String()),
    "pipeline_tag": pl.String(),
    "safetensors": pl.Struct({"total": pl.Int64()}),
}


def read_world(path: Path | str) -> pl.DataFrame:
    """The columns calibration needs, read from a world JSONL file."""
    return pl.read_ndjson(path, schema=_COLUMNS)


def first_base() -> pl.Expr:
    """The first `base_model:<id>` a listing item's tags name (relation-qualified tags skipped)."""
    plain = pl.element().str.strip_prefix("base_model:")
    is_plain = pl.element().str.starts_with("base_model:") & ~pl.element().str.contains(
        "^base_model:(" + "|".join(RELATIONS) + "):"
    )
    return pl.col("tags").list.eval(plain.filter(is_plain)).list.first()


def lineage_roots(world: pl.DataFrame) -> pl.DataFrame:
    """id → root: follow first bases until a model without one, or a base missing from the world."""
    edges = world.select("id", parent=first_base())
    current = edges.select("id", root=pl.coalesce("parent", "id"))
    lookup = edges.select(pl.col("id").alias("root"), pl.col("parent").alias("next"))
    for _ in range(MAX_DEPTH):
        stepped = current.join(lookup, on="root", how="left", maintain_order="left")
        moving = stepped.get_column("next").is_not_null()
        if not moving.any():
            break
        current = stepped.select("id", root=pl.coalesce("next", "root"))
    return current


def namespace_region(column: str) -> pl.Expr:
    """Region of the namespace in `column` (an id or a namespace) under the synthetic lab map."""
    namespace = pl.col(column).str.split("/").list.first()
    return namespace.replace_strict(SYNTHETIC_LAB_REGIONS, default=None, return_dtype=pl.String)


def llm_region_shares(world: pl.DataFrame, rule: str, window: str = "downloads") -> dict[str, float]:
    """Share of LLM downloads per region under `rule` ("uploader" or "lineage"), by the synthetic lab map."""
    llms = world.filter(pl.col("pipeline_tag").is_in(LLM_PIPELINES))
    if rule == "lineage":
        llms = llms.join(lineage_roots(llms.select("id", "tags")), on="id", how="left")
        region = namespace_region("root")
    else:
        region = namespace_region("id")
    total = llms.get_column(window).sum() or 1
    sums = llms.group_by(region.alias("region")).agg(pl.col(window).sum())
    return {r: v / total for r, v in sums.iter_rows() if r is not None}


def calibration_report(world: Path | str | pl.DataFrame) -> dict[str, float]:
    """Measured calibration of one world (a JSONL path or a listing frame)."""
    frame = read_world(world) if isinstance(world, (str, Path)) else world
    downloads = frame.get_column("downloads")
    all_time = frame.get_column("downloadsAllTime")
    total = downloads.sum() or 1
    total_all = all_time.sum() or 1
    params = frame.get_column("safetensors").struct.field("total")
    small = params < 1_000_000_000
    sized = params.is_not_null()
    uploader = llm_region_shares(frame, "uploader")
    lineage = llm_region_shares(frame, "lineage")
    placeholder = PLACEHOLDER_CREATED.strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return {
        "models": float(frame.height),
        "downloads_30d_total": float(total),
        "top200_share_30d": float(downloads.sort(descending=True).head(200).sum() / total),
        "nonzero_30d_fraction": float((downloads > 0).mean()),
        "any_all_time_fraction": float((all_time > 0).mean()),
        "median_all_time": float(all_time.median()),
        "under_1b_share_30d": float(downloads.filter(sized & small).sum() / (downloads.filter(sized).sum() or 1)),
        "under_1b_share_all_time": float(all_time.filter(sized & small).sum() / (all_time.filter(sized).sum() or 1)),
        "unsized_share_30d": float(downloads.filter(~sized).sum() / total),
        "llm_share_30d": float(frame.filter(pl.col("pipeline_tag").is_in(LLM_PIPELINES))["downloads"].sum() / total),
        "llm_china_share_uploader": uploader.get("China", 0.0),
        "llm_us_share_uploader": uploader.get("United States", 0.0),
        "llm_china_share_lineage": lineage.get("China", 0.0),
        "llm_us_share_lineage": lineage.get("United States", 0.0),
        "placeholder_created_fraction": float((frame.get_column("createdAt") == placeholder).mean()),
        "all_time_to_30d_ratio": float(total_all / total),
    }
