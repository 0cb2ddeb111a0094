"""Benchmarks against DESIGN.md's Scale section, measured side by side in one run, written to BENCHMARKS.md.

1. Crawl: a synthetic world served by the stand-in Hub in a process of its own (its memory is not the
   crawler's), a latency injected on every page; the crawl runs in a second process whose peak RSS is
   the crawler's. Requests against ceil(models / page size); wall time against the summed latency;
   the same first pages fetched one after another and ahead.
2. Analytics: attribution plus every metric of the crawled snapshot against one bare polars read of the
   columns they use, and the metrics against a plain pandas implementation of the same tables; each
   figure in processes of its own, those of all figures taking turns.
3. History: `days` daily partitions of models, attributions and metrics, written through the warehouse
   (models: the crawled snapshot with drifted downloads; attributions: the same file each day), then an
   analyst's country-share series in DuckDB from the metric tables and from the raw tables.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import itertools
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from analytics.attribution import INPUTS
from flows.synthetic.ecosystem import SeriesSpec
from warehouse.layout import Layout
from warehouse.tables import ATTRIBUTIONS, CONCENTRATION, CREDIT, MODEL_METADATA, MODELS, REGISTRY, SHARES

FULL_MODELS = 3_000_000
FULL_DAYS = 90
QUICK_MODELS = 300_000
QUICK_DAYS = 5
PAGE_SIZE = 1000
LOOKUP_MODELS = 5  # models an analyst looks up over every day of the history
LATENCY = 0.2  # seconds the stand-in adds to every page: about what the Hub's listing takes
AB_PAGES = 100  # pages crawled twice, one after another and ahead, to compare the two
CRAWL_DAY = dt.date(2026, 4, 30)
DAY_BEFORE = CRAWL_DAY - dt.timedelta(days=1)
HISTORY_START = dt.date(2026, 1, 1)
HISTORY_START_TIME = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
# Models whose metadata changes on a history's day: as many as the synthetic world's births and as many
# touched repos (a history keeps its ids, so each is a change)
TOUCHED_PER_DAY = 2 * SeriesSpec.birth_rate
# Columns of `models` that attribution and metrics read.
MODEL_COLUMNS = ["model_id", "author", "base_models", "base_relation", "downloads_30d", "downloads_all_time"]
MODEL_COLUMNS += ["pipeline_tag", "params_total"]
# What a run writes into its work folder, by model, from the full run of BENCHMARKS.md (3 M models, 90 days):
# the synthetic world's JSONL (518 B); the crawl's pages, the crawled and the day before's partitions and
# the analytics' copies (under 250 B); a published day of the history (65 B); and DuckDB's spill for the
# one-join query over the history (13 GB against 17.5 GB of history there).
WORLD_BYTES = 520
SNAPSHOT_BYTES = 250
DAY_BYTES = 66
SPILL_SHARE = 0.8
LIBRARIES = ("polars", "pyarrow", "duckdb", "pandas", "numpy", "huggingface_hub", "prefect", "psutil")
Say = Callable[[str], None]


@dataclass
class BenchPlan:
    """What to measure and where."""

    models: int
    days: int
    latency: float
    out: Path
    quick: bool = False
    page_size: int = PAGE_SIZE
    seed: int = 0
    work: Path | None = None
    repeat: int = 2

    @classmethod
    def of(
        cls,
        *,
        models: int | None,
        days: int | None,
        quick: bool,
        latency: float | None,
        out: Path,
        work: Path | None = None,
    ) -> BenchPlan:
        """The plan for the command's options: quick sizes, full ones, or what was given."""
        return cls(
            models=models or (QUICK_MODELS if quick else FULL_MODELS),
            days=days or (QUICK_DAYS if quick else FULL_DAYS),
            latency=LATENCY if latency is None else latency,
            out=out,
            quick=quick,
            work=work,
            repeat=3 if quick else 2,
        )


class BenchError(RuntimeError):
    """The benchmark cannot run as asked; the message says why and what to do."""


@dataclass
class Figures:
    """Every figure of one run, by section, in the order they were measured."""

    sections: dict[str, dict[str, Any]] = field(default_factory=dict)

    def put(self, section: str, **values: Any) -> None:
        self.sections.setdefault(section, {}).update(values)


def run_bench(plan: BenchPlan, say: Say = print) -> Path:
    """Run every benchmark of `plan` and write its report; return the report's path."""
    figures = Figures()
    started = dt.datetime.now(dt.UTC)
    figures.put("run", load_before=os.getloadavg())
    with _work_dir(plan.work) as work:
        check_space(plan, work)
        crawl_section(plan, work, figures, say)
        analytics_section(plan, work, figures, say)
        history_section(plan, work, figures, say)
    figures.put("run", load_after=os.getloadavg(), seconds=round((dt.datetime.now(dt.UTC) - started).seconds, 1))
    write_report(plan, figures, started)
    return plan.out


@contextlib.contextmanager
def _work_dir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    folder = Path(tempfile.mkdtemp(prefix="multipolar-bench-", dir=os.environ.get("MULTIPOLAR_BENCH_TMP")))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def space_needed(plan: BenchPlan) -> int:
    """Bytes a run of `plan` writes into its work folder at most, DuckDB's spill included."""
    history = plan.models * plan.days * DAY_BYTES
    return round(plan.models * (WORLD_BYTES + SNAPSHOT_BYTES) + history * (1 + SPILL_SHARE))


def check_space(plan: BenchPlan, work: Path) -> None:
    """Refuse to start a run whose files would not fit beside what is already on the work folder's disk."""
    needed, free = space_needed(plan), shutil.disk_usage(work).free
    if free < needed:
        raise BenchError(
            f"a benchmark of {plan.models:,} models over {plan.days} days writes up to {needed / 1e9:.1f} GB into "
            f"{work} (its history of daily partitions, and DuckDB's spill when it queries them), but that disk "
            f"has {free / 1e9:.1f} GB free; free some space there or pass --work on a larger disk"
        )


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """The best wall time of `repeat` calls of `fn`, and the last result."""
    best, result = math.inf, None
    for _ in range(repeat):
        began = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - began)
    return best, result


# -- 1. crawl --------------------------------------------------------------------------------------------


