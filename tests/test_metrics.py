"""Credited downloads, shares and concentration, checked against hand-computed values."""

from __future__ import annotations

import datetime as dt
import math
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analytics.metrics import (
    concentration,
    credited_downloads,
    metric_tables,
    model_deltas,
    negative_deltas,
    shares,
    size_class,
)
from analytics.order import by_merge
from warehouse.contract import conform
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, MODELS, SHARES

LAB_COUNTRY = {"Qwen": ("CN", "China"), "Meta": ("US", "United States"), "Mistral": ("FR", "Europe")}


def model(model_id: str, d30: int = 0, all_time: int = 0, pipeline: str | None = None, params: int | None = None):
    """One MODELS row with the columns the metrics read."""
    return {
        "model_id": model_id,
        "author": model_id.split("/")[0],
        "downloads_30d": d30,
        "downloads_all_time": all_time,
        "pipeline_tag": pipeline,
        "params_total": params,
    }


def credit(model_id: str, lab: str | None, rule: str = "uploader", weight: float = 1.0, **overrides):
    """One ATTRIBUTIONS row crediting `model_id` to `lab` (and the lab's country and region)."""
    country, region = LAB_COUNTRY.get(lab, (None, None))
    row = {
        "model_id": model_id,
        "rule": rule,
        "credited_namespace": lab or model_id.split("/")[0],
        "lab": lab,
        "country": country,
        "region": region,
        "developer_type": "industry" if lab else None,
        "reviewed": True,
        "weight": weight,
    }
    return row | overrides


def models_frame(*rows) -> pl.DataFrame:
    return conform(pl.DataFrame(list(rows)).with_columns(_missing(MODELS, rows)), MODELS)


def attributions_frame(*rows) -> pl.DataFrame:
    return conform(pl.DataFrame(list(rows)).with_columns(_missing(ATTRIBUTIONS, rows)), ATTRIBUTIONS)


def _missing(table, rows) -> list[pl.Expr]:
    present = set(rows[0])
    return [pl.lit(None, dtype).alias(name) for name, dtype in table.schema.items() if name not in present]


def one(frame: pl.DataFrame, **where) -> dict:
    """The single row of `frame` matching `where`."""
    rows = frame.filter(**where).to_dicts()
    assert len(rows) == 1, f"{len(rows)} rows match {where}"
    return rows[0]


def actor_shares(frame: pl.DataFrame, **where) -> dict[str, float]:
    """actor → share for the rows of `frame` matching `where`."""
    rows = frame.filter(**where)
    return dict(zip(rows["actor"], rows["share"], strict=True))


ALL_30D_LAB = {"time_window": "30d", "population": "all", "rule": "uploader", "dimension": "lab"}
ALL_30D_REGION = ALL_30D_LAB | {"dimension": "region"}


def test_one_actor_is_a_single_pole():
    table = concentration(models_frame(model("Qwen/a", d30=7)), attributions_frame(credit("Qwen/a", "Qwen")))
    row = one(table, **ALL_30D_LAB)
    assert row["hhi"] == 1.0
    assert row["effective_poles"] == 1.0
    assert row["entropy"] == 0.0
    assert row["exp_entropy"] == 1.0
    assert row["gini"] == 0.0
    assert (row["cr1"], row["cr3"], row["cr5"]) == (1.0, 1.0, 1.0)
    assert (row["actors"], row["downloads"]) == (1, 7.0)


def test_two_equal_actors_are_two_poles():
    models = models_frame(model("Qwen/a", d30=5), model("Meta/b", d30=5))
    table = concentration(models, attributions_frame(credit("Qwen/a", "Qwen"), credit("Meta/b", "Meta")))
    row = one(table, **ALL_30D_LAB)
    assert row["hhi"] == pytest.approx(0.5)
    assert row["effective_poles"] == pytest.approx(2.0)
    assert row["entropy"] == pytest.approx(math.log(2))
    assert row["exp_entropy"] == pytest.approx(2.0)
    assert row["gini"] == pytest.approx(0.0)
    assert (row["cr1"], row["cr3"]) == (pytest.approx(0.5), pytest.approx(1.0))
    assert row["actors"] == 2


