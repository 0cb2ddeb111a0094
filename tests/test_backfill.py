"""`multipolar import`: dated snapshot files backfilled as `models` snapshots, attributed and measured."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from flows import steps
from flows.backfill import ImportRejected, import_snapshots, llmfit_panel_snapshots, read_snapshot_file
from flows.cli import app
from warehouse.layout import Layout
from warehouse.lock import writer_lock
from warehouse.publish import read_meta, sha256_of
from warehouse.query import run_sql
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, CROSSOVERS, MODELS, SHARES

runner = CliRunner()
PANEL = "llmfit-panel/llmfit_hf_downloads_timeseries_2026-02_to_2026-05.csv"

TINY_CSV = """snapshot_date,model_id,downloads_30d,downloads_all_time,pipeline_tag,tags
2026-03-01,Qwen/Qwen3-8B,900,5000,text-generation,
2026-03-01,meta-llama/Llama-3.1-8B,600,9000,text-generation,
2026-03-01,unsloth/Qwen3-8B-GGUF,300,800,text-generation,base_model:quantized:Qwen/Qwen3-8B|gguf
2026-03-08,Qwen/Qwen3-8B,1000,6000,text-generation,
2026-03-08,meta-llama/Llama-3.1-8B,500,9500,text-generation,
"""


def run_import(path: Path, warehouse: Path, *extra: str):
    return runner.invoke(app, ["import", str(path), "--warehouse", str(warehouse), "--no-dashboard", *extra])


def published(warehouse: Path, table=MODELS) -> list[dt.date]:
    return Layout.at(warehouse).published_dates(table)


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def tiny_frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "snapshot_date": [dt.date(2026, 3, 1), dt.date(2026, 3, 1), dt.date(2026, 3, 8)],
            "model_id": ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B"],
            "downloads_30d": [900, 600, 1000],
            "tags": [["base_model:Qwen/Qwen3-8B-Base"], [], None],
        }
    )


# --- good files ----------------------------------------------------------------------------------------


def test_a_csv_backfill_publishes_each_date_with_its_provenance_and_metrics(tmp_path) -> None:
    source = write(tmp_path / "snapshots.csv", TINY_CSV)
    result = run_import(source, tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert "imported 2 dates (2026-03-01 … 2026-03-08), 5 rows" in result.output
    layout = Layout.at(tmp_path / "wh")
    days = [dt.date(2026, 3, 1), dt.date(2026, 3, 8)]
    for table in (MODELS, ATTRIBUTIONS, SHARES, CONCENTRATION, CROSSOVERS):
        assert layout.published_dates(table) == days, table.name
    meta = read_meta(layout, MODELS, days[0])
    assert meta["source_kind"] == "import" and meta["source_file"] == str(source.resolve())
    assert meta["source_sha256"] == sha256_of(source) and meta["rows"] == 3 and meta["source_format"] == "csv"
    assert meta["columns"] == [
        "snapshot_date",
        "model_id",
        "downloads_30d",
        "downloads_all_time",
        "pipeline_tag",
        "tags",
    ]
    assert meta["import_options"] == {"path": str(source), "force": False, "dashboard": False}
    models = layout.scan(MODELS, days[0]).collect().sort("model_id")
    gguf = models.row(by_predicate=pl.col("model_id") == "unsloth/Qwen3-8B-GGUF", named=True)
    assert gguf["base_models"] == ["Qwen/Qwen3-8B"] and gguf["base_relation"] == "quantized"
    assert gguf["author"] == "unsloth" and gguf["downloads_all_time"] == 800


def test_parquet_and_jsonl_files_import_like_csv(tmp_path) -> None:
    tiny_frame().write_parquet(tmp_path / "a.parquet")
    rows = tiny_frame().with_columns(pl.col("snapshot_date").cast(pl.String)).to_dicts()
    write(tmp_path / "b.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    for name in ("a.parquet", "b.jsonl"):
        frame = read_snapshot_file(tmp_path / name)
        assert frame["model_id"].to_list() == ["Qwen/Qwen3-8B", "meta-llama/Llama-3.1-8B", "Qwen/Qwen3-8B"]
        assert frame["snapshot_date"].to_list() == ["2026-03-01", "2026-03-01", "2026-03-08"]
    result = run_import(tmp_path / "a.parquet", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    models = Layout.at(tmp_path / "wh").scan(MODELS, dt.date(2026, 3, 1)).collect()
    assert models.filter(pl.col("model_id") == "Qwen/Qwen3-8B")["base_models"].to_list() == [["Qwen/Qwen3-8B-Base"]]
    result = run_import(tmp_path / "b.jsonl", tmp_path / "wh2")
    assert result.exit_code == 0, result.output
    assert published(tmp_path / "wh2") == [dt.date(2026, 3, 1), dt.date(2026, 3, 8)]


def test_a_folder_imports_every_file_and_leaves_other_files_alone(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "march.csv", TINY_CSV)
    write(folder / "README.md", "not a snapshot")
    pl.DataFrame(
        {"snapshot_date": ["2026-03-15"], "model_id": ["google/gemma-3-1b-it"], "downloads_30d": [7]}
    ).write_parquet(folder / "mid.parquet")
    result = run_import(folder, tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert published(tmp_path / "wh", SHARES) == [dt.date(2026, 3, 1), dt.date(2026, 3, 8), dt.date(2026, 3, 15)]


def test_reimporting_is_a_no_op_and_force_replaces(tmp_path) -> None:
    source = write(tmp_path / "s.csv", TINY_CSV)
    warehouse = tmp_path / "wh"
    assert run_import(source, warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    day = dt.date(2026, 3, 1)
    before = read_meta(layout, MODELS, day)
    again = run_import(source, warehouse)
    assert again.exit_code == 0, again.output
    assert "skipped 2 already published dates (2026-03-01 … 2026-03-08; use --force" in again.output
    assert "2 dates up to date" in again.output  # not "attributed, measured" for work not done
    assert "2026-03-01" not in again.output.replace("2026-03-01 … 2026-03-08", "")  # one line, not one a date
    assert read_meta(layout, MODELS, day) == before
    report = (warehouse / "reports" / "reproduction.md").read_text()
    write(source, TINY_CSV.replace("Qwen/Qwen3-8B,900", "Qwen/Qwen3-8B,4242"))
    forced = run_import(source, warehouse, "--force")
    assert forced.exit_code == 0, forced.output
    assert read_meta(layout, MODELS, day)["sha256"] != before["sha256"]
    models = layout.scan(MODELS, day).collect()
    assert models.filter(pl.col("model_id") == "Qwen/Qwen3-8B")["downloads_30d"].item() == 4242
    shares = pl.read_parquet(layout.partition_file(SHARES, day))
    china = shares.filter(
        (pl.col("rule") == "uploader") & (pl.col("dimension") == "region") & (pl.col("time_window") == "30d")
    ).filter((pl.col("population") == "all") & (pl.col("actor") == "China"))
    assert china["downloads"].item() == 4242  # the metrics follow the replaced snapshot
    assert "2026-03-01: attributed, measured, crossovers" in forced.output
    # the report an import leaves says what the metrics say now
    assert (warehouse / "reports" / "reproduction.md").read_text() != report


def test_import_waits_for_no_one_while_another_writer_holds_the_lock(tmp_path) -> None:
    source = write(tmp_path / "s.csv", TINY_CSV)
    layout = Layout.at(tmp_path / "wh")
    with writer_lock(layout, "another writer"):
        result = run_import(source, tmp_path / "wh")
    assert result.exit_code == 3 and "can wait: --wait SECONDS" in result.output
    assert published(tmp_path / "wh") == []


def test_a_writer_that_waited_for_the_lock_says_how_long_rather_than_that_it_can_wait(tmp_path) -> None:
    source = write(tmp_path / "s.csv", TINY_CSV)
    layout = Layout.at(tmp_path / "wh")
    with writer_lock(layout, "another writer"):
        result = run_import(source, tmp_path / "wh", "--wait", "0.6")
    assert result.exit_code == 3
    assert "still there after waiting 0.6 s: wait for it to finish, or wait longer" in result.output
    assert "can wait" not in result.output and published(tmp_path / "wh") == []


def test_a_date_imported_before_others_updates_their_between_window(tmp_path) -> None:
    later = write(
        tmp_path / "later.csv", TINY_CSV.replace("2026-03-01", "2026-03-20").replace("2026-03-08", "2026-03-27")
    )
    earlier = write(tmp_path / "earlier.csv", TINY_CSV)
    warehouse = tmp_path / "wh"
    assert run_import(later, warehouse).exit_code == 0
    assert run_import(earlier, warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    meta = read_meta(layout, SHARES, dt.date(2026, 3, 20))
    assert meta["inputs"]["previous_date"] == "2026-03-08"


# --- bad files: rejected with line and reason, nothing published ---------------------------------------

HEADER = "snapshot_date,model_id,downloads_30d\n"
BAD_FILES = {
    "unknown format": ("s.xlsx", HEADER, "s.xlsx: unknown format .xlsx"),
    "missing column": (
        "s.csv",
        "snapshot_date,model_id\n2026-03-01,a/b\n",
        "s.csv:1: missing required column downloads_30d",
    ),
    "semicolons": (
        "s.csv",
        "snapshot_date;model_id;downloads_30d\n2026-03-01;a/b;5\n",
        "s.csv:1: missing required column model_id (its header holds ';': separate its columns with commas)",
    ),
    "unparsable date": (
        "s.csv",
        HEADER + "2026-03-01,a/b,1\n03/02/2026,a/c,1\n",
        "s.csv:3: snapshot_date 03/02/2026 is not a date",
    ),
    "impossible date": ("s.csv", HEADER + "2026-02-30,a/b,1\n", "s.csv:2: snapshot_date 2026-02-30 is not a date"),
    "non-numeric downloads": ("s.csv", HEADER + "2026-03-01,a/b,many\n", "s.csv:2: downloads_30d many is not a number"),
    "negative downloads": (
        "s.csv",
        HEADER + "2026-03-01,a/b,1\n2026-03-01,a/c,-5\n",
        "s.csv:3: downloads_30d -5 is negative",
    ),
    "empty downloads": ("s.csv", HEADER + "2026-03-01,a/b,\n", "s.csv:2: downloads_30d is empty"),
    "duplicate key": (
        "s.csv",
        HEADER + "2026-03-01,a/b,1\n2026-03-02,a/b,1\n2026-03-01,a/b,2\n",
        "s.csv:4: duplicate (snapshot_date, model_id) of line 2",
    ),
    "one repo spelt in two cases": (
        "s.csv",
        HEADER + "2026-03-01,microsoft/Phi-3-mini-4k-instruct,7\n2026-03-01,microsoft/phi-3-mini-4k-instruct,7\n",
        "s.csv:3: duplicate (snapshot_date, model_id) of line 2, spelt in other case",
    ),
    "bare model id": (
        "s.csv",
        HEADER + "2026-03-01,gpt2,1\n",
        "s.csv:2: model_id gpt2 is not of the form namespace/name",
    ),
    "path traversal": ("s.csv", HEADER + "2026-03-01,../../etc,1\n", "s.csv:2: model_id looks like a path traversal"),
    "overlong id": (
        "s.csv",
        HEADER + f"2026-03-01,a/{'x' * 300},1\n",
        "s.csv:2: model_id is longer than 256 characters",
    ),
    "control characters": (
        "s.jsonl",
        '{"snapshot_date":"2026-03-01","model_id":"a/b\\u001b[31m","downloads_30d":1}\n',
        "s.jsonl:1: model_id contains control characters",
    ),
    "csv named parquet": ("s.parquet", HEADER + "2026-03-01,a/b,1\n", "s.parquet: not a Parquet file (no PAR1 magic)"),
    "parquet named csv": ("s.csv", b"PAR1\x00\x00garbagePAR1", "s.csv: a Parquet file, not CSV"),
    "csv named jsonl": ("s.jsonl", HEADER + "2026-03-01,a/b,1\n", "s.jsonl:1: not valid JSON: not a JSON Lines file"),
    "json named csv": ("s.csv", '{"snapshot_date": "2026-03-01"}\n', "s.csv:1: JSON content, not CSV"),
    "binary content": (
        "s.csv",
        HEADER.encode() + b"2026-03-01,a/b,1\n\x00\x01\x02",
        "s.csv:3: binary content (NUL byte)",
    ),
    "not utf-8": ("s.csv", HEADER.encode() + b"2026-03-01,a/\xff\xfe,1\n", "s.csv:2: not UTF-8 text"),
    "nested json": (
        "s.jsonl",
        '{"snapshot_date":"2026-03-01","model_id":{"$gt":""},"downloads_30d":1}\n',
        "s.jsonl:1: model_id holds a nested JSON value",
    ),
    "formula tag": (
        "s.csv",
        'snapshot_date,model_id,downloads_30d,tags\n2026-03-01,a/b,1,=HYPERLINK("x")\n',
        "s.csv:2: a tag has control characters, a formula prefix",
    ),
    "huge field": ("s.csv", HEADER + "2026-03-01,a/b," + "9" * 70_000 + "\n", "s.csv:2: unreadable CSV row"),
    "ragged row": ("s.csv", HEADER + "2026-03-01,a/b,1,extra\n", "s.csv:2: 4 fields where the header has 3"),
    "boolean downloads": (
        "s.jsonl",
        '{"snapshot_date":"2026-03-01","model_id":"a/b","downloads_30d":true}\n',
        "s.jsonl:1: downloads_30d true is not a number",
    ),
    "fractional downloads": (
        "s.csv",
        HEADER + "2026-03-01,a/b,1.5\n",
        "s.csv:2: downloads_30d 1.5 is not a whole number",
    ),
    "future date": ("s.csv", HEADER + "2999-01-01,a/b,1\n", "s.csv:2: snapshot_date 2999-01-01 is in the future"),
    "tags that open no json array": (
        "s.csv",
        'snapshot_date,model_id,downloads_30d,tags\n2026-03-01,a/b,1,chat\n2026-03-01,a/c,1,"[beta]|chat"\n',
        "s.csv:3: tags opens a JSON array but is no JSON array of strings",
    ),
    "lone surrogate": (
        "s.jsonl",
        '{"snapshot_date":"2026-03-01","model_id":"a/b","downloads_30d":1}\n'
        '{"snapshot_date":"2026-03-01","model_id":"a/c","downloads_30d":1,"pipeline_tag":"x\\ud800"}\n',
        "s.jsonl:2: pipeline_tag holds a lone surrogate escape (such as \\ud800): no UTF-8 text",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_FILES))
def test_each_kind_of_bad_file_is_rejected_with_its_line_and_reason_and_publishes_nothing(tmp_path, kind) -> None:
    name, content, expected = BAD_FILES[kind]
    folder = tmp_path / "in"
    folder.mkdir()
    source = write(folder / name, content)
    result = runner.invoke(app, ["import", str(source), "--warehouse", str(tmp_path / "wh"), "--no-dashboard"])
    assert result.exit_code == 1, result.output
    assert expected in result.output.replace(str(folder) + "/", ""), result.output
    assert "nothing was published" in result.output
    assert published(tmp_path / "wh") == []
    assert not (tmp_path / "wh").exists()  # not even the folder or its lock: the file is read first


def test_tags_cells_and_json_lines_are_read_as_written(tmp_path) -> None:
    """A tags cell that is a JSON array is read as one, in a CSV or a Parquet file (a bad one is refused naming its
    row), and a JSON line may hold U+2028 in a string: a line ends at a newline alone."""
    tags = ['["chat", "a|b"]', "x|y", '["x", 1]']
    ids = ["a/b", "a/c", "a/d"]
    pl.DataFrame(
        {"snapshot_date": ["2026-03-01"] * 3, "model_id": ids, "downloads_30d": [1, 2, 3], "tags": tags}
    ).write_parquet(tmp_path / "s.parquet")
    result = run_import(tmp_path / "s.parquet", tmp_path / "wh")
    assert result.exit_code == 1 and "s.parquet: row 3: tags opens a JSON array but is no JSON array" in result.output
    line = '{"snapshot_date":"2026-03-01","model_id":"a/b","downloads_30d":1,"note":"one\u2028two"}\n'
    write(tmp_path / "s.jsonl", line + line.replace("a/b", "a/c"))
    result = run_import(tmp_path / "s.jsonl", tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert Layout.at(tmp_path / "wh").scan(MODELS, dt.date(2026, 3, 1)).collect()["model_id"].to_list() == ids[:2]
    csv_tags = 'snapshot_date,model_id,downloads_30d,tags\n2026-03-02,a/b,1,"[""chat"", ""a|b""]"\n'
    assert run_import(write(tmp_path / "t.csv", csv_tags), tmp_path / "wh").exit_code == 0
    assert Layout.at(tmp_path / "wh").scan(MODELS, dt.date(2026, 3, 2)).collect()["tags"].to_list() == [["chat", "a|b"]]


def test_a_bad_file_in_a_folder_stops_the_good_ones_too(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "a-good.csv", TINY_CSV)
    write(folder / "b-bad.csv", HEADER + "2026-04-01,a/b,-1\n")
    with pytest.raises(ImportRejected) as rejected:
        import_snapshots(Layout.at(tmp_path / "wh"), folder, dashboard=False)
    assert [str(p).replace(str(folder) + "/", "") for p in rejected.value.problems] == [
        "b-bad.csv:2: downloads_30d -1 is negative"
    ]
    assert published(tmp_path / "wh") == []


def test_a_broken_registry_fails_the_import_before_any_date_is_published(tmp_path, monkeypatch) -> None:
    from analytics import registry

    broken = write(tmp_path / "registry.csv", registry.REGISTRY_PATH.read_bytes().replace(b"\nQwen,", b"\nQwen,,"))
    monkeypatch.setattr(registry, "REGISTRY_PATH", broken)
    result = run_import(write(tmp_path / "snapshots.csv", TINY_CSV), tmp_path / "wh")
    assert result.exit_code == 1, result.output
    assert f"error: registry {broken}, line " in result.output and "7 columns, expected 6" in result.output
    assert published(tmp_path / "wh") == []


def test_the_same_model_and_date_in_two_files_is_a_duplicate(tmp_path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    write(folder / "a.csv", TINY_CSV)
    write(folder / "b.csv", HEADER + "2026-03-08,Qwen/Qwen3-8B,3\n")
    with pytest.raises(ImportRejected) as rejected:
        import_snapshots(Layout.at(tmp_path / "wh"), folder, dashboard=False)
    assert "b.csv:2: duplicate (snapshot_date, model_id): also in" in str(rejected.value.problems[0])
    assert published(tmp_path / "wh") == []
    write(folder / "b.csv", HEADER + "2026-03-08,qwen/qwen3-8b,3\n")  # the same repo: the Hub ignores case
    with pytest.raises(ImportRejected) as rejected:
        import_snapshots(Layout.at(tmp_path / "wh"), folder, dashboard=False)
    assert "b.csv:2: duplicate (snapshot_date, model_id): also in" in str(rejected.value.problems[0])


def test_a_parquet_problem_names_its_row(tmp_path) -> None:
    frame = tiny_frame().with_columns(pl.Series("downloads_30d", [1, -2, 3]))
    frame.write_parquet(tmp_path / "s.parquet")
    with pytest.raises(ImportRejected) as rejected:
        import_snapshots(Layout.at(tmp_path / "wh"), tmp_path / "s.parquet", dashboard=False)
    assert str(rejected.value.problems[0]).endswith("s.parquet: row 2: downloads_30d -2 is negative")


# --- the llmfit panel ----------------------------------------------------------------------------------

PANEL_CSV = """model_id,provider,snapshot_time,commit,source_path,hf_downloads,hf_likes,models_in_snapshot
Qwen/Qwen3-8B,Alibaba,2026-02-15T10:00:00+00:00,c1,data/hf_models.json,100,5,2
Qwen/Qwen3-8B,Alibaba,2026-02-15T16:00:00+00:00,c2,data/hf_models.json,120,0,2
BAAI/bge-m3,BAAI,2026-02-15T16:00:00+00:00,c2,data/hf_models.json,50,0,2
Qwen/Qwen3-8B,Alibaba,2026-02-16T09:00:00+00:00,c3,data/hf_models.json,120,0,2
BAAI/bge-m3,BAAI,2026-02-16T09:00:00+00:00,c3,data/hf_models.json,0,0,2
"""
CATALOGUE_CSV = """model_id,provider,parameters_raw,architecture,pipeline_tag,use_case
Qwen/Qwen3-8B,Alibaba,8190735360,qwen3,unknown,General purpose
BAAI/bge-m3,BAAI,567754752,xlm-roberta,unknown,Text embeddings for RAG
"""


def test_the_llmfit_panel_keeps_each_days_last_value_and_reads_the_catalogue(tmp_path) -> None:
    (tmp_path / "src").mkdir()
    panel = write(tmp_path / "src" / "panel.csv", PANEL_CSV)
    write(tmp_path / "src" / "llmfit_hf_models_2026-05-12.csv", CATALOGUE_CSV)
    frame = llmfit_panel_snapshots(panel)
    assert frame.select("snapshot_date", "model_id", "downloads_30d", "pipeline_tag", "params_total").rows() == [
        ("2026-02-15", "Qwen/Qwen3-8B", "120", "text-generation", "8190735360"),
        ("2026-02-15", "BAAI/bge-m3", "50", "feature-extraction", "567754752"),
        ("2026-02-16", "Qwen/Qwen3-8B", "120", "text-generation", "8190735360"),
        # the scraper's 0 for a count the API did not give: not recorded, rather than no downloads
        ("2026-02-16", "BAAI/bge-m3", None, "feature-extraction", "567754752"),
    ]
    result = run_import(panel, tmp_path / "wh")
    assert result.exit_code == 0, result.output
    meta = read_meta(Layout.at(tmp_path / "wh"), MODELS, dt.date(2026, 2, 15))
    assert meta["source_format"] == "llmfit-panel" and meta["llmfit"]["same_day_rows_dropped"] == 1
    assert meta["llmfit"]["repeated_values"] == 1 and meta["llmfit"]["catalogue_file"].endswith("2026-05-12.csv")
    assert meta["llmfit"]["zero_downloads_read_as_missing"] == 1
    assert "4 rows (the last of each model's day, of 5)" in " ".join(result.output.split())
    # The panel's columns it reads are those the data contract names: all but its `ignored_columns`.
    contract = " ".join((Path(__file__).resolve().parents[1] / "warehouse" / "README.md").read_text().split())
    named = re.search(r"for an llmfit panel, all but (.*?)\)", contract)
    header = PANEL_CSV.splitlines()[0].split(",")
    assert named and set(re.findall(r"`(\w+)`", named[1])) == set(header) - set(meta["ignored_columns"])
    # The folder imports as the panel did: the catalogue beside it is the panel's, not a snapshot of its own.
    folder = run_import(tmp_path / "src", tmp_path / "wh-folder")
    assert folder.exit_code == 0, folder.output
    assert published(tmp_path / "wh-folder") == published(tmp_path / "wh")


def test_the_llmfit_folders_files_given_one_by_one_import_as_the_folder_does(tmp_path) -> None:
    """As a shell's `*.csv` gives them: the catalogue beside the panel is read with it, not as a snapshot."""
    (tmp_path / "src").mkdir()
    panel = write(tmp_path / "src" / "panel.csv", PANEL_CSV)
    catalogue = write(tmp_path / "src" / "llmfit_hf_models_2026-05-12.csv", CATALOGUE_CSV)
    both = runner.invoke(app, ["import", str(catalogue), str(panel), "--warehouse", str(tmp_path / "wh")])
    assert both.exit_code == 0, both.output
    assert published(tmp_path / "wh") == [dt.date(2026, 2, 15), dt.date(2026, 2, 16)]
    options = read_meta(Layout.at(tmp_path / "wh"), MODELS, dt.date(2026, 2, 15))["import_options"]
    assert options["path"] == [str(catalogue.resolve()), str(panel.resolve())]
    relative = os.path.relpath(panel)  # the same file, spelt another way
    twice = runner.invoke(app, ["import", str(tmp_path / "src"), relative, "--warehouse", str(tmp_path / "again")])
    assert twice.exit_code == 0 and "duplicate" not in twice.output, twice.output  # the panel given twice is read once
    alone = runner.invoke(app, ["import", str(catalogue), "--warehouse", str(tmp_path / "other")])
    assert alone.exit_code == 1
    assert "an llmfit catalogue (pipeline tags and sizes), not a snapshot: import the panel beside it" in alone.output
    assert not (tmp_path / "other").exists()


