"""The reproduction report: our numbers beside each published claim, under its rule, population and window."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analytics.reproduction import CLAIMS, coverage_frame, published_claims, reproduce, to_html, to_json, to_markdown
from flows.cli import app

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 8)
runner = CliRunner()
README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
CLAIM_ROWS = ("| E1", "| H2", "| A2", "| A1")


def share_rows(day, window, population, rule, downloads: dict[str, float], dimension="region") -> list[dict]:
    total = sum(downloads.values())
    return [
        {
            "snapshot_date": day,
            "time_window": window,
            "population": population,
            "rule": rule,
            "dimension": dimension,
            "actor": actor,
            "downloads": value,
            "share": value / total,
        }
        for actor, value in downloads.items()
    ]


def tiny_shares() -> pl.DataFrame:
    rows = [
        # E1: uploader, all models, all-time: China 30 %, US 20 %, Unknown 50 %.
        *share_rows(D2, "all_time", "all", "uploader", {"China": 3000, "United States": 2000, "Unknown": 5000}),
        *share_rows(D2, "all_time", "llm", "uploader", {"China": 700, "United States": 1300}),
        *share_rows(
            D2, "all_time", "all", "uploader", {"intermediary": 2500, "industry": 7500}, dimension="developer_type"
        ),
        # H2: uploader, all, 30d: China and US tie at 40 % of known regions.
        *share_rows(D2, "30d", "all", "uploader", {"China": 40, "United States": 40, "Europe": 20, "Unknown": 100}),
        # A2: official, llm, all-time: the US ahead here.
        *share_rows(D2, "all_time", "llm", "official", {"China": 600, "United States": 900}),
        *share_rows(D1, "30d", "llm", "official", {"China": 50, "United States": 25, "Europe": 25}),
        *share_rows(D2, "30d", "llm", "official", {"China": 60, "United States": 40}),
        *share_rows(D1, "30d", "llm", "uploader", {"China": 10, "Europe": 10}),
        *share_rows(D2, "30d", "llm", "uploader", {"China": 20, "United States": 60, "Unknown": 20}),
    ]
    return pl.DataFrame(rows).with_columns(pl.col("snapshot_date").cast(pl.Date))


def tiny_concentration() -> pl.DataFrame:
    rows = [
        {"snapshot_date": D1, "rule": "official", "effective_poles": 2.6667},
        {"snapshot_date": D2, "rule": "official", "effective_poles": 1.9231},
        {"snapshot_date": D1, "rule": "uploader", "effective_poles": 2.0},
        {"snapshot_date": D2, "rule": "uploader", "effective_poles": 1.6},
    ]
    base = {"time_window": "30d", "population": "llm", "dimension": "region"}
    return pl.DataFrame([base | r for r in rows]).with_columns(pl.col("snapshot_date").cast(pl.Date))


def tiny_crossovers() -> pl.DataFrame:
    row = {
        "snapshot_date": D2,
        "time_window": "30d",
        "population": "llm",
        "rule": "official",
        "dimension": "region",
        "challenger": "China",
        "incumbent": "United States",
        "status": "crossed",
        "crossover_date": D1,
        "margin": 0.2,
        "first_date": D1,
        "dates": 2,
    }
    return pl.DataFrame([row])


def tiny_coverage(source: str = "snapshots.csv") -> pl.DataFrame:
    meta = {"rows": 4, "source_kind": "import", "source_file": source}
    return coverage_frame([(D1, meta), (D2, meta | {"rows": 5})])


def tiny_report(source: str = "snapshots.csv"):
    return reproduce(tiny_shares(), tiny_concentration(), tiny_crossovers(), tiny_coverage(source))


def claim(report, key: str) -> dict:
    return report.claims.filter(pl.col("claim") == key).row(0, named=True)


def test_the_declared_claims_are_e1_h2_a2_a1_with_their_published_numbers() -> None:
    frame = published_claims()
    assert frame["key"].to_list() == ["E1", "H2", "A2", "A1"]
    assert frame.select("china", "us").rows()[:3] == [(0.171, 0.158), (0.41, 0.365), (1.15e9, 723e6)]
    assert {c.key: (c.rule, c.population) for c in CLAIMS} == {
        "E1": ("uploader", "all"),
        "H2": ("uploader", "all"),
        "A2": ("official", "llm"),
        "A1": ("official", "llm"),
    }


def test_e1_compares_shares_of_all_downloads_under_the_uploader_rule_all_time() -> None:
    row = claim(tiny_report(), "E1")
    assert (row["window"], row["snapshot_date"]) == ("all_time", D2)
    assert row["our_china"] == 0.3 and row["our_us"] == 0.2
    assert row["agrees"] == "yes"
    assert (
        "Unknown region: 50.0%" in row["notes"]
        and "Intermediaries (re-uploaders, quantizers, test fixtures) hold 25.0%" in row["notes"]
    )
    assert "LLMs hold 20.0% of our all-model downloads" in row["notes"]


def test_h2_takes_unknown_out_of_the_denominator_and_a_tie_does_not_agree() -> None:
    row = claim(tiny_report(), "H2")
    assert row["window"] == "30d"
    assert row["our_china"] == 0.4 and row["our_us"] == 0.4
    assert row["our_china_ahead"] is False and row["agrees"] == "no"


def test_a_share_not_known_reads_n_a_in_the_claims_and_the_timeline_rather_than_behind() -> None:
    """China listed in the groups, none of its models counted: its share is null, and nothing is said to agree or
    disagree with it; an actor absent is still 0."""
    hidden = (pl.col("actor") == "China") & (pl.col("time_window") == "30d")
    shares = tiny_shares().with_columns(pl.when(hidden).then(None).otherwise(pl.col("share")).alias("share"))
    report = reproduce(shares, tiny_concentration(), tiny_crossovers(), tiny_coverage())
    row = claim(report, "H2")
    assert (row["our_china"], row["our_china_ahead"], row["agrees"]) == (None, None, "n/a")
    assert "China n/a vs US" in row["ours"]
    # Downloads too: none credited to an actor whose share is not known is no count of them.
    hidden = (pl.col("actor") == "United States") & (pl.col("rule") == "official")
    shares = tiny_shares().with_columns(pl.when(hidden).then(None).otherwise(pl.col("share")).alias("share"))
    row = claim(reproduce(shares, tiny_concentration(), tiny_crossovers(), tiny_coverage()), "A2")
    assert (row["our_us"], row["our_china_ahead"], row["agrees"]) == (None, None, "n/a")
    assert "US n/a" in row["ours"] and "of China + US" not in row["ours"]
    assert report.timeline.select("uploader_china", "uploader_us").rows() == [(None, 0.0), (None, 0.6)]
    assert "| n/a |" in to_markdown(report)


def test_a2_sets_cumulative_downloads_and_the_china_share_of_the_pair_beside_atoms() -> None:
    row = claim(tiny_report(), "A2")
    assert row["window"] == "all_time" and (row["our_china"], row["our_us"]) == (600, 900)
    assert row["agrees"] == "no"
    assert "China 40.0% of China + US (published 61.4%)" in row["ours"]
    assert "The official rule keeps 75.0% of the population's downloads" in row["notes"]  # 1500 of 2000


def test_a1_reads_the_crossover_and_says_when_china_led_from_the_first_date() -> None:
    row = claim(tiny_report(), "A1")
    assert row["our_crossover"] == D1 and row["agrees"] == "yes"
    assert row["ours"].startswith("China ahead since our first date, 2026-03-01 (margin +20.0 pp on")
    assert "outside our dates" in row["notes"]


def test_a_claim_falls_back_to_the_next_window_and_says_why() -> None:
    shares = tiny_shares().filter(pl.col("time_window") == "30d")
    report = reproduce(shares, tiny_concentration(), tiny_crossovers(), tiny_coverage())
    row = claim(report, "E1")
    assert row["window"] == "30d"
    assert "ours is 30d, as the snapshots record no all_time downloads on 2026-03-08" in row["notes"]
    assert "Where the snapshots record all-time counts, all_time (cumulative since creation)" in row["notes"]
    assert row["our_china"] == 0.2 and row["our_us"] == 0.2  # 40 / 200 each, Unknown included
    assert claim(report, "A2")["window"] == "30d"


def test_the_timeline_has_china_us_and_poles_per_rule_on_every_date() -> None:
    timeline = tiny_report().timeline
    assert timeline["snapshot_date"].to_list() == [D1, D2]
    assert timeline["models"].to_list() == [4, 5]
    assert timeline.select("official_china", "official_us", "official_poles").rows() == [
        (0.5, 0.25, 2.6667),
        (0.6, 0.4, 1.9231),
    ]
    # The US is absent on the first date: share 0. No lineage metrics: nulls, never invented.
    assert timeline.select("uploader_china", "uploader_us").rows() == [(0.5, 0.0), (0.2, 0.6)]
    assert timeline["lineage_poles"].to_list() == [None, None]


def test_markdown_html_and_json_carry_the_same_claims() -> None:
    report = tiny_report()
    markdown = to_markdown(report)
    assert "| E1 | Economies of Open Intelligence" in markdown
    assert "| 2026-03-08 | 5 | 20.0% | 60.0% | 1.60 | 60.0% | 40.0% | 1.92 | 0.0% | 0.0% | n/a |" in markdown
    payload = json.loads(to_json(report))
    assert [c["claim"] for c in payload["claims"]] == ["E1", "H2", "A2", "A1"]
    assert payload["as_of"] == "2026-03-08" and len(payload["timeline"]) == 2
    page = to_html(report)
    assert page.startswith("<!doctype html>") and "<td>E1</td>" in page


def test_html_escapes_every_value_and_loads_nothing_from_outside() -> None:
    page = to_html(tiny_report(source='<script>alert("x")</script>'))
    assert "<script" not in page and "&lt;script&gt;" in page
    assert "http://" not in page and "https://" not in page and "src=" not in page


def test_reproduce_over_the_real_llmfit_panel_writes_each_format(shared_data, tmp_path) -> None:
    warehouse = tmp_path / "wh"
    panel = shared_data / "llmfit-panel" / "llmfit_hf_downloads_timeseries_2026-02_to_2026-05.csv"
    imported = runner.invoke(app, ["import", str(panel), "--warehouse", str(warehouse), "--no-dashboard"])
    assert imported.exit_code == 0, imported.output
    for fmt in ("md", "html", "json"):
        result = runner.invoke(app, ["reproduce", "--warehouse", str(warehouse), "--format", fmt])
        assert result.exit_code == 0, result.output
        assert (warehouse / "reports" / f"reproduction.{fmt}").is_file()
    payload = json.loads((warehouse / "reports" / "reproduction.json").read_text())
    assert payload["as_of"] == "2026-05-12" and len(payload["timeline"]) == 22
    claims = {c["claim"]: c for c in payload["claims"]}
    assert {k: c["agrees"] for k, c in claims.items()} == {"E1": "yes", "H2": "yes", "A2": "yes", "A1": "yes"}
    assert {c["window"] for c in claims.values()} == {"30d"}  # the panel records 30-day counts only
    assert all(row["official_china"] > row["official_us"] for row in payload["timeline"])
    # The README's table of this report says what the report says, claim by claim.
    rows = [line.split(" | ") for line in README.splitlines()]
    ours = {cells[0]: cells[4] for cells in rows if cells[0] in CLAIM_ROWS}
    lines = (warehouse / "reports" / "reproduction.md").read_text().splitlines()
    report = dict(line.split(" | ", 1) for line in lines if " | " in line)
    assert sorted(ours) == sorted(CLAIM_ROWS)
    for claim, cell in ours.items():
        assert f" | {cell} | " in report[claim], (claim, cell, report[claim])


@pytest.mark.parametrize(
    ("kinds", "label"),
    [
        (("hub", "hub"), None),
        (("hub", "synthetic"), "Synthetic data — not the real Hub"),
        (("import", "import"), "Imported data — not crawled from the Hub by this project"),
        (("hub", None), "Data source not recorded — treat these numbers as unverified"),
    ],
)
def test_a_report_of_data_other_than_the_real_hub_says_so_above_its_claims(kinds, label) -> None:
    metas = [{"rows": 4, "source_file": "snapshots.csv"} | ({"source_kind": k} if k else {}) for k in kinds]
    coverage = coverage_frame(list(zip((D1, D2), metas, strict=True)))
    if None in kinds:  # a record that names a kind no code writes
        coverage = coverage.with_columns(pl.lit("made-up").alias("source_kind"))
    report = reproduce(tiny_shares(), tiny_concentration(), tiny_crossovers(), coverage)
    assert report.label == label
    markdown, page, payload = to_markdown(report), to_html(report), json.loads(to_json(report))
    assert payload["data_label"] == label
    if label is None:
        assert "not the real Hub" not in markdown + page and "not crawled" not in markdown + page
        return
    assert markdown.index(f"**{label}**") < markdown.index("| claim")
    assert f"<title>Multipolar reproduction 2026-03-08 — {label}</title>" in page
    assert page.index(f"<b>{label}</b>") < page.index("<table>")
