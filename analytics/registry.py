"""The curated attribution registry: HF namespace -> lab, country, region, developer type, evidence.

The registry is `registry.csv` beside this module, keyed by the Hub namespace, whose case the Hub and the
attribution ignore (`Qwen` and `qwen` are one account): it is written as on the Hub.
Empty `country` means unknown (never guessed); `region` then stays empty too, unless the namespace is a
multinational collaboration that sits wholly inside one region (an EU-funded consortium, say).

Region follows country: CN, HK and MO are China; US is United States; the EU, EEA, United Kingdom,
Switzerland, the microstates, the Western Balkans, Ukraine and Moldova are Europe; every other country,
Russia and Belarus included, is Rest of world.

Developer types: `industry`, `academia`, `non-profit`, `government`, `community` (collectives and
individuals who train or fine-tune models of their own) and `intermediary` (accounts whose repos are not
models of their own: re-uploads, quantizations, format conversions and abliterations of someone else's
weights, and the tiny random test fixtures of libraries' CI, which no one releases as a model). The
`official` rule counts the four organisation types only (`analytics.attribution.LAB_TYPES`).
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REGISTRY_PATH = Path(__file__).with_name("registry.csv")
COLUMNS = ("namespace", "lab", "country", "region", "developer_type", "evidence")
REGIONS = frozenset({"China", "United States", "Europe", "Rest of world"})
DEVELOPER_TYPES = frozenset({"industry", "academia", "non-profit", "government", "community", "intermediary"})
MAX_CELL = 500

# ISO 3166-1 alpha-2, the 249 officially assigned codes.
_ISO_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS
    BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE
    EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM
    HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC
    LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA
    NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW
    SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO
    TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
ISO_COUNTRIES = frozenset(_ISO_CODES.split())
CHINA = frozenset({"CN", "HK", "MO"})
_EUROPE_CODES = """
    AT BE BG HR CY CZ DK EE FI FR DE GR HU IE IT LV LT LU MT NL PL PT RO SK SI ES SE
    IS LI NO GB CH AD MC SM VA GI IM JE GG FO AX SJ AL BA ME MK RS UA MD