def test_a_bad_llmfit_time_is_rejected_with_its_line(tmp_path) -> None:
    panel = write(tmp_path / "panel.csv", PANEL_CSV.replace("2026-02-16T09:00:00+00:00", "yesterday"))
    result = run_import(panel, tmp_path / "wh")
    assert result.exit_code == 1
    assert "panel.csv:5: snapshot_time 'yesterday' is not an ISO time" in result.output
    assert published(tmp_path / "wh") == []


def test_the_real_llmfit_panel_backfills_every_date_and_china_leads_among_llms(shared_data, tmp_path) -> None:
    warehouse = tmp_path / "wh"
    result = run_import(shared_data / PANEL, warehouse)
    assert result.exit_code == 0, result.output
    layout = Layout.at(warehouse)
    days = layout.published_dates(MODELS)
    assert len(days) == 22 and days[0] == dt.date(2026, 2, 15) and days[-1] == dt.date(2026, 5, 12)
    for table in (ATTRIBUTIONS, SHARES, CONCENTRATION, CROSSOVERS):
        assert layout.published_dates(table) == days, table.name
    latest = pl.read_parquet(layout.partition_file(SHARES, days[-1])).filter(
        (pl.col("population") == "llm") & (pl.col("dimension") == "region") & (pl.col("time_window") == "30d")
    )
    for rule in ("uploader", "official", "lineage"):
        share = dict(latest.filter(pl.col("rule") == rule).select("actor", "share").iter_rows())
        assert share["China"] > share["United States"], rule

    # The panel's stale copies and its partial date are flagged in the records, the report and the dashboard.
    stale = {d: read_meta(layout, MODELS, d).get("same_counts_as") for d in days}
    assert {str(d): s for d, s in stale.items() if s} == {
        "2026-03-10": "2026-03-04",
        "2026-03-12": "2026-03-10",
        "2026-03-18": "2026-03-12",
        "2026-04-15": "2026-04-08",
        "2026-05-05": "2026-04-29",
        "2026-05-12": "2026-05-10",
    }
    assert read_meta(layout, MODELS, dt.date(2026, 4, 24))["models_of_date_before"] == 961
    assert (
        "warning: 2026-05-12 repeats the counts of 2026-05-10 for every model counted on both (1,821 of its 1,851; "
        "0 not listed then, 30 without a count on one of the two)" in (result.output)
    )
    report = (warehouse / "reports" / "reproduction.md").read_text()
    assert "| same counts as 2026-05-10 |" in report and "| partial: 148 of 961 models |" in report
    assert "| 30-day counts for 34 of 94 models |" in report  # the panel's early dates are thin
    assert "warning: 2026-02-16: only 34 of its 94 models have a 30-day count" in result.output
    assert "6 dates repeat every count of the date before (2026-03-10, 2026-03-12" in report
    assert "The latest date, 2026-05-12, is one of them: its figures are those of 2026-05-10." in report
    # One repo holds a quarter of the LLM downloads: the report says how far it alone moves the shares.
    assert "One repo, Qwen/Qwen3-VL-2B-Instruct (China), holds 25.3% of LLM downloads on 2026-05-12" in report


