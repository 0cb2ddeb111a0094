"""The storage layer: schemas enforced on write, atomic publish, the lock, confined SQL."""

from __future__ import annotations

import datetime as dt
import json
import multiprocessing
import time

import polars as pl
import psutil
import pyarrow.parquet as pq
import pytest

from warehouse.contract import SchemaViolation, conform
from warehouse.layout import Layout
from warehouse.lock import WarehouseLocked, writer_lock
from warehouse.publish import AlreadyPublished, publish_frame, publish_plan, publish_staged, sha256_of
from warehouse.query import MEMORY_ENV, MEMORY_FLOOR, QueryRefused, connect, run_sql, views_read
from warehouse.tables import ATTRIBUTIONS, MODEL_METADATA, MODELS, TABLES

DAY = dt.date(2026, 5, 12)


def models_frame(ids: list[str], downloads: list[int | None] | None = None) -> pl.DataFrame:
    frame = MODELS.empty().extend(
        pl.DataFrame(
            {"model_id": ids, "author": [i.split("/")[0] for i in ids], "tags": [[] for _ in ids]},
            schema={"model_id": pl.String, "author": pl.String, "tags": pl.List(pl.String)},
        )
        .with_columns(
            [
                pl.lit(None, dtype).alias(name)
                for name, dtype in MODELS.schema.items()
                if name not in ("model_id", "author", "tags")
            ]
        )
        .select(MODELS.columns)
    )
    if downloads is not None:
        frame = frame.with_columns(pl.Series("downloads_30d", downloads, pl.Int64))
    return frame


def test_a_record_removed_between_its_check_and_its_read_is_read_as_none(tmp_path, monkeypatch) -> None:
    """A writer replacing a date removes its record first: a reader (another date's task of a recompute on
    threads, checking the date before it) that found the record a moment before reads it as not published,
    not as a FileNotFoundError that stops the run."""
    from pathlib import Path

    from warehouse.publish import read_meta

    layout = Layout.at(tmp_path / "wh")
    day = dt.date(2026, 3, 1)
    publish_frame(layout, MODELS, day, models_frame(["Qwen/a"]), {})
    record, is_file = layout.meta_file(MODELS, day), Path.is_file

    def replaced_meanwhile(path: Path) -> bool:
        found = is_file(path)
        if path == record:
            path.unlink()
        return found

    monkeypatch.setattr(Path, "is_file", replaced_meanwhile)
    assert read_meta(layout, MODELS, day) is None


def test_conform_names_the_column_and_count_of_rows_that_cannot_be_cast() -> None:
    frame = models_frame(["a/x", "a/y", "a/z"]).with_columns(pl.Series("downloads_30d", ["1", "many", "lots"]))
    with pytest.raises(SchemaViolation) as caught:
        conform(frame, MODELS)
    assert caught.value.column == "downloads_30d" and caught.value.bad_rows == 2


def test_conform_refuses_to_cut_fractions_and_names_a_cast_polars_cannot_make() -> None:
    frame = models_frame(["a/x", "a/y", "a/z"]).with_columns(pl.Series("downloads_30d", [1.9, 2.0, None]))
    with pytest.raises(SchemaViolation, match="Float64 with a fraction for Int64") as caught:
        conform(frame, MODELS)
    assert caught.value.column == "downloads_30d" and caught.value.bad_rows == 1
    whole = frame.with_columns(pl.Series("downloads_30d", [1.0, 2.0, None]))
    assert conform(whole, MODELS)["downloads_30d"].to_list() == [1, 2, None]
    dated = models_frame(["a/x"]).with_columns(pl.lit("2026-05-12").alias("created_at"))
    with pytest.raises(SchemaViolation, match="cannot cast String to Datetime") as caught:
        conform(dated, MODELS)
    assert caught.value.column == "created_at" and "\n" not in str(caught.value)


def test_conform_refuses_decimal_fractions_and_dates_or_truths_for_counts() -> None:
    """A Decimal is cut like a float; a date would become its days since 1970 and a truth a 1, silently."""
    import decimal

    given = [decimal.Decimal("1.9"), decimal.Decimal("2"), None]
    frame = models_frame(["a/x", "a/y", "a/z"]).with_columns(pl.Series("downloads_30d", given))
    with pytest.raises(SchemaViolation, match=r"Decimal.* with a fraction for Int64") as caught:
        conform(frame, MODELS)
    assert caught.value.bad_rows == 1
    whole = frame.with_columns(pl.Series("downloads_30d", [decimal.Decimal("1"), decimal.Decimal("2"), None]))
    assert conform(whole, MODELS)["downloads_30d"].to_list() == [1, 2, None]
    for value in (dt.date(2026, 5, 12), True):
        wrong = models_frame(["a/x", "a/y"]).with_columns(pl.Series("downloads_30d", [value, None]))
        with pytest.raises(SchemaViolation, match="is no number") as caught:
            conform(wrong, MODELS)
        assert caught.value.column == "downloads_30d" and caught.value.bad_rows == 1
    counted = models_frame(["a/x"]).with_columns(pl.lit(20_000).alias("created_at"))
    with pytest.raises(SchemaViolation, match="is no time"):
        conform(counted, MODELS)
    # A column of nulls only has no meaning to change.
    nulls = models_frame(["a/x"]).with_columns(pl.lit(None, pl.Boolean).alias("downloads_30d"))
    assert conform(nulls, MODELS)["downloads_30d"].to_list() == [None]