"""
EUROPE = frozenset(_EUROPE_CODES.split())

_NAMESPACE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_FORMULA = ("=", "+", "@")


class RegistryError(ValueError):
    """The registry file is broken; the message lists every problem with its line number."""

    def __init__(self, path: Path, problems: list[RegistryProblem]) -> None:
        self.path, self.problems = path, problems
        if len(problems) == 1:  # one line
            super().__init__(f"registry {path}, {problems[0]}")
            return
        listing = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"registry {path} has {len(problems)} problems:\n{listing}")


@dataclass(frozen=True)
class RegistryProblem:
    """One defect of the registry file, at a 1-based physical line."""

    line: int | None  # None: the file as a whole (it cannot be read, or holds no row)
    reason: str

    def __str__(self) -> str:
        return self.reason if self.line is None else f"line {self.line}: {self.reason}"


def region_of(country: str) -> str:
    """The region a country code belongs to."""
    if country in CHINA:
        return "China"
    if country == "US":
        return "United States"
    if country in EUROPE:
        return "Europe"
    return "Rest of world"


def _row_problems(row: dict[str, str]) -> list[str]:
    """Why one parsed row is invalid (empty when it is fine)."""
    reasons = []
    for name, cell in row.items():
        if _CONTROL.search(cell):
            reasons.append(f"hostile content: control character in {name}")
        if len(cell) > MAX_CELL:
            reasons.append(f"hostile content: {name} is {len(cell)} characters (max {MAX_CELL})")
        if cell.startswith(_FORMULA):
            reasons.append(f"hostile content: {name} starts with a formula character {cell[0]!r}")
    namespace, country, region = row["namespace"], row["country"], row["region"]
    if not _NAMESPACE.match(namespace):
        reasons.append(f"malformed namespace {namespace!r}")
    if not row["lab"].strip():
        reasons.append("missing lab")
    if not row["evidence"].strip():
        reasons.append("missing evidence")
    if row["developer_type"] not in DEVELOPER_TYPES:
        reasons.append(f"unknown developer type {row['developer_type']!r}")
    if region and region not in REGIONS:
        reasons.append(f"unknown region {region!r}")
    if country and country not in ISO_COUNTRIES:
        reasons.append(f"unknown country code {country!r}")
    elif country and region in REGIONS and region != region_of(country):
        reasons.append(f"region {region!r} inconsistent with country {country} (expected {region_of(country)!r})")
    elif country and not region:
        reasons.append(f"missing region for country {country} (expected {region_of(country)!r})")
    return reasons


def _parse(path: Path) -> tuple[list[dict[str, str]], list[RegistryProblem]]:
    """The valid rows of the registry file and every problem found, each with its line number."""
    try:
        raw = path.read_bytes()
    except OSError as error:
        return [], [RegistryProblem(None, f"cannot be read: {error.strerror or error}")]
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        return [], [RegistryProblem(line, f"unparsable: not UTF-8 ({error.reason})")]
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[dict[str, str]] = []
    problems: list[RegistryProblem] = []
    seen: dict[str, tuple[int, str]] = {}
    line = 1
    try:
        header = next(reader, None)
        if header is None:
            return [], [RegistryProblem(1, "malformed CSV: empty file, expected a header")]
        if tuple(header) != COLUMNS:
            return [], [RegistryProblem(1, f"malformed CSV: header {header} is not {list(COLUMNS)}")]
        line = reader.line_num + 1
        for cells in reader:
            if not cells:
                problems.append(RegistryProblem(line, "malformed CSV: blank line"))
            elif len(cells) != len(COLUMNS):
                reason = f"malformed CSV: {len(cells)} columns, expected {len(COLUMNS)}"
                problems.append(RegistryProblem(line, reason))
            else:
                row = dict(zip(COLUMNS, cells, strict=True))
                problems += [RegistryProblem(line, reason) for reason in _row_problems(row)]
                # The Hub ignores the case of namespaces: Qwen and qwen are one account.
                first, spelt = seen.setdefault(row["namespace"].lower(), (line, row["namespace"]))
                if first != line:
                    other = f" as {spelt!r}: the Hub ignores case" if spelt != row["namespace"] else ""
                    reason = f"duplicate namespace {row['namespace']!r} (first at line {first}{other})"
                    problems.append(RegistryProblem(line, reason))
                rows.append(row)
            line = reader.line_num + 1
    except csv.Error as error:
        problems.append(RegistryProblem(line, f"unparsable: {error}"))
    if not rows and not problems:  # a header alone: every download would go to Unknown, and `official` count none
        problems.append(RegistryProblem(None, "holds no row: a registry credits at least one namespace"))
    return rows, problems


def check_registry(path: Path | str | None = None) -> list[RegistryProblem]:
    """Every problem of the registry file at `path`, each with its line number; empty when valid."""
    return _parse(Path(path) if path is not None else REGISTRY_PATH)[1]


def load_registry(path: Path | str | None = None) -> pl.DataFrame:
    """The registry as a lookup frame (unknown country/region as null), or a RegistryError."""
    path = Path(path) if path is not None else REGISTRY_PATH
    rows, problems = _parse(path)
    if problems:
        raise RegistryError(path, problems)
    frame = pl.DataFrame(rows, schema={c: pl.String() for c in COLUMNS})
    return frame.with_columns(
        [pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c)).alias(c) for c in ("country", "region")]
    )


def registry_version(path: Path | str | None = None) -> str:
    """A short content hash and the row count, e.g. `sha256:0a1b2c3d4e5f/412 rows`."""
    path = Path(path) if path is not None else REGISTRY_PATH
    try:
        raw = path.read_bytes()
    except OSError as error:
        raise RegistryError(path, [RegistryProblem(None, f"cannot be read: {error.strerror or error}")]) from None
    # A byte-order mark and Windows line endings are how an editor or a checkout saves the same rows: they leave the
    # version as it is, so that two copies differing in them alone do not make every date out of date.
    raw = raw.removeprefix(codecs.BOM_UTF8).replace(b"\r\n", b"\n")
    # Undecodable bytes only blur the row count here; `load_registry` refuses them, naming their line.
    rows = sum(1 for _ in csv.reader(io.StringIO(raw.decode("utf-8", errors="replace"), newline=""))) - 1
    return f"sha256:{hashlib.sha256(raw).hexdigest()[:12]}/{max(rows, 0)} rows"