def test_three_unequal_actors_have_the_textbook_gini():
    models = models_frame(model("Mistral/a", d30=1), model("Meta/b", d30=2), model("Qwen/c", d30=3))
    attributions = attributions_frame(
        credit("Mistral/a", "Mistral"), credit("Meta/b", "Meta"), credit("Qwen/c", "Qwen")
    )
    row = one(concentration(models, attributions), **ALL_30D_LAB)
    shares_ = [1 / 6, 2 / 6, 3 / 6]
    # Sorted ascending 1, 2, 3: Σ(2i − n − 1)x = −2·1 + 0·2 + 2·3 = 4; n Σx = 18.
    assert row["gini"] == pytest.approx(4 / 18)
    assert row["hhi"] == pytest.approx(14 / 36)
    assert row["effective_poles"] == pytest.approx(36 / 14)
    assert row["entropy"] == pytest.approx(-sum(s * math.log(s) for s in shares_))
    assert (row["cr1"], row["cr3"], row["cr5"]) == (pytest.approx(0.5), pytest.approx(1.0), pytest.approx(1.0))


def test_a_group_without_downloads_has_null_shares_and_null_concentration():
    models = models_frame(model("Qwen/a"), model("Meta/b"))
    attributions = attributions_frame(credit("Qwen/a", "Qwen"), credit("Meta/b", "Meta"))
    assert actor_shares(shares(models, attributions), **ALL_30D_LAB) == {"Meta": None, "Qwen": None}
    row = one(concentration(models, attributions), **ALL_30D_LAB)
    assert (row["downloads"], row["actors"]) == (0.0, 0)
    assert all(row[m] is None for m in ("hhi", "effective_poles", "entropy", "exp_entropy", "gini", "cr1", "cr5"))


def test_unknown_actors_are_in_shares_but_not_in_concentration():
    models = models_frame(model("Meta/a", d30=30), model("Qwen/b", d30=10), model("someone/c", d30=60))
    attributions = attributions_frame(credit("Meta/a", "Meta"), credit("Qwen/b", "Qwen"), credit("someone/c", None))
    assert actor_shares(shares(models, attributions), **ALL_30D_REGION) == pytest.approx(
        {"United States": 0.3, "China": 0.1, "Unknown": 0.6}
    )
    row = one(concentration(models, attributions), **ALL_30D_REGION)
    assert row["downloads"] == 40.0
    assert row["actors"] == 2
    assert row["hhi"] == pytest.approx(0.75**2 + 0.25**2)
    assert row["cr1"] == pytest.approx(0.75)


def test_a_null_developer_type_is_the_unknown_actor():
    models = models_frame(model("Qwen/a", d30=4))
    attributions = attributions_frame(credit("Qwen/a", "Qwen", developer_type=None))
    table = shares(models, attributions)
    assert actor_shares(table, **ALL_30D_LAB | {"dimension": "developer_type"}) == {"Unknown": 1.0}
    assert actor_shares(table, **ALL_30D_LAB) == {"Qwen": 1.0}


def test_split_weights_credit_each_lab_its_fraction():
    models = models_frame(model("someone/merge", d30=100), model("Qwen/base", d30=100))
    attributions = attributions_frame(
        credit("someone/merge", "Qwen", rule="lineage", weight=0.5),
        credit("someone/merge", "Meta", rule="lineage", weight=0.5),
        credit("Qwen/base", "Qwen", rule="lineage"),
    )
    table = shares(models, attributions).filter(rule="lineage", time_window="30d", population="all")
    assert dict(zip(*table.filter(dimension="lab").select("actor", "downloads"), strict=True)) == {
        "Meta": 50.0,
        "Qwen": 150.0,
    }
    assert actor_shares(table, dimension="country") == {"CN": 0.75, "US": 0.25}


def test_two_namespaces_of_one_country_add_up():
    models = models_frame(model("someone/merge", d30=10))
    attributions = attributions_frame(
        credit("someone/merge", "Qwen", rule="lineage", weight=0.5, credited_namespace="Qwen"),
        credit("someone/merge", "Qwen", rule="lineage", weight=0.5, credited_namespace="Qwen-mirror"),
    )
    assert actor_shares(shares(models, attributions), **ALL_30D_LAB | {"rule": "lineage"}) == {"Qwen": 1.0}


