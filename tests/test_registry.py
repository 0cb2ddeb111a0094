"""The curated attribution registry: valid as shipped, complete for ATOM, and loud about broken files."""

from __future__ import annotations

import codecs
from pathlib import Path

import polars as pl
import pytest

from analytics.attribution import LAB_TYPES
from analytics.registry import (
    COLUMNS,
    ISO_COUNTRIES,
    RegistryError,
    check_registry,
    load_registry,
    region_of,
    registry_version,
)

HEADER = ",".join(COLUMNS)
GOOD = "Qwen,Alibaba,CN,China,industry,ATOM: china"


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "registry.csv"
    path.write_text("\n".join([HEADER, *lines]) + "\n", encoding="utf-8")
    return path


def reasons_at(path: Path) -> dict[int, list[str]]:
    found: dict[int, list[str]] = {}
    for problem in check_registry(path):
        found.setdefault(problem.line, []).append(problem.reason)
    return found


def test_the_shipped_registry_is_valid_and_has_hundreds_of_rows() -> None:
    assert check_registry() == []
    registry = load_registry()
    assert registry.columns == list(COLUMNS)
    assert registry.height >= 300
    assert registry.get_column("namespace").is_unique().all()
    assert registry.get_column("evidence").str.len_chars().min() > 0


def test_every_known_country_has_the_region_its_code_implies() -> None:
    known = load_registry().filter(pl.col("country").is_not_null())
    for country, region in known.select("country", "region").unique().iter_rows():
        assert country in ISO_COUNTRIES
        assert region == region_of(country), country


def test_regions_follow_the_agreed_mapping() -> None:
    assert [region_of(c) for c in ("CN", "HK", "US", "GB", "CH", "FR", "RU", "KR", "AE")] == [
        "China",
        "China",
        "United States",
        "Europe",
        "Europe",
        "Europe",
        "Rest of world",
        "Rest of world",
        "Rest of world",
    ]


def test_the_intermediaries_named_in_the_design_are_intermediaries() -> None:
    registry = load_registry()
    types = dict(registry.select("namespace", "developer_type").iter_rows())
    for namespace in ("unsloth", "bartowski", "TheBloke", "mlx-community", "lmstudio-community", "Xenova"):
        assert types[namespace] == "intermediary", namespace
    # Quantizers of others' models, however large the company behind them: not labs under the official rule.
    for namespace in ("RedHatAI", "neuralmagic", "nm-testing", "ISTA-DASLab"):
        assert types[namespace] == "intermediary", namespace
    # Libraries' CI fixtures of random weights: no model anyone releases, so no lab's under the official rule.
    for namespace in ("hf-internal-testing", "hmellor", "peft-internal-testing", "trl-internal-testing"):
        assert types[namespace] == "intermediary", namespace


def test_every_account_whose_evidence_calls_its_repos_test_fixtures_is_an_intermediary() -> None:
    """As the registry defines them: tiny random or unit-test models are no one's release, whoever hosts them."""
    fixtures = load_registry().filter(
        pl.col("evidence").str.contains(r"(?i)test fixtures|random test|unit-test|tiny test models")
    )
    assert fixtures.height >= 10
    assert fixtures.filter(pl.col("developer_type") != "intermediary").get_column("namespace").to_list() == []


def test_every_atom_namespace_is_in_the_registry(shared_data: Path) -> None:
    atom = pl.read_csv(shared_data / "atom" / "organization_regions.csv")
    registry = load_registry()
    missing = set(atom.get_column("hf_org")) - set(registry.get_column("namespace"))
    assert missing == set()


EPOCH_COUNTRIES = {
    "United States of America": "US",
    "China": "CN",
    "Hong Kong": "HK",
    "Russia": "RU",
    "Israel": "IL",
    "Germany": "DE",
    "France": "FR",
    "Spain": "ES",
    "Belgium": "BE",
    "Finland": "FI",
    "United Kingdom of Great Britain and Northern Ireland": "GB",
    "Canada": "CA",
    "Japan": "JP",
    "Korea (Republic of)": "KR",
    "Taiwan": "TW",
    "United Arab Emirates": "AE",
}


def test_a_lab_epoch_places_in_a_country_has_that_country(shared_data: Path) -> None:
    """Epoch AI's organisation table is evidence of a lab's country: a lab it names is not left unknown."""
    epoch = pl.read_csv(shared_data / "epoch" / "epoch_organizations.csv", infer_schema=False)
    places = {
        name.strip().lower(): {EPOCH_COUNTRIES.get(c.strip()) for c in (countries or "").split(",")} - {None}
        for name, countries in epoch.select("Organization", "Country").iter_rows()
    }
    labs = load_registry().filter(pl.col("developer_type").is_in(LAB_TYPES))
    named = [(ns, lab, country) for ns, lab, country in labs.select("namespace", "lab", "country").iter_rows()]
    placed = [(ns, country, places[lab.lower()]) for ns, lab, country in named if places.get(lab.lower())]
    assert len(placed) > 100
    assert [(ns, country, codes) for ns, country, codes in placed if country not in codes] == []


