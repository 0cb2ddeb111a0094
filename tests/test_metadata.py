"""`models` kept as each day's counts, with metadata kept once per change, read back whole."""

from __future__ import annotations

import datetime as dt
import json
import shutil

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.test_warehouse import models_frame
from warehouse.layout import Layout
from warehouse.metadata import NotPublished, is_split, metadata_hash, read_models, scan_models
from warehouse.publish import publish_frame, read_meta, sha256_of, write_parquet
from warehouse.query import run_sql
from warehouse.tables import ATTRIBUTIONS, MODEL_DAYS, MODEL_METADATA, MODELS, SHARES

DAY = dt.date(2026, 5, 12)
NEXT = DAY + dt.timedelta(days=1)
UTC = dt.UTC


def world(n: int = 50) -> pl.DataFrame:
    """`n` models with every column filled, lineage and tags included."""
    ids = [f"lab{i % 7}/model-{i:04d}" for i in range(n)]
    return models_frame(ids).with_columns(
        pl.Series("downloads_30d", [i * 10 for i in range(n)], pl.Int64),
        pl.Series("downloads_all_time", [i * 100 for i in range(n)], pl.Int64),
        pl.Series("likes", [i % 5 for i in range(n)], pl.Int64),
        pl.Series("created_at", [dt.datetime(2025, 1, 1 + i % 28, tzinfo=UTC) for i in range(n)]),
        pl.Series("last_modified", [dt.datetime(2026, 1, 1 + i % 28, tzinfo=UTC) for i in range(n)]),
        pl.Series("tags", [["text-generation", f"t{i % 3}"] for i in range(n)], pl.List(pl.String)),
        pl.Series("base_models", [[ids[i - 1]] if i % 4 == 1 else None for i in range(n)], pl.List(pl.String)),
        pl.Series("base_relation", ["finetune" if i % 4 == 1 else None for i in range(n)]),
        pl.Series("params_total", [i * 1_000_000 for i in range(n)], pl.Int64),
        pl.Series("pipeline_tag", ["text-generation"] * n),
        pl.Series("library_name", ["transformers" if i % 2 else "gguf" for i in range(n)]),
        pl.Series("gated", ["false" if i % 3 else "auto" for i in range(n)]),
    )


def next_day(models: pl.DataFrame) -> pl.DataFrame:
    """The day after: every count moves, model 3's tags change, model 5 is deleted and one is born."""
    moved = models.with_columns(
        pl.col("downloads_30d") + 1,
        pl.when(pl.col("model_id") == "lab3/model-0003")
        .then(pl.lit(["text-generation", "gguf"]))
        .otherwise(pl.col("tags"))
        .alias("tags"),
    ).filter(pl.col("model_id") != "lab5/model-0005")
    born = world(60).filter(pl.col("model_id") == "lab2/model-0058")
    return pl.concat([moved, born])


def stored(layout: Layout, day: dt.date) -> pl.DataFrame:
    return pl.read_parquet(layout.partition_file(MODEL_DAYS, day))


def kept(layout: Layout, version: int) -> pl.DataFrame:
    return pl.read_parquet(layout.version_file(MODEL_METADATA, version))


