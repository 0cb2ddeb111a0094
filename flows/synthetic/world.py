"""Hub listing items from an ecosystem: frames in the Hub's own field names, and JSONL files of them."""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from flows.scope import EXPAND
from flows.synthetic.catalogue import LLM_PIPELINES
from flows.synthetic.ecosystem import PLACEHOLDER_CREATED, Ecosystem, SeriesSpec, advance
from flows.synthetic.ecosystem import start as start_ecosystem

# Field order of one listing item, as /api/models returns it with every expand below.
HUB_FIELDS = ("id", *EXPAND)
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.3fZ"
CHUNK_ROWS = 250_000


def listing(eco: Ecosystem, rows: slice | None = None) -> pl.DataFrame:
    """Live models of `eco.day` (within `rows`), Hub field names; tags as JSON text, sizes as integers."""
    rows = rows or slice(0, eco.models.height)
    models = eco.models[rows]
    created = pl.lit(pl.Series(eco.created_ms[rows]))
    placeholder_ms = int(PLACEHOLDER_CREATED.timestamp() * 1000)
    frame = models.select(
        id="id",
        author="author",
        createdAt=pl.when(created < placeholder_ms)
        .then(pl.lit(PLACEHOLDER_CREATED.strftime("%Y-%m-%dT%H:%M:%S.000Z")))
        .otherwise(pl.from_epoch(created, "ms").dt.strftime(TIME_FORMAT)),
        lastModified=pl.from_epoch(pl.lit(pl.Series(eco.modified_ms[rows])), "ms").dt.strftime(TIME_FORMAT),
        downloads=pl.lit(pl.Series(eco.downloads[rows])),
        downloadsAllTime=pl.lit(pl.Series(eco.all_time[rows])),
        likes=pl.lit(pl.Series(eco.likes[rows])),
        trendingScore=pl.lit(pl.Series(eco.trending[rows])),
        tags=_tag_text(),
        pipeline_tag="pipeline_tag",
        library_name="library_name",
        gated="gated",
        params=pl.when(pl.col("has_safetensors")).then(pl.col("params").round().cast(pl.Int64)),
    )
    return frame.filter(pl.Series(eco.alive[rows]))


def world_frame(eco: Ecosystem, rows: slice | None = None) -> pl.DataFrame:
    """Listing items of the models live on `eco.day`, one per row, in the Hub's field names and shapes.

    `gated` holds "false", "auto" or "manual" (the JSONL files carry the Hub's boolean false).
    """
    return listing(eco, rows).select(
        *HUB_FIELDS[:8],
        tags=pl.col("tags").str.strip_chars('"').str.split('","'),
        pipeline_tag="pipeline_tag",
        library_name="library_name",
        gated="gated",
        safetensors=pl.when(pl.col("params").is_not_null()).then(
            pl.struct(parameters=pl.struct(BF16="params"), total="params")
        ),
        private=pl.lit(False),
    )


def json_lines(items: pl.DataFrame) -> bytes:
    """A `listing` frame as JSON lines, spelled as the Hub spells them (no `safetensors` when unsized).

    Every synthetic string is drawn from a fixed vocabulary without quotes or backslashes, so strings
    are quoted as they are.
    """

    def text(name: str) -> pl.Expr:
        return pl.when(pl.col(name).is_null()).then(pl.lit("null")).otherwise(_quoted(pl.col(name)))

    line = pl.concat_str(
        pl.lit('{"id":'),
        _quoted(pl.col("id")),
        pl.lit(',"author":'),
        _quoted(pl.col("author")),
        pl.lit(',"createdAt":'),
        _quoted(pl.col("createdAt")),
        pl.lit(',"lastModified":'),
        _quoted(pl.col("lastModified")),
        pl.lit(',"downloads":'),
        pl.col("downloads").cast(pl.String),
        pl.lit(',"downloadsAllTime":'),
        pl.col("downloadsAllTime").cast(pl.String),
        pl.lit(',"likes":'),
        pl.col("likes").cast(pl.String),
        pl.lit(',"trendingScore":'),
        pl.col("trendingScore").cast(pl.String),
        pl.lit(',"tags":['),
        pl.col("tags"),
        pl.lit('],"pipeline_tag":'),
        text("pipeline_tag"),
        pl.lit(',"library_name":'),
        text("library_name"),
        pl.lit(',"gated":'),
        pl.when(pl.col("gated") == "false").then(pl.lit("false")).otherwise(_quoted(pl.col("gated"))),
        pl.when(pl.col("params").is_null())
        .then(pl.lit(""))
        .otherwise(pl.format(',"safetensors":{{"parameters":{{"BF16":{}}},"total":{}}}', "params", "params")),
        pl.lit(',"private":false}'),
    )
    buffer = io.BytesIO()
    items.select(line=line).write_csv(buffer, include_header=False, quote_style="never")
    return buffer.getvalue()