def test_dates_that_repeat_the_counts_of_the_date_before_are_flagged_not_dropped(tmp_path) -> None:
    text = """snapshot_date,model_id,downloads_30d
2026-03-01,Qwen/a,900
2026-03-01,meta-llama/b,600
2026-03-01,mistralai/c,50
2026-03-01,google/d,40
2026-03-08,Qwen/a,900
2026-03-08,meta-llama/b,600
2026-03-08,mistralai/c,50
2026-03-08,google/e,10
2026-03-15,Qwen/a,950
2026-03-22,Qwen/a,990
2026-03-22,meta-llama/b,610
2026-03-22,mistralai/c,55
"""
    warehouse = tmp_path / "wh"
    result = runner.invoke(app, ["import", str(write(tmp_path / "s.csv", text)), "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    layout = Layout.at(warehouse)
    metas = {d.isoformat(): read_meta(layout, MODELS, d) for d in layout.published_dates(MODELS)}
    assert len(metas) == 4  # kept: each is what the source said that day
    assert metas["2026-03-08"]["same_counts_as"] == "2026-03-01"
    assert (metas["2026-03-08"]["repeated_models"], metas["2026-03-08"]["added_models"]) == (3, 1)
    assert metas["2026-03-15"]["models_of_date_before"] == 4 and "same_counts_as" not in metas["2026-03-15"]
    assert not {"same_counts_as", "models_of_date_before"} & set(metas["2026-03-22"])
    assert (
        "warning: 2026-03-08 repeats the counts of 2026-03-01 for every model counted on both (3 of its 4; 1 not"
        in (result.output)
    )
    flagged = run_sql(layout, "SELECT * FROM snapshots ORDER BY snapshot_date")  # as an analyst finds them
    assert flagged["snapshot_date"].cast(pl.String).to_list() == [
        "2026-03-01",
        "2026-03-08",
        "2026-03-15",
        "2026-03-22",
    ]
    assert flagged["same_counts_as"].to_list() == [None, dt.date(2026, 3, 1), None, None]
    assert flagged["models_of_date_before"].to_list() == [None, None, 4, None]
    assert flagged["models"].to_list() == [4, 4, 1, 3] and set(flagged["source_kind"]) == {"import"}
    page = (warehouse / "dashboard" / "index.html").read_text()
    assert "<dt>Stale copies</dt><dd>2026-03-08:" in page and "<dt>Partial snapshots</dt><dd>2026-03-15:" in page
    assert "so left out of the views" in page and "(2 snapshots)" in page  # 4 dates: a stale copy, a partial one
    assert "2026-03-08" not in page.split("<footer")[0] and "2026-03-15" not in page.split("<footer")[0]
    # A later import is compared with the date published before it.
    later = "snapshot_date,model_id,downloads_30d\n2026-03-29,Qwen/a,990\n2026-03-29,meta-llama/b,610\n"
    again = runner.invoke(app, ["import", str(write(tmp_path / "t.csv", later)), "--warehouse", str(warehouse)])
    assert again.exit_code == 0, again.output
    assert read_meta(layout, MODELS, dt.date(2026, 3, 29))["same_counts_as"] == "2026-03-22"


def test_an_import_around_published_dates_compares_each_date_with_the_one_just_before_it(tmp_path) -> None:
    head = "snapshot_date,model_id,downloads_30d\n"
    first = head + "2026-03-08,Qwen/a,700\n2026-03-08,meta-llama/b,600\n"
    assert run_import(write(tmp_path / "a.csv", first), tmp_path / "wh").exit_code == 0
    around = head + "2026-03-01,Qwen/a,400\n2026-03-01,meta-llama/b,500\n"
    around += "2026-03-15,Qwen/a,700\n2026-03-15,meta-llama/b,600\n"  # the published 03-08's counts again
    result = run_import(write(tmp_path / "b.csv", around), tmp_path / "wh")
    assert result.exit_code == 0, result.output
    layout = Layout.at(tmp_path / "wh")
    assert read_meta(layout, MODELS, dt.date(2026, 3, 15))["same_counts_as"] == "2026-03-08"
    assert "same_counts_as" not in read_meta(layout, MODELS, dt.date(2026, 3, 1))


def test_a_latest_date_that_is_a_stale_copy_leaves_the_dashboards_crossover_as_known_on_the_date_drawn(
    tmp_path,
) -> None:
    text = "snapshot_date,model_id,downloads_30d\n" + "".join(
        f"{day},Qwen/a,{qwen}\n{day},meta-llama/b,{meta}\n"
        for day, qwen, meta in (
            ("2026-03-01", 400, 600),
            ("2026-03-08", 700, 600),
            ("2026-03-15", 800, 600),
            ("2026-03-22", 800, 600),  # a stale copy of 03-15
        )
    )
    warehouse = tmp_path / "wh"
    result = runner.invoke(app, ["import", str(write(tmp_path / "s.csv", text)), "--warehouse", str(warehouse)])
    assert result.exit_code == 0, result.output
    assert read_meta(Layout.at(warehouse), MODELS, dt.date(2026, 3, 22))["same_counts_as"] == "2026-03-15"
    page = (warehouse / "dashboard" / "index.html").read_text()
    assert "China ahead since 2026-03-08" in page and "no crossover data" not in page
    # The footer's models are those of the latest date drawn; an import has no crawl scope.
    assert "<dt>Models</dt><dd>2 on 2026-03-15</dd>" in page
    assert "<dt>Scope</dt><dd>none: imported files, not a crawl</dd>" in page


def test_a_date_with_counts_for_under_half_its_models_is_told_in_its_record_the_import_and_the_report(
    tmp_path,
) -> None:
    """The llmfit panel writes 0 for a count it did not get: a date where most models read 0 rests on the few."""
    head = "model_id,provider,snapshot_time,commit,source_path,hf_downloads,hf_likes,models_in_snapshot\n"
    counts = {"2026-03-01": (900, 600, 0), "2026-03-08": (950, 0, 0)}
    rows = [
        f"{model},Lab,{day}T10:00:00+00:00,c{day[-1]},data/hf_models.json,{count},0,3\n"
        for day, day_counts in counts.items()
        for model, count in zip(("Qwen/a", "meta-llama/b", "mistralai/c"), day_counts, strict=True)
    ]
    panel = write(tmp_path / "panel.csv", head + "".join(rows))
    result = run_import(panel, tmp_path / "wh")
    assert result.exit_code == 0, result.output
    layout = Layout.at(tmp_path / "wh")
    metas = {d.isoformat(): read_meta(layout, MODELS, d) for d in layout.published_dates(MODELS)}
    assert {day: meta["models_with_30d_count"] for day, meta in metas.items()} == {"2026-03-01": 2, "2026-03-08": 1}
    # Each date's record names the panel commits its rows came from; the commit column is read, not ignored.
    assert {day: meta["llmfit"]["commits_of_date"] for day, meta in metas.items()} == {
        "2026-03-01": ["c1"],
        "2026-03-08": ["c8"],
    }
    assert "commit" not in metas["2026-03-01"]["ignored_columns"]
    assert "warning: 2026-03-08: only 1 of its 3 models have a 30-day count" in result.output
    assert "2026-03-01: only" not in result.output  # two of three is not thin
    report = (tmp_path / "wh" / "reports" / "reproduction.md").read_text()
    assert "| 30-day counts for 1 of 3 models |" in report
    assert "On 1 date (2026-03-08) under half the models have a 30-day count" in report
    # The dashboard's tooltips give each date's models, and how many have a count when that is fewer.
    assert steps.dashboard_step(layout)["status"] == "published"
    page = (tmp_path / "wh" / "dashboard" / "index.html").read_text()
    told = {day: re.findall(rf'"date": "{day}", [^{{}}]*"m": "([^"]*)"', page) for day in counts}
    assert {day: set(found) for day, found in told.items()} == {
        "2026-03-01": {"3 (2 with a 30-day count)"},
        "2026-03-08": {"3 (1 with a 30-day count)"},
    }


def test_the_hubs_stamp_for_an_unknown_creation_date_is_imported_as_no_date(tmp_path) -> None:
    text = """snapshot_date,model_id,downloads_30d,created_at
2026-03-01,google-bert/bert-base-uncased,900,2022-03-02T23:29:04.000Z
2026-03-01,Qwen/Qwen3-8B,600,2025-04-28T12:00:00Z
"""
    assert run_import(write(tmp_path / "s.csv", text), tmp_path / "wh").exit_code == 0
    layout = Layout.at(tmp_path / "wh")
    created = dict(layout.scan(MODELS, dt.date(2026, 3, 1)).select("model_id", "created_at").collect().iter_rows())
    assert created["google-bert/bert-base-uncased"] is None
    assert created["Qwen/Qwen3-8B"] == dt.datetime(2025, 4, 28, 12, tzinfo=dt.UTC)


def test_llmfit_models_that_are_no_llms_are_kept_out_of_the_llm_population(shared_data) -> None:
    """The catalogue calls a speech encoder and an embedding model general-purpose or chat models."""
    panel = shared_data / PANEL
    frame = llmfit_panel_snapshots(panel, panel.with_name("llmfit_hf_models_2026-05-12.csv"))
    tags = dict(frame.select("model_id", "pipeline_tag").unique("model_id").iter_rows())
    assert tags["facebook/w2v-bert-2.0"] == "feature-extraction"  # architecture wav2vec2-bert
    assert tags["intfloat/e5-mistral-7b-instruct"] == "feature-extraction"  # by its name
    assert tags["BAAI/bge-small-en-v1.5"] == "feature-extraction"
    assert tags["Qwen/Qwen2.5-7B-Instruct"] == "text-generation"
    assert tags["kyutai/mimi"] == tags["jinaai/jina-clip-v2"] == "feature-extraction"  # an audio codec, CLIP


def test_a_llmfit_commit_listing_a_model_twice_keeps_the_count_it_records(tmp_path) -> None:
    """Qwen/Qwen3-Coder-Next is listed twice in a commit of the real panel, with 484,455 and 0 (no count)."""
    panel = write(
        tmp_path / "panel.csv",
        PANEL_CSV.splitlines()[0]
        + "\nQwen/Qwen3-8B,Alibaba,2026-02-15T10:00:00+00:00,c1,data/hf_models.json,484455,0,2"
        + "\nQwen/Qwen3-8B,Alibaba,2026-02-15T10:00:00+00:00,c1,data/hf_models.json,0,0,2"
        + "\nBAAI/bge-m3,BAAI,2026-02-15T10:00:00+00:00,c1,data/hf_models.json,0,0,2\n",
    )
    counts = dict(llmfit_panel_snapshots(panel).select("model_id", "downloads_30d").iter_rows())
    assert counts == {"Qwen/Qwen3-8B": "484455", "BAAI/bge-m3": None}


def test_a_llmfit_repo_listed_under_two_spellings_of_its_id_is_counted_once_under_one(tmp_path) -> None:
    """The real panel lists microsoft/Phi-3-mini-4k-instruct twice, once in lower case, with the same counts:
    the Hub's ids ignore case, so it is one repo, named alike on every date."""
    row = "{},Microsoft,2026-02-{}T10:00:00+00:00,c,data/hf_models.json,{},0,2"
    rows = [
        PANEL_CSV.splitlines()[0],
        row.format("microsoft/phi-3-mini-4k-instruct", 15, 7515),
        row.format("microsoft/Phi-3-mini-4k-instruct", 15, 7515),
        row.format("microsoft/phi-3-mini-4k-instruct", 16, 7516),
        "Qwen/Qwen3-8B,Alibaba,2026-02-15T10:00:00+00:00,c,data/hf_models.json,120,0,2",
    ]
    (tmp_path / "src").mkdir()
    panel = write(tmp_path / "src" / "panel.csv", "\n".join(rows) + "\n")
    write(
        tmp_path / "src" / "llmfit_hf_models_2026-05-12.csv",
        CATALOGUE_CSV + "microsoft/phi-3-mini-4k-instruct,Microsoft,3821079552,phi3,text-generation,Chat\n",
    )
    frame = llmfit_panel_snapshots(panel)
    assert frame.select("snapshot_date", "model_id", "downloads_30d", "params_total").sort(pl.all()).rows() == [
        ("2026-02-15", "Qwen/Qwen3-8B", "120", "8190735360"),
        ("2026-02-15", "microsoft/Phi-3-mini-4k-instruct", "7515", "3821079552"),
        ("2026-02-16", "microsoft/Phi-3-mini-4k-instruct", "7516", "3821079552"),
    ]


def test_a_llmfit_model_the_catalogue_does_not_list_is_an_llm_unless_its_name_says_it_embeds(tmp_path) -> None:
    header = PANEL_CSV.splitlines()[0]
    rows = [f"{m},x,2026-02-15T10:00:00+00:00,c1,data/hf_models.json,10,0,2" for m in ("royokong/e5-v", "Qwen/x")]
    panel = write(tmp_path / "panel.csv", "\n".join([header, *rows]) + "\n")  # no catalogue beside it
    tags = dict(llmfit_panel_snapshots(panel).select("model_id", "pipeline_tag").iter_rows())
    assert tags == {"royokong/e5-v": "feature-extraction", "Qwen/x": "text-generation"}


def test_a_stale_copy_has_no_between_window_and_the_next_date_measures_from_the_last_real_one(tmp_path) -> None:
    text = """snapshot_date,model_id,downloads_30d,downloads_all_time
2026-03-01,Qwen/a,900,10000
2026-03-01,meta-llama/b,600,20000
2026-03-02,Qwen/a,900,10000
2026-03-02,meta-llama/b,600,20000
2026-03-03,Qwen/a,950,10500
2026-03-03,meta-llama/b,610,20100
"""
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", text), warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    windows = {
        d: set(pl.read_parquet(layout.partition_file(SHARES, d))["time_window"]) for d in published(warehouse, SHARES)
    }
    assert "between" not in windows[dt.date(2026, 3, 2)] and "between" in windows[dt.date(2026, 3, 3)]
    assert read_meta(layout, SHARES, dt.date(2026, 3, 2))["inputs"]["between"] == (
        "none: this date repeats the counts of 2026-03-01"
    )
    gained = pl.read_parquet(layout.partition_file(SHARES, dt.date(2026, 3, 3))).filter(
        (pl.col("time_window") == "between")
        & (pl.col("rule") == "uploader")
        & (pl.col("dimension") == "lab")
        & (pl.col("population") == "all")
    )
    assert dict(gained.select("actor", "downloads").iter_rows()) == {"Alibaba": 500.0, "Meta": 100.0}
    assert set(gained["window_start"]) == {dt.date(2026, 3, 1)}  # the last date that observed anything
    # The first date corrected (imported again with --force): the second repeats its counts no more, and is
    # compared again; the third's window is now measured from the second, so its metrics are made again.
    corrected = "snapshot_date,model_id,downloads_30d,downloads_all_time\n2026-03-01,Qwen/a,900,10400\n"
    corrected += "2026-03-01,meta-llama/b,600,20000\n"
    again = run_import(write(tmp_path / "t.csv", corrected), warehouse, "--force")
    assert again.exit_code == 0, again.output
    said = "compared again with the date now before it: 2026-03-02: neither a stale copy nor partial against 2026-03-01"
    assert said in again.output
    record = read_meta(layout, MODELS, dt.date(2026, 3, 2))
    assert "same_counts_as" not in record
    # The record says when and by what code its flags changed, after it was published.
    assert record["compared_again_at"] >= record["published_at"] and record["compared_again_by"]
    assert "between" in set(pl.read_parquet(layout.partition_file(SHARES, dt.date(2026, 3, 2)))["time_window"])
    regained = pl.read_parquet(layout.partition_file(SHARES, dt.date(2026, 3, 3))).filter(
        (pl.col("time_window") == "between")
        & (pl.col("rule") == "uploader")
        & (pl.col("dimension") == "lab")
        & (pl.col("population") == "all")
    )
    assert dict(regained.select("actor", "downloads").iter_rows()) == {"Alibaba": 500.0, "Meta": 100.0}
    assert set(regained["window_start"]) == {dt.date(2026, 3, 2)}
    assert runner.invoke(app, ["check", "--warehouse", str(warehouse)]).exit_code == 0


def test_the_date_after_a_partial_snapshot_measures_its_between_window_from_the_last_whole_one(tmp_path) -> None:
    """A partial snapshot lists under half the models of the date before: measured from it, the next date would
    know the gains of those few models only, the others' all-time totals no gain at all."""
    ids = ["Qwen/a", *(f"meta-llama/m{i}" for i in range(4))]
    counts = {1: dict.fromkeys(ids, 1000), 2: {"Qwen/a": 1100}, 3: {"Qwen/a": 1200, **dict.fromkeys(ids[1:], 1050)}}
    text = "snapshot_date,model_id,downloads_30d,downloads_all_time\n" + "".join(
        f"2026-03-0{d},{m},1,{n}\n" for d, day in counts.items() for m, n in day.items()
    )
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "p.csv", text), warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    assert read_meta(layout, MODELS, dt.date(2026, 3, 2))["models_of_date_before"]
    gained = pl.read_parquet(layout.partition_file(SHARES, dt.date(2026, 3, 3))).filter(
        (pl.col("time_window") == "between")
        & (pl.col("rule") == "uploader")
        & (pl.col("dimension") == "lab")
        & (pl.col("population") == "all")
    )
    assert dict(gained.select("actor", "downloads").iter_rows()) == {"Alibaba": 200.0, "Meta": 200.0}
    assert set(gained["window_start"]) == {dt.date(2026, 3, 1)}
    record = read_meta(layout, SHARES, dt.date(2026, 3, 3))
    assert record["inputs"]["between_from"] == "2026-03-01"
    assert record["unknown_all_time_gains"] == {"models": 0, "all_time_downloads": 0}


