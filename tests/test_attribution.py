"""Attribution rules on tiny named snapshots, and coverage of the real download panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analytics.attribution import MAX_DEPTH, attribute, graph_of, lineage_walks, registry_gaps, sums_in_order
from analytics.registry import COLUMNS, load_registry
from warehouse.contract import conform
from warehouse.tables import ATTRIBUTIONS, MODELS

REGISTRY = pl.DataFrame(
    [
        ("Qwen", "Alibaba", "CN", "China", "industry", "ATOM: china"),
        ("meta-llama", "Meta", "US", "United States", "industry", "ATOM: us"),
        ("mistralai", "Mistral AI", "FR", "Europe", "industry", "ATOM: eu"),
        ("unsloth", "Unsloth AI", "US", "United States", "intermediary", "re-uploader of quantized models"),
        ("bartowski", "bartowski", None, None, "intermediary", "re-uploader of quantized models"),
        ("openai-community", "OpenAI", "US", "United States", "industry", "legacy GPT-2 repos"),
    ],
    schema=dict.fromkeys(COLUMNS, pl.String()),
    orient="row",
)


def snapshot(*models: tuple[str, list[str], str | None] | str, downloads: dict[str, int] | None = None) -> pl.DataFrame:
    """A MODELS-shaped frame: each model is an id, or (id, base models, base relation)."""
    rows = []
    for model in models:
        model_id, bases, relation = (model, [], None) if isinstance(model, str) else model
        rows.append(
            {
                "model_id": model_id,
                "author": model_id.split("/")[0] if "/" in model_id else "openai-community",
                "base_models": bases,
                "base_relation": relation,
                "downloads_30d": (downloads or {}).get(model_id, 0),
            }
        )
    frame = pl.DataFrame(rows, schema_overrides={"base_models": pl.List(pl.String())})
    return pl.concat([MODELS.empty(), frame], how="diagonal_relaxed").select(MODELS.columns)


def credits(models: pl.DataFrame, rule: str) -> dict[str, list[tuple]]:
    """model_id -> sorted (credited_namespace, weight, lineage_depth) under `rule`."""
    rows = attribute(models, REGISTRY).filter(pl.col("rule") == rule).sort("model_id", "credited_namespace")
    out: dict[str, list[tuple]] = {}
    for model_id, namespace, weight, depth in rows.select(
        "model_id", "credited_namespace", "weight", "lineage_depth"
    ).iter_rows():
        out.setdefault(model_id, []).append((namespace, round(weight, 6), depth))
    return out


def row(models: pl.DataFrame, rule: str, model_id: str) -> dict:
    frame = attribute(models, REGISTRY).filter((pl.col("rule") == rule) & (pl.col("model_id") == model_id))
    assert frame.height == 1
    return frame.row(0, named=True)


def test_the_output_fits_the_attributions_table_with_one_uploader_and_official_row_per_model() -> None:
    models = snapshot("Qwen/Qwen3-8B", ("unsloth/Qwen3-8B-GGUF", ["Qwen/Qwen3-8B"], "quantized"), "gpt2")
    out = conform(attribute(models, REGISTRY), ATTRIBUTIONS)
    counts = out.group_by("rule").agg(pl.col("model_id").n_unique(), pl.len()).sort("rule")
    assert counts.rows() == [("lineage", 3, 3), ("official", 3, 3), ("uploader", 3, 3)]


def test_the_uploader_rule_credits_the_hosting_namespace() -> None:
    models = snapshot("Qwen/Qwen3-8B", ("unsloth/Qwen3-8B-GGUF", ["Qwen/Qwen3-8B"], "quantized"))
    hosted = row(models, "uploader", "unsloth/Qwen3-8B-GGUF")
    assert (hosted["credited_namespace"], hosted["lab"], hosted["developer_type"]) == (
        "unsloth",
        "Unsloth AI",
        "intermediary",
    )
    assert hosted["reviewed"] and hosted["weight"] == 1.0 and hosted["lineage_depth"] == 0
    assert hosted["evidence"] == "uploader:unsloth"


def test_a_bare_legacy_id_is_credited_to_its_author() -> None:
    hosted = row(snapshot("gpt2"), "uploader", "gpt2")
    assert (hosted["credited_namespace"], hosted["lab"], hosted["country"]) == ("openai-community", "OpenAI", "US")


def test_an_unknown_namespace_stays_unknown() -> None:
    models = snapshot("someone/tiny-model")
    for rule in ("uploader", "lineage"):
        unknown = row(models, rule, "someone/tiny-model")
        assert unknown["credited_namespace"] == "someone" and unknown["reviewed"] is False
        assert unknown["lab"] is None and unknown["country"] is None and unknown["region"] is None
        assert unknown["weight"] == 1.0 and "unreviewed namespace" in unknown["evidence"]


def test_the_official_rule_keeps_registered_labs_and_zero_weights_the_rest() -> None:
    models = snapshot("Qwen/Qwen3-8B", ("unsloth/Qwen3-8B-GGUF", ["Qwen/Qwen3-8B"], "quantized"), "someone/tiny-model")
    lab = row(models, "official", "Qwen/Qwen3-8B")
    assert (lab["lab"], lab["country"], lab["weight"]) == ("Alibaba", "CN", 1.0)
    quantized = row(models, "official", "unsloth/Qwen3-8B-GGUF")
    assert (quantized["credited_namespace"], quantized["lab"], quantized["weight"]) == ("unsloth", None, 0.0)
    assert quantized["reviewed"] and quantized["evidence"] == "excluded: not a registered lab repo (intermediary)"
    stranger = row(models, "official", "someone/tiny-model")
    assert (stranger["weight"], stranger["reviewed"]) == (0.0, False)
    assert stranger["evidence"] == "excluded: not a registered lab repo (unreviewed namespace)"


def test_the_official_rule_counts_organisations_not_community_accounts_nor_test_fixtures() -> None:
    # As ATOM counts labs' own repos: an individual's fine-tune and a library's CI fixture are no lab's release.
    registry = load_registry()
    models = snapshot(
        "Qwen/Qwen3-8B",
        "allenai/OLMo-2-1124-7B",
        ("Jackrong/Qwopus3.5-9B", ["Qwen/Qwen3-8B"], "finetune"),
        "hmellor/tiny-random-LlamaForCausalLM",
        "peft-internal-testing/tiny-OPTForCausalLM-lora",
    )
    official = attribute(models, registry).filter(pl.col("rule") == "official")
    weights = dict(official.select("model_id", "weight").iter_rows())
    assert weights == {
        "Jackrong/Qwopus3.5-9B": 0.0,
        "Qwen/Qwen3-8B": 1.0,
        "allenai/OLMo-2-1124-7B": 1.0,
        "hmellor/tiny-random-LlamaForCausalLM": 0.0,
        "peft-internal-testing/tiny-OPTForCausalLM-lora": 0.0,
    }
    evidence = dict(official.select("model_id", "evidence").iter_rows())
    assert evidence["Jackrong/Qwopus3.5-9B"] == "excluded: not a registered lab repo (community)"
    assert evidence["hmellor/tiny-random-LlamaForCausalLM"] == "excluded: not a registered lab repo (intermediary)"


def test_lineage_credits_the_root_lab_through_a_finetune_chain() -> None:
    models = snapshot(
        "meta-llama/Llama-3.1-8B",
        ("someone/llama-sft", ["meta-llama/Llama-3.1-8B"], "finetune"),
        ("other/llama-sft-dpo", ["someone/llama-sft"], "finetune"),
    )
    assert credits(models, "lineage")["other/llama-sft-dpo"] == [("meta-llama", 1.0, 2)]
    chained = row(models, "lineage", "other/llama-sft-dpo")
    assert chained["lab"] == "Meta" and chained["reviewed"]
    assert chained["evidence"] == "lineage: someone/llama-sft -> meta-llama/Llama-3.1-8B (root, finetune)"


def test_a_model_without_parents_is_its_own_root() -> None:
    root = row(snapshot("Qwen/Qwen3-8B"), "lineage", "Qwen/Qwen3-8B")
    assert (root["credited_namespace"], root["lineage_depth"], root["weight"]) == ("Qwen", 0, 1.0)
    assert root["evidence"] == "lineage: own root"
    assert row(snapshot("someone/tiny-model"), "lineage", "someone/tiny-model")["evidence"] == (
        "lineage: own root; unreviewed namespace"
    )


def test_each_row_of_a_snapshot_made_in_many_batches_carries_its_own_models_strings() -> None:
    # 300,000 models: the strings are made in batches on every core, and must land on their own rows.
    namespaces = ["Qwen", "meta-llama", "someone", "else"]
    index = pl.int_range(300_000, eager=True)
    ids = pl.format("{}/m{}", pl.lit(pl.Series(namespaces)).gather(index % 4), index.cast(pl.String).str.zfill(6))
    frame = pl.DataFrame({"i": index}).with_columns(model_id=ids)
    parent = pl.when(pl.col("i") % 2 == 1).then(pl.col("model_id").shift(1))
    frame = frame.with_columns(
        author=pl.col("model_id").str.split("/").list.first(),
        base_models=pl.concat_list(parent).list.drop_nulls(),
        base_relation=pl.when(parent.is_not_null()).then(pl.lit("finetune")),
    )
    models = pl.concat([MODELS.empty(), frame.drop("i")], how="diagonal_relaxed").select(MODELS.columns)
    out = attribute(models.sample(fraction=1.0, shuffle=True, seed=7), REGISTRY)
    note = pl.when(pl.col("reviewed")).then(pl.lit("")).otherwise(pl.lit("; unreviewed namespace"))
    uploader = out.filter(pl.col("rule") == "uploader")
    assert uploader.get_column("model_id").equals(models.get_column("model_id").sort())
    assert uploader.select(
        (pl.col("credited_namespace") == pl.col("model_id").str.split("/").list.first()).all(),
        (pl.col("evidence") == pl.concat_str(pl.lit("uploader:"), "credited_namespace", note)).all(),
    ).row(0) == (True, True)
    lineage = out.filter(pl.col("rule") == "lineage").join(models, on="model_id", maintain_order="left")
    parent_id = pl.col("base_models").list.first()
    expected = pl.when(parent_id.is_null()).then(pl.concat_str(pl.lit("lineage: own root"), note))
    expected = expected.otherwise(pl.concat_str(pl.lit("lineage: "), parent_id, pl.lit(" (root, finetune)"), note))
    assert lineage.select(
        (pl.col("credited_namespace") == pl.coalesce(parent_id, "model_id").str.split("/").list.first()).all(),
        (pl.col("evidence") == expected).all(),
    ).row(0) == (True, True)


@pytest.mark.parametrize("relation", ["quantized", "adapter"])
def test_quantizations_and_adapters_count_for_the_base_models_lab(relation: str) -> None:
    models = snapshot("Qwen/Qwen3-8B", ("bartowski/Qwen3-8B-GGUF", ["Qwen/Qwen3-8B"], relation))
    derived = row(models, "lineage", "bartowski/Qwen3-8B-GGUF")
    assert (derived["credited_namespace"], derived["lab"], derived["region"]) == ("Qwen", "Alibaba", "China")
    assert f"(root, {relation})" in derived["evidence"]


def test_a_merge_splits_credit_equally_among_its_roots() -> None:
    models = snapshot(
        "Qwen/Qwen3-8B",
        "meta-llama/Llama-3.1-8B",
        "mistralai/Mistral-7B",
        ("someone/merge", ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B", "mistralai/Mistral-7B"], "merge"),
    )
    assert credits(models, "lineage")["someone/merge"] == [
        ("Qwen", 0.333333, 1),
        ("meta-llama", 0.333333, 1),
        ("mistralai", 0.333333, 1),
    ]


def test_two_merge_parents_from_the_same_root_combine_into_one_row() -> None:
    models = snapshot(
        "Qwen/Qwen3-8B",
        "meta-llama/Llama-3.1-8B",
        ("unsloth/Qwen3-8B-bnb", ["Qwen/Qwen3-8B"], "quantized"),
        ("someone/half", ["unsloth/Qwen3-8B-bnb", "meta-llama/Llama-3.1-8B"], "merge"),
        ("someone/merge", ["Qwen/Qwen3-8B", "someone/half"], "merge"),
    )
    # Qwen directly (1/2) and via the half merge's quantized parent (1/4); Llama via the half merge (1/4).
    assert credits(models, "lineage")["someone/merge"] == [("Qwen", 0.75, 1), ("meta-llama", 0.25, 2)]
    qwen = attribute(models, REGISTRY).filter(model_id="someone/merge", rule="lineage", credited_namespace="Qwen")
    assert qwen["evidence"].to_list() == [
        "lineage: Qwen/Qwen3-8B (root, merge)"
        " | lineage: someone/half -> unsloth/Qwen3-8B-bnb -> Qwen/Qwen3-8B (root, merge)"
    ]


def test_weights_of_every_model_sum_to_one_under_uploader_and_lineage() -> None:
    models = snapshot(
        "Qwen/Qwen3-8B",
        "meta-llama/Llama-3.1-8B",
        ("a/m", ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B", "gone/base"], "merge"),
        ("b/m", ["a/m", "Qwen/Qwen3-8B"], "merge"),
    )
    sums = (
        attribute(models, REGISTRY)
        .filter(pl.col("rule") != "official")
        .group_by("model_id", "rule")
        .agg(pl.col("weight").sum())
    )
    assert sums.get_column("weight").round(9).to_list() == [1.0] * sums.height


def test_a_cycle_stops_at_the_last_model_before_the_repeat() -> None:
    models = snapshot(("a/one", ["b/two"], "finetune"), ("b/two", ["a/one"], "finetune"))
    assert credits(models, "lineage") == {"a/one": [("b", 1.0, 1)], "b/two": [("a", 1.0, 1)]}
    assert "(cycle at a/one, finetune)" in row(models, "lineage", "a/one")["evidence"]


def test_a_cycle_met_past_the_first_parent_stops_at_the_last_model_before_the_repeat() -> None:
    models = snapshot(
        ("x/start", ["a/one"], "finetune"),
        ("a/one", ["b/two"], "finetune"),
        ("b/two", ["c/three"], "quantized"),
        ("c/three", ["a/one"], "finetune"),
        ("z/self", ["f/six"], "finetune"),
        ("f/six", ["f/six"], "finetune"),
    )
    assert credits(models, "lineage")["x/start"] == [("c", 1.0, 3)]
    assert row(models, "lineage", "x/start")["evidence"] == (
        "lineage: a/one -> b/two -> c/three (cycle at a/one, finetune); unreviewed namespace"
    )
    assert credits(models, "lineage")["z/self"] == [("f", 1.0, 1)]
    assert (
        row(models, "lineage", "z/self")["evidence"]
        == "lineage: f/six (cycle at f/six, finetune); unreviewed namespace"
    )


def test_a_self_reference_credits_the_model_itself() -> None:
    models = snapshot(("a/loop", ["a/loop"], "finetune"))
    assert credits(models, "lineage") == {"a/loop": [("a", 1.0, 0)]}
    assert row(models, "lineage", "a/loop")["evidence"] == "lineage: (cycle at a/loop, finetune); unreviewed namespace"


def test_a_merge_naming_itself_among_its_parents_splits_over_the_others() -> None:
    models = snapshot(
        "Qwen/Qwen3-8B",
        ("someone/merge", ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B", "someone/merge"], "merge"),
        ("someone/sft", ["someone/merge"], "finetune"),
    )
    expected = [("Qwen", 0.5, 1), ("meta-llama", 0.5, 1)]
    assert credits(models, "lineage")["someone/merge"] == expected
    assert credits(models, "lineage")["someone/sft"] == [("Qwen", 0.5, 2), ("meta-llama", 0.5, 2)]
    evidence = attribute(models, REGISTRY).filter(pl.col("model_id") == "someone/merge")["evidence"]
    assert not any("cycle" in line for line in evidence), evidence.to_list()


def test_a_parent_outside_the_snapshot_is_credited_by_its_namespace() -> None:
    models = snapshot(("someone/llama-sft", ["meta-llama/Llama-2-7b"], "finetune"))
    credited = row(models, "lineage", "someone/llama-sft")
    assert (credited["credited_namespace"], credited["lab"], credited["lineage_depth"]) == ("meta-llama", "Meta", 1)
    assert "(outside snapshot, finetune)" in credited["evidence"]


def test_a_parent_named_in_another_case_is_the_repo_of_that_id_as_on_the_hub() -> None:
    """The Hub ignores the case of ids and namespaces: qwen/qwen3-8b is Qwen/Qwen3-8B, and qwen is Qwen."""
    models = snapshot(
        "Qwen/Qwen3-8B",
        ("someone/sft", ["qwen/qwen3-8b"], "finetune"),
        ("someone/gguf", ["QWEN/Qwen9-1B"], "quantized"),  # outside the snapshot
    )
    inside = row(models, "lineage", "someone/sft")
    assert (inside["credited_namespace"], inside["lab"], inside["country"]) == ("Qwen", "Alibaba", "CN")
    assert inside["lineage_depth"] == 1 and inside["evidence"] == "lineage: Qwen/Qwen3-8B (root, finetune)"
    outside = row(models, "lineage", "someone/gguf")
    assert (outside["credited_namespace"], outside["lab"], outside["reviewed"]) == ("QWEN", "Alibaba", True)


def test_a_malformed_parent_credits_the_last_valid_model() -> None:
    models = snapshot(("someone/odd", ["not-a-repo-id", ""], "finetune"))
    credited = row(models, "lineage", "someone/odd")
    assert (credited["credited_namespace"], credited["lineage_depth"]) == ("someone", 0)
    assert "malformed parent" in credited["evidence"]


def test_a_malformed_parent_beside_a_valid_one_is_ignored() -> None:
    models = snapshot("Qwen/Qwen3-8B", ("someone/merge", ["Qwen/Qwen3-8B", "bad id"], "merge"))
    assert credits(models, "lineage")["someone/merge"] == [("Qwen", 1.0, 1)]


def test_a_walk_longer_than_the_depth_limit_stops_there() -> None:
    chain = ["r/0"] + [(f"r/{i}", [f"r/{i - 1}"], "finetune") for i in range(1, 6)]
    walks = lineage_walks(graph_of(snapshot(*chain)), max_depth=2)
    names = snapshot(*chain).get_column("model_id")
    last = walks.filter(pl.col("origin") == 5)
    assert last.select("depth", "status").row(0) == (2, "depth limit")
    assert names[last.get_column("node")[0]] == "r/3"
    assert MAX_DEPTH >= 16


def test_registry_gaps_rank_unreviewed_namespaces_by_downloads() -> None:
    models = snapshot(
        "Qwen/Qwen3-8B",
        "someone/a",
        "someone/b",
        "other/c",
        downloads={"Qwen/Qwen3-8B": 60, "someone/a": 20, "someone/b": 10, "other/c": 10},
    )
    gaps = registry_gaps(models, attribute(models, REGISTRY))
    assert gaps.rows() == [("someone", 2, 30.0, 0.3), ("other", 1, 10.0, 0.1)]


def panel_snapshot(shared_data: Path) -> pl.DataFrame:
    """The llmfit panel's last date as a MODELS-shaped frame (the panel carries no lineage tags)."""
    panel = pl.read_csv(
        shared_data / "llmfit-panel" / "llmfit_hf_downloads_timeseries_2026-02_to_2026-05.csv", try_parse_dates=True
    ).with_columns(date=pl.col("snapshot_time").dt.date())
    last = panel.filter(pl.col("date") == pl.col("date").max()).sort("snapshot_time").unique("model_id", keep="last")
    frame = last.select(
        "model_id",
        pl.col("model_id").str.split("/").list.first().alias("author"),
        pl.col("hf_downloads").alias("downloads_30d"),
    )
    return pl.concat([MODELS.empty(), frame], how="diagonal_relaxed").select(MODELS.columns)