def test_the_official_rule_counts_every_atom_organisation_but_one_community_collective(shared_data: Path) -> None:
    atom = pl.read_csv(shared_data / "atom" / "organization_regions.csv")
    joined = atom.join(load_registry(), left_on="hf_org", right_on="namespace")
    left_out = set(joined.filter(~pl.col("developer_type").is_in(LAB_TYPES)).get_column("hf_org"))
    assert joined.height == 118 and left_out == {"allura-forge"}


def test_atom_regions_agree_with_the_registry_apart_from_documented_cases(shared_data: Path) -> None:
    atom = pl.read_csv(shared_data / "atom" / "organization_regions.csv")
    ours = {"china": "China", "us": "United States", "eu": "Europe", "other": "Rest of world"}
    joined = atom.join(load_registry(), left_on="hf_org", right_on="namespace")
    disagree = {
        ns
        for ns, atom_region, region in joined.select("hf_org", "region", "region_right").iter_rows()
        if atom_region in ours and ours[atom_region] != region
    }
    # AI21 Labs is Israeli: ATOM files it under us, the registry under its real country.
    assert disagree == {"ai21labs"}


def test_the_namespaces_holding_95_percent_of_panel_downloads_are_registered(shared_data: Path) -> None:
    panel = pl.read_csv(
        shared_data / "llmfit-panel" / "llmfit_hf_downloads_timeseries_2026-02_to_2026-05.csv", try_parse_dates=True
    )
    day = panel.with_columns(date=pl.col("snapshot_time").dt.date())
    last = day.filter(pl.col("date") == pl.col("date").max()).sort("snapshot_time").unique("model_id", keep="last")
    held = (
        last.group_by(pl.col("model_id").str.split("/").list.first().alias("namespace"))
        .agg(pl.col("hf_downloads").sum())
        .sort("hf_downloads", descending=True)
        .with_columns(before=pl.col("hf_downloads").cum_sum().shift(1, fill_value=0) / pl.col("hf_downloads").sum())
    )
    top = set(held.filter(pl.col("before") < 0.95).get_column("namespace"))
    assert top - set(load_registry().get_column("namespace")) == set()


def test_each_defect_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        GOOD,  # line 2
        "Qwen,Alibaba,CN,China,industry,again",  # 3 duplicate
        "acme,Acme,XX,Rest of world,industry,made up",  # 4 unknown country
        "acme2,Acme,US,Mars,industry,made up",  # 5 unknown region
        "acme3,Acme,US,United States,startup,made up",  # 6 unknown developer type
        "acme4,Acme,US,United States,industry,",  # 7 missing evidence
        "acme5,,US,United States,industry,why",  # 8 missing lab
        "acme6,Acme,CN,United States,industry,why",  # 9 region inconsistent with country
        "acme7,Acme,US,United States,industry",  # 10 wrong column count
        "acme8,Ac\x07me,US,United States,industry,why",  # 11 control character
        "acme9,Acme,US,United States,industry," + "x" * 501,  # 12 over-long cell
        "acme10,=HYPERLINK(1),US,United States,industry,why",  # 13 formula injection
        "bad namespace,Acme,US,United States,industry,why",  # 14 malformed namespace
    )
    found = reasons_at(path)
    assert 2 not in found
    assert any("duplicate namespace 'Qwen' (first at line 2)" in r for r in found[3])
    assert any("unknown country code 'XX'" in r for r in found[4])
    assert any("unknown region 'Mars'" in r for r in found[5])
    assert any("unknown developer type 'startup'" in r for r in found[6])
    assert found[7] == ["missing evidence"]
    assert found[8] == ["missing lab"]
    assert any("inconsistent with country CN" in r for r in found[9])
    assert found[10] == ["malformed CSV: 5 columns, expected 6"]
    assert any("control character in lab" in r for r in found[11])
    assert any("501 characters" in r for r in found[12])
    assert any("formula character" in r for r in found[13])
    assert any("malformed namespace" in r for r in found[14])


def test_a_namespace_listed_again_in_another_case_is_a_duplicate(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "qwen,Alibaba,CN,China,industry,again")
    assert reasons_at(path) == {3: ["duplicate namespace 'qwen' (first at line 2 as 'Qwen': the Hub ignores case)"]}


def test_a_country_needs_its_region_and_an_unknown_country_may_stay_empty(tmp_path: Path) -> None:
    path = write(tmp_path, "acme,Acme,DE,,industry,why", "someone,someone,,,intermediary,re-uploads")
    assert reasons_at(path) == {2: ["missing region for country DE (expected 'Europe')"]}