def test_official_exclusions_count_in_no_denominator():
    models = models_frame(model("Qwen/a", d30=10), model("bartowski/a-GGUF", d30=90), model("Meta/b", d30=30))
    listed_with_weight_zero = attributions_frame(
        credit("Qwen/a", "Qwen", rule="official"),
        credit("bartowski/a-GGUF", None, rule="official", weight=0.0),
        credit("Meta/b", "Meta", rule="official"),
    )
    left_out = listed_with_weight_zero.filter(pl.col("weight") > 0)
    official = ALL_30D_REGION | {"rule": "official"}
    expected = {"China": 0.25, "United States": 0.75}
    assert actor_shares(shares(models, listed_with_weight_zero), **official) == expected
    assert actor_shares(shares(models, left_out), **official) == expected
    assert concentration(models, listed_with_weight_zero).equals(concentration(models, left_out))


def test_between_window_counts_gains_since_the_previous_snapshot():
    previous = models_frame(model("Qwen/grows", all_time=100), model("Meta/shrinks", all_time=200))
    now = models_frame(
        model("Qwen/grows", all_time=150), model("Meta/shrinks", all_time=180), model("Mistral/new", all_time=30)
    )
    attributions = attributions_frame(
        credit("Qwen/grows", "Qwen"), credit("Meta/shrinks", "Meta"), credit("Mistral/new", "Mistral")
    )
    table = shares(now, attributions, previous_models=previous).filter(**ALL_30D_LAB | {"time_window": "between"})
    assert dict(zip(*table.select("actor", "downloads"), strict=True)) == {"Meta": 0.0, "Mistral": 30.0, "Qwen": 50.0}
    assert actor_shares(table) == pytest.approx({"Meta": 0.0, "Mistral": 30 / 80, "Qwen": 50 / 80})


def test_a_gain_that_cannot_be_known_counts_nothing_in_the_between_window_and_is_counted_apart():
    """A model absent the day before though created long since (hidden then, or missed by that crawl), or
    listed without an all-time count on either day, gains nothing known: its all-time total is no day's
    gain. A model created since the day before gains its whole total."""
    before = dt.date(2026, 5, 11)

    def made(row: dict, created: str | None) -> dict:
        return row | {"created_at": None if created is None else dt.datetime.fromisoformat(created)}

    previous = models_frame(
        made(model("Qwen/grows", all_time=100), "2025-01-01T00:00:00+00:00"),
        made(model("Meta/no-count-then", all_time=0), "2025-01-01T00:00:00+00:00"),
    ).with_columns(
        pl.when(pl.col("model_id") == "Meta/no-count-then")
        .then(None)
        .otherwise(pl.col("downloads_all_time"))
        .alias("downloads_all_time")
    )
    now = models_frame(
        made(model("Qwen/grows", all_time=150), "2025-01-01T00:00:00+00:00"),
        made(model("Meta/no-count-then", all_time=900), "2025-01-01T00:00:00+00:00"),
        made(model("Meta/hidden-then", all_time=1_000_000), "2024-03-01T00:00:00+00:00"),
        made(model("Meta/undated", all_time=7_000), None),
        made(model("Mistral/new", all_time=30), "2026-05-12T01:00:00+00:00"),
    )
    attributions = attributions_frame(*(credit(m, m.split("/")[0]) for m in now["model_id"]))
    tables = metric_tables(now, attributions, previous, previous_date=before)
    between = tables["shares"].filter(**ALL_30D_LAB | {"time_window": "between"})
    assert dict(zip(*between.select("actor", "downloads"), strict=True)) == {"Meta": 0.0, "Mistral": 30.0, "Qwen": 50.0}
    assert tables["unknown_gains"].to_dicts() == [{"models": 3, "all_time_downloads": 1_007_900}]
    assert tables["negative_deltas"].to_dicts() == [{"models": 0, "downloads": 0}]  # no fall made of a missing count
    # the same through `shares`, and without the previous date every absent model is new, as before
    assert shares(now, attributions, previous_models=previous, previous_date=before).equals(tables["shares"])
    undated = metric_tables(now, attributions, previous)["shares"].filter(**ALL_30D_LAB | {"time_window": "between"})
    assert dict(zip(*undated.select("actor", "downloads"), strict=True))["Meta"] == 1_007_000.0


