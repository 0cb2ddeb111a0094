"""Listing items become `models` rows; scopes become listing queries."""

from __future__ import annotations

import io

import pytest

from flows.rows import RowReport, lineage, model_rows
from flows.scope import ScopeError, parse_scope
from warehouse.contract import conform
from warehouse.tables import MODELS


def test_lineage_reads_plain_and_relation_tags_once_each() -> None:
    tags = ["base_model:Qwen/Qwen3-8B", "base_model:quantized:Qwen/Qwen3-8B", "region:us"]
    assert lineage(tags) == (["Qwen/Qwen3-8B"], "quantized")


def test_a_merge_lists_every_base() -> None:
    tags = ["base_model:a/x", "base_model:b/y", "base_model:merge:a/x", "base_model:merge:b/y"]
    assert lineage(tags) == (["a/x", "b/y"], "merge")


def test_items_become_rows_of_the_models_schema() -> None:
    item = {
        "id": "Qwen/Qwen3-8B",
        "author": "Qwen",
        "createdAt": "2025-04-27T03:00:00.000Z",
        "downloads": 120,
        "downloadsAllTime": 5000,
        "likes": 7,
        "trendingScore": 3,
        "tags": ["text-generation", "base_model:finetune:Qwen/Qwen3-8B-Base"],
        "pipeline_tag": "text-generation",
        "library_name": "transformers",
        "gated": False,
        "safetensors": {"parameters": {"BF16": 8_190_735_360}, "total": 8_190_735_360},
    }
    row = conform(model_rows([item]), MODELS).row(0, named=True)
    assert row["model_id"] == "Qwen/Qwen3-8B" and row["downloads_30d"] == 120 and row["downloads_all_time"] == 5000
    assert row["base_models"] == ["Qwen/Qwen3-8B-Base"] and row["base_relation"] == "finetune"
    assert row["params_total"] == 8_190_735_360 and row["gated"] == "false" and row["created_at"].year == 2025


def test_hostile_numbers_are_blanked_and_counted_not_trusted() -> None:
    items = [
        {"id": "a/neg", "downloads": -5},
        {"id": "a/huge", "downloads": 10**30},
        {"id": "a/text", "downloads": "12"},
        {"id": "a/word", "downloads": "many"},
        {"id": "a/null", "downloads": None},
        {"id": "a/bool", "downloads": True},
        {"id": "a/superscript", "downloads": "²"},  # a digit to str.isdigit, not to int
        {"id": "a/long", "downloads": "9" * 5000},  # past Python's limit on digits to convert
        {"id": "a/bad-size", "safetensors": {"total": "¹"}},
        {"id": "a/year-1", "createdAt": "0001-01-01T00:00:00+01:00"},  # no UTC time
        {"id": "a/year-9999", "lastModified": "9999-12-31T23:59:59-01:00"},
    ]
    report = RowReport()
    rows = model_rows(items, report)
    assert dict(zip(rows["model_id"], rows["downloads_30d"], strict=True)) == {
        "a/neg": None,
        "a/huge": None,
        "a/text": 12,
        "a/word": None,
        "a/null": None,
        "a/bool": None,
        "a/superscript": None,
        "a/long": None,
        "a/bad-size": None,
        "a/year-1": None,
        "a/year-9999": None,
    }
    assert report.blanked["downloads"] == 6
    assert rows["params_total"].null_count() == len(items) and rows["created_at"].null_count() == len(items)
    assert rows["last_modified"].null_count() == len(items)
    assert report.blanked["createdAt"] == report.blanked["lastModified"] == report.blanked["safetensors.total"] == 1


def test_values_only_pythons_json_reads_are_blanked_not_a_crash() -> None:
    """orjson refuses a lone surrogate escape and an integer past 64 bits; the standard library's parser reads
    them, as a string no UTF-8 (nor Parquet) can hold and an integer no float can: each is blanked."""
    from flows.hub import parse_body

    body = (
        b'[{"id": "a/trend", "trendingScore": 1' + b"0" * 400 + b"},"
        b' {"id": "a/tags", "tags": ["ok", "bad\\ud800"], "author": "x\\udfff", "pipeline_tag": "\\ud800",'
        b' "library_name": "lib\\ud800"},'
        b' {"id": "a/\\ud800"}]'
    )
    report = RowReport()
    rows = model_rows(parse_body(body), report)
    assert rows["model_id"].to_list() == ["a/trend", "a/tags"] and sum(report.dropped.values()) == 1
    assert rows["trending_score"].to_list() == [None, None] and report.blanked["trendingScore"] == 1
    assert rows["tags"].to_list() == [[], ["ok"]] and report.blanked["tags"] == 1
    assert rows["author"].to_list() == ["a", "a"]  # the id's namespace, as for any author that is no text
    assert rows["pipeline_tag"].to_list() == rows["library_name"].to_list() == [None, None]
    assert report.blanked["author"] == report.blanked["pipeline_tag"] == report.blanked["library_name"] == 1
    rows.write_parquet(io.BytesIO())


def test_items_without_a_usable_id_are_dropped_and_counted() -> None:
    items = [{"author": "x"}, {"id": "../../etc/passwd"}, {"id": "a" * 10_000}, "not a dict", {"id": "ok/model"}]
    report = RowReport()
    assert model_rows(items, report)["model_id"].to_list() == ["ok/model"]
    assert sum(report.dropped.values()) == 4


def test_the_hub_placeholder_creation_date_means_unknown() -> None:
    rows = model_rows([{"id": "old/bert", "createdAt": "2022-03-02T23:29:04.000Z"}])
    assert rows["created_at"].to_list() == [None]


def test_hostile_tags_are_kept_as_text_or_dropped_when_absurd() -> None:
    rows = model_rows([{"id": "a/x", "tags": ["<script>alert(1)</script>", "ünïcode", "x" * 10_000, 5]}])
    assert rows["tags"].to_list() == [["<script>alert(1)</script>", "ünïcode"]]


def test_scopes_parse_to_the_listings_they_crawl(tmp_path) -> None:
    assert parse_scope("full").listings[0].params()[0] == ("sort", "createdAt")
    top = parse_scope("top:500").listings[0]
    assert (top.sort, top.limit) == ("downloads", 500)
    assert [listing.author for listing in parse_scope("orgs:Qwen, deepseek-ai,Qwen").listings] == [
        "Qwen",
        "deepseek-ai",
    ]
    orgs = tmp_path / "orgs.txt"
    orgs.write_text("# labs\nQwen\nmeta-llama  # US\n\n")
    assert parse_scope(f"orgs:@{orgs}").text == "orgs:Qwen,meta-llama"


@pytest.mark.parametrize(
    "text", ["everything", "top:", "top:-3", "top:ten", "orgs:", "orgs:../etc", "orgs:@/no/such/file"]
)
def test_bad_scopes_fail_clearly(text: str) -> None:
    with pytest.raises(ScopeError, match="scope|organisations"):
        parse_scope(text)


def test_an_organisations_file_that_is_not_utf8_fails_naming_it(tmp_path) -> None:
    names = tmp_path / "orgs.txt"
    names.write_bytes(b"Qwen\nmeta-llama\n\xff\xfe\n")
    with pytest.raises(ScopeError, match=r"cannot read organisations file .*orgs\.txt.*: not UTF-8"):
        parse_scope(f"orgs:@{names}")