def test_reviewed_namespaces_hold_95_percent_of_panel_downloads_under_every_rule(shared_data: Path) -> None:
    models = panel_snapshot(shared_data)
    out = conform(attribute(models, load_registry()), ATTRIBUTIONS)
    credited = out.join(models.select("model_id", "downloads_30d"), on="model_id").with_columns(
        held=pl.col("downloads_30d") * pl.when(pl.col("rule") == "official").then(1.0).otherwise(pl.col("weight"))
    )
    reviewed = credited.group_by("rule").agg(pl.col("held").filter("reviewed").sum() / pl.col("held").sum())
    shares = dict(reviewed.iter_rows())
    assert shares["uploader"] >= 0.95
    assert shares["lineage"] == pytest.approx(shares["uploader"])  # no lineage tags in the panel


def test_a_small_namespaces_share_of_downloads_is_shown_with_the_digits_that_tell_it() -> None:
    from flows.cli import percent_shown

    assert [percent_shown(s) for s in (0.0, 0.5, 0.00012, 0.0000342, 1.2e-7)] == [
        "0%",
        "50.00%",
        "0.012%",
        "0.0034%",
        "0.000012%",
    ]


def test_walks_of_a_merge_meeting_at_one_model_add_their_weights_in_the_order_of_their_trails() -> None:
    # The merge's four parents reach the quantization with 1/12, 1/16, 1/20 and 1/20 of its credit; added in
    # another order, the same four give another last bit.
    widths = {"a": 3, "b": 4, "c": 5, "d": 5}
    sides = [(f"{p}/side{i}", [], None) for p, width in widths.items() for i in range(1, width)]
    parents = [
        (f"{p}/m", ["unsloth/Qwen3-8B-bnb", *[f"{p}/side{i}" for i in range(1, w)]], "merge") for p, w in widths.items()
    ]
    models = snapshot(
        "Qwen/Qwen3-8B",
        ("unsloth/Qwen3-8B-bnb", ["Qwen/Qwen3-8B"], "quantized"),
        *sides,
        *parents,
        ("someone/merge", [f"{p}/m" for p in widths], "merge"),
    )
    rows = attribute(models, REGISTRY).filter(model_id="someone/merge", rule="lineage", credited_namespace="Qwen")
    in_order = 0.0
    for width in widths.values():
        in_order += 1 / 4 / width
    assert in_order != (1 / 12 + 1 / 20) + (1 / 16 + 1 / 20)
    assert rows["weight"].to_list() == [in_order]
    assert rows["evidence"].to_list() == ["lineage: a/m -> unsloth/Qwen3-8B-bnb -> Qwen/Qwen3-8B (root, merge)"]