def test_a_model_whose_id_changed_only_in_case_gains_the_change_of_its_count_in_the_between_window():
    """The Hub ignores an id's case: `Qwen/Grows` listed the day before as `qwen/grows` is one model, which gains
    the change of its count, not nothing (absent then though created long since). An id that two models gone since
    share in lower case is not known to be either."""
    before = dt.date(2026, 5, 11)
    old = {"created_at": dt.datetime.fromisoformat("2025-01-01T00:00:00+00:00")}
    previous = models_frame(
        *(
            model(m, all_time=n) | old
            for m, n in (("Qwen/Grows", 1_000), ("Meta/A", 10), ("Meta/X", 10), ("Meta/x", 20))
        )
    )
    now = models_frame(
        *(model(m, all_time=n) | old for m, n in (("Meta/A", 15), ("meta/x", 99), ("qwen/grows", 1_100)))
    )
    attributions = attributions_frame(*(credit(m, m.split("/")[0].title()) for m in now["model_id"]))
    tables = metric_tables(now, attributions, previous, previous_date=before)
    between = tables["shares"].filter(**ALL_30D_LAB | {"time_window": "between"})
    assert dict(zip(*between.select("actor", "downloads"), strict=True)) == {"Meta": 5.0, "Qwen": 100.0}
    assert tables["unknown_gains"].to_dicts() == [{"models": 1, "all_time_downloads": 99}]
    assert shares(now, attributions, previous_models=previous, previous_date=before).equals(tables["shares"])


def test_negative_deltas_are_kept_per_model_and_counted_apart():
    previous = models_frame(model("Qwen/grows", all_time=100), model("Meta/shrinks", all_time=200))
    now = models_frame(
        model("Qwen/grows", all_time=150), model("Meta/shrinks", all_time=180), model("new/one", all_time=5)
    )
    deltas = model_deltas(now, previous).collect()
    assert dict(zip(*deltas.select("model_id", "delta"), strict=True)) == {
        "Qwen/grows": 50,
        "Meta/shrinks": -20,
        "new/one": 5,
    }
    assert negative_deltas(now, previous).to_dicts() == [{"models": 1, "downloads": -20}]
    attributions = attributions_frame(*(credit(m, m.split("/")[0]) for m in now["model_id"]))
    assert metric_tables(now, attributions, previous)["negative_deltas"].equals(negative_deltas(now, previous))
    assert "negative_deltas" not in metric_tables(now, attributions)


def test_without_a_previous_snapshot_there_is_no_between_window():
    tables = metric_tables(models_frame(model("Qwen/a", d30=1)), attributions_frame(credit("Qwen/a", "Qwen")))
    assert set(tables["shares"]["time_window"]) == {"30d", "all_time"}
    assert set(tables["concentration"]["time_window"]) == {"30d", "all_time"}


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        (999_999_999, "size:<1B"),
        (1_000_000_000, "size:1-9B"),
        (9_999_999_999, "size:1-9B"),
        (10_000_000_000, "size:10-99B"),
        (99_999_999_999, "size:10-99B"),
        (100_000_000_000, "size:100B+"),
        (None, "size:unknown"),
        (0, "size:unknown"),
    ],
)
def test_size_classes_split_at_exact_boundaries(params, expected):
    frame = pl.DataFrame({"params_total": [params]}, schema={"params_total": pl.Int64})
    assert frame.select(size_class(pl.col("params_total"))).item() == expected


