"""Backfill: dated snapshot files imported as ordinary `models` snapshots, then attributed and measured.

An import file is CSV, Parquet or JSONL with the columns `snapshot_date`, `model_id`, `downloads_30d` and
optionally `downloads_all_time`, `likes`, `tags`, `pipeline_tag`, `created_at`, `author`, `params_total`
(other columns are ignored and listed in the provenance). The raw llmfit panel CSV
(`model_id, provider, snapshot_time, commit, source_path, hf_downloads, …`) is recognised by its header
and converted by `llmfit_panel_snapshots`.

Every file is read and validated before anything is published: one bad row rejects the whole import,
each problem named with its file, line (CSV, JSONL; the header is line 1) or row (Parquet, 1-based) and
reason. Cells are read as text and checked with polars expressions, so a hostile value is reported,
never evaluated or written.
"""

from __future__ import annotations

import bisect
import contextlib
import csv
import datetime as dt
import fnmatch
import functools
import hashlib
import io
import json
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import polars as pl

from analytics.attribution import hub_key
from flows.rows import INT64_MAX, MAX_ID_LENGTH, MAX_TAG_LENGTH, MAX_TAGS, UNKNOWN_CREATED_AT, lineage, utf8_text
from warehouse.contract import conform
from warehouse.layout import Layout
from warehouse.lock import writer_lock
from warehouse.publish import is_published, publish_frame, read_meta, records_kept, sha256_of, write_json_atomic
from warehouse.tables import MODELS

REQUIRED = ("snapshot_date", "model_id", "downloads_30d")
OPTIONAL = ("downloads_all_time", "likes", "tags", "pipeline_tag", "created_at", "author", "params_total")
COLUMNS = REQUIRED + OPTIONAL
FORMATS = {".csv": "csv", ".parquet": "parquet", ".jsonl": "jsonl", ".ndjson": "jsonl"}
LLMFIT_COLUMNS = ("model_id", "snapshot_time", "hf_downloads")
LLMFIT_CATALOGUE = "llmfit_hf_models_*.csv"
LINE = "_line"
MAX_PROBLEMS = 20  # per file; the total is still counted
MAX_CELL = 65_536  # longest text cell read at all (a tags cell may be long); longer is hostile
TEXT_PIPELINES = "text-generation"
# Encoder families the llmfit catalogue lists: embedding and masked-LM models, not generative LLMs.
ENCODER_ARCHITECTURES = (
    # text encoders
    *("bert", "roberta", "xlm-roberta", "nomic_bert", "squeezebert", "distilbert", "electra", "mpnet", "modernbert"),
    *("deberta", "deberta-v2", "flaubert", "roformer", "neobert", "eurobert", "canine", "lilt", "relik-reader"),
    # embedding models built on decoders
    *("nvembed", "gigarembed", "llama_bidirec", "bidirectional_pplx_qwen3"),
    # image encoders and image-text embedders
    *("clip", "clip_vision_model", "clyp", "jina_clip", "internvl_vision", "dinov2", "vit", "aesthetics_predictor"),
    # speech encoders and audio codecs (facebook/w2v-bert-2.0, kyutai/mimi)
    *("wav2vec2", "wav2vec2-bert", "hubert", "encodec", "dac", "mimi", "xcodec"),
    *("higgs_audio_v2_tokenizer", "moss-audio-tokenizer"),
    # molecule and DNA models
    *("molformer", "hyenadna"),
)
# Embedding models the catalogue describes as chat models (intfloat/e5-mistral-7b-instruct: "Instruction
# following, chat"), known by their name.
EMBEDDING_NAME = r"(^|[-_.])(e5|embed|embedding|embeddings|bge|gte)([-_.]|$)"
LLMFIT_POPULATION = (
    "llmfit catalogues LLMs, so every panel model is text-generation unless its catalogue row says otherwise: "
    "a catalogue pipeline_tag other than 'unknown' is kept; use_case 'Text embeddings…', an encoder "
    "architecture (text, image and speech encoders, audio codecs, embedding models) or an embedding model's name "
    "(e5, embed, bge, gte) is feature-extraction; models absent from the catalogue are text-generation unless "
    "so named"
)

_PART = r"[A-Za-z0-9_][A-Za-z0-9._-]*"
REPO_ID = rf"^{_PART}/{_PART}$"
NAMESPACE = rf"^{_PART}$"
PIPELINE = r"^[a-z0-9][a-z0-9-]{0,63}$"
DATE = r"^\d{4}-\d{2}-\d{2}$"
CONTROL = r"[\x00-\x1f\x7f]"
FORMULA = ("=", "+", "@")


@dataclass(frozen=True)
class ImportProblem:
    """One reason an import file is rejected, with where it is."""

    source: str
    line: int | None
    reason: str
    unit: str = "line"

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        prefix = f"{where}: " if self.unit == "line" or self.line is None else f"{self.source}: row {self.line}: "
        return prefix + self.reason


class ImportRejected(ValueError):
    """The import was refused; nothing was published. `problems` says where and why."""

    def __init__(self, problems: list[ImportProblem]) -> None:
        self.problems = problems
        head = "\n".join(str(p) for p in problems[:MAX_PROBLEMS])
        super().__init__(f"{len(problems)} problem(s); nothing was published\n{head}")


@dataclass
class SnapshotFile:
    """One read and validated import file: its rows (import columns as text, plus `_line`) and provenance."""

    path: Path
    format: str
    sha256: str
    frame: pl.DataFrame
    columns: list[str]
    ignored: list[str]
    details: dict[str, Any] = field(default_factory=dict)

    def provenance(self) -> dict[str, Any]:
        return {
            "source_file": str(self.path.resolve()),
            "source_sha256": self.sha256,
            "source_format": self.format,
            "source_rows": self.frame.height,
            "columns": self.columns,
            "ignored_columns": self.ignored,
            **self.details,
        }


@dataclass
class ImportReport:
    """What an import did: files read, dates published and skipped, and the seconds of each step."""

    files: list[dict[str, Any]] = field(default_factory=list)
    published: list[dt.date] = field(default_factory=list)
    skipped: list[dt.date] = field(default_factory=list)
    rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)


def _clean(text: str, limit: int = 60) -> str:
    """A value made safe to show: control characters escaped, cut to `limit` characters."""
    shown = text[:limit].encode("unicode_escape").decode("ascii")
    return shown + ("…" if len(text) > limit else "")


# --- reading -------------------------------------------------------------------------------------------