def test_a_day_keeps_only_the_metadata_that_changed_and_reads_back_whole(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    first, second = world(), next_day(world())
    publish_frame(layout, MODELS, DAY, first, {"source_kind": "test"})
    meta = publish_frame(layout, MODELS, NEXT, second, {"source_kind": "test"})

    assert list(stored(layout, NEXT).columns) == MODEL_DAYS.columns  # the counts and the pointer only
    assert kept(layout, 1).height == 50
    assert sorted(kept(layout, 2).get_column("model_id")) == ["lab2/model-0058", "lab3/model-0003"]
    assert meta["metadata"] == {"compared_with": DAY.isoformat(), "new_version": 2, "rows_kept": 2, "versions": [1, 2]}
    assert read_meta(layout, MODELS, NEXT)["rows"] == 50

    assert layout.scan(MODELS, DAY).collect().equals(first.sort("model_id"))
    assert layout.scan(MODELS, NEXT).collect().equals(second.sort("model_id"))
    # a query reads only what it names, in any order, filtered
    some = layout.scan(MODELS, NEXT).filter(pl.col("downloads_30d") > 400).select("tags", "model_id").collect()
    expected = second.sort("model_id").filter(pl.col("downloads_30d") > 400).select("tags", "model_id")
    assert some.equals(expected)
    assert layout.scan(MODELS, NEXT).select(pl.len()).collect().item() == 50


QUERIES = {
    "a few ids": lambda q: q.filter(
        pl.col("model_id").is_in(["lab2/model-0058", "lab3/model-0003", "lab4/model-0004"])
    ),
    "a few ids, not read back": lambda q: q.filter(
        pl.col("model_id").is_in(["lab2/model-0058", "lab0/model-0007"])
    ).select("tags", "downloads_30d"),
    "counts": lambda q: q.filter(pl.col("downloads_30d") > 300).select("model_id", "base_models"),
    "metadata": lambda q: q.filter(pl.col("tags").list.contains("gguf")).select("model_id", "likes", "author"),
    "metadata, many rows": lambda q: q.filter(pl.col("library_name") == "gguf").select("downloads_30d", "created_at"),
    "both": lambda q: q.filter((pl.col("downloads_30d") < 200) | (pl.col("params_total") > 45_000_000)),
    "nothing": lambda q: q.filter(pl.col("author") == "nobody").select("tags"),
    "head": lambda q: q.head(3),
    "head of a filter": lambda q: q.filter(pl.col("gated") == "auto").head(4).select("model_id", "gated"),
}


@pytest.mark.parametrize("query", QUERIES)
def test_a_filtered_query_reads_the_rows_it_keeps_as_a_whole_read_would(tmp_path, query) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, world(), {"source_kind": "test"})
    publish_frame(layout, MODELS, NEXT, next_day(world()), {"source_kind": "test"})
    whole = next_day(world()).sort("model_id").lazy()  # version 2's rows sit between version 1's in id order
    got = QUERIES[query](layout.scan(MODELS, NEXT)).collect()
    assert got.equals(QUERIES[query](whole).collect())