def test_conform_refuses_duplicate_keys_extra_columns_and_missing_ids() -> None:
    with pytest.raises(SchemaViolation, match="duplicate key"):
        conform(models_frame(["a/x", "a/x"]), MODELS)
    with pytest.raises(SchemaViolation, match="not in the declared schema"):
        conform(models_frame(["a/x"]).with_columns(pl.lit(1).alias("secret")), MODELS)
    with pytest.raises(SchemaViolation, match="null in a required column"):
        conform(models_frame(["a/x"]).with_columns(pl.lit(None, pl.String).alias("model_id")), MODELS)


def attribution_rows(keys: list[tuple[str, str, str]]) -> pl.DataFrame:
    frame = pl.DataFrame(keys, schema=["model_id", "rule", "credited_namespace"], orient="row")
    return frame.with_columns(reviewed=pl.lit(True), weight=pl.lit(1.0))


@pytest.mark.parametrize("collide", [False, True], ids=["hashes", "every hash colliding"])
def test_a_duplicate_key_is_counted_exactly_even_when_every_hash_collides(collide, tmp_path, monkeypatch) -> None:
    from warehouse import contract, publish

    if collide:  # a key hash that says every row repeats: only the keys themselves may decide
        for module in (contract, publish):
            monkeypatch.setattr(module, "key_hash", lambda key: pl.lit(0, pl.UInt64).repeat_by(pl.len()).explode())
    unique = [("a/x", "uploader", "a"), ("a/x", "lineage", "a"), ("a/x", "lineage", "b"), ("b/y", "uploader", "b")]
    repeated = [*unique, ("a/x", "lineage", "b"), ("b/y", "uploader", "b")]
    good = conform(attribution_rows(unique).with_columns(ATTRIBUTIONS_NULLS), ATTRIBUTIONS)
    assert good.height == 4
    with pytest.raises(SchemaViolation, match="duplicate key") as caught:
        conform(attribution_rows(repeated).with_columns(ATTRIBUTIONS_NULLS), ATTRIBUTIONS)
    assert caught.value.bad_rows == 4  # both rows of each of the two repeated keys
    staged = tmp_path / "staged.parquet"
    good.write_parquet(staged)
    assert publish.check_staged(ATTRIBUTIONS, staged) == 4
    pl.concat([good, good.slice(0, 2)]).write_parquet(staged)
    with pytest.raises(SchemaViolation, match="duplicate key") as caught:
        publish.check_staged(ATTRIBUTIONS, staged)
    assert caught.value.bad_rows == 2  # two rows more than there are keys


ATTRIBUTIONS_NULLS = [
    pl.lit(None, pl.String).alias(c) for c in ("lab", "country", "region", "developer_type", "evidence")
] + [pl.lit(0, pl.Int32).alias("lineage_depth"), pl.lit(None, pl.Int32).alias("entry"), pl.lit(0).alias("model_row")]


def test_publish_writes_data_then_meta_with_checksum_and_refuses_a_second_time(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    meta = publish_frame(layout, MODELS, DAY, models_frame(["a/x", "b/y"], [3, 4]), {"source_kind": "test"})
    path = layout.partition_file(MODELS, DAY)
    assert meta["rows"] == 2 and meta["sha256"] == sha256_of(path)
    assert json.loads(layout.meta_file(MODELS, DAY).read_text())["sha256"] == meta["sha256"]
    assert path.name == "part-00000.parquet" and path.parent.name == "snapshot_date=2026-05-12"
    with pytest.raises(AlreadyPublished):
        publish_frame(layout, MODELS, DAY, models_frame(["c/z"]), {})
    publish_frame(layout, MODELS, DAY, models_frame(["c/z"]), {}, force=True)
    assert pl.read_parquet(path)["model_id"].to_list() == ["c/z"]
    assert not list((layout.staging / "publish").iterdir())


def test_a_publish_refused_by_its_schema_leaves_the_published_partition_untouched(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, models_frame(["a/x"]), {})
    before = sha256_of(layout.partition_file(MODELS, DAY))
    with pytest.raises(SchemaViolation):
        publish_frame(layout, MODELS, DAY, models_frame(["a/x", "a/x"]), {}, force=True)
    assert sha256_of(layout.partition_file(MODELS, DAY)) == before


def test_a_replacement_stopped_before_its_record_leaves_the_date_unpublished_not_misdescribed(
    tmp_path, monkeypatch
) -> None:
    from warehouse import publish

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, models_frame(["a/x", "b/y"], [1, 2]), {})
    write_record = publish.write_json_atomic

    def stopped(path, payload) -> None:
        if path == layout.meta_file(MODELS, DAY):
            raise OSError(28, "No space left on device", str(path))
        write_record(path, payload)

    monkeypatch.setattr(publish, "write_json_atomic", stopped)
    with pytest.raises(OSError):
        publish_frame(layout, MODELS, DAY, models_frame(["a/x", "c/z", "d/w"], [3, 4, 5]), {}, force=True)
    # The new file is in place, and no record says it is the old one: readers skip the date.
    assert pl.read_parquet(layout.partition_file(MODELS, DAY)).height == 3
    assert DAY not in layout.published_dates(MODELS)
    assert run_sql(layout, "SELECT count(*) AS n FROM models").item() == 0
    monkeypatch.setattr(publish, "write_json_atomic", write_record)
    meta = publish_frame(layout, MODELS, DAY, models_frame(["a/x", "c/z", "d/w"], [3, 4, 5]), {})
    assert meta["sha256"] == sha256_of(layout.partition_file(MODELS, DAY))
    assert run_sql(layout, "SELECT sum(downloads_30d) AS n FROM models").item() == 12