def test_unparsable_and_misheaded_files_are_reported(tmp_path: Path) -> None:
    quoted = write(tmp_path, GOOD, 'acme,"Acme,US,United States,industry,why')
    assert any("unparsable" in p.reason or "malformed CSV" in p.reason for p in check_registry(quoted))
    headed = tmp_path / "headed.csv"
    headed.write_text("namespace,lab\nQwen,Alibaba\n", encoding="utf-8")
    assert [p.line for p in check_registry(headed)] == [1]
    binary = tmp_path / "binary.csv"
    binary.write_bytes(HEADER.encode() + b"\nQwen,Ali\xffbaba,CN,China,industry,why\n")
    assert [(p.line, p.reason.startswith("unparsable")) for p in check_registry(binary)] == [(2, True)]


def test_loading_a_broken_registry_raises_and_lists_the_problems(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "Qwen,Alibaba,CN,China,industry,again")
    with pytest.raises(RegistryError, match="line 3: duplicate namespace"):
        load_registry(path)


def test_unknown_country_loads_as_null(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, "someone,someone,,,intermediary,re-uploads quantized models")
    registry = load_registry(path)
    assert registry.filter(pl.col("namespace") == "someone").row(0) == (
        "someone",
        "someone",
        None,
        None,
        "intermediary",
        "re-uploads quantized models",
    )


def test_the_version_names_the_content_hash_and_row_count(tmp_path: Path) -> None:
    one = registry_version(write(tmp_path, GOOD))
    assert one.startswith("sha256:") and one.endswith("/1 rows")
    two = registry_version(write(tmp_path, GOOD, "acme,Acme,US,United States,industry,why"))
    assert two.endswith("/2 rows") and two.split("/")[0] != one.split("/")[0]
    assert registry_version().endswith(f"/{load_registry().height} rows")


def test_a_byte_order_mark_or_windows_line_endings_leave_the_version_as_it_is(tmp_path: Path) -> None:
    """The same rows saved by another editor or checkout are the same registry: a date attributed with one is not
    out of date with the other. A change of a row still changes the version."""
    path = write(tmp_path, GOOD, "acme,Acme,US,United States,industry,why")
    plain = registry_version(path)
    text = path.read_text(encoding="utf-8")
    path.write_bytes(codecs.BOM_UTF8 + text.replace("\n", "\r\n").encode())
    assert registry_version(path) == plain
    assert load_registry(path).equals(load_registry(write(tmp_path, GOOD, "acme,Acme,US,United States,industry,why")))
    path.write_bytes(codecs.BOM_UTF8 + text.replace("\n", "\r\n").replace("why", "because").encode())
    assert registry_version(path) != plain


@pytest.mark.parametrize("kind", ["missing", "a folder", "a header alone"])
def test_a_registry_missing_unreadable_or_without_rows_is_refused_in_one_line(
    tmp_path: Path, monkeypatch, capsys, kind: str
) -> None:
    """Refused by every command that reads it, in one line, rather than a traceback or shares with no lab."""
    import datetime as dt
    import sys

    from analytics import registry
    from flows import cli
    from tests.test_warehouse import models_frame
    from warehouse.layout import Layout
    from warehouse.publish import publish_frame
    from warehouse.tables import MODELS

    path = tmp_path / "registry.csv"
    if kind == "a folder":
        path.mkdir()
    elif kind == "a header alone":
        path.write_text(HEADER + "\n", encoding="utf-8")
    said = "holds no row" if kind == "a header alone" else "cannot be read"
    with pytest.raises(RegistryError, match=said):
        load_registry(path)
    if kind != "a header alone":
        with pytest.raises(RegistryError, match=said):
            registry_version(path)
    warehouse = tmp_path / "wh"
    publish_frame(Layout.at(warehouse), MODELS, dt.date(2026, 5, 12), models_frame(["org/a"], [3]), {})
    monkeypatch.setattr(registry, "REGISTRY_PATH", path)
    # `check` reads the registry's version only: a header alone has one (0 rows), and the dates it would change
    # are told there as made with another registry.
    commands = [["attribute", "--date", "2026-05-12"], ["recompute"]]
    commands += [["check"]] if kind != "a header alone" else []
    for command in commands:
        monkeypatch.setattr(sys, "argv", ["multipolar", *command, "--warehouse", str(warehouse)])
        with pytest.raises(SystemExit) as done:
            cli.main()
        told = capsys.readouterr()
        lines = [line for line in told.err.splitlines() if line.strip()]
        assert done.value.code != 0 and "Traceback" not in told.err, told.err
        assert len(lines) == 1 and lines[0].startswith("error: registry") and said in lines[0], told.err
    if kind == "a header alone":  # `check` tells the dates made with another registry, and to mend this one first
        from flows import steps

        monkeypatch.setattr(registry, "REGISTRY_PATH", registry.Path(registry.__file__).with_name("registry.csv"))
        steps.attribute_date(Layout.at(warehouse), dt.date(2026, 5, 12))
        monkeypatch.setattr(registry, "REGISTRY_PATH", path)
        monkeypatch.setattr(sys, "argv", ["multipolar", "check", "--warehouse", str(warehouse)])
        with pytest.raises(SystemExit):
            cli.main()
        told = capsys.readouterr().out
        assert "mend the registry first (holds no row: a registry credits at least one namespace), then" in told