def test_a_day_is_scanned_by_its_date_or_its_iso_text_and_an_unpublished_one_is_named(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    for offset in (0, 2):
        publish_frame(layout, MODELS, DAY + dt.timedelta(days=offset), models_frame(["a/x", "b/y"]), {})
    by_text = scan_models(layout, DAY.isoformat()).collect()
    assert_frame_equal(by_text, scan_models(layout, DAY).collect())
    missing = DAY + dt.timedelta(days=1)
    said = rf"models of {missing} are not published in .* \(published: 2 dates, {DAY} …"
    with pytest.raises(NotPublished, match=said):
        scan_models(layout, missing)


def test_a_day_with_nothing_changed_writes_no_metadata(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, world(), {"source_kind": "test"})
    recounted = world().with_columns(pl.col("downloads_30d") * 2)
    meta = publish_frame(layout, MODELS, NEXT, recounted, {"source_kind": "test"})
    assert meta["metadata"]["rows_kept"] == 0 and meta["metadata"]["new_version"] is None
    assert layout.published_versions(MODEL_METADATA) == [1]
    assert stored(layout, NEXT).get_column("metadata_row").to_list() == list(range(50))
    assert read_models(layout, NEXT).equals(recounted.sort("model_id"))


def test_every_metadata_column_is_compared(tmp_path) -> None:
    """A change in any one column (a null for a value included) is kept; equal rows are not."""
    base = world(8)
    hashes = metadata_hash(base)
    for column in MODEL_METADATA.schema:
        if column in ("metadata_version", "model_id", "metadata_hash"):
            continue
        values = base.get_column(column).to_list()
        values[2] = values[1] if values[2] is None else None
        changed = base.with_columns(pl.Series(column, values, base.schema[column]))
        differs = metadata_hash(changed) != hashes
        assert differs.to_list() == [i == 2 for i in range(8)], column
    counts = base.with_columns(
        pl.col("downloads_30d") + 1, pl.col("likes") + 1, pl.col("trending_score").fill_null(1.0)
    )
    assert (metadata_hash(counts) == hashes).all()


def test_replacing_a_day_leaves_the_days_that_point_at_its_metadata_right(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    first, second = world(), next_day(world())
    publish_frame(layout, MODELS, DAY, first, {"source_kind": "test"})
    publish_frame(layout, MODELS, NEXT, second, {"source_kind": "test"})
    renamed = first.with_columns(pl.lit("someone-else").alias("author"))
    publish_frame(layout, MODELS, DAY, renamed, {"source_kind": "test"}, force=True)

    assert layout.published_versions(MODEL_METADATA) == [1, 2, 3]  # versions are never changed
    assert read_models(layout, DAY).equals(renamed.sort("model_id"))
    assert read_models(layout, NEXT).equals(second.sort("model_id"))

    recounted = second.with_columns(pl.col("likes") + 1)
    meta = publish_frame(layout, MODELS, NEXT, recounted, {"source_kind": "test"}, force=True)
    assert meta["metadata"]["compared_with"] == DAY.isoformat()  # now pointing at version 3
    assert layout.published_versions(MODEL_METADATA) == [3, 4]  # what no day points at any more is removed
    assert read_models(layout, DAY).equals(renamed.sort("model_id"))
    assert read_models(layout, NEXT).equals(recounted.sort("model_id"))


def test_a_backfilled_day_is_compared_with_the_day_before_it(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, NEXT + dt.timedelta(days=5), next_day(world()), {"source_kind": "test"})
    publish_frame(layout, MODELS, DAY, world(), {"source_kind": "test"})
    meta = publish_frame(layout, MODELS, NEXT, next_day(world()), {"source_kind": "test"})
    assert meta["metadata"]["compared_with"] == DAY.isoformat() and meta["metadata"]["rows_kept"] == 2
    for day, frame in ((DAY, world()), (NEXT, next_day(world())), (NEXT + dt.timedelta(days=5), next_day(world()))):
        assert read_models(layout, day).equals(frame.sort("model_id")), day


def whole_record(layout: Layout, path, rows: int) -> dict:
    """The `_meta` record of a day written whole, as published before metadata was kept apart."""
    return {
        "table": "models",
        "snapshot_date": DAY.isoformat(),
        "rows": rows,
        "file": str(path.relative_to(layout.root)),
        "sha256": sha256_of(path),
        "published_at": "2026-05-11T06:00:00+00:00",
    }


def test_a_day_written_whole_reads_as_it_is_and_the_next_keeps_all_its_metadata(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    whole = world()
    path = layout.partition_file(MODELS, DAY)
    path.parent.mkdir(parents=True)
    write_parquet(whole, path)
    layout.meta_file(MODELS, DAY).parent.mkdir(parents=True)
    layout.meta_file(MODELS, DAY).write_text(json.dumps(whole_record(layout, path, 50)))
    assert not is_split(layout, DAY)
    assert scan_models(layout, DAY).collect().equals(whole)

    meta = publish_frame(layout, MODELS, NEXT, next_day(whole), {"source_kind": "test"})
    assert meta["metadata"] == {"compared_with": None, "new_version": 1, "rows_kept": 50, "versions": [1]}
    both = run_sql(layout, "SELECT snapshot_date, * EXCLUDE (snapshot_date) FROM models ORDER BY ALL")
    both = both.with_columns(pl.col(pl.Datetime).dt.convert_time_zone("UTC"))
    expected = pl.concat(
        [
            whole.with_columns(pl.lit(DAY).alias("snapshot_date")),
            next_day(whole).with_columns(pl.lit(NEXT).alias("snapshot_date")),
        ]
    ).select("snapshot_date", *MODELS.columns)
    assert both.sort(pl.all()).equals(expected.sort(pl.all()))


def test_sql_models_and_credited_join_each_day_to_its_metadata(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, world(), {"source_kind": "test"})
    publish_frame(layout, MODELS, NEXT, next_day(world()), {"source_kind": "test"})
    tags = run_sql(
        layout, "SELECT snapshot_date, tags FROM models WHERE model_id = 'lab3/model-0003' ORDER BY snapshot_date"
    )
    assert tags.get_column("tags").to_list() == [["text-generation", "t0"], ["text-generation", "gguf"]]
    days = run_sql(layout, "SELECT count(*) AS n, count(DISTINCT metadata_version) AS v FROM model_days")
    assert days.row(0) == (100, 2)
    kept_rows = run_sql(layout, "SELECT count(*) FROM model_metadata").item()
    assert kept_rows == 52
    # Each day's row points at its own model's metadata: row `metadata_row` of its version's file.
    pointed = run_sql(
        layout,
        "SELECT count(*) AS n, count(*) FILTER (WHERE d.model_id <> m.model_id) AS wrong "
        "FROM model_days d JOIN model_metadata m USING (metadata_version, metadata_row)",
    )
    assert pointed.row(0) == (100, 0)


def test_credited_joins_on_model_row_only_the_dates_attributed_from_their_models_as_published(tmp_path) -> None:
    from analytics.metrics import metric_tables
    from flows.steps import attribute_date, metrics_date
    from warehouse.query import rows_point_at_models

    layout = Layout.at(tmp_path)
    whole, later = world(), NEXT + dt.timedelta(days=1)
    path = layout.partition_file(MODELS, DAY)  # a day written whole, as before metadata was kept apart
    path.parent.mkdir(parents=True)
    write_parquet(whole, path)
    layout.meta_file(MODELS, DAY).parent.mkdir(parents=True)
    layout.meta_file(MODELS, DAY).write_text(json.dumps(whole_record(layout, path, 50)))
    publish_frame(layout, MODELS, NEXT, next_day(whole), {"source_kind": "test"})
    publish_frame(layout, MODELS, later, next_day(whole), {"source_kind": "test"})
    for day in (DAY, NEXT, later):
        attribute_date(layout, day)
    # The last date's models are replaced after it was attributed: a model born first moves every row.
    born = world(60).filter(pl.col("model_id") == "lab2/model-0058").with_columns(model_id=pl.lit("aaa/first"))
    publish_frame(layout, MODELS, later, pl.concat([born, next_day(whole)]), {"source_kind": "test"}, force=True)
    assert [rows_point_at_models(layout, day) for day in (DAY, NEXT, later)] == [True, True, False]

    columns = "snapshot_date, model_id, tags, downloads_30d, rule, credited_namespace, country, weight, evidence"
    by_id = run_sql(
        layout,
        f"SELECT {columns} FROM (SELECT * EXCLUDE (model_row) FROM attributions) a "
        "JOIN models m USING (snapshot_date, model_id) ORDER BY ALL",
    )
    assert by_id.height == run_sql(layout, "SELECT count(*) FROM attributions").item()
    assert run_sql(layout, f"SELECT {columns} FROM credited ORDER BY ALL").equals(by_id)
    assert "model_row" not in run_sql(layout, "SELECT * FROM credited LIMIT 1").columns
    # The metrics find each model by its row on the same dates only.
    for day, before in ((NEXT, DAY), (later, NEXT)):
        metrics_date(layout, day, force=True)
        by_id = metric_tables(
            layout.scan(MODELS, day), layout.scan(ATTRIBUTIONS, day), layout.scan(MODELS, before), previous_date=before
        )
        published = pl.read_parquet(layout.partition_file(SHARES, day)).drop("snapshot_date", strict=False)
        assert_frame_equal(published, by_id["shares"], check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_a_missing_metadata_version_is_a_clear_error(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, world(), {"source_kind": "test"})
    publish_frame(layout, MODELS, NEXT, next_day(world()), {"source_kind": "test"})
    shutil.rmtree(layout.version_file(MODEL_METADATA, 2).parent)
    layout.version_meta_file(MODEL_METADATA, 2).unlink()
    with pytest.raises(FileNotFoundError, match="model_metadata version 2 is not published"):
        layout.scan(MODELS, NEXT).collect()
    assert read_models(layout, DAY).equals(world().sort("model_id"))  # the first day needs only version 1


def test_a_publish_stopped_after_its_metadata_leaves_the_day_unpublished_and_is_done_again(tmp_path, monkeypatch):
    import warehouse.metadata as metadata

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, world(), {"source_kind": "test"})

    def stop(*_args, **_kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(metadata, "publish_staged", stop)
    with pytest.raises(OSError):
        publish_frame(layout, MODELS, NEXT, next_day(world()), {"source_kind": "test"})
    monkeypatch.undo()
    assert layout.published_dates(MODELS) == [DAY] and layout.published_versions(MODEL_METADATA) == [1, 2]
    assert not list((layout.staging / "publish").glob("*"))

    meta = publish_frame(layout, MODELS, NEXT, next_day(world()), {"source_kind": "test"})
    assert meta["metadata"]["new_version"] == 3 and meta["metadata"]["versions"] == [1, 3]
    assert set(stored(layout, NEXT).get_column("metadata_version").unique()) == {1, 3}
    assert layout.published_versions(MODEL_METADATA) == [1, 3]  # version 2, pointed at by no day, is gone
    assert not layout.version_file(MODEL_METADATA, 2).parent.exists()
    assert read_models(layout, NEXT).equals(next_day(world()).sort("model_id"))