def two_models(counts: dict[int, tuple[int, int]]) -> str:
    """A CSV of Qwen/a and meta-llama/b on days of March 2026: each day's count of each, 30-day and all-time alike."""
    line = "2026-03-0{d},Qwen/a,{a},{a}\n2026-03-0{d},meta-llama/b,{b},{b}\n"
    return "snapshot_date,model_id,downloads_30d,downloads_all_time\n" + "".join(
        line.format(d=d, a=a, b=b) for d, (a, b) in counts.items()
    )


def test_crossovers_leave_out_stale_copies_which_observed_nothing_of_their_own(tmp_path) -> None:
    """China leads, dips on one date, which the next date repeats (a stale copy), then leads again: one dip, which
    does not undo the lead, rather than two in a row, which would."""
    counts = {1: (900, 600), 2: (910, 600), 3: (500, 600), 4: (500, 600), 5: (950, 600), 6: (990, 600)}
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", two_models(counts)), warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    assert read_meta(layout, MODELS, dt.date(2026, 3, 4))["same_counts_as"] == "2026-03-03"
    last = dt.date(2026, 3, 6)
    crossed = (
        layout.scan(CROSSOVERS, last)
        .collect()
        .filter(time_window="30d", population="all", rule="uploader", dimension="region", challenger="China")
    )
    assert crossed.select("status", "crossover_date", "observed", "dates").row(0) == (
        "crossed",
        dt.date(2026, 3, 1),
        False,
        5,
    )
    assert read_meta(layout, CROSSOVERS, last)["inputs"]["left_out"] == ["2026-03-04"]