def test_each_model_counts_in_all_and_in_its_size_class():
    models = models_frame(
        model("Qwen/small", d30=1, params=999_999_999), model("Qwen/big", d30=2, params=1_000_000_000)
    )
    credited = credited_downloads(models, attributions_frame(credit("Qwen/small", "Qwen"), credit("Qwen/big", "Qwen")))
    lab_30d = credited.filter(time_window="30d", dimension="lab").collect()
    assert dict(zip(*lab_30d.select("population", "downloads"), strict=True)) == {
        "all": 3.0,
        "size:<1B": 1.0,
        "size:1-9B": 2.0,
    }


def test_llm_population_holds_text_and_image_text_generation():
    models = models_frame(
        model("Qwen/chat", d30=1, pipeline="text-generation"),
        model("Qwen/vision", d30=2, pipeline="image-text-to-text"),
        model("Qwen/embed", d30=4, pipeline="feature-extraction"),
        model("Qwen/untagged", d30=8),
    )
    attributions = attributions_frame(*(credit(m, "Qwen") for m in models["model_id"]))
    table = shares(models, attributions).filter(**ALL_30D_LAB | {"population": "llm"})
    assert table["downloads"].to_list() == [3.0]


def test_tables_fit_the_warehouse_schemas():
    previous = models_frame(model("Qwen/a", all_time=1))
    models = models_frame(model("Qwen/a", d30=1, all_time=3), model("x/b", d30=2, all_time=2))
    attributions = attributions_frame(
        credit("Qwen/a", "Qwen"), credit("x/b", None), credit("Qwen/a", "Qwen", rule="official")
    )
    before = dt.date(2026, 5, 4)  # a week before: the between window says where it starts
    tables = metric_tables(models, attributions, previous_models=previous, previous_date=before)
    conform(tables["shares"], SHARES)
    conform(tables["concentration"], CONCENTRATION)
    assert tables["shares"].equals(shares(models, attributions, previous_models=previous, previous_date=before))
    assert tables["concentration"].equals(
        concentration(models, attributions, previous_models=previous, previous_date=before)
    )
    for table in tables["shares"], tables["concentration"]:
        starts = table.group_by("time_window").agg(pl.col("window_start").unique()).sort("time_window")
        assert starts.rows() == [("30d", [None]), ("all_time", [None]), ("between", [before])]


def test_concentration_reports_every_group_even_without_models():
    models = models_frame(model("Qwen/a", d30=1))
    attributions = attributions_frame(credit("Qwen/a", "Qwen"), credit("Qwen/a", "Qwen", rule="lineage"))
    table = concentration(models, attributions, previous_models=models)
    # 3 windows × 7 populations × 2 rules × 4 dimensions.
    assert table.height == 3 * 7 * 2 * 4
    assert one(table, **ALL_30D_LAB | {"population": "size:100B+"})["actors"] == 0


def test_an_empty_snapshot_gives_empty_tables():
    tables = metric_tables(MODELS.empty(), ATTRIBUTIONS.empty(), previous_models=MODELS.empty())
    assert conform(tables["shares"], SHARES).is_empty()
    assert conform(tables["concentration"], CONCENTRATION).is_empty()


def random_snapshot(seed: int, n: int = 3_000) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Models in id order, their attributions under two rules (some split, some excluded) and a previous
    snapshot that lacks some of today's models and holds some gone since."""
    rng = random.Random(seed)
    labs = [*LAB_COUNTRY, None]
    ids = sorted(f"{rng.choice('abcdefgh')}{rng.randrange(50)}/m-{i}" for i in range(n))
    rows = [
        model(i, d30=rng.randrange(10**6), all_time=rng.randrange(10**7), params=rng.choice([None, 10**8, 10**10]))
        for i in ids
    ]
    credits = []
    for i in ids:
        credits.append(credit(i, rng.choice(labs)))
        if rng.random() < 0.2:
            credits += [credit(i, lab, rule="lineage", weight=0.5) for lab in rng.sample(labs, 2)]
        else:
            credits.append(credit(i, rng.choice(labs), rule="lineage", weight=rng.choice([0.0, 1.0])))
    then = [model(i, all_time=rng.randrange(10**7)) for i in ids if rng.random() < 0.9]
    then += [model(f"zz/gone-{i}", all_time=5) for i in range(50)]
    return models_frame(*rows), attributions_frame(*credits), models_frame(*sorted(then, key=lambda r: r["model_id"]))