def snapshot_paths(path: Path) -> list[Path]:
    """The files to import: `path` itself, or every non-hidden file of a known format under the folder."""
    if path.is_dir():
        found = [
            p
            for p in sorted(path.rglob("*"))
            if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)
        ]
        # An llmfit catalogue is read with the panel beside it, as its pipeline tags and sizes, not as a snapshot.
        chosen = [p for p in found if p.suffix.lower() in FORMATS and not fnmatch.fnmatch(p.name, LLMFIT_CATALOGUE)]
        if not chosen:
            raise ImportRejected([ImportProblem(str(path), None, "no .csv, .parquet or .jsonl file in the folder")])
        return chosen
    if not path.is_file():
        raise ImportRejected([ImportProblem(str(path), None, "no such file or folder")])
    return [path]


def import_paths(given: list[Path]) -> list[Path]:
    """The files to import from the files and folders given, each once. An llmfit catalogue given beside other
    files (as a shell's `*.csv` gives it) is read with the panel beside it, as in a folder, not as a snapshot."""
    found = list({p.resolve(): p for path in given for p in snapshot_paths(path)}.values())  # a file given twice
    kept = [p for p in found if not fnmatch.fnmatch(p.name, LLMFIT_CATALOGUE)]
    if len(given) > 1 and kept:
        return kept
    catalogues = [p for p in found if p not in kept]
    if catalogues:
        reason = (
            "an llmfit catalogue (pipeline tags and sizes), not a snapshot: import the panel beside it "
            "(llmfit_hf_downloads_timeseries_*.csv), which reads it"
        )
        raise ImportRejected([ImportProblem(str(c), None, reason) for c in catalogues])
    return found


def format_of(path: Path) -> str:
    """The import format named by the file's extension, or an ImportRejected."""
    kind = FORMATS.get(path.suffix.lower())
    if kind is None:
        reason = f"unknown format {_clean(path.suffix or '(no extension)')!s}: use .csv, .parquet or .jsonl"
        raise ImportRejected([ImportProblem(str(path), None, reason)])
    return kind


def read_snapshot_file(path: Path) -> pl.DataFrame:
    """The rows of one import file: its import columns as text (`tags` as a list) and `_line`."""
    return _read(path)[0]


def _read(path: Path) -> tuple[pl.DataFrame, str, list[str], dict[str, Any]]:
    """Rows, format name, ignored columns and format details of one file (ImportRejected when unreadable)."""
    kind = format_of(path)
    data = path.read_bytes()
    source = str(path)
    if kind == "parquet":
        frame = _parquet_rows(data, source)
    else:
        text = _text_of(data, source, kind)
        frame = _csv_rows(text, source) if kind == "csv" else _jsonl_rows(text, source)
        if kind == "csv" and all(c in frame.columns for c in LLMFIT_COLUMNS) and "snapshot_date" not in frame.columns:
            converted, details = _llmfit_rows(frame, source, _catalogue_beside(path))
            used = (LINE, *LLMFIT_COLUMNS, "hf_likes", "commit")  # its commits are recorded by date
            return converted, "llmfit-panel", [c for c in frame.columns if c not in used], details
    if frame.height == 0:
        raise ImportRejected([ImportProblem(source, None, "the file has no rows")])
    ignored = [c for c in frame.columns if c not in COLUMNS and c != LINE]
    return frame.select(LINE, *[c for c in frame.columns if c in COLUMNS]), kind, ignored, {}


def _text_of(data: bytes, source: str, kind: str) -> str:
    """The file decoded as UTF-8 text, or a problem saying it is not the text file its extension says."""
    if data.startswith(b"PAR1"):
        raise ImportRejected([ImportProblem(source, None, f"a Parquet file, not {kind.upper()}: rename it .parquet")])
    nul = data.find(b"\x00")
    if nul >= 0:
        line = data.count(b"\n", 0, nul) + 1
        raise ImportRejected(
            [ImportProblem(source, line, f"binary content (NUL byte): not a {kind.upper()} text file")]
        )
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise ImportRejected([ImportProblem(source, line, f"not UTF-8 text: not a {kind.upper()} file")]) from None


def _csv_rows(text: str, source: str) -> pl.DataFrame:
    """CSV cells as text with their line numbers (quoted newlines kept inside their row)."""
    first = text.lstrip()[:1]
    if first in ("{", "["):
        raise ImportRejected([ImportProblem(source, 1, "JSON content, not CSV: rename it .jsonl")])
    csv.field_size_limit(MAX_CELL)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    problems: list[ImportProblem] = []
    try:
        header = next(reader, None)
    except csv.Error as error:
        raise ImportRejected([ImportProblem(source, 1, f"unreadable CSV header: {error}")]) from None
    if not header:
        raise ImportRejected([ImportProblem(source, None, "the file is empty")])
    header = [h.strip() for h in header]
    if LINE in header:
        raise ImportRejected([ImportProblem(source, 1, f"the column name {LINE} is reserved")])
    if len(set(header)) != len(header):
        raise ImportRejected([ImportProblem(source, 1, "the header repeats a column name")])
    lines: list[int] = []
    rows: list[list[str]] = []
    while True:
        start = reader.line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as error:
            problems.append(ImportProblem(source, start, f"unreadable CSV row: {_clean(str(error))}"))
            if len(problems) >= MAX_PROBLEMS:
                break
            continue
        if not row:
            continue
        if len(row) != len(header):
            problems.append(ImportProblem(source, start, f"{len(row)} fields where the header has {len(header)}"))
            continue
        lines.append(start)
        rows.append(row)
    if problems:
        raise ImportRejected(problems)
    columns = {name: [r[i] for r in rows] for i, name in enumerate(header)}
    frame = pl.DataFrame({LINE: lines, **columns}, schema={LINE: pl.Int64, **dict.fromkeys(header, pl.String)})
    if "tags" in frame.columns:
        frame = frame.with_columns(_split_tags(frame, source, "line"))
    return _blank_to_null(frame)


PLAIN_STRING_ARRAY = r'^\[\s*(?:"[^"\\\x00-\x1f]*"\s*(?:,\s*"[^"\\\x00-\x1f]*"\s*)*)?\]$'


def _split_tags(frame: pl.DataFrame, source: str, unit: str) -> pl.Expr:
    """A text tags cell as a list: a JSON array of strings, or values separated by `|`. A cell that opens a JSON
    array but holds none (`[beta]|chat`) is refused, naming its line (or row)."""
    # A plain array of strings (no escapes) is one by its look, checked at once; only the rest are parsed one
    # by one (Python's parser, a few times slower than polars').
    opened = frame.filter(pl.col("tags").str.starts_with("[") & ~pl.col("tags").str.contains(PLAIN_STRING_ARRAY))
    bad = []
    for number, cell in opened.select(LINE, "tags").iter_rows():
        try:
            tags = json.loads(cell)
        except (ValueError, RecursionError):
            tags = None
        if not (isinstance(tags, list) and all(isinstance(t, str) and utf8_text(t) for t in tags)):
            bad.append(ImportProblem(source, number, "tags opens a JSON array but is no JSON array of strings", unit))
    if bad:
        raise ImportRejected(bad[:MAX_PROBLEMS])
    cell = pl.col("tags")
    return (
        pl.when(cell.str.starts_with("["))
        .then(cell.str.json_decode(pl.List(pl.String)))
        .otherwise(cell.str.split("|"))
        .list.eval(pl.element().str.strip_chars())
        .list.eval(pl.element().filter(pl.element() != ""))
        .alias("tags")
    )