def test_an_import_reads_each_shares_partition_and_record_once_for_the_crossovers_of_every_date(
    tmp_path, monkeypatch
) -> None:
    """Each date's crossovers are found over every date before it: a year's import reads each date's shares and
    records once (and again only once written again), not once per later date."""
    import warehouse.publish as publish

    read: Counter[str] = Counter()
    scan, record = pl.scan_parquet, publish.read_record

    def counted_scan(source, *args, **kwargs):
        read.update(str(p) for p in (source if isinstance(source, list) else [source]) if "/metrics/shares/" in str(p))
        return scan(source, *args, **kwargs)

    def counted_record(path):
        read.update([str(path)] if "/_meta/shares/" in str(path) else [])
        return record(path)

    monkeypatch.setattr(pl, "scan_parquet", counted_scan)
    monkeypatch.setattr(publish, "read_record", counted_record)
    counts = {d: (900 + 10 * d, 600 + 5 * d) for d in range(1, 10)}
    assert run_import(write(tmp_path / "s.csv", two_models(counts)), tmp_path / "wh").exit_code == 0
    partitions = {path: n for path, n in read.items() if "/_meta/" not in path}
    assert len(partitions) == len(counts) and max(partitions.values()) == 2, partitions  # its metrics, its crossovers
    assert max(read.values()) <= 3, read.most_common(3)  # the first date's 11 times: once per date after it