def test_sums_in_order_add_each_run_as_its_cumulative_sum_does() -> None:
    rng = np.random.default_rng(7)
    lengths = rng.integers(1, 40, 2_000)
    runs = pl.DataFrame({"run": np.repeat(np.arange(lengths.size), lengths), "value": rng.random(lengths.sum()) / 7})
    starts = runs.select(pl.col("run") != pl.col("run").shift()).to_series().fill_null(True)
    expected = runs.group_by("run", maintain_order=True).agg(pl.col("value").cum_sum().last()).get_column("value")
    assert sums_in_order(runs.get_column("value"), starts).to_list() == expected.to_list()
    assert sums_in_order(pl.Series([], dtype=pl.Float64), pl.Series([], dtype=pl.Boolean)).to_list() == []


def test_each_models_rows_come_together_in_id_order_uploader_official_then_lineage() -> None:
    models = snapshot(
        "Qwen/Qwen3-8B",
        ("a/merge", ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B", "gone/base"], "merge"),
        "meta-llama/Llama-3.1-8B",
        ("unsloth/Qwen3-8B-bnb", ["Qwen/Qwen3-8B"], "quantized"),
        "z/own",
    )
    rows = attribute(models, REGISTRY).select("model_id", "rule", "credited_namespace", "entry", "weight")
    assert rows.rows() == [
        ("Qwen/Qwen3-8B", "uploader", "Qwen", 0, 1.0),
        ("Qwen/Qwen3-8B", "official", "Qwen", 0, 1.0),
        ("Qwen/Qwen3-8B", "lineage", "Qwen", 0, 1.0),
        ("a/merge", "uploader", "a", None, 1.0),
        ("a/merge", "official", "a", None, 0.0),
        ("a/merge", "lineage", "Qwen", 0, 1 / 3),
        ("a/merge", "lineage", "gone", None, 1 / 3),
        ("a/merge", "lineage", "meta-llama", 2, 1 / 3),
        ("meta-llama/Llama-3.1-8B", "uploader", "meta-llama", 2, 1.0),
        ("meta-llama/Llama-3.1-8B", "official", "meta-llama", 2, 1.0),
        ("meta-llama/Llama-3.1-8B", "lineage", "meta-llama", 2, 1.0),
        ("unsloth/Qwen3-8B-bnb", "uploader", "unsloth", 5, 1.0),
        ("unsloth/Qwen3-8B-bnb", "official", "unsloth", 5, 0.0),
        ("unsloth/Qwen3-8B-bnb", "lineage", "Qwen", 0, 1.0),
        ("z/own", "uploader", "z", None, 1.0),
        ("z/own", "official", "z", None, 0.0),
        ("z/own", "lineage", "z", None, 1.0),
    ]