def _blank_to_null(frame: pl.DataFrame) -> pl.DataFrame:
    text = [c for c, t in frame.schema.items() if t == pl.String]
    return frame.with_columns(pl.when(pl.col(c).str.strip_chars() != "").then(pl.col(c)) for c in text)


LINE_ENDS = re.compile(r"\r\n|\r|\n")


def _jsonl_rows(text: str, source: str) -> pl.DataFrame:
    """JSON Lines objects as text cells with their line numbers; nested values are refused."""
    problems: list[ImportProblem] = []
    records: list[dict[str, Any]] = []
    # Lines end at "\r\n", "\r" or "\n" (which no JSON string holds raw), not where `str.splitlines` would also
    # cut: at U+2028 and the like, which JSON strings may hold.
    for number, raw in enumerate(LINE_ENDS.split(text), start=1):
        if not raw.strip():
            continue
        try:
            item = json.loads(raw)
        except (ValueError, RecursionError):
            problems.append(ImportProblem(source, number, "not valid JSON: not a JSON Lines file"))
        else:
            if not isinstance(item, dict):
                problems.append(ImportProblem(source, number, "not a JSON object"))
            else:
                record, reason = _json_record(item)
                if reason:
                    problems.append(ImportProblem(source, number, reason))
                else:
                    records.append({LINE: number, **record})
        if len(problems) >= MAX_PROBLEMS:
            break
    if problems:
        raise ImportRejected(problems)
    names = list(dict.fromkeys(k for r in records for k in r))
    schema = {n: pl.Int64 if n == LINE else pl.List(pl.String) if n == "tags" else pl.String for n in names}
    return pl.DataFrame([{n: r.get(n) for n in names} for r in records], schema=schema, orient="row")