def test_models_are_published_in_id_order_and_a_staged_file_out_of_order_is_refused(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    ids = ["zz/last", "Qwen/q", "a/x", "a/w", "\u00e9/accent", "B/upper"]
    publish_frame(layout, MODELS, DAY, models_frame(ids, [1, 2, 3, 4, 5, 6]), {})
    published = layout.scan(MODELS, DAY).collect()
    assert published["model_id"].to_list() == sorted(ids, key=str.encode)
    assert dict(zip(published["model_id"], published["downloads_30d"], strict=True))["a/x"] == 3
    staged = tmp_path / "staged.parquet"
    models_frame(ids).write_parquet(staged)
    with pytest.raises(SchemaViolation, match="out of model_id order") as caught:
        publish_staged(layout, MODELS, DAY + dt.timedelta(days=1), staged, {})
    assert caught.value.bad_rows == 3  # "Qwen/q" after "zz/last", "a/w" after "a/x", "B/upper" after "é/accent"
    assert not layout.partition_file(MODELS, DAY + dt.timedelta(days=1)).exists()


@pytest.mark.parametrize(
    ("ids", "repeats"),
    [(["a/x", "a/y", "a/y", "b/z", "b/z", "b/z"], 3), (["b/z", "a/x", "a/y", "b/z", "a/x"], 2)],
    ids=["in order, repeats side by side", "out of order, repeats apart"],
)
def test_a_staged_models_file_repeating_an_id_is_refused_in_order_or_not(ids, repeats, tmp_path) -> None:
    from warehouse import publish

    staged = tmp_path / "staged.parquet"
    models_frame(ids).write_parquet(staged)
    with pytest.raises(SchemaViolation, match="duplicate key") as caught:
        publish.check_staged(MODELS, staged)
    assert caught.value.bad_rows == repeats  # rows more than there are ids
    models_frame(sorted(set(ids))).write_parquet(staged)
    assert publish.check_staged(MODELS, staged) == len(set(ids))


def test_frames_are_written_a_row_group_at_a_time_in_the_order_asked(monkeypatch) -> None:
    import warehouse.publish as publish

    monkeypatch.setattr(publish, "ROW_GROUP_SIZE", 3)
    frame = pl.DataFrame({"id": list("jihgfedcba"), "tags": [[c, c * 2] for c in "jihgfedcba"]}).rechunk()
    grouped = publish.by_row_group(frame)
    assert grouped.equals(frame) and grouped.get_column("tags").n_chunks() == 4
    ordered = publish.by_row_group(frame, frame.get_column("id").arg_sort())
    assert ordered.equals(frame.sort("id")) and ordered.get_column("tags").n_chunks() == 4
    flat = frame.drop("tags")  # no list column: written as it is
    assert publish.by_row_group(flat).get_column("id").n_chunks() == 1


def encodings(path) -> dict[str, set[str]]:
    """Each column's encodings in a Parquet file, over its row groups."""
    footer = pq.ParquetFile(path).metadata
    found: dict[str, set[str]] = {}
    for group in range(footer.num_row_groups):
        for number in range(footer.num_columns):
            column = footer.row_group(group).column(number)
            found.setdefault(column.path_in_schema, set()).update(column.encodings)
    return found


def test_repeated_values_of_models_are_dictionary_encoded_and_read_back_as_strings(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    ids = [f"{org}/m-{n:03d}" for org in ("Qwen", "meta-llama", "a") for n in range(40)]
    frame = models_frame(ids).with_columns(
        pl.Series("tags", [["text-generation", "region:us", f"base_model:{i}"] for i in ids]),
        pl.lit("text-generation").alias("pipeline_tag"),
    )
    publish_frame(layout, MODELS, DAY, frame, {})
    path = layout.version_file(MODEL_METADATA, 1)  # where the metadata of a model is kept
    found = encodings(path)
    declared = {f"{c}.list.element" if isinstance(MODELS.schema[c], pl.List) else c for c in MODELS.dictionary}
    assert {"author", "tags.list.element"} <= declared <= set(found)
    assert all("RLE_DICTIONARY" in found[c] for c in declared)
    assert "RLE_DICTIONARY" not in found["model_id"]  # every id is unique: a dictionary would only add to it
    assert pl.read_parquet(path).schema == MODEL_METADATA.schema
    published = layout.scan(MODELS, DAY).collect()
    assert published.schema == MODELS.schema and published.equals(frame.sort("model_id"))
    described = run_sql(layout, "DESCRIBE SELECT author, tags FROM models")
    assert dict(described.select("column_name", "column_type").rows()) == {"author": "VARCHAR", "tags": "VARCHAR[]"}
    publish_plan(layout, MODELS, DAY, frame.sort("model_id").lazy(), {}, force=True)  # a plan, written the same way
    assert encodings(layout.version_file(MODEL_METADATA, 2)) == found
    assert layout.scan(MODELS, DAY).collect().equals(published)


def test_frames_written_one_after_another_fill_whole_row_groups(tmp_path, monkeypatch) -> None:
    import warehouse.publish as publish

    monkeypatch.setattr(publish, "ROW_GROUP_SIZE", 3)
    frame = models_frame([f"a/{n:02d}" for n in range(13)], list(range(13)))
    pieces = [frame.slice(0, 2), frame.slice(2, 5), frame.slice(7, 0), frame.slice(7, 1), frame.slice(8, 5)]
    path = tmp_path / "models.parquet"
    publish.write_frames(pieces, path, MODELS.schema, dictionary=MODELS.dictionary)
    footer = pq.ParquetFile(path).metadata
    assert [footer.row_group(g).num_rows for g in range(footer.num_row_groups)] == [3, 3, 3, 3, 1]
    assert pl.read_parquet(path).equals(frame)


def test_an_arrow_write_that_fails_is_an_os_error_naming_the_file(tmp_path) -> None:
    import warehouse.publish as publish

    error = publish.os_error_of(OSError("Error writing bytes to file. Detail: [errno 28] No space left"), "f.parquet")
    assert isinstance(error, OSError) and error.errno == 28 and error.filename == "f.parquet"


def test_an_error_reading_the_rows_to_write_keeps_the_file_it_names(tmp_path) -> None:
    import warehouse.publish as publish

    missing = tmp_path / "bucket.parquet"

    def frames():
        yield pl.read_parquet(missing) if missing.exists() else missing.open("rb")

    with pytest.raises(FileNotFoundError) as caught:
        publish.write_frames(frames(), tmp_path / "models.parquet", MODELS.schema, dictionary=MODELS.dictionary)
    assert caught.value.filename == str(missing)


def test_readers_ignore_a_partition_whose_meta_was_never_written(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, models_frame(["a/x"]), {})
    orphan = layout.partition_file(MODELS, DAY + dt.timedelta(days=1))
    orphan.parent.mkdir(parents=True)
    models_frame(["b/y"]).write_parquet(orphan)
    assert layout.published_dates(MODELS) == [DAY]
    assert run_sql(layout, "SELECT count(*) AS n FROM models")["n"].item() == 1


def _hold_lock(root: str, ready, release) -> None:
    with writer_lock(Layout.at(root), "test holder"):
        ready.set()
        release.wait(30)


def test_a_second_writer_is_refused_with_a_clear_message_and_a_dead_holder_frees_the_lock(tmp_path) -> None:
    ctx = multiprocessing.get_context("spawn")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(str(tmp_path), ready, release))
    holder.start()
    assert ready.wait(30)
    with pytest.raises(WarehouseLocked, match=r"pid \d+ .*test holder"), writer_lock(Layout.at(tmp_path), "second"):
        pass
    holder.kill()  # a dead process leaves its lock file behind, but not the lock
    holder.join()
    began = time.monotonic()
    with writer_lock(Layout.at(tmp_path), "after a crash"):
        assert time.monotonic() - began < 5


@pytest.mark.parametrize(
    "query",
    [
        "COPY (SELECT 1) TO 'out.csv'",
        "ATTACH 'other.db'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "CREATE TABLE t AS SELECT 1",
        "SELECT 1; DROP VIEW models",
        "SET enable_external_access = true",
    ],
)
def test_sql_refuses_everything_but_reading(tmp_path, query: str) -> None:
    with pytest.raises(QueryRefused, match="refused"):
        run_sql(Layout.at(tmp_path), query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('/etc/*.parquet')",
        "SELECT * FROM read_text('/etc/hosts')",
    ],
)
def test_sql_cannot_read_files_outside_the_warehouse(tmp_path, query: str) -> None:
    with pytest.raises(QueryRefused, match="warehouse"):
        run_sql(Layout.at(tmp_path), query)