def crawl_section(plan: BenchPlan, work: Path, figures: Figures, say: Say) -> None:
    """World, stand-in process, then the crawl processes: A/B of fetching ahead, then the whole crawl."""
    from flows.synthetic import series_spec, start, world_name, write_world

    say(f"world: generating {plan.models:,} synthetic models")
    seconds, eco = timed(lambda: start(series_spec(plan.models, 1, CRAWL_DAY, plan.seed)))
    world = write_world(eco, work / world_name(CRAWL_DAY))
    listed = int(eco.alive.sum())
    del eco
    figures.put("world", models=listed, generate_seconds=round(seconds, 1), jsonl_bytes=world.stat().st_size)
    pages_min = math.ceil(listed / plan.page_size)
    ab_pages = min(AB_PAGES if not plan.quick else AB_PAGES // 2, pages_min)
    with standin_process(world, plan.latency, plan.page_size) as hub:
        figures.put("standin", load_seconds=hub["load_seconds"], rss=hub["rss"])
        for mode in ("sequential", "ahead"):
            say(f"crawl: first {ab_pages} pages, {mode}")
            run = crawl_process(hub["url"], work / f"ab-{mode}", mode=mode, max_pages=ab_pages)
            figures.put(
                "crawl_ab",
                **{
                    f"{mode}_seconds": run["crawl_seconds"],
                    f"{mode}_requests": run["requests"],
                    f"{mode}_ratio": run["crawl_seconds"] / (run["requests"] * plan.latency),
                },
            )
        figures.put("crawl_ab", pages=ab_pages)
        say(f"crawl: all {pages_min:,} pages, fetched ahead, then published")
        run = crawl_process(hub["url"], work / "warehouse", mode="ahead")
        served = hub["process"]
    standin_log = served.stderr.read() if served.stderr else ""
    match = re.search(r"served (\d+) requests, (\d+) pages", standin_log)
    injected = run["requests"] * plan.latency
    figures.put(
        "crawl",
        models=run["rows"],
        page_size=plan.page_size,
        requests=run["requests"],
        standin_requests=int(match.group(1)) if match else None,
        requests_min=pages_min,
        latency=plan.latency,
        latency_injected=round(injected, 1),
        crawl_seconds=round(run["crawl_seconds"], 1),
        wall_ratio=run["crawl_seconds"] / injected,
        cpu_seconds=round(run["cpu_seconds"], 1),
        publish_seconds=round(run["publish_seconds"], 1),
        peak_rss=run["peak_rss"],
        peak_rss_crawl=run["peak_rss_crawl"],
        models_bytes=run["bytes"],
        metadata_bytes=run.get("metadata_bytes"),
    )
    figures.put("rows", **page_conversion(world, plan.page_size))


@contextlib.contextmanager
def standin_process(world: Path, latency: float, page_size: int) -> Iterator[dict[str, Any]]:
    """`python -m flows.standin_hub` serving `world` with `latency` on every page, until the block ends."""
    import psutil

    began = time.monotonic()
    command = [sys.executable, "-m", "flows.standin_hub", "--world", str(world), "--warm"]
    command += ["--latency", str(latency), "--page-size", str(page_size)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_root())
    try:
        url = process.stdout.readline().strip() if process.stdout else ""
        if not url.startswith("http"):
            raise RuntimeError(f"the stand-in Hub did not start: {process.stderr.read() if process.stderr else ''}")
        info = {"url": url, "process": process, "load_seconds": round(time.monotonic() - began, 1)}
        info["rss"] = psutil.Process(process.pid).memory_info().rss
        yield info
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def crawl_process(url: str, warehouse: Path, *, mode: str, max_pages: int | None = None) -> dict[str, Any]:
    """Run `crawl_worker` in a process of its own and return what it measured."""
    arguments = ["crawl", "--endpoint", url, "--warehouse", str(warehouse), "--mode", mode]
    arguments += ["--max-pages", str(max_pages)] if max_pages else []
    env = {**os.environ, "HF_HUB_OFFLINE": "0", "HF_HUB_DISABLE_TELEMETRY": "1"}  # requests go to 127.0.0.1 only
    env.pop("HF_TOKEN", None)
    return bench_process(arguments, "the crawl process", env=env)


def bench_process(arguments: list[str], what: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run `python -m flows.bench <arguments>` in a process of its own; the figures it printed as JSON."""
    command = [sys.executable, "-m", "flows.bench", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=_root(), check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


class _Enough(Exception):
    """Raised from the progress callback to stop a crawl after a number of pages."""


class RssSampler:
    """Peak resident memory of this process, sampled every few milliseconds in a thread."""

    def __init__(self, every: float = 0.02) -> None:
        import psutil

        self._process = psutil.Process()
        self._every = every
        self._stop = threading.Event()
        self.peak = self._process.memory_info().rss
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._process.memory_info().rss)


def crawl_worker(endpoint: str, warehouse: Path, *, mode: str, max_pages: int | None) -> dict[str, Any]:
    """Crawl `endpoint` (and publish it, when whole) into `warehouse`; time it and watch the memory."""
    from flows import crawl
    from flows.scope import parse_scope
    from flows.snapshot import publish_models

    layout = Layout.at(warehouse)
    scope = parse_scope("full")
    seen: dict[str, Any] = {}

    def progress(state: crawl.CrawlState, _listings: int) -> None:
        seen.update(requests=state.requests, items=state.items)
        if max_pages is not None and state.pages >= max_pages:
            raise _Enough

    cpu = time.process_time()
    with RssSampler() as memory:
        began = time.perf_counter()
        try:
            result = crawl.crawl_to_staging(
                layout, CRAWL_DAY, scope, endpoint, progress=progress, overlap=mode == "ahead"
            )
        except _Enough:
            result = None
        crawl_seconds = time.perf_counter() - began
        peak_crawl = memory.peak
        published = {}
        if result is not None:
            began = time.perf_counter()
            published = publish_models(layout, CRAWL_DAY, scope, result, force=True, source_kind="synthetic")
        publish_seconds = time.perf_counter() - began if result is not None else 0.0
    file = layout.partition_file(MODELS, CRAWL_DAY)
    return {
        "crawl_seconds": crawl_seconds,
        "publish_seconds": publish_seconds,
        "cpu_seconds": time.process_time() - cpu,
        "requests": result.state.requests if result else seen["requests"],
        "rows": published.get("rows", seen.get("items")),
        "peak_rss": max(memory.peak, high_water_rss()),
        "peak_rss_crawl": peak_crawl,
        "bytes": file.stat().st_size if file.is_file() else None,
        "metadata_bytes": sum(
            layout.version_file(MODEL_METADATA, v).stat().st_size for v in layout.published_versions(MODEL_METADATA)
        ),
    }


def high_water_rss() -> int:
    """This process's peak resident memory as the kernel counts it (`VmHWM`), 0 where there is none.

    Not `ru_maxrss`: on Linux it keeps the peak of the image this process was forked from, so a crawl
    process started by a bench holding a generated world would report the bench's memory.
    """
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else 0


REFRESH_STEPS = {
    "attribute-first": "`attribute_date` of the day before, with no earlier day: every model attributed, written",
    "attribute": "`attribute_date` of the crawled day: updated from the day before, written",
    "metrics": "`metrics_date`: shares and concentration against the day before, written",
}


def step_process(warehouse: Path, name: str) -> dict[str, Any]:
    """Run one of the refresh's steps on the crawled day in a process of its own; its wall time and peak."""
    return bench_process(["step", name, "--warehouse", str(warehouse)], f"the {name} step")


def step_worker(warehouse: Path, name: str) -> dict[str, Any]:
    """The refresh's own `name` step (`flows.steps`) on the crawled day, forced; its wall time and `VmHWM`."""
    from flows.steps import attribute_date, metrics_date

    step, day = {
        "attribute-first": (attribute_date, DAY_BEFORE),
        "attribute": (attribute_date, CRAWL_DAY),
        "metrics": (metrics_date, CRAWL_DAY),
    }[name]
    began = time.perf_counter()
    done = step(Layout.at(warehouse), day, force=True)
    return {
        "seconds": time.perf_counter() - began,
        "peak_rss": high_water_rss(),
        "updated_from": done.get("updated_from"),
    }


def page_conversion(world: Path, page_size: int, pages: int = 20) -> dict[str, Any]:
    """Milliseconds to turn one page of listing items into a `models` frame and write it."""
    from flows.hub import parse_body
    from flows.rows import model_rows
    from warehouse.publish import PAGE_ZSTD_LEVEL, write_parquet

    with world.open() as lines:
        text = list(itertools.islice(lines, page_size * pages))
    # Bytes, as the crawler gets them from the client: encoding is not part of the parse.
    bodies = [("[" + ",".join(text[i : i + page_size]) + "]").encode() for i in range(0, len(text), page_size)]
    parse, items = timed(lambda: [parse_body(b) for b in bodies])
    convert, frames = timed(lambda: [model_rows(page) for page in items], 2)
    target = world.with_name("page.parquet")
    write, _ = timed(lambda: [write_parquet(f, target, level=PAGE_ZSTD_LEVEL) for f in frames], 2)
    target.unlink(missing_ok=True)
    return {
        "parse_ms": 1000 * parse / len(bodies),
        "convert_ms": 1000 * convert / len(bodies),
        "write_ms": 1000 * write / len(bodies),
    }


# -- 2. analytics ------------------------------------------------------------------------------------------


def day_before(models: pl.DataFrame, seed: int, turnover: float = SeriesSpec.birth_rate) -> pl.DataFrame:
    """The snapshot a day earlier: the newest `turnover` of models not yet made, as many repos that nobody
    names as a base not yet deleted, and downloads a day back (`drifted`)."""
    count = round(turnover * models.height)
    rng = np.random.default_rng([seed, 7])
    bases = models.select(pl.col("base_models").explode().drop_nulls().unique()).to_series()
    leaves = models.with_row_index("row").filter(~pl.col("model_id").is_in(bases.implode()))
    deleted = models[rng.choice(leaves.get_column("row").to_numpy(), size=min(count, leaves.height), replace=False)]
    deleted = deleted.with_columns(pl.col("model_id") + "-deleted")
    born = models.select((pl.col("created_at").rank("ordinal", descending=True) <= count).fill_null(False)).to_series()
    return drifted(pl.concat([models.filter(~born), deleted]), -1, seed)


def touched(models: pl.DataFrame, day: int, seed: int, rate: float = TOUCHED_PER_DAY) -> pl.DataFrame:
    """`models` with `rate` of them changed on day `day` (a new `last_modified`), as the synthetic world's repos
    are each day: the metadata a history keeps grows by that much a day."""
    rng = np.random.default_rng([seed, 11, day])
    rows = rng.choice(models.height, size=round(rate * models.height), replace=False)
    changed = pl.Series(np.isin(np.arange(models.height), rows))
    later = pl.col("last_modified").fill_null(HISTORY_START_TIME) + pl.duration(days=day + 1)
    return models.with_columns(last_modified=pl.when(changed).then(later).otherwise(pl.col("last_modified")))


def drifted(models: pl.DataFrame, offset: int, seed: int) -> pl.DataFrame:
    """`models` moved by `offset` days: 30-day downloads drift (±5 %/day), all-time ones move by a day's worth."""
    rng = np.random.default_rng([seed, abs(offset), int(offset < 0)])
    noise = rng.lognormal(0.0, 0.05 * math.sqrt(abs(offset) or 1), models.height)
    d30 = pl.col("downloads_30d")
    per_day = (d30.fill_null(0) / 30).round().cast(pl.Int64)
    return models.with_columns(
        downloads_30d=(d30 * pl.Series(noise)).round().cast(pl.Int64),
        downloads_all_time=(pl.col("downloads_all_time") + per_day * offset).clip(0),
    )


ANALYTICS_ROUNDS = 2  # rounds of fresh processes: every analytics figure is the best over them


@dataclass(frozen=True)
class AnalyticsFiles:
    """The files the analytics figures read: the crawled day, the day before and their attributions."""

    layout: Layout
    models: Path
    previous: Path
    previous_attributions: Path
    attributions: Path
    registry: Path

    @classmethod
    def of(cls, layout: Layout) -> AnalyticsFiles:
        return cls(
            layout=layout,
            models=layout.partition_file(MODELS, CRAWL_DAY),
            previous=layout.partition_file(MODELS, DAY_BEFORE),
            previous_attributions=layout.partition_file(ATTRIBUTIONS, DAY_BEFORE),
            attributions=layout.partition_file(ATTRIBUTIONS, CRAWL_DAY),
            registry=layout.partition_file(REGISTRY, CRAWL_DAY),
        )

    def scan_models(self) -> pl.LazyFrame:
        """The crawled day's `models`, each model's metadata gathered from where it is kept."""
        return self.layout.scan(MODELS, CRAWL_DAY)

    def scan_previous(self) -> pl.LazyFrame:
        return self.layout.scan(MODELS, DAY_BEFORE)

    def read_models(self, day: dt.date, columns: list[str] | None = None) -> pl.DataFrame:
        from warehouse.metadata import read_models

        return read_models(self.layout, day, columns)


def analytics_section(plan: BenchPlan, work: Path, figures: Figures, say: Say) -> None:
    """Attribution plus metrics of the crawled snapshot against a bare read and against pandas: on a first
    day (every model attributed) and on a day after another (attributions updated from the day before).

    Each figure is taken in processes of its own, those of all figures taking turns over
    `ANALYTICS_ROUNDS` rounds: no figure depends on what ran before it in the same process, and a slow
    spell of a shared machine falls on every figure of a round rather than on one alone."""
    from analytics.attribution import attribute, registry_rows
    from analytics.registry import load_registry
    from flows.steps import attribute_date, attribution_inputs
    from warehouse.publish import publish_frame

    layout = Layout.at(work / "warehouse")
    files = AnalyticsFiles.of(layout)
    full = files.read_models(CRAWL_DAY)
    publish_frame(layout, MODELS, DAY_BEFORE, day_before(full, plan.seed), {"source_kind": "synthetic"}, force=True)
    del full
    say("analytics: the day before's attributions, by the refresh's own step")
    attribute_date(layout, DAY_BEFORE, force=True)
    say("analytics: the crawled day's attributions, every model attributed")
    registry = load_registry()
    attributions = attribute(files.scan_models(), registry)
    made_with = publish_frame(
        layout, REGISTRY, CRAWL_DAY, registry_rows(registry), {"source_kind": "synthetic"}, force=True
    )
    provenance = {
        "source_kind": "synthetic",
        "registry_sha256": made_with["sha256"],
        "inputs": attribution_inputs(layout, CRAWL_DAY),
    }
    publish_frame(layout, ATTRIBUTIONS, CRAWL_DAY, attributions, provenance, force=True)
    del attributions
    measured: list[dict[str, Any]] = []
    for round_ in range(1, ANALYTICS_ROUNDS + 1):
        for name in MEASURES:
            say(f"analytics, round {round_} of {ANALYTICS_ROUNDS}: {name} in a process of its own")
            measured.append(measure_process(layout.root, name, plan.repeat))
    best: dict[str, float] = {}
    facts: dict[str, Any] = {}
    for values in measured:
        for key, value in values.items():
            if key.endswith("_s"):
                best[key] = min(value, best.get(key, math.inf))
            else:
                facts[key] = value
    facts["update_same"] = all(m["update_same"] for m in measured if "update_same" in m)
    figures.put("least", **{name: best[f"{name}_s"] for name in LEAST_WORK})
    for name in REFRESH_STEPS:
        say(f"analytics: the refresh's step {name} in a process of its own")
        figures.put("steps", **{name: step_process(layout.root, name)})
    read_s, read_update_s, metrics_s = best["read_s"], best["read_update_s"], best["metrics_s"]
    figures.put(
        "analytics",
        models=pl.scan_parquet(files.models).select(pl.len()).collect().item(),
        previous_models=pl.scan_parquet(files.previous).select(pl.len()).collect().item(),
        rounds=ANALYTICS_ROUNDS,
        read_seconds=read_s,
        attribute_seconds=best["attribute_s"],
        metrics_seconds=metrics_s,
        pipeline_ratio=(best["attribute_s"] + metrics_s) / read_s,
        read_update_seconds=read_update_s,
        update_seconds=best["update_s"],
        update_ratio=(best["update_s"] + metrics_s) / read_update_s,
        pandas_seconds=best["pandas_s"],
        pandas_ratio=best["pandas_s"] / metrics_s,
        **facts,
    )


def measure_process(warehouse: Path, name: str, repeat: int) -> dict[str, Any]:
    """Run `measure_worker` for one analytics figure in a process of its own; what it measured."""
    arguments = ["measure", name, "--warehouse", str(warehouse), "--repeat", str(repeat)]
    return bench_process(arguments, f"the analytics measure {name}")


def measure_worker(warehouse: Path, name: str, repeat: int) -> dict[str, Any]:
    """One analytics figure on the bench's files, best of `repeat` runs: seconds under keys ending `_s`."""
    return MEASURES[name](AnalyticsFiles.of(Layout.at(warehouse)), repeat)


def bare_read(files: AnalyticsFiles, repeat: int) -> dict[str, Any]:
    """One bare polars read of the columns attribution and metrics use; for a day after another, with what
    the update reads too: the day before's lineage inputs and its attributions."""

    def bare() -> tuple[pl.DataFrame, ...]:
        return (
            files.read_models(CRAWL_DAY, MODEL_COLUMNS),
            files.read_models(DAY_BEFORE, ["model_id", "downloads_all_time"]),
            pl.read_parquet(files.registry, columns=["entry", *CREDIT]),
        )

    def bare_update() -> tuple[pl.DataFrame, ...]:
        return (
            *bare(),
            files.read_models(DAY_BEFORE, list(INPUTS)),
            pl.read_parquet(files.previous_attributions),
        )

    return {"read_s": timed(bare, repeat)[0], "read_update_s": timed(bare_update, repeat)[0]}


def attribute_every_model(files: AnalyticsFiles, repeat: int) -> dict[str, Any]:
    """`attribute` of every model of the crawled day."""
    from analytics.attribution import attribute
    from analytics.registry import load_registry

    registry = load_registry()
    return {"attribute_s": timed(lambda: attribute(files.scan_models(), registry), repeat)[0]}


def update_from_day_before(files: AnalyticsFiles, repeat: int) -> dict[str, Any]:
    """`attribution_update` of the crawled day from the day before's, checked against `attribute`'s rows."""
    from analytics.attribution import attribution_update
    from analytics.registry import load_registry

    registry = load_registry()

    def update() -> tuple[pl.DataFrame, Any]:
        rows, made = attribution_update(
            files.scan_models(), registry, files.scan_previous(), pl.scan_parquet(files.previous_attributions)
        )
        return rows.collect(), made

    seconds, (updated, made) = timed(update, repeat)
    return {
        "update_s": seconds,
        "update_changed": made.changed,
        "update_recomputed": made.recomputed,
        "update_same": updated.equals(pl.read_parquet(files.attributions)),
    }


def polars_metrics(files: AnalyticsFiles) -> dict[str, pl.DataFrame]:
    """`metric_tables` of the crawled day against the day before."""
    from analytics.metrics import metric_tables
    from warehouse.query import rows_point_at_models

    scan = pl.scan_parquet
    by_row = rows_point_at_models(files.layout, CRAWL_DAY)
    return metric_tables(
        files.scan_models(),
        scan(files.attributions),
        files.scan_previous(),
        registry=scan(files.registry),
        by_row=by_row,
    )


def every_metric(files: AnalyticsFiles, repeat: int) -> dict[str, Any]:
    """`metric_tables` of the crawled day."""
    seconds, tables = timed(lambda: polars_metrics(files), repeat)
    return {
        "metrics_s": seconds,
        "shares_rows": tables["shares"].height,
        "concentration_rows": tables["concentration"].height,
    }


def every_metric_in_pandas(files: AnalyticsFiles, repeat: int) -> dict[str, Any]:
    """The same metrics in plain pandas, and how far they are from `metric_tables`' (not timed)."""
    seconds, theirs = timed(lambda: pandas_metrics(files.layout, files.attributions), repeat)
    tables = polars_metrics(files)
    return {
        "pandas_s": seconds,
        "pandas_max_share_diff": max_difference(tables["shares"], theirs["shares"], "share"),
        "pandas_max_hhi_diff": max_difference(tables["concentration"], theirs["concentration"], "hhi"),
        "pandas_max_gini_diff": max_difference(tables["concentration"], theirs["concentration"], "gini"),
    }


def least_work_of(files: AnalyticsFiles, repeat: int) -> dict[str, Any]:
    """`least_work` on the crawled day."""
    from analytics.registry import load_registry

    least = least_work(files.read_models(CRAWL_DAY, MODEL_COLUMNS), files.attributions, load_registry(), repeat)
    return {f"{name}_s": seconds for name, seconds in least.items()}


MEASURES: dict[str, Callable[[AnalyticsFiles, int], dict[str, Any]]] = {
    "bare read": bare_read,
    "attribute": attribute_every_model,
    "update": update_from_day_before,
    "metrics": every_metric,
    "pandas": every_metric_in_pandas,
    "least work": least_work_of,
}


LEAST_WORK = {
    "order_ids": "check the ids are in order, as a published day's are (the attribution sorts them only if not)",
    "uploader": "the uploader rule alone: each id's namespace, joined to the registry",
    "parents": "lineage's first step: the base models exploded and joined to the ids",
    "join": "the metrics' lookup of each attribution row's model: its downloads at `model_row`",
}


def least_work(models: pl.DataFrame, attributions_file: Path, registry: pl.DataFrame, repeat: int) -> dict[str, float]:
    """Seconds of the work attribution and metrics cannot skip, each step alone on frames in memory."""
    from analytics.attribution import namespace_of

    attributions = pl.read_parquet(attributions_file, columns=["model_row", "weight"])
    registry = registry.select("namespace", *CREDIT)
    index = pl.int_range(pl.len(), dtype=pl.UInt32)

    def parents() -> pl.DataFrame:
        links = models.select(index.alias("node"), pl.col("base_models").alias("parent_id")).explode("parent_id")
        ids = models.select(pl.col("model_id").alias("parent_id"), index.alias("parent"))
        return links.drop_nulls().join(ids, on="parent_id", how="left")

    steps: dict[str, Callable[[], Any]] = {
        "order_ids": lambda: models.get_column("model_id").is_sorted(),
        "uploader": lambda: models.select(namespace_of(pl.col("model_id"), pl.col("author")).alias("namespace")).join(
            registry, on="namespace", how="left", maintain_order="left"
        ),
        "parents": parents,
        "join": lambda: attributions.with_columns(pl.lit(models.get_column("downloads_30d")).gather("model_row")),
    }
    return {name: timed(step, repeat)[0] for name, step in steps.items()}


def max_difference(ours: pl.DataFrame, theirs: pl.DataFrame, column: str) -> float | None:
    """The largest absolute difference of `column` between two tables, over the rows of `theirs`."""
    keys = [c for c in theirs.columns if c in ("time_window", "population", "rule", "dimension", "actor")]
    joined = theirs.join(ours, on=keys, how="left", suffix="_ours")
    missing = joined.get_column(f"{column}_ours").is_null() & joined.get_column(column).is_not_null()
    if missing.any():
        return math.inf
    return joined.select((pl.col(column) - pl.col(f"{column}_ours")).abs().max()).item()


def pandas_metrics(layout: Layout, attributions_file: Path) -> dict[str, pl.DataFrame]:
    """The `shares` and `concentration` tables in plain pandas: merges, a groupby per population and dimension.

    It covers what `analytics.metrics.metric_tables` computes: windows 30d, all_time and between, every
    population and rule, the four dimensions; shares with Unknown, and over known actors HHI, effective
    poles, entropy, exp(entropy), Gini and CR1/3/5. It reads the same Parquet files, and merges each day's
    models with the metadata versions it points at, as a pandas user of the warehouse would.
    """
    import pandas as pd

    from analytics.metrics import DIMENSIONS, LLM_PIPELINES, SIZE_CLASSES, WINDOWS

    daily = ["model_id", "downloads_30d", "downloads_all_time", "metadata_version"]
    models = pd.read_parquet(layout.partition_file(MODELS, CRAWL_DAY), columns=daily)
    kept = [str(layout.version_file(MODEL_METADATA, v)) for v in models["metadata_version"].unique()]
    metadata = pd.concat(
        pd.read_parquet(f, columns=["metadata_version", "model_id", "pipeline_tag", "params_total"]) for f in kept
    )
    models = models.merge(metadata, on=["metadata_version", "model_id"], how="left")
    previous = pd.read_parquet(layout.partition_file(MODELS, DAY_BEFORE), columns=["model_id", "downloads_all_time"])
    attributions = pd.read_parquet(attributions_file, columns=["model_id", "rule", "weight", *DIMENSIONS])
    previous = previous.rename(columns={"downloads_all_time": "previous"})
    models = models.merge(previous, on="model_id", how="left", indicator="listed")
    # A missing count stays missing: an actor none of whose models has one has downloads 0 and no known share.
    models["30d"] = models["downloads_30d"].astype("float64")
    models["all_time"] = models["downloads_all_time"].astype("float64")
    # A model listed the day before gains the change (unknown without both counts); one absent, its total.
    now = models["downloads_all_time"].astype("float64")
    gained = np.where(models["listed"] == "both", now - models["previous"].astype("float64"), now)
    models["between"] = pd.Series(gained, index=models.index).clip(lower=0)
    models["llm"] = models["pipeline_tag"].isin(LLM_PIPELINES)
    params = models["params_total"].astype("float64")
    models["size"] = np.select(
        [params.isna() | (params <= 0), params < 1e9, params < 1e10, params < 1e11],
        list(SIZE_CLASSES[-1:]) + list(SIZE_CLASSES[:3]),
        default=SIZE_CLASSES[3],
    )
    credited = attributions[attributions["weight"] > 0].merge(models, on="model_id", how="inner")
    for window in WINDOWS:
        credited[window] = credited[window] * credited["weight"]
    shares, concentration = [], []
    populations = {"all": None, "llm": credited["llm"], **{s: credited["size"] == s for s in SIZE_CLASSES}}
    for population, mask in populations.items():
        subset = credited if mask is None else credited[mask]
        for dimension in DIMENSIONS:
            actor = subset[dimension].fillna("Unknown").rename("actor")
            sums = subset.groupby([subset["rule"], actor])[list(WINDOWS)].sum(min_count=1).reset_index()
            long = sums.melt(id_vars=["rule", "actor"], var_name="time_window", value_name="downloads")
            total = long.groupby(["rule", "time_window"])["downloads"].transform("sum")
            counted = (total > 0) & long["downloads"].notna()
            long["share"] = np.where(counted, long["downloads"] / total.where(total > 0, 1), np.nan)
            long["downloads"] = long["downloads"].fillna(0.0)
            long["population"], long["dimension"] = population, dimension
            shares.append(long)
            known = long[(long["actor"] != "Unknown") & (long["downloads"] > 0)].copy()
            known["share"] = known["downloads"] / known.groupby(["rule", "time_window"])["downloads"].transform("sum")
            for (rule, window), group in known.groupby(["rule", "time_window"]):
                values = np.sort(group["downloads"].to_numpy())
                share = group["share"].to_numpy()
                n = len(values)
                ranks = np.arange(1, n + 1)
                top = np.sort(share)[::-1]
                hhi = float((share**2).sum())
                entropy = float(-(share[share > 0] * np.log(share[share > 0])).sum())
                concentration.append(
                    {
                        "time_window": window,
                        "population": population,
                        "rule": rule,
                        "dimension": dimension,
                        "downloads": float(values.sum()),
                        "hhi": hhi,
                        "effective_poles": 1 / hhi,
                        "entropy": entropy,
                        "exp_entropy": math.exp(entropy),
                        "gini": float(((2 * ranks - n - 1) * values).sum() / (n * values.sum())),
                        "cr1": float(top[:1].sum()),
                        "cr3": float(top[:3].sum()),
                        "cr5": float(top[:5].sum()),
                        "actors": n,
                    }
                )
    return {
        "shares": pl.from_pandas(pd.concat(shares, ignore_index=True)),
        "concentration": pl.DataFrame(concentration),
    }


# -- 3. history ------------------------------------------------------------------------------------------


def history_section(plan: BenchPlan, work: Path, figures: Figures, say: Say) -> None:
    """`days` daily partitions of every table, their bytes, and an analyst's series over them in DuckDB."""
    from analytics.attribution import registry_rows
    from analytics.registry import load_registry
    from flows.steps import attribution_inputs, metrics_date
    from warehouse.metadata import read_models
    from warehouse.publish import publish_frame, publish_staged, staging_file

    source = Layout.at(work / "warehouse")
    base = read_models(source, CRAWL_DAY)
    attributions_file = source.partition_file(ATTRIBUTIONS, CRAWL_DAY)
    attribution_rows = pl.scan_parquet(attributions_file).select(pl.len()).collect().item()
    registry = registry_rows(load_registry())
    layout = Layout.at(work / "history")
    say(f"history: writing {plan.days} daily partitions of {base.height:,} models")
    began = time.perf_counter()
    write = {"models": 0.0, "attributions": 0.0, "metrics": 0.0}
    for index in range(plan.days):
        day = HISTORY_START + dt.timedelta(days=index)
        t0 = time.perf_counter()
        base = touched(base, index, plan.seed)
        frame = drifted(base, index - plan.days + 1, plan.seed)
        publish_frame(layout, MODELS, day, frame, {"source_kind": "synthetic"}, force=True)
        t1 = time.perf_counter()
        made_with = publish_frame(layout, REGISTRY, day, registry, {"source_kind": "synthetic"}, force=True)
        staged = staging_file(layout, ATTRIBUTIONS, day)
        shutil.copyfile(attributions_file, staged)
        # A history's day changes counts and `last_modified` only, never the ids, their order or the lineage
        # inputs: the crawled day's attributions are the day's own, made from its models as published.
        provenance = {
            "source_kind": "synthetic",
            "registry_sha256": made_with["sha256"],
            "inputs": attribution_inputs(layout, day),
        }
        publish_staged(layout, ATTRIBUTIONS, day, staged, provenance, rows=attribution_rows, force=True)
        t2 = time.perf_counter()
        metrics_date(layout, day, force=True)
        t3 = time.perf_counter()
        write["models"] += t1 - t0
        write["attributions"] += t2 - t1
        write["metrics"] += t3 - t2
        if (index + 1) % 10 == 0:
            say(f"history: {index + 1} days written")
    lookup_ids = base.get_column("model_id").sample(LOOKUP_MODELS, seed=plan.seed).sort().to_list()
    del base
    sizes = partition_bytes(layout)
    figures.put(
        "history",
        days=plan.days,
        models=figures.sections["analytics"]["models"],
        write_seconds=round(time.perf_counter() - began, 1),
        **{f"write_{k}_seconds_per_day": v / plan.days for k, v in write.items()},
        **sizes,
    )
    figures.put("columns", **column_bytes(layout, HISTORY_START))
    say("history: country shares in DuckDB, from the metric tables and from the raw tables")
    figures.put("queries", **country_share_queries(layout))
    say(f"history: {LOOKUP_MODELS} models' downloads on every day, from the raw models table")
    figures.put("lookups", **model_lookups(layout, lookup_ids))
    say("history: crossovers and the dashboard of every day, the dashboard opened in headless Chromium")
    figures.put("dashboard", **history_dashboard(layout, HISTORY_START + dt.timedelta(days=plan.days - 1)))


def history_dashboard(layout: Layout, last: dt.date) -> dict[str, Any]:
    """The refresh's last steps over the history: crossovers of every day's shares as of the last day, and
    the dashboard of every day's metrics, opened in headless Chromium when there is one."""
    from dashboards.browser import check_in_browser, chromium_path
    from flows.steps import crossovers_date, dashboard_step

    crossovers_s, _ = timed(lambda: crossovers_date(layout, last, force=True))
    dashboard_s, drawn = timed(lambda: dashboard_step(layout, force=True))
    html = Path(drawn["html"])
    found = {
        "crossovers_seconds": crossovers_s,
        "dashboard_seconds": dashboard_s,
        "page_bytes": drawn["bytes"],
        "pngs": len(list(html.parent.glob("*.png"))),
    }
    if chromium_path() is None:
        return found
    report = check_in_browser(html, html.parent / "screenshot.png")
    return found | {
        "views": report.views,
        "views_drawn": len(report.rendered),
        "render_ms": report.render_ms,
        "console_errors": len(report.console_errors),
    }


def model_lookups(layout: Layout, ids: list[str]) -> dict[str, Any]:
    """A few models' 30-day downloads on every day from the raw `models` table: DuckDB's view and polars."""
    from warehouse.query import connect, sql_literal

    listing = ", ".join(sql_literal(model_id) for model_id in ids)
    sql = f"SELECT snapshot_date, model_id, downloads_30d FROM models WHERE model_id IN ({listing}) ORDER BY ALL"
    con = connect(layout)
    try:
        cold, found = timed(lambda: con.sql(sql).pl())
        warm, _ = timed(lambda: con.sql(sql).pl())
    finally:
        con.close()
    days = layout.published_dates(MODELS)
    files = [str(layout.partition_file(MODELS, day)) for day in days]
    scan = pl.scan_parquet(files, hive_partitioning=True).filter(pl.col("model_id").is_in(ids))
    polars_s, theirs = timed(lambda: scan.select("snapshot_date", "model_id", "downloads_30d").collect())
    same = theirs.sort("snapshot_date", "model_id")["downloads_30d"].equals(found["downloads_30d"])
    # The same models with metadata: DuckDB's `models` view, and the warehouse's polars reader day by day.
    described = sql.replace("downloads_30d FROM", "downloads_30d, pipeline_tag, tags FROM")
    con = connect(layout)
    try:
        timed(lambda: con.sql(described).pl())
        described_s, with_metadata = timed(lambda: con.sql(described).pl())
    finally:
        con.close()
    readers = pl.concat([layout.scan(MODELS, day).with_columns(snapshot_date=pl.lit(day)) for day in days])
    columns = ["snapshot_date", "model_id", "downloads_30d", "pipeline_tag", "tags"]
    scan_models_s, read = timed(lambda: readers.filter(pl.col("model_id").is_in(ids)).select(columns).collect())
    return {
        "models": len(ids),
        "rows": found.height,
        "duckdb_cold": cold,
        "duckdb_warm": warm,
        "polars": polars_s,
        "same": same,
        "duckdb_metadata": described_s,
        "scan_models": scan_models_s,
        "scan_models_same": read.sort("snapshot_date", "model_id").equals(with_metadata.select(columns)),
    }


def partition_bytes(layout: Layout) -> dict[str, float]:
    """Mean bytes on disk per snapshot day of each table, and their total."""
    out: dict[str, float] = {}
    days = len(layout.published_dates(MODELS))
    for table in (MODELS, ATTRIBUTIONS, REGISTRY, SHARES, CONCENTRATION):
        files = layout.published_files(table)
        out[f"bytes_{table.name}"] = sum(f.stat().st_size for f in files) / len(files)
    versions = [layout.version_file(MODEL_METADATA, v) for v in layout.published_versions(MODEL_METADATA)]
    out["bytes_model_metadata"] = sum(f.stat().st_size for f in versions[1:]) / max(days - 1, 1)
    out["bytes_model_metadata_first"] = versions[0].stat().st_size if versions else 0
    out["bytes_per_day"] = sum(v for k, v in out.items() if k != "bytes_model_metadata_first")
    out["bytes_total"] = sum(f.stat().st_size for f in layout.root.rglob("*.parquet"))
    return out


def column_bytes(layout: Layout, day: dt.date) -> dict[str, int]:
    """Compressed bytes of each column of one day's models and attributions files."""
    import pyarrow.parquet as pq

    out: dict[str, int] = {}
    files = [(MODELS, layout.partition_file(MODELS, day)), (ATTRIBUTIONS, layout.partition_file(ATTRIBUTIONS, day))]
    versions = layout.published_versions(MODEL_METADATA)
    if versions:
        files.append((MODEL_METADATA, layout.version_file(MODEL_METADATA, versions[0])))
    for table, file in files:
        meta = pq.ParquetFile(file).metadata
        for group in range(meta.num_row_groups):
            row_group = meta.row_group(group)
            for c in range(row_group.num_columns):
                column = row_group.column(c)
                name = f"{table.name}.{column.path_in_schema.split('.')[0]}"
                out[name] = out.get(name, 0) + column.total_compressed_size
    return out


METRIC_QUERY = """
SELECT snapshot_date, actor AS country, share
FROM shares
WHERE time_window = '30d' AND population = 'all' AND rule = 'uploader' AND dimension = 'country'
ORDER BY snapshot_date, country
"""


def country_shares(downloads_sql: str) -> str:
    """The analyst's country-share series from a query of each date's credited downloads per country."""
    return f"""
WITH per_country AS ({downloads_sql})
SELECT snapshot_date, country,
       CASE WHEN sum(downloads) OVER (PARTITION BY snapshot_date) > 0
            THEN downloads / sum(downloads) OVER (PARTITION BY snapshot_date) ELSE 0 END AS share
FROM per_country
ORDER BY snapshot_date, country
"""


RAW_QUERY = country_shares("""
    SELECT m.snapshot_date, coalesce(a.country, 'Unknown') AS country,
           sum(coalesce(m.downloads_30d, 0) * a.weight) AS downloads
    FROM models m JOIN attributions a ON a.snapshot_date = m.snapshot_date AND a.model_id = m.model_id
    WHERE a.rule = 'uploader' AND a.weight > 0
    GROUP BY ALL
""")
CREDITED_QUERY = country_shares("""
    SELECT snapshot_date, coalesce(country, 'Unknown') AS country,
           sum(coalesce(downloads_30d, 0) * weight) AS downloads
    FROM credited
    WHERE rule = 'uploader' AND weight > 0
    GROUP BY ALL
""")
QUERIES = {"metrics": METRIC_QUERY, "raw": RAW_QUERY, "credited": CREDITED_QUERY}


def country_share_queries(layout: Layout) -> dict[str, Any]:
    """The same country-share series from the metric tables and from the raw tables, timed cold and warm."""
    from warehouse.query import connect

    out: dict[str, Any] = {}
    results = {}
    for name, sql in QUERIES.items():
        con = connect(layout)
        try:
            with RssSampler() as memory:
                start = memory.peak
                cold, results[name] = timed(lambda sql=sql, con=con: con.sql(sql).pl())
                warm, _ = timed(lambda sql=sql, con=con: con.sql(sql).pl())
        finally:
            con.close()
        out[f"{name}_cold_seconds"], out[f"{name}_warm_seconds"] = cold, warm
        out[f"{name}_rows"] = results[name].height
        out[f"{name}_added_rss"] = memory.peak - start
    for name in ("raw", "credited"):
        joined = results["metrics"].join(results[name], on=["snapshot_date", "country"], how="full", suffix="_other")
        out[f"{name}_max_share_diff"] = joined.select((pl.col("share") - pl.col("share_other")).abs().max()).item()
        out[f"{name}_over_metrics"] = out[f"{name}_warm_seconds"] / out["metrics_warm_seconds"]
    return out


# -- the report ------------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    """CPU model, cores and memory from /proc, the OS and Python."""
    cpu = "unknown"
    with contextlib.suppress(OSError):
        found = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = found.group(1).strip() if found else cpu
    memory = None
    with contextlib.suppress(OSError, AttributeError):
        found = re.search(r"^MemTotal:\s+(\d+) kB", Path("/proc/meminfo").read_text(), re.M)
        memory = int(found.group(1)) * 1024 if found else None
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory": memory,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    from warehouse.provenance import short_code_version

    found = {"multipolar": short_code_version()}
    for name in LIBRARIES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def _gb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e9:.2f} GB"


def _mb(n: float | None) -> str:
    if n is None:
        return "n/a"
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.1f} kB"


