"""The synthetic Hub: calibrated, well-formed, deterministic worlds whose China/US balance tips on cue."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import polars as pl
import pytest

from flows.synthetic import (
    LLM_PIPELINES,
    OUT_OF_WORLD_BASES,
    SYNTHETIC_LAB_REGIONS,
    calibration_report,
    generate_world,
    llm_region_shares,
    read_world,
    worlds,
    write_worlds,
)

DAY = dt.date(2026, 3, 1)
RELATIONS = {"finetune", "adapter", "quantized", "merge"}
TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
HUB_FIELDS = [
    "id", "author", "createdAt", "lastModified", "downloads", "downloadsAllTime", "likes", "trendingScore",
    "tags", "pipeline_tag", "library_name", "gated", "safetensors", "private",
]  # fmt: skip


@pytest.fixture(scope="module")
def world() -> pl.DataFrame:
    return generate_world(20_000, seed=7, day=DAY)


@pytest.fixture(scope="module")
def series() -> list[tuple[dt.date, pl.DataFrame]]:
    return list(worlds(20_000, 9, DAY, seed=3, crossover_day=4))


@pytest.fixture(scope="module")
def items(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    (path,) = write_worlds(tmp_path_factory.mktemp("world"), 5_000, 1, DAY, seed=11)
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_day_zero_world_meets_the_calibration_targets(world: pl.DataFrame) -> None:
    report = calibration_report(world)
    assert report["models"] == 20_000
    assert report["top200_share_30d"] == pytest.approx(0.50, abs=0.04)
    assert report["nonzero_30d_fraction"] == pytest.approx(0.35, abs=0.02)
    assert report["any_all_time_fraction"] == pytest.approx(0.60, abs=0.02)
    assert report["under_1b_share_30d"] == pytest.approx(0.78, abs=0.06)
    assert report["under_1b_share_all_time"] > 0.6
    assert report["median_all_time"] < 200  # H4: about half of models have under 200 downloads
    assert 0 < report["placeholder_created_fraction"] < 0.1


def test_the_cast_mixes_labs_intermediaries_and_individuals(world: pl.DataFrame) -> None:
    authors = set(world.get_column("author").unique())
    assert {"Qwen", "deepseek-ai", "meta-llama", "google", "mistralai", "CohereLabs"} <= authors
    assert {"bartowski", "unsloth", "mlx-community"} <= authors
    individuals = world.filter(pl.col("author").str.starts_with("user-"))
    assert individuals.height > world.height / 2
    derived = individuals.filter(pl.col("tags").list.eval(pl.element().str.starts_with("base_model:")).list.any())
    assert derived.height > individuals.height / 2
    pipelines = set(world.get_column("pipeline_tag").drop_nulls().unique())
    assert {"text-generation", "image-text-to-text", "sentence-similarity", "fill-mask", "text-to-image"} <= pipelines
    sizes = world.get_column("safetensors").struct.field("total")
    assert sizes.null_count() > 0
    assert sizes.lt(1e9).any() and sizes.is_between(1e9, 10e9).any() and sizes.is_between(10e9, 100e9).any()
    assert sizes.gt(100e9).any()


def test_items_use_the_hubs_field_names_and_shapes(items: list[dict]) -> None:
    for item in items:
        assert [k for k in HUB_FIELDS if k in item] == list(item)
        assert set(HUB_FIELDS) - set(item) <= {"safetensors"}
        assert item["id"].split("/", 1)[0] == item["author"]
        assert TIME.match(item["createdAt"]) and TIME.match(item["lastModified"])
        assert 0 <= item["downloads"] <= item["downloadsAllTime"]
        assert item["gated"] in (False, "auto", "manual")
        assert item["private"] is False
        assert "region:us" in item["tags"]
        if "safetensors" in item:
            assert item["safetensors"]["parameters"]["BF16"] == item["safetensors"]["total"] > 0
    assert any("safetensors" not in item for item in items)
    assert any(item["createdAt"] == "2022-03-02T23:29:04.000Z" for item in items)


def test_ids_are_unique(world: pl.DataFrame) -> None:
    assert world.get_column("id").is_unique().all()


def test_lineage_tags_are_well_formed_and_name_existing_bases(items: list[dict]) -> None:
    ids = {item["id"] for item in items}
    outside = {base[0] for base in OUT_OF_WORLD_BASES}
    parent = {}
    for item in items:
        lineage = [t.removeprefix("base_model:") for t in item["tags"] if t.startswith("base_model:")]
        plain = [t for t in lineage if t.split(":", 1)[0] not in RELATIONS]
        qualified = [t.split(":", 1) for t in lineage if t.split(":", 1)[0] in RELATIONS]
        assert [base for _, base in qualified] == plain
        assert len({relation for relation, _ in qualified}) <= 1
        for base in plain:
            assert re.fullmatch(r"[\w.-]+/[\w.-]+", base)
            assert base in ids or base in outside
            assert base != item["id"]
        if qualified:
            relation = qualified[0][0]
            assert (len(plain) >= 2) == (relation == "merge")
            parent[item["id"]] = plain[0]
    assert len(parent) > len(items) / 3
    for model_id in parent:
        depth, node = 0, model_id
        while node in parent:
            node, depth = parent[node], depth + 1
        assert depth <= 4


def test_same_seed_writes_identical_bytes_and_another_seed_does_not(tmp_path: Path) -> None:
    first = write_worlds(tmp_path / "a", 3_000, 2, DAY, seed=5)
    again = write_worlds(tmp_path / "b", 3_000, 2, DAY, seed=5)
    other = write_worlds(tmp_path / "c", 3_000, 2, DAY, seed=6)
    assert [p.name for p in first] == ["world-2026-03-01.jsonl", "world-2026-03-02.jsonl"]
    for a, b, c in zip(first, again, other, strict=True):
        assert a.read_bytes() == b.read_bytes()
        assert a.read_bytes() != c.read_bytes()


def test_files_hold_the_same_world_as_frames(tmp_path: Path) -> None:
    (path,) = write_worlds(tmp_path, 3_000, 1, DAY, seed=2)
    (_, frame), *_ = worlds(3_000, 1, DAY, seed=2)
    from_file = read_world(path)
    assert from_file.get_column("id").to_list() == frame.get_column("id").to_list()
    assert from_file.get_column("downloads").to_list() == frame.get_column("downloads").to_list()
    assert calibration_report(path) == calibration_report(frame)


def test_all_time_downloads_never_decrease(series: list[tuple[dt.date, pl.DataFrame]]) -> None:
    for (_, before), (_, after) in zip(series, series[1:], strict=False):
        both = before.join(after, on="id", suffix="_next")
        assert both.height > 0.99 * before.height
        assert (both["downloadsAllTime_next"] >= both["downloadsAllTime"]).all()
        assert (both["likes_next"] >= both["likes"]).all()
        assert (both["downloads_next"] != both["downloads"]).any()  # 30-day counts drift


def test_models_are_born_and_the_count_stays_near_n(series: list[tuple[dt.date, pl.DataFrame]]) -> None:
    days = [day for day, _ in series]
    assert days == [DAY + dt.timedelta(days=i) for i in range(9)]
    for day, frame in series:
        assert abs(frame.height - 20_000) <= 200
        newest = frame.get_column("createdAt").max()
        assert newest is not None and newest[:10] == day.isoformat()
    first, last = set(series[0][1]["id"]), set(series[-1][1]["id"])
    assert last - first and first - last


def test_china_passes_the_us_in_llm_downloads_on_the_crossover_day(
    series: list[tuple[dt.date, pl.DataFrame]],
) -> None:
    for index, (_, frame) in enumerate(series):
        china_ahead = index >= 4
        for rule in ("uploader", "lineage"):
            shares = llm_region_shares(frame, rule)
            assert (shares["China"] > shares["United States"]) == china_ahead, (index, rule, shares)
        # The same under the uploader rule, counted directly from namespaces.
        llms = frame.filter(pl.col("pipeline_tag").is_in(LLM_PIPELINES)).with_columns(
            region=pl.col("author").replace_strict(SYNTHETIC_LAB_REGIONS, default=None)
        )
        by_region = dict(llms.group_by("region").agg(pl.col("downloads").sum()).iter_rows())
        assert (by_region["China"] > by_region["United States"]) == china_ahead