@pytest.mark.parametrize("streamed", [False, True], ids=["read whole", "streamed"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_tables_are_the_same_whether_the_ids_are_merged_or_hashed(seed, streamed):
    models, attributions, previous = random_snapshot(seed)
    assert by_merge([models, attributions, previous])[0] == "streaming"
    merged = metric_tables(models, attributions, previous, streamed=streamed)
    for shuffled in (
        [models.sample(fraction=1.0, shuffle=True, seed=seed), attributions, previous],
        [models, attributions.sample(fraction=1.0, shuffle=True, seed=seed), previous],
        [models, attributions, previous.sample(fraction=1.0, shuffle=True, seed=seed)],
    ):
        assert by_merge(shuffled)[0] == "auto"
        hashed = metric_tables(*shuffled, streamed=streamed)
        for name in ("shares", "concentration"):
            assert_frame_equal(merged[name], hashed[name], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
        assert merged["negative_deltas"].equals(hashed["negative_deltas"])
    # And both agree with the lazy path the single-table functions take.
    assert_frame_equal(merged["shares"], shares(models, attributions, previous_models=previous), rel_tol=1e-9)


@pytest.mark.parametrize("in_id_order", [True, False], ids=["ids merged", "ids hashed"])
@pytest.mark.parametrize("seed", [4, 5, 6])
def test_grouping_on_registry_rows_gives_the_tables_of_grouping_on_the_dimensions(seed, in_id_order):
    from analytics.attribution import attribute, registry_rows
    from tests.test_attribution import REGISTRY
    from tests.test_attribution_update import frame, random_world

    rng = random.Random(seed)
    world = frame(random_world(rng, 600))
    # Registered, intermediary and unreviewed namespaces, with lineage crediting each of them.
    size = world.height
    models = world.with_columns(
        downloads_30d=pl.Series([rng.randrange(10**6) for _ in range(size)]),
        downloads_all_time=pl.Series([rng.randrange(10**7) for _ in range(size)]),
        params_total=pl.Series([rng.choice([None, 10**8, 10**10]) for _ in range(size)]),
        pipeline_tag=pl.Series([rng.choice([None, "text-generation"]) for _ in range(size)]),
    ).sort("model_id")
    previous = models.sample(fraction=0.8, seed=seed).sort("model_id")
    attributions = attribute(models, REGISTRY)
    if not in_id_order:
        attributions = attributions.sample(fraction=1.0, shuffle=True, seed=seed)
    assert attributions.filter(pl.col("weight") > 0)["reviewed"].n_unique() == 2
    by_strings = metric_tables(models, attributions, previous)
    by_rows = metric_tables(models, attributions, previous, registry=registry_rows(REGISTRY))
    for name in ("shares", "concentration"):
        assert_frame_equal(by_strings[name], by_rows[name], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
    # Attributions without `entry`, published before it was kept, are grouped on the strings.
    older = metric_tables(models, attributions.drop("entry"), previous, registry=registry_rows(REGISTRY))
    assert_frame_equal(by_strings["shares"], older["shares"], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
    # The numbers matter: a registry numbered otherwise gives other tables.
    renumbered = registry_rows(REGISTRY).with_columns(pl.col("entry").reverse())
    wrong = metric_tables(models, attributions, previous, registry=renumbered)
    assert not wrong["shares"].equals(by_rows["shares"])


@pytest.mark.parametrize("streamed", [False, True], ids=["read whole", "streamed"])
@pytest.mark.parametrize("seed", [7, 8])
def test_finding_each_model_by_its_row_gives_the_tables_of_joining_on_the_ids(seed, streamed):
    from analytics.attribution import attribute, registry_rows
    from tests.test_attribution import REGISTRY
    from tests.test_attribution_update import frame, random_world

    rng = random.Random(seed)
    world = frame(random_world(rng, 600))  # not in id order: rows are found where the models are
    models = world.with_columns(
        downloads_30d=pl.Series([rng.randrange(10**6) for _ in range(world.height)]),
        downloads_all_time=pl.Series([rng.randrange(10**7) for _ in range(world.height)]),
        params_total=pl.Series([rng.choice([None, 10**8, 10**10]) for _ in range(world.height)]),
        pipeline_tag=pl.Series([rng.choice([None, "text-generation"]) for _ in range(world.height)]),
    )
    previous = models.sample(fraction=0.8, seed=seed)
    attributions = attribute(models, REGISTRY).sample(fraction=1.0, shuffle=True, seed=seed)
    for registry in (None, registry_rows(REGISTRY)):
        by_ids = metric_tables(models, attributions, previous, registry=registry, streamed=streamed)
        by_rows = metric_tables(models, attributions, previous, registry=registry, streamed=streamed, by_row=True)
        for name in ("shares", "concentration"):
            assert_frame_equal(by_ids[name], by_rows[name], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)
        assert by_ids["negative_deltas"].equals(by_rows["negative_deltas"])
    # Rows pointing elsewhere give other tables; attributions without `model_row` are joined on the ids.
    moved = attributions.with_columns((pl.col("model_row") + 1) % models.height)
    assert not metric_tables(models, moved, previous, by_row=True)["shares"].equals(by_ids["shares"])
    older = metric_tables(models, moved.drop("model_row"), previous, registry=registry, by_row=True)
    assert_frame_equal(by_ids["shares"], older["shares"], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_concentration_is_the_same_to_the_bit_whatever_the_order_of_its_rows() -> None:
    from analytics.concentration import GROUP, concentration_of

    rng = random.Random(7)
    rows = [
        {"time_window": "30d", "population": "all", "rule": rule, "dimension": "lab", "actor": f"lab-{i}"}
        | {"downloads": rng.paretovariate(0.8) * 1e3}
        for rule in ("uploader", "lineage")
        for i in range(300)
    ]
    credited = pl.DataFrame(rows)
    groups = credited.select(GROUP).unique(maintain_order=True).lazy()
    first = concentration_of(credited.lazy(), groups).sort(GROUP).collect()  # in group order, as published
    for seed in range(5):
        shuffled = credited.sample(fraction=1.0, shuffle=True, seed=seed)
        again = concentration_of(shuffled.lazy(), groups).sort(GROUP).collect()
        assert again.equals(first), seed  # equal to the last bit: a recomputed file has the same sha256


@pytest.mark.parametrize("streamed", [False, True])
def test_a_window_no_model_has_counts_for_has_no_metrics_rather_than_zeros(streamed: bool) -> None:
    # An import of a panel of 30-day counts alone: every all-time count is missing, on both dates.
    def unrecorded(*rows):
        return models_frame(*rows).with_columns(pl.lit(None, pl.Int64).alias("downloads_all_time"))

    previous = unrecorded(model("Qwen/a", d30=3), model("Meta/b", d30=1))
    now = unrecorded(model("Qwen/a", d30=5), model("Meta/b", d30=2))
    attributions = attributions_frame(credit("Qwen/a", "Qwen"), credit("Meta/b", "Meta"))
    tables = metric_tables(now, attributions, previous, streamed=streamed)
    for table in ("shares", "concentration"):
        assert tables[table]["time_window"].unique().to_list() == ["30d"], table
    assert actor_shares(tables["shares"], **ALL_30D_LAB) == {"Qwen": 5 / 7, "Meta": 2 / 7}
    # Counts on this date but not on the one before: all time is measured, what came between is not.
    now = models_frame(model("Qwen/a", d30=5, all_time=50), model("Meta/b", d30=2, all_time=10))
    tables = metric_tables(now, attributions, previous, streamed=streamed)
    assert sorted(tables["concentration"]["time_window"].unique()) == ["30d", "all_time"]
    assert actor_shares(tables["shares"], **(ALL_30D_LAB | {"time_window": "all_time"})) == {
        "Qwen": 50 / 60,
        "Meta": 10 / 60,
    }
    # A model without a count among models with one adds nothing; an actor none of whose models has one has
    # downloads 0 and a share not known.
    now = now.with_columns(
        pl.when(pl.col("model_id") == "Meta/b").then(None).otherwise("downloads_30d").alias("downloads_30d")
    )
    shares = metric_tables(now, attributions)["shares"].filter(**ALL_30D_LAB)
    assert actor_shares(shares, **ALL_30D_LAB) == {"Qwen": 1.0, "Meta": None}
    assert dict(shares.select("actor", "downloads").iter_rows()) == {"Qwen": 5.0, "Meta": 0.0}


def test_a_model_created_after_the_previous_crawl_began_gains_its_whole_total_even_on_that_date():
    """A daily crawl lists the Hub at one moment of its date: a model created later that day was not there to
    be listed, and everything it has counted since is a gain of the `between` window. One created before that
    moment and absent then was hidden or missed: no gain known. Without the moment, the date decides."""
    before = dt.date(2026, 5, 11)
    listed = dt.datetime(2026, 5, 11, 6, 0, tzinfo=dt.UTC)

    def made(row: dict, created: str) -> dict:
        return row | {"created_at": dt.datetime.fromisoformat(created)}

    previous = models_frame(made(model("Qwen/grows", all_time=100), "2025-01-01T00:00:00+00:00"))
    now = models_frame(
        made(model("Qwen/grows", all_time=150), "2025-01-01T00:00:00+00:00"),
        made(model("Qwen/born-after-the-crawl", all_time=40), "2026-05-11T18:00:00+00:00"),
        made(model("Meta/missed-by-the-crawl", all_time=900), "2026-05-11T05:00:00+00:00"),
    )
    attributions = attributions_frame(*(credit(m, m.split("/")[0]) for m in now["model_id"]))
    tables = metric_tables(now, attributions, previous, previous_date=before, listed_at=listed)
    between = tables["shares"].filter(**ALL_30D_LAB | {"time_window": "between"})
    assert dict(zip(*between.select("actor", "downloads"), strict=True)) == {"Meta": 0.0, "Qwen": 90.0}
    assert tables["unknown_gains"].to_dicts() == [{"models": 1, "all_time_downloads": 900}]
    through_shares = shares(now, attributions, previous_models=previous, previous_date=before, listed_at=listed)
    assert through_shares.equals(tables["shares"])
    dated = metric_tables(now, attributions, previous, previous_date=before)["shares"]
    assert one(dated, **ALL_30D_LAB | {"time_window": "between", "actor": "Qwen"})["downloads"] == 50.0


def test_the_metrics_step_measures_new_models_from_when_the_previous_crawl_began(tmp_path):
    """The moment is the previous date's crawl start, when that crawl ran on its date; an import records no
    time, so there the date decides."""
    from flows import steps
    from warehouse.layout import Layout
    from warehouse.publish import publish_frame

    days = (dt.date(2026, 5, 11), dt.date(2026, 5, 12))
    created = {"Qwen/old": "2025-01-01T00:00:00+00:00", "Qwen/new": "2026-05-11T18:00:00+00:00"}

    def day_models(counts: dict[str, int]) -> pl.DataFrame:
        rows = [model(m, all_time=n) | {"created_at": dt.datetime.fromisoformat(created[m])} for m, n in counts.items()]
        return models_frame(*rows)

    for kind, started, expected in (("hub", "2026-05-11T06:00:00+00:00", 70.0), ("import", None, 50.0)):
        layout = Layout.at(tmp_path / kind)
        record = {"source_kind": kind, "scope": "full" if kind == "hub" else None}
        record |= {"started_at": started or "2026-11-29T10:00:00+00:00"}
        publish_frame(layout, MODELS, days[0], day_models({"Qwen/old": 100}), record)
        publish_frame(layout, MODELS, days[1], day_models({"Qwen/old": 150, "Qwen/new": 20}), record)
        for day in days:
            steps.attribute_date(layout, day)
            steps.metrics_date(layout, day)
        table = pl.read_parquet(layout.partition_file(SHARES, days[1]))
        row = one(table, time_window="between", population="all", rule="uploader", dimension="lab", actor="Alibaba")
        assert row["downloads"] == expected, kind
        inputs = steps.metric_inputs(layout, days[1])
        assert inputs.get("between_listed_at") == started, kind