def _made(step: dict[str, Any]) -> str:
    """What a step's own summary said it updated from, when it did."""
    return f" (it said: updated from {step['updated_from']})" if step.get("updated_from") else ""


def _x(r: float) -> str:
    return f"{r:.2f}×"


def _verdict(ok: bool) -> str:
    return "met" if ok else "**not met**"


def report_section(plan: BenchPlan, figures: Figures, started: dt.datetime) -> str:
    """The markdown of one run."""
    f = figures.sections
    box, v = machine(), versions()
    w, c, ab, r, a = f["world"], f["crawl"], f["crawl_ab"], f["rows"], f["analytics"]
    h, q, lk, run = f["history"], f["queries"], f["lookups"], f["run"]
    least = f["least"]
    least_sum = sum(least[name] for name in LEAST_WORK)
    mode = "quick" if plan.quick else "full"
    command = "uv run multipolar bench" + (" --quick" if plan.quick else "")
    if (plan.models, plan.days) != (
        QUICK_MODELS if plan.quick else FULL_MODELS,
        QUICK_DAYS if plan.quick else FULL_DAYS,
    ):
        command += f" --models {plan.models} --days {plan.days}"
    if plan.latency != LATENCY:
        command += f" --latency {plan.latency}"
    ratio_ab = ab["sequential_seconds"] / ab["ahead_seconds"]
    lines = [
        f"## Run: {mode} ({plan.models:,} models, {plan.days} days)",
        "",
        f"- command: `{command}`, {started:%Y-%m-%d %H:%M} UTC, {run['seconds']:.0f} s in all",
        f"- machine: {box['cpu']}, {box['cores']} cores, {_gb(box['memory'])} RAM; {box['os']}; Python {box['python']}",
        f"- load average (1/5/15 min) before: {_load(run['load_before'])}, after: {_load(run['load_after'])}"
        " (other jobs share the machine)",
        "- versions: " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "",
        "### Crawl",
        "",
        f"A synthetic world of {w['models']:,} models (generated in {w['generate_seconds']} s, "
        f"{_mb(w['jsonl_bytes'])} of JSONL) served by `python -m flows.standin_hub --latency {plan.latency}` "
        f"in its own process (loaded and indexed in {h_s(f['standin']['load_seconds'])}, {_gb(f['standin']['rss'])} "
        "RSS, not counted below); the crawl (`crawl_to_staging`, then `publish_models`) in another.",
        "",
        "| figure | measured | aim | |",
        "|---|---|---|---|",
        f"| requests / minimum ceil({c['models']:,} / {c['page_size']}) | {c['requests']:,} / {c['requests_min']:,}"
        f" = {_x(c['requests'] / c['requests_min'])} | 1× | {_verdict(c['requests'] == c['requests_min'])} |",
        f"| crawl wall time / injected latency ({c['requests']:,} × {c['latency']} s = {c['latency_injected']} s) "
        f"| {c['crawl_seconds']} s = {_x(c['wall_ratio'])} | ≤ 1.10× | {_verdict(c['wall_ratio'] <= 1.1)} |",
        f"| peak RSS of the crawl process, crawl only | {_gb(c['peak_rss_crawl'])} | < 1 GB "
        f"| {_verdict(c['peak_rss_crawl'] < 1e9)} |",
        f"| peak RSS of the crawl process, crawl + assemble + publish | {_gb(c['peak_rss'])} | < 1 GB "
        f"| {_verdict(c['peak_rss'] < 1e9)} |",
        f"| CPU time of the crawl process | {c['cpu_seconds']} s | | |",
        f"| assemble + publish the models partition | {c['publish_seconds']} s, {_mb(c['models_bytes'])} and "
        f"{_mb(c.get('metadata_bytes'))} of metadata kept | | |",
        "",
        f"The same first {ab['pages']} pages, fetched one after another and ahead: each page requested as soon as "
        "the one before names it, and parsed, converted and written while the next is on its way:",
        "",
        "| crawl of the first pages | wall | / injected latency |",
        "|---|---|---|",
        f"| one after another | {ab['sequential_seconds']:.1f} s | {_x(ab['sequential_ratio'])} |",
        f"| fetched ahead | {ab['ahead_seconds']:.1f} s | {_x(ab['ahead_ratio'])} |",
        f"| speed-up | {_x(ratio_ab)} | |",
        "",
        f"One page of {plan.page_size} items in the crawl process: JSON parse {r['parse_ms']:.1f} ms, "
        f"`model_rows` {r['convert_ms']:.1f} ms, Parquet write + fsync {r['write_ms']:.1f} ms.",
        "",
        "### Attribution and metrics",
        "",
        f"The crawled snapshot ({a['models']:,} models) and the day before ({a['previous_models']:,} models: "
        "the newest 0.1 % not yet made, as many repos that nobody names as a base not yet deleted, as the "
        "synthetic Hub turns over in a day, and all-time downloads a day's worth lower; `flows.bench.day_before`), "
        f"each figure the best of {plan.repeat} runs in each of {a['rounds']} processes of its own, the processes "
        "of all figures taking turns (`flows.bench.MEASURES`). A first day attributes every model; a day after "
        "another updates the day before's attributions (`attribution_update`), which the refresh does whenever "
        "the day before was attributed by the same rules with the same registry. Its bare read adds what the "
        "update reads too: the day before's lineage inputs and its attributions.",
        "",
        "| figure | seconds | ratio | aim | |",
        "|---|---|---|---|---|",
        f"| bare polars read of the columns used (models: {len(MODEL_COLUMNS)}, previous: 2, registry: "
        f"{1 + len(CREDIT)}) | {a['read_seconds']:.2f} | 1× | | |",
        f"| attribution of every model, three rules (`attribute`) | {a['attribute_seconds']:.2f} | | | |",
        f"| every metric (`metric_tables` with the date's registry: {a['shares_rows']:,} shares, "
        f"{a['concentration_rows']} concentration rows) "
        f"| {a['metrics_seconds']:.2f} | | | |",
        f"| first day: attribution + metrics / bare read | {a['attribute_seconds'] + a['metrics_seconds']:.2f} "
        f"| {_x(a['pipeline_ratio'])} | ≤ 3× | {_verdict(a['pipeline_ratio'] <= 3)} |",
        f"| bare read for a day after another (adds the day before's {len(INPUTS)} lineage input columns and its "
        f"attributions) | {a['read_update_seconds']:.2f} | 1× | | |",
        f"| attribution updated from the day before (`attribution_update`: {a['update_changed']:,} ids changed, "
        f"{a['update_recomputed']:,} models attributed again; the same rows as `attribute`: "
        f"{'yes' if a['update_same'] else '**no**'}) | {a['update_seconds']:.2f} | | | |",
        f"| a day after another: updated attribution + metrics / its bare read | "
        f"{a['update_seconds'] + a['metrics_seconds']:.2f} | {_x(a['update_ratio'])} | ≤ 3× "
        f"| {_verdict(a['update_ratio'] <= 3 and a['update_same'])} |",
        f"| the same metrics in plain pandas / `metric_tables` | {a['pandas_seconds']:.2f} "
        f"| {_x(a['pandas_ratio'])} | ≥ 5× | {_verdict(a['pandas_ratio'] >= 5)} |",
        "",
        "The pandas baseline (`flows.bench.pandas_metrics`) reads the same Parquet files and computes the same "
        "tables: three windows, every population, rule and dimension; shares with Unknown; HHI, effective poles, "
        "entropy, exp(entropy), Gini and CR1/3/5 over known actors. It agrees with `metric_tables` to "
        f"{a['pandas_max_share_diff']:.1e} (shares), {a['pandas_max_hhi_diff']:.1e} (HHI), "
        f"{a['pandas_max_gini_diff']:.1e} (Gini).",
        "",
        "The refresh's own steps on this snapshot, each in a process of its own: the time and memory a daily "
        "refresh of this many models takes, writing included.",
        "",
        "| step | wall | peak RSS (`VmHWM`) |",
        "|---|---|---|",
        f"| the crawl, then assemble + publish the models (above) | {c['crawl_seconds'] + c['publish_seconds']:.1f} s "
        f"| {_gb(c['peak_rss'])} |",
        *[
            f"| {text}{_made(f['steps'][k])} | {f['steps'][k]['seconds']:.1f} s | {_gb(f['steps'][k]['peak_rss'])} |"
            for k, text in REFRESH_STEPS.items()
        ],
        "",
        "What the ≤ 3× aim leaves room for: the work a full pass over a snapshot cannot skip, each step "
        "on its own from frames already in memory (`flows.bench.least_work`), measured as the figures above:",
        "",
        "| step | seconds | / bare read |",
        "|---|---|---|",
        *[f"| {text} | {least[k]:.2f} | {_x(least[k] / a['read_seconds'])} |" for k, text in LEAST_WORK.items()],
        f"| these steps together | {least_sum:.2f} | {_x(least_sum / a['read_seconds'])} |",
        "",
        f"Before any lineage walk, evidence, sum or share, these steps alone are {_x(least_sum / a['read_seconds'])} "
        f"the bare read, {'above' if least_sum / a['read_seconds'] > 3 else 'within'} the 3× aim.",
        "",
        "### A history of daily snapshots",
        "",
        f"{h['days']} daily partitions of {h['models']:,} models, written through the warehouse: each day's models "
        "are the crawled snapshot with 30-day downloads drifted (log-normal, 5 % a day), all-time downloads "
        f"moved by a day's worth per day and {TOUCHED_PER_DAY:.1%} of the models changed (a new `last_modified`: "
        "the synthetic world's births and touched repos a day) (`publish_frame`); its attributions are the "
        "crawled snapshot's file "
        "(`publish_staged`: the ids and their rows do not change, so neither do the attributions, and their "
        "`_meta` names the day's models file they belong to), beside the registry they "
        "were made with; its metrics are computed "
        "by the refresh's own `metrics_date`. Generating and crawling that many worlds would take hours and "
        f"measure nothing new. Written in {h['write_seconds']} s (per day: models "
        f"{h['write_models_seconds_per_day']:.1f} s, attributions {h['write_attributions_seconds_per_day']:.1f} s, "
        f"metrics {h['write_metrics_seconds_per_day']:.1f} s).",
        "",
        "| bytes on disk per snapshot day | |",
        "|---|---|",
        f"| models (each day's counts, pointing at the metadata kept) | {_mb(h['bytes_models'])} |",
        f"| model metadata new or changed that day (`model_metadata` versions after the first) "
        f"| {_mb(h['bytes_model_metadata'])} |",
        f"| attributions | {_mb(h['bytes_attributions'])} |",
        f"| registry | {_mb(h['bytes_registry'])} |",
        f"| metrics (shares + concentration) | {_mb(h['bytes_shares'] + h['bytes_concentration'])} |",
        f"| all | {_mb(h['bytes_per_day'])} |",
        "| kept once: the first day's metadata (`model_metadata` version 1) "
        f"| {_mb(h['bytes_model_metadata_first'])} |",
        f"| a year of days | {_gb(h['bytes_model_metadata_first'] + h['bytes_per_day'] * 365)} |",
        "",
        "Largest columns of one day (and of the metadata kept once): " + largest_columns(f["columns"]) + ".",
        "",
        "An analyst's country-share series (30-day downloads, all models, uploader rule) over every day, "
        "through the warehouse's DuckDB views (`multipolar sql`):",
        "",
        "| query | first run | second run | rows | memory it added to the process |",
        "|---|---|---|---|---|",
        f"| from the metric tables (`shares`) | {q['metrics_cold_seconds']:.3f} s | {q['metrics_warm_seconds']:.3f} s "
        f"| {q['metrics_rows']:,} | {_gb(q['metrics_added_rss'])} |",
        f"| from the raw tables (`models` ⋈ `attributions`, one join) | {q['raw_cold_seconds']:.2f} s "
        f"| {q['raw_warm_seconds']:.2f} s | {q['raw_rows']:,} | {_gb(q['raw_added_rss'])} |",
        "| from the raw tables through the `credited` view (one join per date, on `model_row`) "
        f"| {q['credited_cold_seconds']:.2f} s | {q['credited_warm_seconds']:.2f} s | {q['credited_rows']:,} "
        f"| {_gb(q['credited_added_rss'])} |",
        "",
        "All three give the same series (largest share difference from the metric tables: "
        f"{q['raw_max_share_diff']:.1e} for the one join, {q['credited_max_share_diff']:.1e} for `credited`); the "
        f"metric tables answer {q['raw_over_metrics']:.0f}× faster than the one join and "
        f"{q['credited_over_metrics']:.0f}× faster than `credited`.",
        "",
        f"An analyst's look at {lk['models']} models (drawn at random) on every day: `SELECT snapshot_date, model_id, "
        "downloads_30d FROM models WHERE model_id IN (…)` through the DuckDB view, and the same filter on polars' "
        "`scan_parquet` of the partitions. `models` rows are in `model_id` order, so each file's row groups whose "
        "id range holds none of them are skipped.",
        "",
        "| lookup | seconds | rows |",
        "|---|---|---|",
        f"| DuckDB view, first run | {lk['duckdb_cold']:.2f} s | {lk['rows']:,} |",
        f"| DuckDB view, second run | {lk['duckdb_warm']:.2f} s | {lk['rows']:,} |",
        f"| polars `scan_parquet(…).filter(…)` | {lk['polars']:.2f} s "
        f"| {'the same rows' if lk['same'] else 'OTHER ROWS'} |",
        f"| with `pipeline_tag` and `tags`: DuckDB view, second run | {lk['duckdb_metadata']:.2f} s | {lk['rows']:,} |",
        f"| with `pipeline_tag` and `tags`: `Layout.scan(MODELS, day)` of every day, concatenated and filtered "
        f"| {lk['scan_models']:.2f} s | {'the same rows' if lk['scan_models_same'] else 'OTHER ROWS'} |",
        "",
        dashboard_sentence(f["dashboard"], h["days"]),
    ]
    return "\n".join(lines)