@pytest.mark.parametrize(
    ("query", "views"),
    [
        ("FROM shares", {"shares"}),
        ("SELECT 1", set()),
        (
            'WITH c AS (SELECT * FROM credited) SELECT * FROM c JOIN "Registry" r USING (entry)',
            {"credited", "registry"},
        ),
        ("WITH shares AS (SELECT * FROM main.shares WHERE rule = 'lineage') SELECT * FROM shares", {"shares"}),
        (
            "SELECT (SELECT max(snapshot_date) FROM concentration) AS d FROM main.shares "
            "WHERE actor IN (SELECT lab FROM registry) UNION ALL SELECT snapshot_date FROM crossovers",
            {"concentration", "shares", "registry", "crossovers"},
        ),
        ("SELECT 1 FROM shares; SELECT 2 FROM Models", {"shares", "models"}),
        ("SELECT snapshot_date FROM Snapshots WHERE same_counts_as IS NULL", {"snapshots"}),
        ("EXPLAIN SELECT * FROM shares", None),
        ("SHOW TABLES", None),
        ("SELECT table_name, column_name FROM information_schema.columns", None),
        ("SELECT * FROM duckdb_views", None),
        ("SELECT * FROM share", None),
        ("SELECT * FROM query_table('shares')", None),
        ("SELECT 1 FROM shares, read_parquet('/etc/x.parquet')", None),
    ],
)
def test_a_query_says_which_views_it_reads_or_that_it_cannot_tell(query: str, views: set[str] | None) -> None:
    assert views_read(query) == views