def _json_record(item: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """One object's import cells as text (tags as a list of text), or the reason it is refused."""
    record: dict[str, Any] = {}
    for key, value in item.items():
        read = key in COLUMNS  # the values of a column not read are never looked at
        texts = [key, *((value if isinstance(value, list) else [value]) if read else [])]
        if not all(utf8_text(text) for text in texts if isinstance(text, str)):
            return {}, f"{_clean(key, 40)} holds a lone surrogate escape (such as \\ud800): no UTF-8 text"
        if key not in COLUMNS:
            if key != LINE:
                record[key] = None  # listed as ignored, never read
            continue
        if key == "tags" and isinstance(value, list):
            if not all(isinstance(t, str) for t in value):
                return {}, "tags must be a list of strings"
            record[key] = value
        elif isinstance(value, dict | list):
            return {}, f"{key} holds a nested JSON value"
        elif isinstance(value, bool):
            record[key] = "true" if value else "false"  # refused below for counts; kept as text elsewhere
        elif value is None:
            record[key] = None
        elif isinstance(value, float):
            record[key] = repr(value)
        else:
            record[key] = str(value)
        if key == "tags" and isinstance(record[key], str):
            record[key] = [t for t in record[key].split("|") if t.strip()]
    return record, None


def _parquet_rows(data: bytes, source: str) -> pl.DataFrame:
    """Parquet columns as text cells (dates as ISO dates, tags as a list) with 1-based row numbers."""
    if len(data) < 12 or not (data.startswith(b"PAR1") and data.endswith(b"PAR1")):
        raise ImportRejected([ImportProblem(source, None, "not a Parquet file (no PAR1 magic)")])
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except Exception as error:  # noqa: BLE001 - any decoder failure means the same thing here
        raise ImportRejected([ImportProblem(source, None, f"unreadable Parquet: {_clean(str(error), 120)}")]) from None
    cells = [pl.int_range(1, pl.len() + 1, dtype=pl.Int64).alias(LINE)]
    for name, dtype in frame.schema.items():
        if name not in COLUMNS:
            cells.append(pl.lit(None, pl.String).alias(name))
        elif name == "tags" and dtype == pl.List(pl.String):
            cells.append(pl.col(name))
        elif name == "tags" and dtype == pl.String:
            cells.append(_split_tags(frame.with_row_index(LINE, offset=1), source, "row"))
        elif isinstance(dtype, pl.Datetime):
            utc = (
                pl.col(name).dt.convert_time_zone("UTC").dt.replace_time_zone(None) if dtype.time_zone else pl.col(name)
            )
            as_text = (
                utc.dt.date().cast(pl.String) if name == "snapshot_date" else utc.dt.to_string("%Y-%m-%dT%H:%M:%S%.f")
            )
            cells.append(as_text.alias(name))
        elif dtype.is_nested() or dtype in (pl.Binary, pl.Object):
            raise ImportRejected([ImportProblem(source, None, f"column {name} has type {dtype}, not a plain value")])
        else:
            cells.append(pl.col(name).cast(pl.String))
    return _blank_to_null(frame.select(cells))


# --- the llmfit panel ----------------------------------------------------------------------------------


def _catalogue_beside(panel: Path) -> Path | None:
    """The latest llmfit catalogue CSV in the panel's folder, if any."""
    found = sorted(panel.parent.glob(LLMFIT_CATALOGUE))
    return found[-1] if found else None


def llmfit_panel_snapshots(panel_csv: Path, catalogue_csv: Path | None = None) -> pl.DataFrame:
    """The llmfit download panel in the import format: one row per model and date, the date's last value."""
    source = str(panel_csv)
    raw = _csv_rows(_text_of(Path(panel_csv).read_bytes(), source, "csv"), source)
    catalogue = catalogue_csv if catalogue_csv is not None else _catalogue_beside(Path(panel_csv))
    return zero_as_missing(_llmfit_rows(raw, source, catalogue)[0].drop(LINE))


def zero_as_missing(frame: pl.DataFrame) -> pl.DataFrame:
    """The llmfit panel's 30-day counts with its zeros read as missing: its scraper writes 0 where the API gave no
    count (`info.get("downloads", 0)`), so a 0 is "not recorded" (nomic-embed-text-v1.5 reads 0 on ten dates,
    then 9.8 M), which sums as 0 still but is not counted as a model without downloads."""
    zero = pl.col("downloads_30d").str.strip_chars().cast(pl.Int64, strict=False) == 0
    return frame.with_columns(pl.when(zero).then(None).otherwise(pl.col("downloads_30d")).alias("downloads_30d"))


def _llmfit_rows(raw: pl.DataFrame, source: str, catalogue: Path | None) -> tuple[pl.DataFrame, dict[str, Any]]:
    """The panel's rows in the import format (with `_line` of the kept row) and how they were derived."""
    when = pl.col("snapshot_time").str.to_datetime("%Y-%m-%dT%H:%M:%S%:z", time_zone="UTC", strict=False)
    stamped = raw.with_columns(when.alias("_time"))
    bad = stamped.filter(pl.col("_time").is_null())
    if bad.height:
        problems = [
            ImportProblem(source, r[LINE], f"snapshot_time {_clean(r['snapshot_time'] or '')!r} is not an ISO time")
            for r in bad.head(MAX_PROBLEMS).iter_rows(named=True)
        ]
        raise ImportRejected(problems)
    # A catalogue commit can repeat an older value: the last commit of a day is that day's value, the last that
    # records a count (a 0 is none: see `zero_as_missing`) when one does, as a commit may list a model twice.
    recorded = (pl.col("hf_downloads").str.strip_chars().cast(pl.Int64, strict=False) != 0).fill_null(False)
    # The Hub's ids ignore case: a repo the catalogue lists under two spellings (microsoft/Phi-3-mini-4k-instruct
    # and microsoft/phi-3-mini-4k-instruct, with the same counts) is one model, counted once under one name on
    # every date, the spelling that sorts first (capitals sort before the letters of a copy in lower case).
    stamped = stamped.with_columns(pl.col("model_id").min().over(_hub_key(pl.col("model_id"))))
    ordered = stamped.with_columns(
        pl.col("_time").dt.date().cast(pl.String).alias("snapshot_date"), recorded.alias("_recorded")
    ).sort("_recorded", "_time", LINE)
    kept = ordered.unique(["snapshot_date", "model_id"], keep="last").sort("_time", LINE)
    previous = pl.col("hf_downloads").shift(1).over("model_id", order_by="snapshot_date")
    repeats = kept.select((pl.col("hf_downloads") == previous).sum()).item()
    frame = kept.select(
        LINE,
        "snapshot_date",
        "model_id",
        pl.col("hf_downloads").alias("downloads_30d"),  # its zeros are read as missing once validated
        # llmfit stopped recording likes in April 2026 (0 since): a 0 is "not recorded", not "no likes".
        pl.when(pl.col("hf_likes").cast(pl.Int64, strict=False) > 0).then(pl.col("hf_likes")).alias("likes")
        if "hf_likes" in raw.columns
        else pl.lit(None, pl.String).alias("likes"),
    )
    details: dict[str, Any] = {
        "llmfit": {
            "panel_rows": raw.height,
            "rows_kept": frame.height,
            "same_day_rows_dropped": raw.height - frame.height,
            "repeated_values": int(repeats or 0),
            "zero_downloads_read_as_missing": int(
                kept.select((pl.col("hf_downloads").cast(pl.Int64, strict=False) == 0).sum()).item() or 0
            ),
            "commits": raw.get_column("commit").n_unique() if "commit" in raw.columns else None,
            # The catalogue commits each date's kept rows came from (one date's in its own record).
            "commits_by_date": {
                day: sorted(commits)
                for day, commits in kept.group_by("snapshot_date").agg(pl.col("commit").unique().drop_nulls()).rows()
            }
            if "commit" in raw.columns
            else {},
            "llm_population": LLMFIT_POPULATION,
            "catalogue_file": str(catalogue.resolve()) if catalogue else None,
            "catalogue_sha256": sha256_of(catalogue) if catalogue else None,
        }
    }
    absent = pl.when(embedder_named()).then(pl.lit("feature-extraction")).otherwise(pl.lit(TEXT_PIPELINES))
    catalogued = _catalogue_fields(catalogue).with_columns(_hub_key(pl.col("model_id")).alias("_key"))
    return (
        frame.with_columns(_hub_key(pl.col("model_id")).alias("_key"))
        .join(catalogued.drop("model_id").unique("_key", keep="last"), on="_key", how="left")
        .drop("_key")
        .with_columns(pl.col("pipeline_tag").fill_null(absent))
        .sort(LINE),
        details,
    )


def _hub_key(model_id: pl.Expr) -> pl.Expr:
    """A repo id of an import file as the Hub matches it (`hub_key`), once stripped of the spaces around it."""
    return hub_key(model_id.str.strip_chars())


def embedder_named() -> pl.Expr:
    """Whether a model's name (after its namespace) says it is an embedding model."""
    return pl.col("model_id").str.split("/").list.last().str.to_lowercase().str.contains(EMBEDDING_NAME)


def _catalogue_fields(catalogue: Path | None) -> pl.DataFrame:
    """Per catalogued model: the pipeline tag chosen for it and its parameter count."""
    empty = pl.DataFrame(schema={"model_id": pl.String, "pipeline_tag": pl.String, "params_total": pl.String})
    if catalogue is None:
        return empty
    rows = pl.read_csv(catalogue, infer_schema=False)
    tag = pl.col("pipeline_tag").fill_null("unknown")
    encoder = pl.col("architecture").fill_null("").is_in(ENCODER_ARCHITECTURES)
    embedding = pl.col("use_case").fill_null("").str.to_lowercase().str.contains("embedding") | embedder_named()
    return rows.select(
        "model_id",
        pl.when(tag != "unknown")
        .then(tag)
        .when(embedding | encoder)
        .then(pl.lit("feature-extraction"))
        .otherwise(pl.lit(TEXT_PIPELINES))
        .alias("pipeline_tag"),
        pl.col("parameters_raw").alias("params_total"),
    ).unique("model_id", keep="last")


# --- validation ----------------------------------------------------------------------------------------


def _count_checks(name: str, required: bool) -> list[tuple[pl.Expr, pl.Expr]]:
    """(bad, reason) pairs for a column of non-negative whole numbers."""
    cell = pl.col(name).str.strip_chars()
    number = cell.cast(pl.Float64, strict=False)
    whole = cell.cast(pl.Int64, strict=False)
    shown = pl.lit(f"{name} ") + cell.str.slice(0, 40)
    checks = [
        (cell.is_not_null() & (number.is_null() | number.is_nan() | number.is_infinite()), shown + " is not a number"),
        (number < 0, shown + " is negative"),
        (number.is_finite() & (number >= 0) & (number != number.floor()), shown + " is not a whole number"),
        (whole.is_null() & number.is_finite() & (number >= INT64_MAX), shown + " is too large"),
    ]
    if required:
        checks.insert(0, (cell.is_null(), pl.lit(f"{name} is empty")))
    return checks


def _text_checks(name: str, pattern: str, what: str) -> list[tuple[pl.Expr, pl.Expr]]:
    cell = pl.col(name)
    return [
        (cell.str.contains(CONTROL), pl.lit(f"{name} contains control characters")),
        (cell.str.len_chars() > MAX_TAG_LENGTH, pl.lit(f"{name} is longer than {MAX_TAG_LENGTH} characters")),
        (
            ~cell.str.contains(CONTROL) & ~cell.str.contains(pattern),
            pl.lit(f"{name} ") + cell.str.slice(0, 60) + pl.lit(f" is not {what}"),
        ),
    ]


def _checks(columns: list[str], today: dt.date) -> list[tuple[pl.Expr, pl.Expr]]:
    """Every per-row (bad, reason) check that applies to a frame with `columns`."""
    day = pl.col("snapshot_date").str.strip_chars()
    parsed = day.str.to_date("%Y-%m-%d", strict=False)
    model = pl.col("model_id")
    control = model.str.contains(CONTROL)
    traversal = (
        model.str.contains("..", literal=True) | model.str.starts_with("/") | model.str.contains("\\", literal=True)
    )
    too_long = model.str.len_chars() > MAX_ID_LENGTH
    checks: list[tuple[pl.Expr, pl.Expr]] = [
        (day.is_null(), pl.lit("snapshot_date is empty")),
        (
            day.is_not_null() & (~day.str.contains(DATE) | parsed.is_null()),
            pl.lit("snapshot_date ") + day.str.slice(0, 40) + pl.lit(" is not a date (YYYY-MM-DD)"),
        ),
        (parsed > today, pl.lit("snapshot_date ") + day + pl.lit(" is in the future")),
        (model.is_null(), pl.lit("model_id is empty")),
        (control, pl.lit("model_id contains control characters")),
        (too_long, pl.lit(f"model_id is longer than {MAX_ID_LENGTH} characters")),
        (~control & traversal, pl.lit("model_id looks like a path traversal (.., / or \\)")),
        (
            ~control & ~too_long & ~traversal & ~model.str.contains(REPO_ID),
            pl.lit("model_id ") + model.str.slice(0, 60) + pl.lit(" is not of the form namespace/name"),
        ),
        *_count_checks("downloads_30d", required=True),
    ]
    for name in ("downloads_all_time", "likes", "params_total"):
        if name in columns:
            checks += _count_checks(name, required=False)
    if "author" in columns:
        checks += _text_checks("author", NAMESPACE, "a Hub namespace")
    if "pipeline_tag" in columns:
        checks += _text_checks("pipeline_tag", PIPELINE, "a Hub task name")
    if "tags" in columns:
        tags = pl.col("tags")
        hostile = tags.list.eval(
            pl.element().str.contains(CONTROL)
            | (pl.element().str.len_chars() > MAX_TAG_LENGTH)
            | pl.element().str.starts_with(FORMULA[0])
            | pl.element().str.starts_with(FORMULA[1])
            | pl.element().str.starts_with(FORMULA[2])
        ).list.any()
        checks += [
            (tags.list.len() > MAX_TAGS, pl.lit(f"more than {MAX_TAGS} tags")),
            (hostile, pl.lit("a tag has control characters, a formula prefix or more than 512 characters")),
        ]
    if "created_at" in columns:
        checks.append(
            (
                pl.col("created_at").is_not_null() & _timestamp(pl.col("created_at")).is_null(),
                pl.lit("created_at ") + pl.col("created_at").str.slice(0, 40) + pl.lit(" is not an ISO time"),
            )
        )
    return checks


def _timestamp(cell: pl.Expr) -> pl.Expr:
    """An ISO date or time (Z, offset or naive UTC) as a UTC datetime, null when unparsable."""
    text = cell.str.strip_chars().str.replace(r"Z$", "+00:00").str.replace(" ", "T", literal=True)
    with_zone = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", strict=False)
    naive = text.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f", strict=False).dt.replace_time_zone("UTC")
    day = text.str.to_date("%Y-%m-%d", strict=False).cast(pl.Datetime("us")).dt.replace_time_zone("UTC")
    return pl.coalesce(with_zone.dt.cast_time_unit("us"), naive.dt.cast_time_unit("us"), day)


def validate_import(frame: pl.DataFrame, source: str, *, unit: str = "line") -> list[ImportProblem]:
    """Every problem of one file's rows, each with its line (or row) and reason; empty when importable."""
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        return [ImportProblem(source, 1 if unit == "line" else None, f"missing required column {c}") for c in missing]
    checks = _checks(frame.columns, dt.datetime.now(dt.UTC).date())
    reasons = frame.select(
        LINE, pl.concat_list([pl.when(bad.fill_null(False)).then(reason) for bad, reason in checks]).alias("reason")
    )
    found = reasons.explode("reason").drop_nulls("reason")
    # The Hub's ids ignore case: two spellings of one id on a date are one repo listed twice.
    key = ["snapshot_date", "_key"]
    spelt = pl.col("model_id").sort_by(LINE).first().over(key) != pl.col("model_id")
    duplicated = (
        frame.select(LINE, pl.col("snapshot_date").str.strip_chars(), pl.col("model_id").str.strip_chars())
        .with_columns(_hub_key(pl.col("model_id")).alias("_key"))
        .drop_nulls(key)
        .with_columns(pl.col(LINE).min().over(key).alias("first"), spelt.alias("spelt"))
        .filter(pl.col(LINE) != pl.col("first"))
        .select(
            LINE,
            (
                pl.lit("duplicate (snapshot_date, model_id) of ")
                + pl.lit(unit)
                + pl.lit(" ")
                + pl.col("first").cast(pl.String)
                + pl.when("spelt").then(pl.lit(", spelt in other case")).otherwise(pl.lit(""))
            ).alias("reason"),
        )
    )
    every = pl.concat([found, duplicated]).sort(LINE)
    return [ImportProblem(source, line, _clean(reason, 160), unit) for line, reason in every.iter_rows()]


# --- the import ----------------------------------------------------------------------------------------


def read_import(paths: Iterable[Path]) -> tuple[list[SnapshotFile], list[ImportProblem]]:
    """Every file read and validated, and every problem found (across files too)."""
    files: list[SnapshotFile] = []
    problems: list[ImportProblem] = []
    for path in paths:
        try:
            frame, kind, ignored, details = _read(path)
        except ImportRejected as rejected:
            problems += rejected.problems
            continue
        unit = "row" if kind == "parquet" else "line"
        found = validate_import(frame, str(path), unit=unit)
        mark = next((m for m in (";", "\t", "|") if any(m in c for c in ignored)), None) if kind == "csv" else None
        if mark:  # a header the reader took for one column: another separator than commas
            hint = f" (its header holds {mark!r}: separate its columns with commas)"
            found = [replace(p, reason=p.reason + hint) if p.reason.startswith("missing") else p for p in found]
        problems += found[:MAX_PROBLEMS]
        if len(found) > MAX_PROBLEMS:
            problems.append(ImportProblem(str(path), None, f"… and {len(found) - MAX_PROBLEMS} more problem(s)"))
        columns = [c for c in frame.columns if c != LINE]
        frame = zero_as_missing(frame) if kind == "llmfit-panel" else frame
        files.append(SnapshotFile(path, kind, sha256_of(path), frame, columns, ignored, details))
    if not problems and len(files) > 1:
        problems += _across_files(files)
    return files, problems


def _across_files(files: list[SnapshotFile]) -> list[ImportProblem]:
    """Rows of one (snapshot_date, model_id) found in more than one file."""
    keyed = pl.concat(
        [
            f.frame.select(
                pl.lit(str(f.path)).alias("file"),
                LINE,
                pl.col("snapshot_date").str.strip_chars(),
                _hub_key(pl.col("model_id")).alias("_key"),
            )
            for f in files
        ]
    )
    twice = keyed.filter(pl.struct("snapshot_date", "_key").is_duplicated())
    first = twice.group_by("snapshot_date", "_key", maintain_order=True).agg(pl.col("file").first().alias("first_file"))
    again = twice.join(first, on=["snapshot_date", "_key"]).filter(pl.col("file") != pl.col("first_file"))
    return [
        ImportProblem(r["file"], r[LINE], f"duplicate (snapshot_date, model_id): also in {r['first_file']}")
        for r in again.head(MAX_PROBLEMS).iter_rows(named=True)
    ]


def models_frame(rows: pl.DataFrame) -> pl.DataFrame:
    """A validated day's import rows as a `models` partition (lineage read from `base_model:` tags)."""
    text = {c: pl.col(c).str.strip_chars() if c in rows.columns else pl.lit(None, pl.String) for c in COLUMNS}
    tags = pl.col("tags") if "tags" in rows.columns else pl.lit([], pl.List(pl.String))
    frame = rows.select(
        text["model_id"].alias("model_id"),
        pl.coalesce(text["author"], pl.col("model_id").str.split("/").list.first()).alias("author"),
        # The Hub's stamp for "created before it kept creation dates" is no date, as in a crawl.
        pl.when(_timestamp(text["created_at"]) != UNKNOWN_CREATED_AT)
        .then(_timestamp(text["created_at"]))
        .alias("created_at"),
        pl.lit(None, pl.Datetime("us", "UTC")).alias("last_modified"),
        *[_whole(text[c]).alias(c) for c in ("downloads_30d", "downloads_all_time", "likes")],
        pl.lit(None, pl.Float64).alias("trending_score"),
        text["pipeline_tag"].alias("pipeline_tag"),
        pl.lit(None, pl.String).alias("library_name"),
        pl.coalesce(tags, pl.lit([], pl.List(pl.String))).alias("tags"),
        _whole(text["params_total"]).alias("params_total"),
        pl.lit(None, pl.String).alias("gated"),
    )
    found = [lineage(t) for t in frame.get_column("tags").to_list()]
    frame = frame.with_columns(
        pl.Series("base_models", [b for b, _ in found], dtype=pl.List(pl.String)),
        pl.Series("base_relation", [r for _, r in found], dtype=pl.String),
    )
    return conform(frame.select(MODELS.columns), MODELS)


def _whole(cell: pl.Expr) -> pl.Expr:
    """A validated count as Int64: exact for integers, through Float64 only for forms like `1e6` or `3.0`."""
    return pl.coalesce(cell.cast(pl.Int64, strict=False), cell.cast(pl.Float64, strict=False).cast(pl.Int64))


def import_snapshots(
    layout: Layout,
    path: Path | Sequence[Path],
    *,
    force: bool = False,
    dashboard: bool = True,
    wait_seconds: float = 0.0,
    log: Callable[[str], None] = lambda _message: None,
) -> ImportReport:
    """Import every dated snapshot under `path` (a file or folder, or several), then attribute and measure the
    warehouse's dates."""
    report = ImportReport()
    given = [Path(p) for p in ([path] if isinstance(path, str | Path) else path)]
    named = [str(p.resolve()) for p in given]
    options = {"path": named[0] if len(named) == 1 else named, "force": force, "dashboard": dashboard}
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # Read and checked before the warehouse is touched: a rejected import leaves no trace in it.
    began = time.monotonic()
    files, problems = read_import(import_paths(given))
    if problems:
        raise ImportRejected(problems)
    from analytics.registry import load_registry

    load_registry()  # a broken registry fails now, in one line, not once the dates are published
    # Records kept: publishing a date reads the record of every date published (the metadata versions they point
    # at), each read once for the import, and again only once written again.
    with (
        writer_lock(layout, f"import {', '.join(p.name for p in given)}", wait_seconds=wait_seconds) as waited,
        records_kept(),
    ):
        if waited >= 1:  # another writer held the lock: its time is not this import's
            report.seconds["waited"] = round(waited, 2)
            began += waited
        days: dict[dt.date, list[tuple[SnapshotFile, pl.DataFrame]]] = {}
        for snapshot in files:
            report.files.append(snapshot.provenance() | {"dates": snapshot.frame["snapshot_date"].n_unique()})
            for (day_text,), rows in snapshot.frame.group_by(["snapshot_date"], maintain_order=True):
                days.setdefault(dt.date.fromisoformat(str(day_text).strip()), []).append((snapshot, rows))
        # Marked while it publishes and derives: an import stopped part way (Ctrl-C, a closed terminal) is told by
        # `check`, which says to run it again, rather than to make the dates it published alone complete.
        marker = import_marker(layout, named)
        resumed = marker.exists()  # the same import stopped part way before
        # One with --force stopped part way goes on replacing its dates: run again without it, it would keep, as
        # published, the dates it had yet to replace, and finish with the old files' counts beside the new.
        if resumed and not force and _marked_force(marker):
            log("finishing an import with --force that stopped part way: its dates are replaced")
            force = options["force"] = True
        # Conform every date before publishing any, so a schema failure publishes nothing either.
        ready: dict[dt.date, tuple[pl.DataFrame, list[SnapshotFile]]] = {}
        for day in sorted(days):
            if is_published(layout, MODELS, day) and not force:
                report.skipped.append(day)  # told in one line, with how many
                continue
            parts = days[day]
            ready[day] = (models_frame(pl.concat([r for _, r in parts], how="diagonal")), [s for s, _ in parts])
        report.seconds["read"] = round(time.monotonic() - began, 2)
        began = time.monotonic()
        last = max(days, default=None)
        earlier = [d for d in layout.published_dates(MODELS) if last is not None and d < last]
        published = {d: functools.partial(published_counts, layout, d) for d in earlier}
        compared = staleness(days, published)
        if ready:
            dates = [d.isoformat() for d in ready]
            write_json_atomic(marker, {"paths": named, "dates": dates, "force": force, "started_at": started})
        for day, (frame, sources) in ready.items():
            provenance = _provenance(sources, options, frame, day) | {"started_at": started} | compared.get(day, {})
            if "same_counts_as" in provenance:
                repeated, added = provenance["repeated_models"], provenance["added_models"]
                uncounted = frame.height - repeated - added
                log(
                    f"warning: {day} repeats the counts of {provenance['same_counts_as']} for every model counted on "
                    f"both ({repeated:,} of its {frame.height:,}; {added:,} not listed then"
                    + (f", {uncounted:,} without a count on one of the two" if uncounted else "")
                    + "): a stale copy?"
                )
            if "models_of_date_before" in provenance:
                log(
                    f"warning: {day} lists {frame.height:,} models, under half of the "
                    f"{provenance['models_of_date_before']:,} of the date before (a partial snapshot?)"
                )
            if thin_counts(provenance):
                log(
                    f"warning: {day}: only {provenance['models_with_30d_count']:,} of its {frame.height:,} models "
                    "have a 30-day count (its shares rest on those)"
                )
            publish_frame(layout, MODELS, day, frame, provenance, force=force)
            report.published.append(day)
            report.rows += frame.height
        # A date published already that now follows one this import published is compared with it; after every
        # date of the import when it resumes one that stopped part way, perhaps before it compared them.
        published = layout.published_dates(MODELS)  # listed once: the date after each of the import's
        placed = days if resumed else ready
        after = {published[i] for d in placed if (i := bisect.bisect_right(published, d)) < len(published)}
        for day in sorted(after - set(ready)):
            if said := compare_again(layout, day):
                log(f"compared again with the date now before it: {said}")
        report.seconds["publish"] = round(time.monotonic() - began, 2)
        report.steps = derive_all(layout, report.seconds, dashboard=dashboard, log=log)
        remove_object(marker)
        for done, _record in settled_imports(layout):  # another import these dates finished
            remove_object(done)
    return report


IMPORTING = "_meta/importing"  # one record per import stopped part way, named by the paths it was given
# A mark's name (`import_marker`); any other file there, such as the temporary sibling of a mark whose writer was
# killed before renaming it into place, is no import's.
MARK_NAME = re.compile(r"[0-9a-f]{16}\.json")


def import_marker(layout: Layout, paths: list[str]) -> Any:
    """Where an import of `paths` (absolute) is marked while it runs."""
    digest = hashlib.sha256("\n".join(sorted(paths)).encode()).hexdigest()[:16]
    return layout.root / IMPORTING / f"{digest}.json"


def _marked_force(marker: Any) -> bool:
    """Whether the import `marker` marks was run with --force (False when its mark cannot be read)."""
    try:
        record = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and record.get("force") is True


def import_records(layout: Layout) -> list[tuple[Any, dict[str, Any]]]:
    """Each import marked as running or stopped part way: its marker, the paths it was given and its dates."""
    folder = layout.root / IMPORTING
    found = []
    for marker in sorted(folder.iterdir()) if folder.exists() else []:
        if not MARK_NAME.fullmatch(marker.name):
            continue
        try:
            record = json.loads(marker.read_text())
        except (OSError, ValueError):
            record = {}
        paths, dates = (record.get("paths"), record.get("dates")) if isinstance(record, dict) else (None, None)
        ok = isinstance(paths, list) and isinstance(dates, list)
        found.append((marker, record if ok else {"paths": [], "dates": [], "damaged": True}))
    return found


def settled_imports(layout: Layout) -> list[tuple[Any, dict]]:
    """The marked imports whose dates are all published with their tables made: finished by another command
    (the same files imported with `--force`, or their folder)."""
    from flows.steps import out_of_date

    records = import_records(layout)
    if not records:
        return []
    published = {d.isoformat() for d in layout.published_dates(MODELS)}
    current = published - {d.isoformat() for d in out_of_date(layout)}
    return [
        (marker, record)
        for marker, record in records
        if "damaged" not in record and set(map(str, record.get("dates", []))) <= current
    ]


def unfinished_imports(layout: Layout) -> list[tuple[Any, dict[str, Any]]]:
    """The imports that stopped part way, and stay so: the marker, paths and dates of each."""
    settled = {str(marker) for marker, _record in settled_imports(layout)}
    return [(marker, record) for marker, record in import_records(layout) if str(marker) not in settled]


def remove_object(path: Any) -> None:
    """Remove one file, on local disk or an object store (whose `rm` would read `[` in its name as a pattern)."""
    if isinstance(path, Path):
        path.unlink(missing_ok=True)
        return
    with contextlib.suppress(FileNotFoundError):
        path.fs.rm_file(path.path)


# A model and the counts its date is compared on with the date before (`staleness`).
COMPARED_COUNTS = ("model_id", "downloads_30d", "downloads_all_time")


def thin_counts(meta: dict[str, Any]) -> bool:
    """Whether under half of an imported date's models have a 30-day count (a panel's early, sparse dates)."""
    counted, rows = meta.get("models_with_30d_count"), meta.get("rows", meta.get("imported_rows"))
    return isinstance(counted, int) and isinstance(rows, int) and 2 * counted < rows


def staleness(
    days: dict[dt.date, list[tuple[SnapshotFile, pl.DataFrame]]],
    published: dict[dt.date, Callable[[], pl.DataFrame]] | None = None,
) -> dict[dt.date, dict[str, Any]]:
    """What each imported date's `_meta` says of it against the date before (in the import, or one published
    already: `published` gives the counts of each published date, read only when one is a date before):
    `same_counts_as` when every count recorded on both dates is the same, for at least half of this date's models
    (a scraper that kept stale values: the date says nothing new of them), with how many models it repeats and
    adds; `models_of_date_before` when it lists under half as many models as the date before (both may be said)."""
    loaders = {day: load for day, load in (published or {}).items() if day not in days}
    counts_of = functools.cache(lambda day: _counts(days[day]) if day in days else loaders[day]())
    timeline = sorted({*days, *loaders})
    found: dict[dt.date, dict[str, Any]] = {}
    for earlier, day in zip(timeline, timeline[1:], strict=False):
        if day not in days:
            continue
        if said := against(counts_of(day), counts_of(earlier), earlier):
            found[day] = said
    return found


# What a date's `models` record says of it against the date before it (`staleness`).
STALENESS = ("same_counts_as", "repeated_models", "added_models", "models_of_date_before")
COMPARED_AGAIN = ("compared_again_at", "compared_again_by")  # the last change of those flags after publishing


def against(counts: pl.DataFrame, previous: pl.DataFrame, earlier: dt.date) -> dict[str, Any]:
    """What `staleness` says of a date with `counts` against the date before it, `earlier`, with `previous`."""
    said: dict[str, Any] = {}
    both = counts.join(previous, on="model_id", how="inner", suffix="_before")
    known = [pl.col(c).is_not_null() & pl.col(f"{c}_before").is_not_null() for c in COMPARED_COUNTS[1:]]
    differ = [k & (pl.col(c) != pl.col(f"{c}_before")) for k, c in zip(known, COMPARED_COUNTS[1:], strict=True)]
    compared, differing = both.select(
        pl.any_horizontal(known).sum().alias("compared"), pl.any_horizontal(differ).sum().alias("differing")
    ).row(0)
    if compared and not differing and 2 * compared >= counts.height:
        said |= {
            "same_counts_as": earlier.isoformat(),
            "repeated_models": compared,
            "added_models": counts.height - both.height,
        }
    if counts.height * 2 < previous.height:
        said["models_of_date_before"] = previous.height
    return said


def date_after(layout: Layout, day: dt.date) -> dt.date | None:
    """The first `models` date published after `day`."""
    return next((d for d in layout.published_dates(MODELS) if d > day), None)


def compare_again(layout: Layout, day: dt.date) -> str | None:
    """Say again in the `models` record of `day`, an imported date, what it is against the date now before it
    (a date inserted or removed before it, or replaced, changes that); what it says now when the record changed.
    A record is rewritten whole (an atomic rename; one PUT on an object store): the data and its sha256 stay."""
    meta = read_meta(layout, MODELS, day)
    if not meta or meta.get("source_kind") != "import":
        return None
    before = layout.date_before(MODELS, day)
    from warehouse.provenance import code_version

    said = against(published_counts(layout, day), published_counts(layout, before), before) if before else {}
    was = {k: v for k, v in meta.items() if k not in COMPARED_AGAIN}
    now = {k: v for k, v in was.items() if k not in STALENESS} | said
    if now == was:
        return None
    # When and by what code the record's flags were changed, after the date was published.
    stamp = {"compared_again_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds")}
    write_json_atomic(layout.meta_file(MODELS, day), now | stamp | {"compared_again_by": code_version()})
    if before is None:
        return f"{day}: the first date now"
    flags = [f"a stale copy of {before}"] if "same_counts_as" in said else []
    if "models_of_date_before" in said:
        flags.append(f"partial ({meta.get('rows', 0):,} of the {said['models_of_date_before']:,} models of {before})")
    return f"{day}: {' and '.join(flags) or f'neither a stale copy nor partial against {before}'}"