def dashboard_sentence(d: dict[str, Any], days: int) -> str:
    """What the refresh's last steps took over the history, and what the browser saw of the dashboard."""
    said = (
        f"The refresh's last steps over the {days} days: crossovers {d['crossovers_seconds']:.1f} s; the dashboard "
        f"of every day's metrics (`multipolar dashboard`) {d['dashboard_seconds']:.1f} s, a page of "
        f"{_mb(d['page_bytes'])} and {d['pngs']} PNGs"
    )
    if "views" not in d:
        return said + " (no Chromium here: the page was not opened)."
    render = "n/a" if d["render_ms"] is None else f"{d['render_ms']:.0f} ms"
    return (
        f"{said}; headless Chromium drew marks in {d['views_drawn']} of {d['views']} views in {render}, with "
        f"{d['console_errors']} console errors."
    )


def h_s(seconds: float) -> str:
    return f"{seconds:.0f} s"


def _load(values: Any) -> str:
    return "/".join(f"{x:.2f}" for x in values)


def largest_columns(sizes: dict[str, int], n: int = 6) -> str:
    ranked = sorted(sizes.items(), key=lambda kv: kv[1], reverse=True)[:n]
    return ", ".join(f"`{name}` {_mb(size)}" for name, size in ranked)


REPORT_HEAD = """# Benchmarks

Measured by `uv run multipolar bench` (`flows/bench.py`) against the limits of DESIGN.md's Scale
section. Each run rewrites its own section below; the rest of this page is kept as it is.
"""