def generate_world(
    n_models: int,
    *,
    seed: int = 0,
    day: dt.date,
    crossover: dt.date = SeriesSpec.crossover,
    swing: float = SeriesSpec.swing,
    width_days: float = SeriesSpec.width_days,
) -> pl.DataFrame:
    """One synthetic Hub listing of `n_models` models on `day` (the first world of the same series)."""
    spec = SeriesSpec(n_models, day, seed, crossover, swing, width_days)
    return world_frame(start_ecosystem(spec))


def series_spec(
    n_models: int,
    days: int,
    start: dt.date,
    seed: int = 0,
    *,
    crossover_day: int | None = None,
    swing: float = SeriesSpec.swing,
    birth_rate: float = SeriesSpec.birth_rate,
) -> SeriesSpec:
    """A series of `days` worlds from `start` whose China/US LLM crossover falls on day `crossover_day`."""
    crossover_day = days // 2 if crossover_day is None else crossover_day
    return SeriesSpec(
        n_models=n_models,
        start=start,
        seed=seed,
        crossover=start + dt.timedelta(days=crossover_day),
        swing=swing,
        width_days=max(days / 4, 1.0),
        birth_rate=birth_rate,
    )


def evolve(spec: SeriesSpec, days: int) -> Iterator[Ecosystem]:
    """The ecosystem on each of `days` days from `spec.start` (one object, advanced in place)."""
    eco = start_ecosystem(spec)
    yield eco
    for _ in range(days - 1):
        yield advance(eco)


def worlds(
    n_models: int,
    days: int,
    start: dt.date,
    seed: int = 0,
    *,
    crossover_day: int | None = None,
    swing: float = SeriesSpec.swing,
    birth_rate: float = SeriesSpec.birth_rate,
) -> Iterator[tuple[dt.date, pl.DataFrame]]:
    """(date, listing frame) for each day of a daily series; China passes the US on `crossover_day`."""
    spec = series_spec(n_models, days, start, seed, crossover_day=crossover_day, swing=swing, birth_rate=birth_rate)
    for eco in evolve(spec, days):
        yield eco.day, world_frame(eco)


def write_world(eco: Ecosystem, path: Path) -> Path:
    """Write the live models of `eco.day` to `path` as JSONL, in chunks, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    with partial.open("wb") as out:
        for first in range(0, eco.models.height, CHUNK_ROWS):
            out.write(json_lines(listing(eco, slice(first, first + CHUNK_ROWS))))
    os.replace(partial, path)
    return path


def write_worlds(
    out_dir: Path | str,
    n_models: int,
    days: int,
    start: dt.date,
    seed: int = 0,
    *,
    crossover_day: int | None = None,
    swing: float = SeriesSpec.swing,
    birth_rate: float = SeriesSpec.birth_rate,
) -> list[Path]:
    """`world-YYYY-MM-DD.jsonl` in `out_dir` for each day of the series; returns the paths in date order."""
    spec = series_spec(n_models, days, start, seed, crossover_day=crossover_day, swing=swing, birth_rate=birth_rate)
    out = Path(out_dir)
    return [write_world(eco, out / world_name(eco.day)) for eco in evolve(spec, days)]


def world_name(day: dt.date) -> str:
    """File name of the world of `day`."""
    return f"world-{day.isoformat()}.jsonl"


def _quoted(expr: pl.Expr) -> pl.Expr:
    return pl.concat_str(pl.lit('"'), expr, pl.lit('"'))


def _tag_text() -> pl.Expr:
    """The tags a listing item carries, as the inside of a JSON array."""
    relation = pl.col("relation")
    gguf = pl.col("library_name").is_null() & pl.col("id").str.contains("GGUF", literal=True)
    chat = pl.col("pipeline_tag").is_in(LLM_PIPELINES) & ~pl.col("id").str.contains("Base", literal=True)
    parts = [
        pl.col("library_name"),
        pl.when(pl.col("has_safetensors")).then(pl.lit("safetensors")).when(gguf).then(pl.lit("gguf")),
        pl.col("pipeline_tag"),
        pl.when(chat).then(pl.lit("conversational")),
        *(pl.format("base_model:{}", pl.col(b)) for b in ("base1", "base2", "base3")),
        *(pl.format("base_model:{}:{}", relation, pl.col(b)) for b in ("base1", "base2", "base3")),
        pl.format("license:{}", pl.col("license")),
        pl.when(pl.col("library_name") == "transformers").then(pl.lit("endpoints_compatible")),
        pl.lit("region:us"),
    ]
    return pl.concat_str([_quoted(p) for p in parts], separator=",", ignore_nulls=True)
