"""Crossover detection over a series of shares: when the challenger overtakes and stays ahead."""

from __future__ import annotations

import datetime as dt

import polars as pl
import pytest

from analytics.crossover import crossovers
from warehouse.contract import conform
from warehouse.tables import CROSSOVERS, SHARES

MONDAYS = [dt.date(2026, 1, 5) + dt.timedelta(weeks=w) for w in range(12)]


def race(china: list[float | None], us: list[float | None], dates=MONDAYS, **series) -> pl.DataFrame:
    """A region shares series, one date per pair of shares; a None share leaves that actor out that day."""
    key = {"time_window": "30d", "population": "all", "rule": "uploader", "dimension": "region"} | series
    rows = [
        key | {"snapshot_date": date, "actor": actor, "downloads": share, "share": share}
        for date, pair in zip(dates, zip(china, us, strict=True), strict=False)
        for actor, share in zip(("China", "United States"), pair, strict=True)
        if share is not None
    ]
    return pl.DataFrame(rows)


def only_row(frame: pl.DataFrame) -> dict:
    assert frame.height == 1
    return frame.row(0, named=True)


def test_a_challenger_that_never_leads_has_not_crossed():
    row = only_row(crossovers(race([0.1, 0.2, 0.3], [0.5, 0.5, 0.4])))
    assert row["status"] == "none"
    assert row["crossover_date"] is None
    assert row["margin"] == pytest.approx(-0.1)
    assert (row["first_date"], row["dates"]) == (MONDAYS[0], 3)


def test_a_clean_cross_is_dated_at_the_first_snapshot_ahead():
    row = only_row(crossovers(race([0.1, 0.2, 0.4, 0.5], [0.3, 0.3, 0.3, 0.2])))
    assert (row["status"], row["crossover_date"]) == ("crossed", MONDAYS[2])
    assert row["margin"] == pytest.approx(0.3)
    assert (row["challenger"], row["incumbent"]) == ("China", "United States")


def test_a_single_contrary_snapshot_does_not_flip_a_crossover():
    row = only_row(crossovers(race([0.1, 0.4, 0.4, 0.2, 0.4, 0.5], [0.3, 0.3, 0.3, 0.3, 0.3, 0.3])))
    assert (row["status"], row["crossover_date"]) == ("crossed", MONDAYS[1])


def test_a_lasting_fall_back_undoes_the_crossover():
    row = only_row(crossovers(race([0.1, 0.4, 0.4, 0.2, 0.2], [0.3, 0.3, 0.3, 0.3, 0.3])))
    assert (row["status"], row["crossover_date"]) == ("none", None)


def test_a_lasting_fall_back_then_a_new_lead_dates_the_cross_anew():
    row = only_row(crossovers(race([0.1, 0.4, 0.4, 0.2, 0.2, 0.4, 0.4], [0.3] * 7)))
    assert (row["status"], row["crossover_date"]) == ("crossed", MONDAYS[5])


def test_a_dip_on_the_latest_snapshot_reads_none_until_a_later_one_recovers():
    dipping = [0.1, 0.4, 0.4, 0.2]
    assert only_row(crossovers(race(dipping, [0.3] * 4)))["status"] == "none"
    recovered = only_row(crossovers(race([*dipping, 0.4], [0.3] * 5)))
    assert (recovered["status"], recovered["crossover_date"]) == ("crossed", MONDAYS[1])


def test_a_one_snapshot_lead_needs_persistence_to_count():
    brief_lead = race([0.1, 0.4, 0.2, 0.4, 0.4], [0.3] * 5)
    assert only_row(crossovers(brief_lead))["crossover_date"] == MONDAYS[3]
    assert only_row(crossovers(brief_lead, persistence=1))["crossover_date"] == MONDAYS[1]


def test_a_lead_on_the_latest_snapshot_alone_counts_when_too_few_dates_remain():
    row = only_row(crossovers(race([0.1, 0.2, 0.4], [0.3, 0.3, 0.3]), persistence=3))
    assert (row["status"], row["crossover_date"]) == ("crossed", MONDAYS[2])


def test_a_tie_is_not_a_lead():
    assert only_row(crossovers(race([0.3, 0.3], [0.3, 0.3])))["status"] == "none"


def test_gaps_between_dates_are_fine():
    dates = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 3, 1), dt.date(2026, 6, 30)]
    row = only_row(crossovers(race([0.1, 0.2, 0.4, 0.5], [0.3, 0.3, 0.3, 0.3], dates=dates)))
    assert (row["crossover_date"], row["first_date"], row["dates"]) == (dt.date(2026, 3, 1), dates[0], 4)


def test_an_actor_missing_on_a_date_has_share_zero():
    row = only_row(crossovers(race([0.4, None, 0.4, 0.4], [0.3, 0.3, 0.3, 0.3])))
    assert row["crossover_date"] == MONDAYS[2]


def test_each_window_population_and_rule_is_its_own_series():
    series = pl.concat(
        [
            race([0.1, 0.4, 0.4], [0.3, 0.3, 0.3]),
            race([0.1, 0.1, 0.1], [0.3, 0.3, 0.3], time_window="all_time"),
            race([0.4, 0.4, 0.4], [0.3, 0.3, 0.3], rule="official"),
            race([0.4, 0.4, 0.4], [0.3, 0.3, 0.3], dimension="lab"),
        ]
    )
    table = crossovers(series)
    assert table.select("time_window", "rule", "status", "crossover_date").rows() == [
        ("30d", "official", "crossed", MONDAYS[0]),
        ("30d", "uploader", "crossed", MONDAYS[1]),
        ("all_time", "uploader", "none", None),
    ]
    conform(table, CROSSOVERS)