def test_recompute_and_a_removal_read_each_shares_partition_once_for_the_crossovers_of_every_date(
    tmp_path, monkeypatch
) -> None:
    """`recompute` finds every date's crossovers, and removing a date finds those of every later date, each over
    the dates before it: each date's shares and records are read once, not once per later date."""
    import warehouse.publish as publish

    counts = {d: (900 + 10 * d, 600 + 5 * d) for d in range(1, 10)}
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", two_models(counts)), warehouse, "--no-dashboard").exit_code == 0
    read: Counter[str] = Counter()
    scan, record = pl.scan_parquet, publish.read_record

    def counted_scan(source, *args, **kwargs):
        read.update(str(p) for p in (source if isinstance(source, list) else [source]) if "/metrics/shares/" in str(p))
        return scan(source, *args, **kwargs)

    monkeypatch.setattr(pl, "scan_parquet", counted_scan)
    monkeypatch.setattr(publish, "read_record", lambda path: read.update([str(path)]) or record(path))
    recomputed = runner.invoke(app, ["recompute", "--warehouse", str(warehouse), "--force", "--no-dashboard"])
    assert recomputed.exit_code == 0, recomputed.output
    shares = {path: n for path, n in read.items() if "/metrics/shares/" in path}
    assert len(shares) == len(counts) and max(shares.values()) == 2, shares  # the crossovers', the report's: 10
    assert max(n for path, n in read.items() if "/_meta/shares/" in path) <= 3, read.most_common(3)
    read.clear()
    removed = steps.remove_date(Layout.at(warehouse), dt.date(2026, 3, 1))
    assert removed["updated"]["crossovers"] == [f"2026-03-0{d}" for d in range(2, 10)]
    assert max(read.values()) <= 3, read.most_common(3)


def test_an_import_sums_each_dates_shares_once_for_the_crossovers_of_every_date(tmp_path, monkeypatch) -> None:
    """Each date's crossovers are found over every date before it: an import sums each date's shares of each
    matchup once, not once per later date (66,795 times a matchup over a year of daily dates), and finds the very
    crossovers found afresh from the whole series, a stale copy left out."""
    import analytics.crossover as crossover

    summed: Counter[dt.date] = Counter()
    observations = crossover.observations

    def counted(shares: pl.DataFrame, *args):
        summed.update(shares["snapshot_date"].unique().to_list())
        return observations(shares, *args)

    monkeypatch.setattr(crossover, "observations", counted)
    counts = {d: (900 + 10 * d, 600 + 5 * d) for d in range(1, 10)} | {3: (500, 600), 4: (500, 600)}
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", two_models(counts)), warehouse).exit_code == 0
    assert summed == {dt.date(2026, 3, d): len(crossover.MATCHUPS) for d in counts}, summed
    layout = Layout.at(warehouse)
    assert read_meta(layout, CROSSOVERS, dt.date(2026, 3, 9))["inputs"]["left_out"] == ["2026-03-04"]
    for day in published(warehouse, CROSSOVERS):
        found = layout.scan(CROSSOVERS, day).collect()
        steps.crossovers_date(layout, day, force=True)
        assert layout.scan(CROSSOVERS, day).collect().equals(found), day


def test_an_import_reads_each_models_record_once_while_publishing_its_dates(tmp_path, monkeypatch) -> None:
    """Publishing a date reads the record of every date published (the metadata versions they point at): a
    year's import read each of them once per later date."""
    import warehouse.publish as publish

    read: Counter[str] = Counter()
    record = publish.read_record
    monkeypatch.setattr(publish, "read_record", lambda path: read.update([str(path)]) or record(path))
    counts = {d: (900 + 10 * d, 600 + 5 * d) for d in range(1, 10)}
    assert run_import(write(tmp_path / "s.csv", two_models(counts)), tmp_path / "wh").exit_code == 0
    models = {path: n for path, n in read.items() if "/_meta/models/" in path}
    assert len(models) == len(counts) and max(models.values()) <= 2, models  # the first date's 12 times


