"""A date's attributions made from the day before's are the rows a full attribution makes, row for row."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path

import polars as pl
import pytest

import analytics.registry as registry_module
from analytics.attribution import MAX_DEPTH, attribute, attribution_update
from analytics.order import by_merge
from analytics.registry import REGISTRY_PATH, load_registry
from flows.steps import attribute_date
from tests.test_attribution import REGISTRY, snapshot
from warehouse.layout import Layout
from warehouse.publish import publish_frame, write_json_atomic
from warehouse.tables import ATTRIBUTIONS, MODELS

NAMESPACES = ("Qwen", "meta-llama", "mistralai", "unsloth", "bartowski", "someone", "else")
RELATIONS = ("finetune", "quantized", "merge", "adapter", None)


def updated(today: pl.DataFrame, before: pl.DataFrame, *, streamed: bool = False):
    plan, update = attribution_update(today, REGISTRY, before, attribute(before, REGISTRY), streamed=streamed)
    return plan.collect(), update


def assert_same_as_full(today: pl.DataFrame, before: pl.DataFrame, *, streamed: bool = False):
    rows, update = updated(today, before, streamed=streamed)
    full = attribute(today, REGISTRY)
    assert rows.schema == full.schema
    assert rows.equals(full), "the updated rows differ from a full attribution"
    assert full.get_column("model_id").equals(today.get_column("model_id").gather(full.get_column("model_row")))
    return update


def random_world(rng: random.Random, size: int) -> dict[str, tuple[str, list[str], str | None]]:
    """Ids with parents drawn from the world, from outside it, malformed, the model itself or later ids."""
    ids = [f"{rng.choice(NAMESPACES)}/m{i}" if rng.random() < 0.9 else f"m{i}" for i in range(size)]
    world = {}
    for i, model_id in enumerate(ids):
        world[model_id] = (model_id, parents(rng, ids, i, model_id), rng.choice(RELATIONS))
    return world


def parents(rng: random.Random, ids: list[str], i: int, own: str) -> list[str]:
    """Parents for the model `own`, at place `i` of `ids`."""
    chosen = []
    for _ in range(rng.choice((0, 0, 1, 1, 1, 2, 3))):
        kind = rng.random()
        if kind < 0.65 and i:
            chosen.append(ids[rng.randrange(i)])
        elif kind < 0.8:
            chosen.append(f"{rng.choice(NAMESPACES)}/outside{rng.randrange(20)}")
        elif kind < 0.88:
            chosen.append(rng.choice(("not an id", "a/b/c", "/x")))
        elif kind < 0.92:
            chosen.append(own)
        else:
            chosen.append(ids[rng.randrange(len(ids))])
    return chosen


def mutated(rng: random.Random, world: dict, changes: int) -> dict:
    """The world a day later: models removed, added (some named as outside parents before), re-parented."""
    world = dict(world)
    ids = list(world)
    for _ in range(changes):
        kind = rng.random()
        if kind < 0.3 and len(world) > 1:
            world.pop(rng.choice(list(world)), None)
        elif kind < 0.55:
            fresh = (
                f"{rng.choice(NAMESPACES)}/outside{rng.randrange(20)}" if rng.random() < 0.4 else f"new{rng.random()}"
            )
            world[fresh] = (fresh, parents(rng, ids, len(ids), fresh), rng.choice(RELATIONS))
        elif kind < 0.85:
            model_id = rng.choice(list(world))
            place = ids.index(model_id) if model_id in ids else len(ids)
            world[model_id] = (model_id, parents(rng, ids, place, model_id), None)
        else:
            model_id = rng.choice(list(world))
            world[model_id] = (model_id, world[model_id][1], rng.choice(RELATIONS))
    return world


def frame(world: dict, authors: dict[str, str] | None = None) -> pl.DataFrame:
    models = snapshot(*world.values())
    if authors:
        models = models.with_columns(
            pl.col("model_id").replace_strict(authors, default=pl.col("author")).alias("author")
        )
    return models


@pytest.mark.parametrize("streamed", [False, True], ids=["spliced", "streamed"])
@pytest.mark.parametrize("in_id_order", [True, False], ids=["ids merged", "ids hashed"])
@pytest.mark.parametrize("seed", range(12))
def test_updating_random_worlds_gives_the_full_attribution_row_for_row(
    seed: int, in_id_order: bool, streamed: bool
) -> None:
    rng = random.Random(seed)
    before = random_world(rng, 400)
    today = mutated(rng, before, changes=rng.choice((1, 5, 20)))
    ordered = (lambda models: models.sort("model_id")) if in_id_order else (lambda models: models)
    assert by_merge([ordered(frame(today)), ordered(frame(before))])[0] == ("streaming" if in_id_order else "auto")
    update = assert_same_as_full(ordered(frame(today)), ordered(frame(before)), streamed=streamed)
    assert not update.full
    assert update.recomputed < len(today)


def tangled_world(rng: random.Random, size: int) -> dict[str, tuple[str, list[str], str | None]]:
    """Few models, whose parents may be any model of the world (cycles), the model itself, one outside or none."""
    ids = sorted({f"{rng.choice(NAMESPACES)}/m{rng.randrange(3 * size)}" for _ in range(size)})
    world = {}
    for model_id in ids:
        choices = [*ids, f"{rng.choice(NAMESPACES)}/ext{rng.randrange(5)}", "not an id", model_id]
        chosen = [rng.choice(choices) for _ in range(rng.choice((0, 0, 1, 1, 2, 3)))]
        world[model_id] = (model_id, chosen, rng.choice((None, "finetune", "merge")))
    return world


def rewired(rng: random.Random, world: dict) -> dict:
    """The world a day later: a few models removed, added under one parent, or given another single parent."""
    world = dict(world)
    for _ in range(rng.randrange(1, 4)):
        change = rng.choice(("drop", "add", "edit"))
        if change == "drop" and world:
            world.pop(rng.choice(list(world)))
        elif change == "add":
            fresh = f"{rng.choice(NAMESPACES)}/new{rng.randrange(99)}"
            if fresh not in world:
                world[fresh] = (fresh, [rng.choice(list(world))] if world else [], None)
        elif world:
            model_id = rng.choice(list(world))
            world[model_id] = (model_id, [rng.choice(list(world))], world[model_id][2])
    return dict(sorted(world.items()))


def test_merges_walked_again_give_the_same_weights_to_the_last_bit() -> None:
    """Paths of a merge reaching one node are summed in the same order whether the models were walked by a full
    attribution or again by an update, which numbers the nodes otherwise: the same rows, to the last bit."""
    differing = []
    for seed in range(150, 230):  # 222 summed its paths in another order before
        rng = random.Random(seed)
        before = tangled_world(rng, 40)
        today = rewired(rng, before)
        rows, _update = updated(frame(today), frame(before))
        if not rows.equals(attribute(frame(today), REGISTRY)):
            differing.append(seed)
    assert differing == []


@pytest.mark.parametrize("seed", range(6))
def test_a_full_attribution_is_the_same_whatever_order_the_models_come_in(seed: int) -> None:
    models = frame(random_world(random.Random(seed), 400))
    in_order = attribute(models.sort("model_id"), REGISTRY)
    assert in_order.get_column("model_id").is_sorted()
    for given in (models.sort("model_id"), models.sample(fraction=1.0, shuffle=True, seed=seed)):
        rows = attribute(given, REGISTRY)
        assert rows.drop("model_row").equals(in_order.drop("model_row"))
        # Each row points at its model's row in the frame given.
        assert rows.get_column("model_id").equals(given.get_column("model_id").gather(rows.get_column("model_row")))
    assert (
        attribute(models.sort("model_id", descending=True), REGISTRY)
        .drop("model_row")
        .equals(in_order.drop("model_row"))
    )


def test_a_change_at_the_root_of_a_chain_reaches_every_model_below_even_past_the_depth_limit() -> None:
    chain = [f"org/c{i}" for i in range(MAX_DEPTH + 4)]
    world = {c: (c, [chain[i - 1]] if i else [], "finetune") for i, c in enumerate(chain)}
    world |= {f"org/leaf{i}": (f"org/leaf{i}", [], None) for i in range(200)}
    before = frame(world)
    rehomed = dict(world)
    rehomed["org/c0"] = ("org/c0", ["Qwen/base"], "finetune")
    update = assert_same_as_full(frame(rehomed), before)
    assert update.recomputed == len(chain) and update.changed == 1


def test_a_bare_id_whose_author_changes_recredits_its_descendants() -> None:
    world = {"gpt2": ("gpt2", [], None), "someone/tuned": ("someone/tuned", ["gpt2"], "finetune")}
    world |= {f"else/m{i}": (f"else/m{i}", [], None) for i in range(20)}
    before = frame(world)
    today = frame(world, {"gpt2": "meta-llama"})
    assert_same_as_full(today, before)
    lineage = attribute(today, REGISTRY).filter((pl.col("rule") == "lineage") & (pl.col("model_id") == "someone/tuned"))
    assert lineage.get_column("credited_namespace").to_list() == ["meta-llama"]


def test_a_parent_that_leaves_or_enters_the_snapshot_changes_its_childrens_walks() -> None:
    world = {
        "Qwen/base": ("Qwen/base", [], None),
        "someone/ft": ("someone/ft", ["Qwen/base"], "finetune"),
        "else/q": ("else/q", ["someone/ft", "mistralai/outside"], "merge"),
    }
    world |= {f"else/m{i}": (f"else/m{i}", [], None) for i in range(20)}
    gone = {k: v for k, v in world.items() if k != "Qwen/base"}
    assert_same_as_full(frame(gone), frame(world))
    entered = world | {"mistralai/outside": ("mistralai/outside", ["meta-llama/x"], "finetune")}
    assert_same_as_full(frame(entered), frame(world))


def test_a_parent_named_in_another_case_that_changes_recredits_its_children() -> None:
    world = {
        "Qwen/base": ("Qwen/base", [], None),
        "someone/ft": ("someone/ft", ["qwen/BASE"], "finetune"),  # the Hub ignores the case of ids
    }
    world |= {f"else/m{i}": (f"else/m{i}", [], None) for i in range(20)}
    reparented = world | {"Qwen/base": ("Qwen/base", ["meta-llama/x"], "finetune")}
    assert_same_as_full(frame(reparented), frame(world))
    lineage = attribute(frame(reparented), REGISTRY).filter(
        (pl.col("rule") == "lineage") & (pl.col("model_id") == "someone/ft")
    )
    assert lineage.get_column("credited_namespace").to_list() == ["meta-llama"]


def test_nothing_changed_keeps_every_row_and_recomputes_nothing() -> None:
    world = random_world(random.Random(99), 300)
    update = assert_same_as_full(frame(world), frame(world))
    assert (update.changed, update.recomputed, update.full) == (0, 0, False)


def test_when_most_models_change_every_model_is_attributed_again() -> None:
    rng = random.Random(7)
    before = random_world(rng, 100)
    today = {f"x{k}": (f"x{k}", v[1], v[2]) for k, v in random_world(rng, 100).items()}
    update = assert_same_as_full(frame(today), frame(before))
    assert update.full and update.recomputed == len(today)


DAY_BEFORE, DAY = dt.date(2026, 5, 11), dt.date(2026, 5, 12)


def two_days(root) -> tuple[Layout, pl.DataFrame]:
    rng = random.Random(3)
    before = random_world(rng, 500)
    today = frame(mutated(rng, before, changes=10))
    layout = Layout.at(root)
    for day, models in ((DAY_BEFORE, frame(before)), (DAY, today)):
        publish_frame(layout, MODELS, day, models, {"source_kind": "test"})
    assert attribute_date(layout, DAY_BEFORE).get("updated_from") is None
    return layout, today


def made(layout: Layout) -> dict:
    return json.loads(layout.meta_file(ATTRIBUTIONS, DAY).read_text())["made"]


def test_the_refresh_updates_a_date_from_the_day_before_and_says_so_in_its_meta(tmp_path) -> None:
    layout, today = two_days(tmp_path)
    assert attribute_date(layout, DAY)["updated_from"] == DAY_BEFORE.isoformat()
    meta = made(layout)
    assert meta["from"] == DAY_BEFORE.isoformat() and 0 < meta["recomputed"] < today.height
    expected = attribute(today.sort("model_id"), load_registry())  # as published
    published = pl.read_parquet(layout.partition_file(ATTRIBUTIONS, DAY))
    assert published.equals(expected)
    ids = pl.read_parquet(layout.partition_file(MODELS, DAY)).get_column("model_id")
    assert published.get_column("model_id").equals(ids.gather(published.get_column("model_row")))


def test_a_damaged_or_foreign_day_before_is_not_updated_from(tmp_path, monkeypatch) -> None:
    layout, today = two_days(tmp_path)
    expected = attribute(today.sort("model_id"), load_registry())  # as published
    published = layout.partition_file(ATTRIBUTIONS, DAY_BEFORE)
    meta_file = layout.meta_file(ATTRIBUTIONS, DAY_BEFORE)
    intact, meta = published.read_bytes(), json.loads(meta_file.read_text())

    def attributed_in_full() -> None:
        assert attribute_date(layout, DAY, force=True).get("updated_from") is None
        assert made(layout) == {"from": None}
        assert pl.read_parquet(layout.partition_file(ATTRIBUTIONS, DAY)).equals(expected)

    # Rows altered after publishing: the file no longer has the sha256 its meta records.
    pl.read_parquet(published).with_columns(pl.lit("US").alias("country")).write_parquet(published)
    attributed_in_full()
    published.write_bytes(intact)
    # Made by other rules.
    write_json_atomic(meta_file, meta | {"rules_version": "sha256:0000/polars 0"})
    attributed_in_full()
    write_json_atomic(meta_file, meta)
    assert attribute_date(layout, DAY, force=True)["updated_from"] == DAY_BEFORE.isoformat()
    # Made with another registry than the one in use now.
    registry = tmp_path / "registry.csv"
    registry.write_bytes(REGISTRY_PATH.read_bytes() + b"some-new-lab,Some Lab,FR,Europe,industry,test\n")
    monkeypatch.setattr(registry_module, "REGISTRY_PATH", registry)
    expected = attribute(today.sort("model_id"), load_registry())  # as published
    attributed_in_full()


def test_rows_sharing_a_first_hash_are_told_apart_by_the_second(monkeypatch) -> None:
    import analytics.attribution as attribution

    fingerprints = attribution._fingerprints
    # Every row's first hash is the same: every row looks seen, and only the second hash tells.
    monkeypatch.setattr(attribution, "_fingerprints", lambda f: fingerprints(f).with_columns(h1=pl.lit(0, pl.UInt64)))
    rng = random.Random(5)
    before = random_world(rng, 300)
    today = mutated(rng, before, changes=8)
    update = assert_same_as_full(frame(today), frame(before))
    assert update.changed > 0 and not update.full


@pytest.mark.parametrize("streamed", [False, True], ids=["spliced", "streamed"])
def test_rows_of_the_day_before_out_of_id_order_are_not_spliced_into(streamed: bool) -> None:
    rng = random.Random(11)
    before = frame(random_world(rng, 200))
    today = frame(mutated(rng, random_world(random.Random(11), 200), changes=3))
    shuffled = attribute(before, REGISTRY).reverse()
    plan, update = attribution_update(today, REGISTRY, before, shuffled, streamed=streamed)
    assert update.full
    assert plan.collect().equals(attribute(today, REGISTRY))


def test_the_rules_version_follows_the_code_of_every_module_that_shapes_the_rows(tmp_path, monkeypatch) -> None:
    """The registry as loaded, say: a change there with the same registry file changes the rows as much as one
    in the rules."""
    import shutil

    import analytics.attribution as attribution

    root = Path(attribution.__file__).resolve().parent.parent
    for name in attribution.RULES_CODE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / name, tmp_path / name)
    monkeypatch.setattr(attribution, "__file__", str(tmp_path / "analytics" / "attribution.py"))
    version = attribution.rules_version()
    for name in attribution.RULES_CODE:
        before = (tmp_path / name).read_text()
        (tmp_path / name).write_text(before + "\nCHANGED = 1\n")
        assert attribution.rules_version() != version, name
        (tmp_path / name).write_text(before + "\n# a comment\n")
        assert attribution.rules_version() == version, name
        (tmp_path / name).write_text(before)


def test_the_rules_version_follows_the_code_not_its_comments_or_docstrings() -> None:
    import analytics.attribution as attribution

    source = Path(attribution.__file__).read_text(encoding="utf-8")
    digest = attribution.code_digest(source)
    reworded = source.replace('"""Credit every model', '"""Credits each model', 1)
    commented = source.replace("MAX_DEPTH = 16\n", "MAX_DEPTH = 16  # steps a lineage walk takes at most\n", 1)
    relaid = source.replace("RULES = (", "\n\nRULES = (", 1)
    for same in (reworded, commented, relaid):
        assert same != source and attribution.code_digest(same) == digest
    for other in (source.replace("MAX_DEPTH = 16\n", "MAX_DEPTH = 17\n", 1), source + "\nEXTRA = 1\n"):
        assert attribution.code_digest(other) != digest