def test_a_query_gets_the_views_it_names_and_those_they_are_made_from(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, models_frame(["org/a", "org/b"], [3, 4]), {})
    made = "SELECT list(view_name ORDER BY view_name) FROM duckdb_views() WHERE NOT internal"
    assert connect(layout, views={"shares"}).execute(made).fetchone()[0] == ["shares"]
    credited = connect(layout, views={"Credited"}).execute(made).fetchone()[0]
    assert credited == ["credited", "model_days", "model_metadata", "models"]
    every = {"model_days", "model_metadata", "credited", "snapshots", "provenance", *TABLES}
    assert connect(layout).execute(made).fetchone()[0] == sorted(every)
    assert run_sql(layout, "SELECT sum(downloads_30d) AS n FROM models").item() == 7
    # EXPLAIN ANALYZE of a SELECT (a query's profile) is a read like any other.
    profiled = run_sql(layout, "EXPLAIN ANALYZE SELECT sum(downloads_30d) FROM models")
    assert "explain_value" in profiled.columns and "TOTAL" in "".join(profiled["explain_value"].to_list()).upper()
    # Asking DuckDB's catalog what there is shows every view.
    assert set(run_sql(layout, "SHOW TABLES")["name"]) == every
    columns = "SELECT column_name FROM information_schema.columns WHERE table_name = 'shares'"
    assert "actor" in run_sql(layout, columns)["column_name"].to_list()


def test_a_query_naming_a_view_not_made_is_asked_again_over_every_view(tmp_path, monkeypatch) -> None:
    import warehouse.query

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, models_frame(["org/a", "org/b"], [3, 4]), {})
    monkeypatch.setattr(warehouse.query, "views_read", lambda sql: {"shares"})  # the syntax misread
    assert run_sql(layout, "SELECT sum(downloads_30d) AS n FROM models").item() == 7


def test_sql_views_exist_and_are_typed_before_anything_is_published(tmp_path) -> None:
    frame = run_sql(Layout.at(tmp_path), "SELECT * FROM models")
    assert frame.height == 0 and "downloads_30d" in frame.columns and "snapshot_date" in frame.columns


def test_credited_is_the_join_of_each_dates_models_and_attributions_typed_when_empty(tmp_path) -> None:
    layout = Layout.at(tmp_path)
    empty = run_sql(layout, "SELECT * FROM credited")
    assert empty.height == 0 and {"downloads_30d", "snapshot_date", "rule", "country", "weight"} <= set(empty.columns)
    assert empty.schema["weight"] == pl.Float64 and empty.schema["snapshot_date"] == pl.Date
    days = [DAY, DAY + dt.timedelta(days=1), DAY + dt.timedelta(days=2)]
    for n, day in enumerate(days):
        ids = [f"org{i}/m{i}" for i in range(4 + n)]
        publish_frame(layout, MODELS, day, models_frame(ids, [10 * (i + n) for i in range(len(ids))]), {})
        if day != days[-1]:  # the last date is not attributed yet: `credited` leaves it out
            rows = attribution_rows([(i, rule, i.split("/")[0]) for i in ids[1:] for rule in ("uploader", "lineage")])
            rows = rows.with_columns(country=pl.lit("CN"), weight=pl.lit(0.5 + n))
            blank = [pl.lit(None, t).alias(c) for c, t in ATTRIBUTIONS.schema.items() if c not in rows.columns]
            publish_frame(layout, ATTRIBUTIONS, day, rows.with_columns(blank), {})
    joined = (
        "SELECT m.snapshot_date, m.model_id, m.downloads_30d, a.rule, a.country, a.weight FROM models m "
        "JOIN attributions a ON a.snapshot_date = m.snapshot_date AND a.model_id = m.model_id"
    )
    credited = "SELECT snapshot_date, model_id, downloads_30d, rule, country, weight FROM credited"
    order = " ORDER BY ALL"
    expected = run_sql(layout, joined + order)
    assert expected.height == 2 * 3 + 2 * 4
    assert run_sql(layout, credited + order).equals(expected)
    one_day = run_sql(layout, f"{credited} WHERE snapshot_date = DATE '{days[1]}'{order}")
    assert one_day.equals(expected.filter(pl.col("snapshot_date") == days[1]))
    everything = run_sql(layout, "SELECT * FROM credited LIMIT 1")
    assert everything.columns == [*MODELS.columns, "snapshot_date", *ATTRIBUTIONS.columns[2:]]  # no join keys