def test_crossovers_found_while_an_import_measures_earlier_dates_again_are_those_found_afresh(tmp_path) -> None:
    """A date imported before published ones measures them again: the crossovers of each date are found from the
    shares published now, as a recompute of that date alone finds them."""
    warehouse = tmp_path / "wh"
    later = {d: (900 - 60 * d, 600) for d in range(3, 10)}
    assert run_import(write(tmp_path / "later.csv", two_models(later)), warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    before = {d: read_meta(layout, SHARES, d)["sha256"] for d in published(warehouse, SHARES)}
    assert (
        run_import(write(tmp_path / "earlier.csv", two_models({1: (500, 700), 2: (990, 600)})), warehouse).exit_code
        == 0
    )
    assert any(read_meta(layout, SHARES, d)["sha256"] != sha for d, sha in before.items())  # measured again
    for day in published(warehouse, CROSSOVERS):
        found = layout.scan(CROSSOVERS, day).collect()
        inputs = read_meta(layout, CROSSOVERS, day)["inputs"]
        steps.crossovers_date(layout, day, force=True)
        assert read_meta(layout, CROSSOVERS, day)["inputs"] == inputs
        assert layout.scan(CROSSOVERS, day).collect().equals(found), day


def test_a_date_after_one_removed_or_imported_is_compared_again_with_the_date_now_before_it(tmp_path) -> None:
    """A stale copy of a date that is removed is compared with the date before that one; a date imported
    between two makes the later a stale copy of it again."""
    text = two_models({1: (900, 600), 2: (950, 610), 3: (950, 610)})  # the third repeats the second's counts
    warehouse, day = tmp_path / "wh", dt.date(2026, 3, 3)
    assert run_import(write(tmp_path / "s.csv", text), warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    assert read_meta(layout, MODELS, day)["same_counts_as"] == "2026-03-02"
    removed = runner.invoke(app, ["remove", "--date", "2026-03-02", "--yes", "--warehouse", str(warehouse)])
    assert removed.exit_code == 0, removed.output
    assert "2026-03-03: neither a stale copy nor partial against 2026-03-01" in removed.output
    flags = run_sql(
        layout, f"SELECT same_counts_as, models_of_date_before FROM snapshots WHERE snapshot_date = '{day}'"
    )
    assert flags.row(0) == (None, None)
    assert "between" not in read_meta(layout, SHARES, day)["inputs"]  # measured from 2026-03-01 now
    assert runner.invoke(app, ["check", "--warehouse", str(warehouse)]).exit_code == 0
    again = run_import(write(tmp_path / "t.csv", two_models({2: (950, 610)})), warehouse)
    assert again.exit_code == 0, again.output
    assert "compared again with the date now before it: 2026-03-03: a stale copy of 2026-03-02" in again.output
    assert read_meta(layout, MODELS, day)["same_counts_as"] == "2026-03-02"
    assert read_meta(layout, SHARES, day)["inputs"]["between"] == "none: this date repeats the counts of 2026-03-02"


def import_stopped_at(monkeypatch, warehouse: Path, source: Path, day: dt.date, *, force: bool = False) -> None:
    """Import `source` into `warehouse`, stopped (as by Ctrl-C) when it comes to publish `day`."""
    from flows import backfill

    publish = backfill.publish_frame

    def stopped(layout, table, when, *args, **kwargs):
        if when == day:
            raise KeyboardInterrupt
        return publish(layout, table, when, *args, **kwargs)

    monkeypatch.setattr(backfill, "publish_frame", stopped)
    with pytest.raises(KeyboardInterrupt):
        backfill.import_snapshots(Layout.at(warehouse), source, force=force, dashboard=False)
    monkeypatch.setattr(backfill, "publish_frame", publish)


def test_an_import_stopped_part_way_is_told_by_check_as_one_to_run_again(tmp_path, monkeypatch) -> None:
    """Stopped after publishing some of its dates' models (Ctrl-C, a closed terminal), an import is not mistaken
    for dates whose tables a `recompute` completes: `check` names the import and the command that finishes it."""
    from flows import backfill

    text = HEADER + "".join(f"2026-03-0{d},Qwen/a,{900 + d},\n2026-03-0{d},meta-llama/b,600,\n" for d in (1, 2, 3))
    (tmp_path / "odd [src]").mkdir()
    source, warehouse = write(tmp_path / "odd [src]" / "s.csv", text.replace(",\n", "\n")), tmp_path / "wh"
    import_stopped_at(monkeypatch, warehouse, source, dt.date(2026, 3, 3))
    told = runner.invoke(app, ["check", "--warehouse", str(warehouse)])
    assert told.exit_code == 1
    assert (
        "an import of 3 dates (2026-03-01 … 2026-03-03) stopped part way, with 2 of them published and their tables "
        f"not all made; run it again: multipolar import '{source}' --warehouse {warehouse} (or, to give it up, remove "
    ) in told.output
    assert "multipolar recompute" not in told.output  # which would make the two dates look complete
    # Finished by another command (the folder, with --force): the mark is settled, and removed by that import.
    again = run_import(source.parent, warehouse, "--force")
    assert again.exit_code == 0, again.output
    assert published(warehouse, SHARES) == [dt.date(2026, 3, d) for d in (1, 2, 3)]
    assert runner.invoke(app, ["check", "--warehouse", str(warehouse)]).exit_code == 0
    assert not any((warehouse / backfill.IMPORTING).iterdir())


def test_an_import_killed_writing_its_mark_leaves_nothing_check_tells_once_run_again(tmp_path) -> None:
    """Killed (SIGKILL, a power cut) between writing its mark and renaming it into place, an import leaves the
    mark's temporary sibling, cut short: no import's mark, which `check` does not tell as one stopped part way."""
    import subprocess
    import sys

    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "a.csv", two_models({1: (900, 600)})), warehouse).exit_code == 0
    source = write(tmp_path / "b.csv", two_models({2: (950, 610)}))
    killed = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from flows.backfill import import_snapshots\n"
        "from warehouse.layout import Layout\n"
        "replace = os.replace\n"
        "def dying(src, dst, *args, **kwargs):\n"
        "    if Path(dst).parent.name == 'importing':\n"
        "        Path(src).write_bytes(b'')  # its bytes not yet on disk\n"
        "        os._exit(137)\n"
        "    return replace(src, dst, *args, **kwargs)\n"
        "os.replace = dying\n"
        "import_snapshots(Layout.at(sys.argv[1]), Path(sys.argv[2]), dashboard=False)\n"
    )
    done = subprocess.run([sys.executable, "-c", killed, str(warehouse), str(source)], capture_output=True, text=True)
    assert done.returncode == 137, done.stderr
    assert [p.name.endswith(".tmp") for p in (warehouse / "_meta" / "importing").iterdir()] == [True]
    told = runner.invoke(app, ["check", "--warehouse", str(warehouse)])
    assert told.exit_code == 0 and "stopped part way" not in told.output, told.output
    assert run_import(source, warehouse).exit_code == 0
    told = runner.invoke(app, ["check", "--warehouse", str(warehouse)])
    assert told.exit_code == 0, told.output
    assert published(warehouse, SHARES) == [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]


def test_an_import_with_force_stopped_part_way_replaces_every_date_once_run_again(tmp_path, monkeypatch) -> None:
    """A corrected file imported with --force and stopped after replacing its first date: `check` says to run it
    again with --force, and run again even without it, the import goes on replacing its dates, rather than keep
    the old file's counts for the dates it had yet to replace."""

    def counts(extra: int) -> str:
        rows = "2026-03-0{d},Qwen/a,{a}\n2026-03-0{d},meta-llama/b,{b}\n"
        return HEADER + "".join(rows.format(d=d, a=900 + d + extra, b=600 + extra) for d in (1, 2, 3))

    source, warehouse = write(tmp_path / "s.csv", counts(0)), tmp_path / "wh"
    assert run_import(source, warehouse).exit_code == 0
    write(source, counts(5000))  # the file corrected
    import_stopped_at(monkeypatch, warehouse, source, dt.date(2026, 3, 2), force=True)
    told = runner.invoke(app, ["check", "--warehouse", str(warehouse)])
    assert f"run it again: multipolar import {source} --warehouse {warehouse} --force (or" in told.output
    again = run_import(source, warehouse)
    assert again.exit_code == 0, again.output
    assert "finishing an import with --force that stopped part way" in again.output
    found = run_sql(Layout.at(warehouse), "SELECT snapshot_date, model_id, downloads_30d FROM models ORDER BY 1, 2")
    assert found.get_column("downloads_30d").to_list() == [5901, 5600, 5902, 5600, 5903, 5600]
    assert runner.invoke(app, ["check", "--warehouse", str(warehouse)]).exit_code == 0
    assert read_meta(Layout.at(warehouse), MODELS, dt.date(2026, 3, 3))["import_options"]["force"] is True


def test_a_mark_of_an_import_given_up_hides_no_other_mend(tmp_path) -> None:
    """A mark left by an import whose files are gone stays told, with how to give it up; the other dates' mends are
    told beside it."""
    from flows import backfill

    text = HEADER + "".join(f"2026-03-0{d},Qwen/a,{900 + d}\n2026-03-0{d},meta-llama/b,600\n" for d in (1, 2, 3))
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", text), warehouse).exit_code == 0
    marker = backfill.import_marker(Layout.at(warehouse), [str(tmp_path / "gone.csv")])
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"paths": [str(tmp_path / "gone.csv")], "dates": ["2026-03-04"]}))
    (warehouse / "metrics" / "shares" / "snapshot_date=2026-03-02").rename(tmp_path / "moved")
    shutil.rmtree(tmp_path / "moved")
    (warehouse / "_meta" / "shares" / "2026-03-02.json").unlink()
    told = runner.invoke(app, ["check", "--warehouse", str(warehouse)]).output
    assert "an import of 1 date (2026-03-04) stopped part way, with 0 of them published" in told
    assert f"(or, to give it up, remove {marker})" in told
    assert "2026-03-02: metrics" in told and "multipolar recompute" in told
    marker.unlink()
    assert runner.invoke(app, ["recompute", "--warehouse", str(warehouse)]).exit_code == 0
    assert runner.invoke(app, ["check", "--warehouse", str(warehouse)]).exit_code == 0