def _counts(parts: list[tuple[SnapshotFile, pl.DataFrame]]) -> pl.DataFrame:
    """A date's models and their counts, as integers, a model once."""
    rows = pl.concat([r for _, r in parts], how="diagonal")
    counts = rows.select(pl.col(c) if c in rows.columns else pl.lit(None).alias(c) for c in COMPARED_COUNTS)
    whole = [_whole(pl.col(c).cast(pl.String).str.strip_chars()).alias(c) for c in COMPARED_COUNTS[1:]]
    return counts.select(pl.col("model_id").str.strip_chars(), *whole).unique("model_id", keep="last")


def published_counts(layout: Layout, day: dt.date) -> pl.DataFrame:
    """The counts of the models published on `day`, as integers."""
    counts = layout.scan(MODELS, day).select(COMPARED_COUNTS).collect()
    return counts.with_columns(pl.col(c).cast(pl.Int64) for c in COMPARED_COUNTS[1:])


def _provenance(
    sources: list[SnapshotFile], options: dict[str, Any], frame: pl.DataFrame, day: dt.date
) -> dict[str, Any]:
    """The `_meta` of one imported date: where its rows came from and how they were imported."""
    described = [_of_date(s.provenance(), day) for s in sources]
    return {
        "source_kind": "import",
        **described[0],
        "source_files": described,
        "import_options": options,
        "imported_rows": frame.height,
        "models_with_30d_count": int(frame.get_column("downloads_30d").is_not_null().sum()),
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def _of_date(provenance: dict[str, Any], day: dt.date) -> dict[str, Any]:
    """A file's provenance as one date's record holds it: of an llmfit panel's commits, those of `day`."""
    llmfit = provenance.get("llmfit")
    if not llmfit or "commits_by_date" not in llmfit:
        return provenance
    commits = {k: v for k, v in llmfit.items() if k != "commits_by_date"}
    return provenance | {"llmfit": commits | {"commits_of_date": llmfit["commits_by_date"].get(day.isoformat(), [])}}


def derive_all(
    layout: Layout, seconds: dict[str, float], *, dashboard: bool = True, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Attribute, measure and detect crossovers for every published date in order, then write the reproduction
    report and draw the dashboard.

    Each step is skipped where its inputs are unchanged, so dates imported earlier cost nothing, while a
    date inserted before them updates their `between` window and crossovers.
    """
    from flows import steps
    from warehouse.publish import records_kept

    outcomes: dict[str, Any] = {}
    # Each date's crossovers read the records and shares of every date before: each is read once, and read
    # again only once written again.
    crossovers = functools.partial(steps.crossovers_date, kept={})
    timed = {"attribute": steps.attribute_date, "metrics": steps.metrics_date, "crossovers": crossovers}
    for name in timed:
        seconds.setdefault(name, 0.0)
    said = {"attribute": "attributed", "metrics": "measured", "crossovers": "crossovers"}
    current = 0
    with records_kept():
        for day in layout.published_dates(MODELS):
            done = []
            for name, step in timed.items():
                began = time.monotonic()
                outcome = step(layout, day)
                seconds[name] = round(seconds[name] + time.monotonic() - began, 2)
                if outcome.get("status") == "published":
                    outcomes[f"{name} {day}"] = outcome
                    done.append(said[name])
            if done:
                log(f"{day}: {', '.join(done)}")
            else:
                current += 1
    if current:
        log(f"{current} date{'s' if current != 1 else ''} up to date")
    began = time.monotonic()
    outcomes["reproduce"] = steps.reproduction_step(layout)
    seconds["reproduce"] = round(time.monotonic() - began, 2)
    if dashboard:
        began = time.monotonic()
        outcomes["dashboard"] = steps.dashboard_step(layout)
        seconds["dashboard"] = round(time.monotonic() - began, 2)
    return outcomes