def test_other_actors_and_dimensions_can_be_compared():
    series = race([0.1, 0.4, 0.4], [0.3, 0.3, 0.3], dimension="country").with_columns(
        pl.col("actor").replace({"China": "CN", "United States": "US"})
    )
    row = only_row(crossovers(series, challenger="CN", incumbent="US", dimension="country"))
    assert (row["challenger"], row["crossover_date"]) == ("CN", MONDAYS[1])


def test_persistence_below_one_snapshot_is_refused():
    with pytest.raises(ValueError, match="persistence"):
        crossovers(race([0.1], [0.2]), persistence=0)


def test_a_series_without_the_dimension_gives_no_rows():
    empty = SHARES.empty().with_columns(pl.lit(None, pl.Date).alias("snapshot_date"))
    assert conform(crossovers(empty), CROSSOVERS).is_empty()


def test_a_crossing_is_observed_only_when_it_falls_between_two_snapshots():
    seen = only_row(crossovers(race([0.1, 0.2, 0.4, 0.5], [0.3, 0.3, 0.3, 0.2])))
    assert (seen["status"], seen["observed"]) == ("crossed", True)
    # ahead from the first snapshot on: crossed before the series began, on a date it cannot show
    before = only_row(crossovers(race([0.4, 0.4, 0.5], [0.3, 0.3, 0.3])))
    assert (before["status"], before["crossover_date"], before["observed"]) == ("crossed", MONDAYS[0], False)
    never = only_row(crossovers(race([0.1, 0.2], [0.3, 0.3])))
    assert (never["status"], never["observed"]) == ("none", None)


def not_known(frame: pl.DataFrame, dates: list[dt.date], actors: tuple[str, ...]) -> pl.DataFrame:
    """`frame` with the shares of `actors` on `dates` not known: listed, none of their models counted."""
    hidden = pl.col("snapshot_date").is_in(dates) & pl.col("actor").is_in(actors)
    return frame.with_columns(pl.when(hidden).then(None).otherwise(pl.col("share")).alias("share"))


def test_a_date_on_which_either_actors_share_is_not_known_is_no_observation():
    """Read as 0, two such dates in a row would undo the crossover; left out, the lead holds from the start."""
    series = not_known(race([0.4, 0.4, 0.4, 0.4, 0.4], [0.3] * 5), MONDAYS[2:4], ("China",))
    row = only_row(crossovers(series))
    assert (row["status"], row["crossover_date"], row["dates"]) == ("crossed", MONDAYS[0], 3)
    # and a group with no known share at all (no downloads counted in it), with both actors listed
    series = not_known(race([0.1, 0.4, 0.4, 0.4, 0.4], [0.3] * 5), MONDAYS[2:4], ("China", "United States"))
    row = only_row(crossovers(series))
    assert (row["status"], row["crossover_date"], row["dates"]) == ("crossed", MONDAYS[1], 3)


def test_a_series_with_no_date_observed_is_none_over_no_dates():
    series = not_known(race([0.4, 0.4], [0.3, 0.3]), MONDAYS[:2], ("China",))
    row = only_row(crossovers(series))
    assert (row["status"], row["crossover_date"], row["first_date"], row["dates"]) == ("none", None, None, 0)
    assert row["observed"] is None and row["margin"] is None


def test_left_out_dates_are_no_observation_and_the_margin_is_that_of_the_last_date_kept():
    """A stale copy as the latest date: the margin is the date before's, and says so; a series found only on
    left-out dates still has its row."""
    series = race([0.1, 0.4, 0.5, 0.9], [0.3, 0.3, 0.3, 0.1])
    row = only_row(crossovers(series, left_out=[MONDAYS[3]]))
    assert (row["crossover_date"], row["dates"], row["last_date"]) == (MONDAYS[1], 3, MONDAYS[2])
    assert row["margin"] == pytest.approx(0.2)
    alone = race([0.4], [0.3], dates=[MONDAYS[5]], time_window="between")
    rows = crossovers(pl.concat([series, alone]), left_out=[MONDAYS[3], MONDAYS[5]])
    between = rows.filter(time_window="between").row(0, named=True)
    assert (between["status"], between["dates"], between["last_date"]) == ("none", 0, None)


def test_the_dashboard_marks_the_crossovers_of_the_matchups_recorded_and_no_other() -> None:
    from analytics.crossover import MATCHUPS
    from dashboards.frames import crossover_marks

    day = dt.date(2026, 5, 12)
    others = [("Europe", "United States", "region"), ("China", "United States", "country")]
    frame = pl.DataFrame(
        [
            {"challenger": c, "incumbent": i, "dimension": d, "rule": "uploader", "population": "llm"}
            for c, i, d in (*MATCHUPS, *others)
        ]
    ).with_columns(
        time_window=pl.lit("30d"),
        snapshot_date=pl.lit(day),
        status=pl.lit("crossed"),
        crossover_date=pl.lit(day - dt.timedelta(days=3)),
        first_date=pl.lit(day - dt.timedelta(days=9)),
        margin=pl.lit(0.1),
    )
    marks = crossover_marks(frame, "uploader", (day - dt.timedelta(days=9), day))
    assert sorted(marks["label"].str.extract(r"^(.+) ahead").to_list()) == sorted(c for c, _, _ in MATCHUPS)
    assert sorted(marks["dimension"]) == sorted(d for _, _, d in MATCHUPS)