def test_a_date_after_an_import_stopped_before_comparing_it_is_compared_when_the_import_is_run_again(
    tmp_path, monkeypatch
) -> None:
    from flows import backfill

    outer = two_models({1: (900, 600), 3: (950, 610)})  # the third repeats the second's counts
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "a.csv", outer), warehouse).exit_code == 0
    inner = write(tmp_path / "b.csv", two_models({2: (950, 610)}))
    monkeypatch.setattr(backfill, "compare_again", lambda *_args: (_ for _ in ()).throw(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        backfill.import_snapshots(Layout.at(warehouse), inner, dashboard=False)
    monkeypatch.undo()
    again = run_import(inner, warehouse)
    assert again.exit_code == 0 and "skipped" in again.output, again.output
    assert "2026-03-03: a stale copy of 2026-03-02" in again.output
    assert read_meta(Layout.at(warehouse), MODELS, dt.date(2026, 3, 3))["same_counts_as"] == "2026-03-02"


def test_an_import_run_again_with_every_date_published_compares_no_date_again(tmp_path, monkeypatch) -> None:
    from flows import backfill

    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "a.csv", two_models({1: (900, 600), 3: (950, 610)})), warehouse).exit_code == 0
    inner = write(tmp_path / "b.csv", two_models({2: (950, 610)}))
    assert run_import(inner, warehouse).exit_code == 0
    compared = []
    monkeypatch.setattr(backfill, "compare_again", lambda _layout, day: compared.append(day))
    again = run_import(inner, warehouse)
    assert again.exit_code == 0 and "skipped" in again.output, again.output
    assert compared == []
    assert run_import(inner, warehouse, "--force").exit_code == 0 and compared == [dt.date(2026, 3, 3)]


def test_json_lines_may_end_in_a_carriage_return_and_a_column_not_read_hold_any_text(tmp_path) -> None:
    lines = [
        '{"snapshot_date":"2026-03-01","model_id":"a/b","downloads_30d":1,"note":"cut emoji \\ud83d"}',
        '{"snapshot_date":"2026-03-01","model_id":"a/c","downloads_30d":2}',
    ]
    result = run_import(write(tmp_path / "s.jsonl", "\r".join(lines) + "\r"), tmp_path / "wh")
    assert result.exit_code == 0, result.output
    assert Layout.at(tmp_path / "wh").scan(MODELS, dt.date(2026, 3, 1)).collect().height == 2


def test_an_import_whose_output_pipe_closes_still_publishes_every_date(tmp_path) -> None:
    """`multipolar import … | head -1`: the reader has gone after one line, and the import goes on to the end."""
    import subprocess
    import sys

    text = HEADER + "".join(f"2026-03-0{d},Qwen/a,{900 + d}\n2026-03-0{d},meta-llama/b,600\n" for d in range(1, 8))
    source, warehouse = write(tmp_path / "s.csv", text), tmp_path / "wh"
    command = [sys.executable, "-c", "from flows.cli import main; main()", "import", str(source)]
    process = subprocess.Popen(
        [*command, "--warehouse", str(warehouse), "--no-dashboard"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    first = process.stdout.readline()
    process.stdout.close()  # as `head -1` exits
    assert process.wait(timeout=120) == 0 and first
    assert published(warehouse, SHARES) == [dt.date(2026, 3, d) for d in range(1, 8)]
    assert runner.invoke(app, ["check", "--warehouse", str(warehouse)]).exit_code == 0


def test_a_date_refreshed_before_an_imported_one_has_it_compared_again(tmp_path) -> None:
    """A backdated or forced refresh of a date before an imported one: that date is compared with it, as after an
    import or a removal."""
    from flows.refresh import later_dates
    from tests.test_warehouse import models_frame
    from warehouse.publish import publish_frame

    text = two_models({1: (900, 600), 2: (950, 610), 4: (950, 610)})  # the fourth repeats the second's counts
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", text), warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    assert read_meta(layout, MODELS, dt.date(2026, 3, 4))["same_counts_as"] == "2026-03-02"
    publish_frame(layout, MODELS, dt.date(2026, 3, 3), models_frame(["Qwen/a", "meta-llama/b"], [990, 620]), {})
    done = later_dates.fn(str(warehouse), dt.date(2026, 3, 3))
    assert done["compared again"] == "2026-03-04: neither a stale copy nor partial against 2026-03-03"
    assert "same_counts_as" not in read_meta(layout, MODELS, dt.date(2026, 3, 4))
    assert "metrics" in done  # the fourth date's metrics, measured from the third now


def test_each_name_at_the_top_of_the_import_module_is_bound_once() -> None:
    """A name bound twice reads, in the code between the two, as the first says, and everywhere else as the last."""
    import ast

    from flows import backfill

    tree = ast.parse(Path(backfill.__file__).read_text(encoding="utf-8"))
    bound = [node.targets for node in tree.body if isinstance(node, ast.Assign)]
    names = [target.id for targets in bound for target in targets if isinstance(target, ast.Name)]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []


def test_a_recompute_hashes_the_code_before_its_dates_fan_out_to_threads(tmp_path, monkeypatch) -> None:
    """CPython 3.11 cannot parse code in several threads at once: the dates' threads find the hashes made."""
    import threading

    import analytics.attribution as attribution

    text = HEADER + "".join(f"2026-03-0{d},Qwen/a,{900 + d}\n2026-03-0{d},meta-llama/b,600\n" for d in range(1, 7))
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", text), warehouse).exit_code == 0
    parsed_in: list[str] = []
    digest = attribution.code_digest

    def recorded(source: str) -> str:
        parsed_in.append(threading.current_thread().name)
        return digest(source)

    monkeypatch.setattr(attribution, "code_digest", recorded)
    attribution._code_hash.cache_clear()
    done = runner.invoke(app, ["recompute", "--force", "--no-dashboard", "--warehouse", str(warehouse)])
    assert done.exit_code == 0, done.output
    assert parsed_in and set(parsed_in) == {threading.main_thread().name}


def test_an_import_that_waited_for_the_lock_tells_the_wait_apart_from_its_reading(tmp_path) -> None:
    import threading
    import time

    from flows.backfill import import_snapshots
    from warehouse.lock import writer_lock

    layout = Layout.at(tmp_path / "wh")
    held, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        with writer_lock(layout, "refresh"):
            held.set()
            release.wait(10)

    writer = threading.Thread(target=other_writer)
    writer.start()
    held.wait(10)
    threading.Timer(1.5, release.set).start()
    began = time.monotonic()
    report = import_snapshots(layout, write(tmp_path / "s.csv", TINY_CSV), dashboard=False, wait_seconds=30)
    writer.join()
    assert time.monotonic() - began >= 1.5
    assert report.seconds["waited"] >= 1.4 and report.seconds["read"] < 1.0


def test_an_import_no_writer_kept_waiting_tells_no_wait_however_long_its_records_take_to_read(
    tmp_path, monkeypatch
) -> None:
    """A writer reads every record as it takes the lock: on an object store, seconds (BENCHMARKS.md), which are
    its own work, not a wait for another writer."""
    import time

    from flows.backfill import import_snapshots
    from warehouse import integrity

    checked = integrity.check_records
    monkeypatch.setattr(integrity, "check_records", lambda layout: time.sleep(1.2) or checked(layout))
    layout = Layout.at(tmp_path / "wh")
    report = import_snapshots(layout, write(tmp_path / "s.csv", TINY_CSV), dashboard=False, wait_seconds=30)
    assert "waited" not in report.seconds, report.seconds


def test_a_recompute_stopped_by_sigterm_holds_the_lock_until_no_date_of_it_is_still_written(
    tmp_path, monkeypatch
) -> None:
    """SIGTERM stops a recompute as its dates' threads write: the lock is let go once they stopped, not while they
    still publish, which another writer, taking the lock, would write over."""
    import os
    import signal
    import threading
    import time

    from flows import steps
    from flows.recompute import recompute
    from warehouse.lock import writer_at_work

    text = HEADER + "".join(f"2026-03-0{d},Qwen/a,{900 + d}\n2026-03-0{d},meta-llama/b,600\n" for d in range(1, 7))
    warehouse = tmp_path / "wh"
    assert run_import(write(tmp_path / "s.csv", text), warehouse).exit_code == 0
    layout = Layout.at(warehouse)
    stop, held = threading.Lock(), []
    measure = steps.metrics_date

    def stopped_while_measuring(at: Layout, day: dt.date, **options):
        with stop:
            if not held:
                held.append(True)
                os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)
        held.append(writer_at_work(layout) is not None)
        return measure(at, day, **options)

    def exit_143(signum: int, _frame: object) -> None:  # what the signal does once the run let it through
        raise SystemExit(128 + signum)

    monkeypatch.setattr(steps, "metrics_date", stopped_while_measuring)
    before = signal.signal(signal.SIGTERM, exit_143)
    try:
        with pytest.raises(SystemExit) as stopped:
            recompute(warehouse=str(warehouse), force=True, dashboard=False)
    finally:
        signal.signal(signal.SIGTERM, before)
    assert stopped.value.code == 143
    assert len(held) > 1 and all(held), held