def test_sql_cannot_read_duckdbs_default_spill_folder_in_the_working_directory(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".tmp").mkdir()
    (tmp_path / ".tmp" / "secret.csv").write_text("a\n1\n")
    with pytest.raises(QueryRefused):
        run_sql(Layout.at(tmp_path / "wh"), "SELECT * FROM read_csv('.tmp/secret.csv')")


def _duckdb_bytes(setting: str) -> float:
    number, unit = setting.split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


def test_sql_memory_limit_leaves_room_for_everything_else_or_is_the_one_given(tmp_path, monkeypatch) -> None:
    # DuckDB's default is 80% of RAM, whatever is already in use: a join of raw tables over months of
    # 3 M-model days then grew until the kernel killed the process. Under a limit, DuckDB spills.
    monkeypatch.delenv(MEMORY_ENV, raising=False)
    before = psutil.virtual_memory().available
    limit = connect(Layout.at(tmp_path)).execute("SELECT current_setting('memory_limit')").fetchone()[0]
    available = max(before, psutil.virtual_memory().available)
    # Other processes come and go meanwhile; DuckDB's own default (80% of RAM) is far above this either way.
    assert _duckdb_bytes(limit) <= max(available // 2, MEMORY_FLOOR) * 1.25

    monkeypatch.setenv(MEMORY_ENV, "300MB")
    limit = connect(Layout.at(tmp_path)).execute("SELECT current_setting('memory_limit')").fetchone()[0]
    assert limit == "286.1 MiB"
    # Work larger than the limit still answers: DuckDB spills it into the warehouse's staging.
    rows = run_sql(
        Layout.at(tmp_path),
        "SELECT count(DISTINCT md5(i::VARCHAR) || md5((-i)::VARCHAR)) AS n FROM range(5000000) t(i)",
    )
    assert rows.item() == 5_000_000

    monkeypatch.setenv(MEMORY_ENV, "lots")
    with pytest.raises(QueryRefused, match=f"{MEMORY_ENV}='lots' is not a memory size"):
        run_sql(Layout.at(tmp_path), "SELECT 1")


def test_sql_as_csv_writes_list_columns_as_json_text_and_nulls_as_empty_cells(tmp_path) -> None:
    import io

    from typer.testing import CliRunner

    from flows.cli import app

    layout = Layout.at(tmp_path)
    tags = [["text-generation", 'say "hi", twice'], [], None]
    frame = models_frame(["org/a", "org/b", "org/c"]).with_columns(pl.Series("tags", tags, pl.List(pl.String)))
    publish_frame(layout, MODELS, DAY, frame, {})
    query = "SELECT model_id, tags, base_models FROM models ORDER BY model_id"
    result = CliRunner().invoke(app, ["sql", query, "--warehouse", str(tmp_path), "--format", "csv"])
    assert result.exit_code == 0, result.output
    back = pl.read_csv(io.StringIO(result.stdout), schema_overrides={"tags": pl.String, "base_models": pl.String})
    assert back["model_id"].to_list() == ["org/a", "org/b", "org/c"]
    assert [None if t is None else json.loads(t) for t in back["tags"]] == tags
    assert back["base_models"].to_list() == [None, None, None]


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_gives_intervals_and_blobs_as_text_in_every_format(tmp_path, fmt: str) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "_meta").mkdir()
    query = "SELECT INTERVAL 36 HOUR AS took, [INTERVAL 1 DAY] AS each, 'x'::BLOB AS raw, 7 AS took"
    frame = run_sql(Layout.at(tmp_path), query)
    assert frame.row(0) == ("36:00:00", "[1 day]", "x", 7)
    result = CliRunner().invoke(app, ["sql", query, "--warehouse", str(tmp_path), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert "36:00:00" in result.stdout and "[1 day]" in result.stdout


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_gives_sums_as_numbers_and_maps_of_any_key_in_every_format(tmp_path, fmt: str) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "_meta").mkdir()
    # `sum` of integers is a 128-bit integer, `histogram` a map of integer keys, `1.5` a decimal.
    query = (
        "SELECT sum(x) AS total, [sum(x)] AS totals, histogram(x % 2) AS parity, map(['a'], [1]) AS named, "
        "sum(x) * 1.5 AS scaled FROM range(4) AS t(x)"
    )
    frame = run_sql(Layout.at(tmp_path), query)
    assert frame.row(0)[:3] == (6, [6], "{0=2, 1=2}") and frame.schema["total"] == pl.Int128
    result = CliRunner().invoke(app, ["sql", query, "--warehouse", str(tmp_path), "--format", fmt])
    assert result.exit_code == 0, result.output
    if fmt == "json":
        assert json.loads(result.stdout) == [
            {"total": 6, "totals": [6], "parity": "{0=2, 1=2}", "named": {"a": 1}, "scaled": 9.0}
        ]
    elif fmt == "csv":
        assert result.stdout.splitlines()[1].startswith('6,[6],"{0=2, 1=2}",')
    else:
        assert "{0=2, 1=2}" in result.stdout


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_writes_timestamps_as_the_same_utc_iso_text_in_every_format(tmp_path, fmt: str) -> None:
    """On a machine in another zone too: the warehouse's times, and the days they fall on, are UTC."""
    import os
    import subprocess
    import sys

    (tmp_path / "_meta").mkdir()
    query = (
        "SELECT TIMESTAMPTZ '2021-04-02 07:19:58.957+00' AS modified, TIMESTAMPTZ '2021-04-02 20:00:00+00' AS late, "
        "date_trunc('day', late) AS day, TIMESTAMP '2026-01-01 10:00:00.000005' AS naive"
    )
    env = {**os.environ, "TZ": "Asia/Tokyo", "COLUMNS": "200"}
    command = [sys.executable, "-m", "flows.cli", "sql", query, "--warehouse", str(tmp_path), "--format", fmt]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    expected = ("2021-04-02T07:19:58.957+00:00", "2021-04-02T20:00:00+00:00", "2021-04-02T00:00:00+00:00")
    for text in (*expected, "2026-01-01T10:00:00.000005"):
        assert text in done.stdout, done.stdout


def test_sql_refuses_more_than_one_statement_and_a_negative_limit(tmp_path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "_meta").mkdir()
    result = CliRunner().invoke(app, ["sql", "SELECT 1; SELECT 2", "--warehouse", str(tmp_path)])
    assert result.exit_code == 2 and "the query holds 2 statements: give one at a time" in result.output
    result = CliRunner().invoke(app, ["sql", "SELECT 1", "--warehouse", str(tmp_path), "--limit", "-1"])
    assert result.exit_code == 2 and "--limit" in result.output


def test_sql_as_a_table_into_a_pipe_keeps_each_row_on_one_line(tmp_path) -> None:
    from typer.testing import CliRunner

    from flows.cli import app

    long_id = "sentence-transformers/paraphrase-multilingual-MiniLM-L12-v2-finetuned-on-everything-v11"
    publish_frame(Layout.at(tmp_path), MODELS, DAY, models_frame([long_id, "org/b"]), {})
    query = "SELECT model_id, model_id AS again, downloads_30d FROM models ORDER BY model_id"
    result = CliRunner().invoke(app, ["sql", query, "--warehouse", str(tmp_path)], env={"COLUMNS": None})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 4, result.stdout  # header, rule, two rows: no cell folded at 80 columns
    assert [line.split() for line in lines[2:]] == [["org/b", "│", "org/b", "│"], [long_id, "│", long_id, "│"]]
    none = CliRunner().invoke(app, ["sql", query.replace("ORDER", "WHERE false ORDER"), "--warehouse", str(tmp_path)])
    assert none.exit_code == 0 and none.stdout.splitlines()[-1] == "(0 rows)", none.output
    relative = "SELECT count(*) FROM read_parquet('models/*/*.parquet')"
    refused = CliRunner().invoke(app, ["sql", relative, "--warehouse", str(tmp_path)], env={"COLUMNS": "10000"})
    assert refused.exit_code == 2 and f"give it in full: '{tmp_path}/models/*/*.parquet'" in refused.output


@pytest.mark.parametrize("fmt", ["table", "csv", "json"])
def test_sql_gives_unions_variants_and_bracketed_text_as_they_are_in_every_format(tmp_path, fmt: str) -> None:
    """A union or variant (as in `duckdb_settings()`) comes as its text, and text in brackets is no markup."""
    from typer.testing import CliRunner

    from flows.cli import app

    (tmp_path / "_meta").mkdir()
    query = "SELECT union_value(k := 1) AS u, 2::VARIANT AS v, '[/x]' AS \"[b]\""
    assert run_sql(Layout.at(tmp_path), query).row(0) == ("1", "2", "[/x]")
    result = CliRunner().invoke(app, ["sql", query, "--warehouse", str(tmp_path), "--format", fmt])
    assert result.exit_code == 0, result.output
    assert "[/x]" in result.stdout and "[b]" in result.stdout
    settings = CliRunner().invoke(
        app, ["sql", "SELECT * FROM duckdb_settings() LIMIT 3", "--warehouse", str(tmp_path), "--format", fmt]
    )
    assert settings.exit_code == 0, settings.output


def test_a_pivot_without_in_is_refused_saying_how_to_write_it(tmp_path) -> None:
    with pytest.raises(QueryRefused, match=r"a PIVOT without IN runs as more than one: list the values"):
        run_sql(Layout.at(tmp_path), "PIVOT shares ON rule USING sum(downloads)")


def test_the_code_version_is_this_checkouts_commit_and_never_that_of_a_repository_holding_a_copy(tmp_path) -> None:
    """The code copied into another repository (a wheel installed in a project's environment, an export) would
    read that repository's commit, clean: it says the package version instead."""
    import shutil
    import subprocess
    import sys
    from pathlib import Path

    from warehouse.provenance import code_version

    ours = code_version()
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    assert ours.partition("+")[0] == head
    other = tmp_path / "ops"
    (other / "vendored" / "warehouse").mkdir(parents=True)
    shutil.copy(Path("warehouse/provenance.py"), other / "vendored" / "warehouse" / "provenance.py")
    (other / "vendored" / "warehouse" / "__init__.py").write_text("")
    env = {"GIT_AUTHOR_NAME": "a", "GIT_AUTHOR_EMAIL": "a@b", "GIT_COMMITTER_NAME": "a", "GIT_COMMITTER_EMAIL": "a@b"}
    for args in (["init", "-q"], ["add", "."], ["commit", "-qm", "ops"]):
        subprocess.run(["git", "-C", str(other), *args], check=True, env={**env, "PATH": "/usr/bin:/bin"})
    for root in (other / "vendored", other):  # below the other repository's top, and at it
        if root == other:
            shutil.move(other / "vendored" / "warehouse", other / "warehouse")
        said = subprocess.run(
            [sys.executable, "-c", "from warehouse.provenance import code_version; print(code_version())"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        assert said.startswith("multipolar "), (root, said)


def test_the_code_version_of_a_checkout_another_user_owns_is_still_its_commit_and_whether_it_is_dirty() -> None:
    """git refuses to read a repository another user owns unless told it is safe; run from such a checkout, the code
    would otherwise record the package version, as if installed, even with local changes."""
    import os
    import subprocess
    import sys

    from warehouse.provenance import code_version

    said = subprocess.run(
        [sys.executable, "-c", "from warehouse.provenance import code_version; print(code_version())"],
        env={**os.environ, "GIT_TEST_ASSUME_DIFFERENT_OWNER": "1"},  # git's own stand-in for another owner
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert said == code_version()


def test_a_short_code_version_keeps_whether_the_tree_had_local_changes(monkeypatch) -> None:
    from warehouse import provenance

    for version, short in [
        ("0123456789abcdef0123456789abcdef01234567+dirty", "0123456789ab+dirty"),
        ("0123456789abcdef0123456789abcdef01234567+unchecked", "0123456789ab+unchecked"),
        ("0123456789abcdef0123456789abcdef01234567", "0123456789ab"),
        ("multipolar 0.1.0", "0.1.0"),
    ]:
        monkeypatch.setattr(provenance, "code_version", lambda v=version: v)
        assert provenance.short_code_version() == short


def test_the_provenance_view_has_a_row_per_published_partition_and_version_with_its_record(tmp_path) -> None:
    from analytics.attribution import rules_version
    from flows import steps
    from warehouse.provenance import code_version

    layout = Layout.at(tmp_path)
    publish_frame(layout, MODELS, DAY, models_frame(["org/a", "org/b"], [3, 4]), {"source_kind": "import"})
    steps.attribute_date(layout, DAY)
    found = run_sql(
        layout,
        "SELECT table_name, snapshot_date, version, rows, sha256, code_version, source_kind, rules_version, record "
        "FROM provenance ORDER BY table_name",
    )
    assert found["table_name"].to_list() == ["attributions", "model_metadata", "models", "registry"]
    assert found["snapshot_date"].to_list() == [DAY, None, DAY, DAY]
    assert found["version"].to_list() == [None, 1, None, None]
    assert set(found["code_version"]) == {code_version()}
    assert found["source_kind"].to_list() == [None, None, "import", None]
    assert found["rules_version"].to_list()[0] == rules_version()
    for row in found.iter_rows(named=True):
        record = json.loads(row["record"])
        assert (record["sha256"], record["rows"]) == (row["sha256"], row["rows"]), row["table_name"]
    assert found.filter(table_name="models")["rows"].item() == 2


def test_the_date_before_is_the_latest_published_one_whatever_the_date_asked_about(tmp_path) -> None:
    """The metrics' previous models, the `between` basis, a re-compared import and the kept metadata a day is
    compared with all take the date before from here."""
    layout = Layout.at(tmp_path)
    days = [dt.date(2026, 5, d) for d in (10, 12, 14)]
    for day in days:
        publish_frame(layout, MODELS, day, models_frame(["a/b", "c/d"]), {})
    layout.meta_file(MODELS, days[1]).unlink()  # a replacement stopped part way: 12 May is not published
    assert layout.date_before(MODELS, days[0]) is None
    assert layout.date_before(MODELS, days[2]) == days[0]
    assert layout.date_before(MODELS, dt.date(2026, 5, 13)) == days[0]  # a date not published itself
    assert layout.date_before(MODELS, dt.date(2026, 6, 1)) == days[2]


def test_a_file_renamed_into_place_is_another_version_and_a_missing_one_none(tmp_path) -> None:
    """What `multipolar sql` and `read_models` compare before and after a read, to read again what a replacement
    overlapped."""
    from warehouse.layout import file_version

    path, staged = tmp_path / "part.parquet", tmp_path / "staged.parquet"
    assert file_version(path) is None
    path.write_bytes(b"one")
    first = file_version(path)
    assert first is not None and file_version(path) == first
    staged.write_bytes(b"one")
    staged.replace(path)  # the same bytes, another file
    assert file_version(path) not in (None, first)