def write_report(plan: BenchPlan, figures: Figures, started: dt.datetime) -> None:
    """Replace this run's section of the report (quick or full), keeping every other part of the page."""
    mode = "quick" if plan.quick else "full"
    begin, end = f"<!-- bench:{mode}:begin -->", f"<!-- bench:{mode}:end -->"
    section = f"{begin}\n{report_section(plan, figures, started)}\n{end}"
    text = plan.out.read_text() if plan.out.is_file() else REPORT_HEAD
    if begin in text and end in text:
        text = text[: text.index(begin)] + section + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    plan.out.write_text(text)


def _root() -> Path:
    return Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> None:
    """`python -m flows.bench crawl|step|measure …`: a process of the benchmark; prints its figures as JSON."""
    parser = argparse.ArgumentParser(prog="python -m flows.bench")
    commands = parser.add_subparsers(dest="command", required=True)
    crawl = commands.add_parser("crawl")
    crawl.add_argument("--endpoint", required=True)
    crawl.add_argument("--warehouse", required=True, type=Path)
    crawl.add_argument("--mode", choices=("sequential", "ahead"), default="ahead")
    crawl.add_argument("--max-pages", type=int)
    step = commands.add_parser("step")
    step.add_argument("name", choices=tuple(REFRESH_STEPS))
    step.add_argument("--warehouse", required=True, type=Path)
    measure = commands.add_parser("measure")
    measure.add_argument("name", choices=tuple(MEASURES))
    measure.add_argument("--warehouse", required=True, type=Path)
    measure.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "step":
        figures = step_worker(args.warehouse, args.name)
    elif args.command == "measure":
        figures = measure_worker(args.warehouse, args.name, args.repeat)
    else:
        figures = crawl_worker(args.endpoint, args.warehouse, mode=args.mode, max_pages=args.max_pages)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
