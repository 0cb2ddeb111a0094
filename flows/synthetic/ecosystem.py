"""The synthetic Hub's state and its day-to-day evolution: popularity, downloads, likes, births, deletions."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from flows.synthetic.catalogue import CHINA, LLM_PIPELINES, US
from flows.synthetic.population import (
    INTERMEDIARY,
    LAB,
    MAX_GENERATION,
    USER,
    derivatives,
    id_hashes,
    initial_population,
    lab_models,
    n_users,
    unique_ids,
    user_originals,
)

DAY_MS = 86_400_000
HUB_EPOCH = dt.datetime(2021, 1, 1, tzinfo=dt.UTC)
# Repos created before the Hub stored creation dates all report this instant (stack notes §1.1).
PLACEHOLDER_CREATED = dt.datetime(2022, 3, 2, 23, 29, 4, tzinfo=dt.UTC)
GROWTH_PER_DAY = math.log(2.2) / 365  # the Hub's model count roughly doubles each year
DRIFT_PERSISTENCE = 0.95  # AR(1) coefficient of each model's log-download drift
DRIFT_SD = 0.25  # stationary spread of that drift
NEVER, DORMANT, ACTIVE = 0, 1, 2


@dataclass(frozen=True)
class Targets:
    """What the day-0 world is calibrated to (finding.md H4, H6; HF-SU26)."""

    top200_share: float = 0.50  # H4: top-200 models = 49.6 % of downloads
    active_fraction: float = 0.35  # models with any downloads in the trailing 30 days
    any_downloads_fraction: float = 0.60  # models with any downloads ever
    under_1b_share: float = 0.78  # 30-day downloads of sized models going to <1B (HF-SU26: 83 % all-time)
    llm_kind_shares: tuple[float, float, float] = (0.55, 0.20, 0.25)  # labs, intermediaries, individuals
    downloads_per_model: float = 2_000.0  # total 30-day downloads / models


@dataclass(frozen=True)
class SeriesSpec:
    """Everything that fixes a daily series of synthetic worlds."""

    n_models: int
    start: dt.date
    seed: int = 0
    crossover: dt.date = dt.date(2025, 7, 15)  # the day China's LLM share first passes the US's
    swing: float = 0.35  # China/US ratio moves between exp(-swing) and exp(swing)
    width_days: float = 90.0  # how fast the ratio moves through the crossover
    birth_rate: float = 0.001  # new models per day, as a fraction of n_models (as many are deleted)
    targets: Targets = field(default_factory=Targets)

    def china_us_ratio(self, day: dt.date) -> float:
        """China/US ratio of LLM downloads on `day`: below 1 before the crossover, above 1 from it on."""
        offset = (day - self.crossover).days + 0.5
        return math.exp(self.swing * math.tanh(offset / self.width_days))


@dataclass
class Ecosystem:
    """Every model ever listed (rows in creation order) and each one's state on `day`."""

    spec: SeriesSpec
    day: dt.date
    models: pl.DataFrame
    created_ms: np.ndarray
    gain: np.ndarray  # calibrated log-popularity offset per model
    state: np.ndarray
    drift: np.ndarray
    downloads: np.ndarray
    all_time: np.ndarray
    likes: np.ndarray
    like_rate: np.ndarray
    trending: np.ndarray
    modified_ms: np.ndarray
    alive: np.ndarray
    is_base: np.ndarray
    calibration: dict[str, np.ndarray]
    activity_cuts: tuple[float, float]
    id_hashes: np.ndarray  # sorted hashes of every id ever used

    @property
    def day_index(self) -> int:
        return (self.day - self.spec.start).days


def start(spec: SeriesSpec) -> Ecosystem:
    """The ecosystem on `spec.start`, calibrated to `spec.targets`."""
    rng = _rng(spec.seed, 0, 0)
    models = initial_population(spec.n_models, rng)
    n = models.height
    end_ms = _day_end_ms(spec.start)
    created_ms = _creation_times(rng, n, end_ms)
    log_w = models.get_column("log_w").to_numpy()
    kind = models.get_column("kind").to_numpy()
    score = log_w + rng.normal(0.0, 1.5, n) + 4.0 * (kind == LAB)
    cuts = (
        float(np.quantile(score, 1 - spec.targets.active_fraction)),
        float(np.quantile(score, 1 - spec.targets.any_downloads_fraction)),
    )
    state = _activity(score, cuts)
    drift = rng.normal(0.0, DRIFT_SD, n)
    eco = Ecosystem(
        spec=spec,
        day=spec.start,
        models=models,
        created_ms=created_ms,
        gain=np.zeros(n),
        state=state,
        drift=drift,
        downloads=np.zeros(n, np.int64),
        all_time=np.zeros(n, np.int64),
        likes=np.zeros(n, np.int64),
        like_rate=_like_rates(rng, models),
        trending=np.zeros(n, np.int64),
        modified_ms=created_ms + ((end_ms - created_ms) * rng.random(n) ** 4).astype(np.int64),
        alive=np.ones(n, dtype=bool),
        is_base=_bases_mask(models),
        calibration={},
        activity_cuts=cuts,
        id_hashes=np.sort(id_hashes(models.get_column("id"))),
    )
    _calibrate(eco)
    eco.downloads = _downloads(eco, rng)
    age_months = (end_ms - created_ms) / (30 * DAY_MS)
    is_llm = models.get_column("pipeline_tag").is_in(LLM_PIPELINES).to_numpy()
    legacy = np.exp(rng.normal(math.log(0.6), 0.7, n)) * np.where(is_llm, 1.0, 2.0)
    all_time = eco.downloads * (1.0 + np.maximum(age_months - 1, 0) * legacy)
    dormant = np.ceil(np.exp(rng.normal(math.log(30), 1.6, n)))
    eco.all_time = np.where(state == ACTIVE, all_time, np.where(state == DORMANT, dormant, 0)).astype(np.int64)
    eco.all_time = np.maximum(eco.all_time, eco.downloads)
    _social(eco)
    return eco


def advance(eco: Ecosystem) -> Ecosystem:
    """The same ecosystem one day later: births, deletions, drift, downloads, all-time counts, likes."""
    eco.day = eco.day + dt.timedelta(days=1)
    rng = _rng(eco.spec.seed, 1, eco.day_index)
    born = round(eco.spec.birth_rate * eco.spec.n_models)
    _delete(eco, rng, born)
    _add_births(eco, rng, born)
    live = eco.alive
    eco.drift = DRIFT_PERSISTENCE * eco.drift + math.sqrt(1 - DRIFT_PERSISTENCE**2) * DRIFT_SD * rng.normal(
        0.0, 1.0, eco.drift.size
    )
    eco.downloads = _downloads(eco, rng)
    increment = np.floor(eco.downloads / 30 + rng.random(eco.downloads.size)).astype(np.int64)
    eco.all_time = np.where(live, np.maximum(eco.all_time + increment, eco.downloads), eco.all_time)
    touched = live & (eco.state == ACTIVE) & (rng.random(live.size) < 0.002)
    day_ms = _day_end_ms(eco.day) - DAY_MS + 1
    eco.modified_ms[touched] = day_ms + rng.integers(0, DAY_MS, int(touched.sum()))
    _social(eco)
    return eco


def _rng(seed: int, stream: int, day: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([seed, stream, day]))


def _day_end_ms(day: dt.date) -> int:
    end = dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC) + dt.timedelta(days=1)
    return int(end.timestamp() * 1000) - 1


def _creation_times(rng: np.random.Generator, n: int, end_ms: int) -> np.ndarray:
    """Creation instants for rows already in creation order, with the Hub's exponential growth."""
    epoch_ms = int(HUB_EPOCH.timestamp() * 1000)
    span_days = (end_ms - epoch_ms) / DAY_MS
    q = (np.arange(n) + rng.random(n)) / n
    days = np.log1p(np.expm1(GROWTH_PER_DAY * span_days) * q) / GROWTH_PER_DAY
    return np.minimum(epoch_ms + (days * DAY_MS).astype(np.int64), end_ms)


def _activity(score: np.ndarray, cuts: tuple[float, float]) -> np.ndarray:
    return np.where(score >= cuts[0], ACTIVE, np.where(score >= cuts[1], DORMANT, NEVER)).astype(np.int8)


def _like_rates(rng: np.random.Generator, models: pl.DataFrame) -> np.ndarray:
    kind = models.get_column("kind").to_numpy()
    big = models.get_column("params").fill_null(0).to_numpy() >= 100e9
    rate = np.exp(rng.normal(-4.5, 1.3, models.height))
    # Frontier-size releases draw attention out of proportion to their downloads (HF-SU26).
    return rate * np.where(kind == LAB, 3.0, 1.0) * np.where(big, 20.0, 1.0)


def _bases_mask(models: pl.DataFrame) -> np.ndarray:
    bases = pl.concat([models.get_column(c).drop_nulls() for c in ("base1", "base2", "base3")])
    return models.get_column("id").is_in(bases.implode()).to_numpy()


def _cells(models: pl.DataFrame) -> dict[str, np.ndarray]:
    """Each model's cell along every calibration dimension."""
    kind = models.get_column("kind").to_numpy().astype(np.int64)
    llm = models.get_column("pipeline_tag").is_in(LLM_PIPELINES).fill_null(False).to_numpy()
    region = models.get_column("root_region").to_numpy()
    params = models.get_column("params").fill_null(-1.0).to_numpy()
    sized = models.get_column("has_safetensors").to_numpy() & (params > 0)
    china_us = np.where(region == CHINA, 1, np.where(region == US, 2, 0))
    own = np.where(kind == LAB, 0, 2)
    return {
        "kind": np.where(llm, 1 + kind, 0),  # 0 = not an LLM; 1..3 = LLM by uploader kind
        "rivals": np.where(llm & (china_us > 0), china_us + own, 0),  # 1/2 lab-hosted, 3/4 derived
        "size": np.where(sized, np.where(params < 1e9, 1, 2), 0),
        "tail": np.ones(models.height, dtype=np.int64),
    }


def _gain(eco: Ecosystem, cells: dict[str, np.ndarray]) -> np.ndarray:
    return sum(eco.calibration[name][cells[name]] for name in cells)  # type: ignore[return-value]


def _calibrate(eco: Ecosystem, rounds: int = 8) -> None:
    """Fit popularity offsets so the day-0 world meets the targets (iterative proportional fitting).

    Offsets per cell set the LLM uploader mix, China/US parity and the under-1B share; a rank tilt
    (downloads times rank**tilt) sets the top-200 share whatever the world's size.
    """
    targets = eco.spec.targets
    cells = _cells(eco.models)
    cells["tail"] = np.ones(eco.models.height, dtype=np.int64)
    eco.calibration = {"kind": np.zeros(4), "rivals": np.zeros(5), "size": np.zeros(3), "tail": np.zeros(2)}
    active = eco.state == ACTIVE
    base = eco.models.get_column("log_w").to_numpy() + eco.drift + np.log(_ramp(eco))
    base = base - base[active].max()
    tilt = np.zeros(eco.models.height)

    def raw() -> np.ndarray:
        return np.where(active, np.exp(base + _gain(eco, cells) + tilt), 0.0)

    for _ in range(rounds):
        sums = np.bincount(cells["kind"], raw(), 4)
        if sums[1:].sum() > 0:
            want = np.array(targets.llm_kind_shares) * sums[1:].sum()
            eco.calibration["kind"][1:] += np.log(np.where(sums[1:] > 0, want / np.maximum(sums[1:], 1e-300), 1))
        sums = np.bincount(cells["rivals"], raw(), 5)
        for china, us in ((1, 2), (3, 4)):
            if sums[china] > 0 and sums[us] > 0:
                half = (sums[china] + sums[us]) / 2
                eco.calibration["rivals"][china] += math.log(half / sums[china])
                eco.calibration["rivals"][us] += math.log(half / sums[us])
        sums = np.bincount(cells["size"], raw(), 3)
        if sums[1] > 0 and sums[2] > 0:
            odds = targets.under_1b_share / (1 - targets.under_1b_share)
            eco.calibration["size"][1] += math.log(odds * sums[2] / sums[1])
        tilt = _rank_tilt(np.where(active, base + _gain(eco, cells), -np.inf), targets.top200_share)
    values = raw()
    scale = math.log(targets.downloads_per_model * eco.models.height / values.sum())
    eco.calibration["kind"] += scale - base_shift(eco, active)
    ranked_tail = active & (tilt != 0)
    eco.calibration["tail"][1] = float(np.median(tilt[ranked_tail])) if ranked_tail.any() else 0.0
    eco.gain = _gain(eco, {**cells, "tail": np.zeros(eco.models.height, dtype=np.int64)}) + tilt


def base_shift(eco: Ecosystem, active: np.ndarray) -> float:
    """The shift `_calibrate` takes out of log-popularity to keep exponentials in range."""
    base = eco.models.get_column("log_w").to_numpy() + eco.drift + np.log(_ramp(eco))
    return float(base[active].max())


def _rank_tilt(log_value: np.ndarray, share: float, head: int = 200) -> np.ndarray:
    """Per-model log-offsets tilt*log(rank) that give the top `head` models `share` of the total."""
    order = np.argsort(-log_value, kind="stable")
    counted = int(np.isfinite(log_value).sum())
    if counted <= head:
        return np.zeros(log_value.size)
    ranked = log_value[order[:counted]]
    log_rank = np.log(np.arange(1, counted + 1))

    def top_share(tilt: float) -> float:
        values = np.exp(ranked + tilt * log_rank - ranked[0])
        return float(np.partition(values, counted - head)[counted - head :].sum() / values.sum())

    low, high = -1.0, 1.0
    for _ in range(30):
        middle = (low + high) / 2
        if top_share(middle) > share:
            low = middle
        else:
            high = middle
    tilt = np.zeros(log_value.size)
    tilt[order[:counted]] = (low + high) / 2 * log_rank
    return tilt


def _ramp(eco: Ecosystem) -> np.ndarray:
    """Share of the trailing 30-day window a model has existed for."""
    age_days = (_day_end_ms(eco.day) - eco.created_ms) / DAY_MS
    return np.clip(age_days / 30, 1 / 30, 1.0)


def _downloads(eco: Ecosystem, rng: np.random.Generator) -> np.ndarray:
    """Trailing 30-day downloads on `eco.day`, with the China/US LLM balance set for that day."""
    log_w = eco.models.get_column("log_w").to_numpy()
    counted = eco.alive & (eco.state == ACTIVE)
    raw = np.where(counted, np.exp(log_w + eco.gain + eco.drift) * _ramp(eco), 0.0)
    rivals = _cells(eco.models)["rivals"]
    sums = np.bincount(rivals, raw, 5)
    ratio = eco.spec.china_us_ratio(eco.day)
    factor = np.ones(5)
    for china, us in ((1, 2), (3, 4)):
        pair = sums[china] + sums[us]
        if sums[china] > 0 and sums[us] > 0:
            factor[china] = pair * ratio / (1 + ratio) / sums[china]
            factor[us] = pair / (1 + ratio) / sums[us]
    raw = raw * factor[rivals]
    counts = np.floor(raw + rng.random(raw.size)).astype(np.int64)
    return np.where(counted, np.maximum(counts, 1), 0)


def _social(eco: Ecosystem) -> None:
    """Likes only ever grow, with all-time downloads; trending favours fresh, busy repos."""
    liked = np.floor(eco.like_rate * eco.all_time.astype(np.float64) ** 0.7).astype(np.int64)
    eco.likes = np.where(eco.alive, np.maximum(eco.likes, liked), eco.likes)
    age_days = (_day_end_ms(eco.day) - eco.created_ms) / DAY_MS
    eco.trending = np.floor(eco.like_rate * 30 * np.sqrt(eco.downloads) * np.exp(-age_days / 14)).astype(np.int64)


def _delete(eco: Ecosystem, rng: np.random.Generator, count: int) -> None:
    """Individuals delete never-downloaded repos that nothing else names as a base."""
    eligible = np.flatnonzero(
        eco.alive & (eco.state == NEVER) & ~eco.is_base & (eco.models.get_column("kind").to_numpy() == USER)
    )
    if eligible.size:
        eco.alive[rng.choice(eligible, size=min(count, eligible.size), replace=False)] = False


def _add_births(eco: Ecosystem, rng: np.random.Generator, count: int) -> None:
    """Today's new repos: mostly derivatives of popular live models, some originals and lab releases."""
    if count == 0:
        return
    n_lab = int(rng.binomial(count, 0.03))
    n_orig = int(rng.binomial(count - n_lab, 0.22))
    n_deriv = count - n_lab - n_orig
    users = n_users(eco.spec.n_models)
    models = eco.models
    pool_rows = np.flatnonzero(eco.alive & (models.get_column("generation").to_numpy() < MAX_GENERATION))
    pool = models[pool_rows]
    log_w = pool.get_column("log_w").to_numpy() + eco.gain[pool_rows]
    kind = pool.get_column("kind").to_numpy()
    weight = np.exp(0.5 * (log_w - log_w.max())) * np.where(
        (kind == LAB) & (pool.get_column("generation") == 0).to_numpy(), 5.0, 1.0
    )
    blocks = [
        lab_models(rng, n_lab) if n_lab else None,
        user_originals(rng, n_orig, users) if n_orig else None,
        derivatives(rng, pool, weight / weight.sum(), n_deriv, users, 2) if n_deriv else None,
    ]
    new = pl.concat([b for b in blocks if b is not None and b.height], how="vertical")
    new = unique_ids(new, eco.id_hashes)
    k = new.height
    day_start = _day_end_ms(eco.day) - DAY_MS + 1
    created = np.sort(day_start + rng.integers(0, DAY_MS, k))
    cells = _cells(new)
    cells["tail"] = np.ones(k, dtype=np.int64)
    gain = _gain(eco, cells)
    score = (
        new.get_column("log_w").to_numpy() + rng.normal(0.0, 1.5, k) + 4.0 * (new.get_column("kind").to_numpy() == LAB)
    )
    eco.models = pl.concat([models, new], how="vertical")
    eco.id_hashes = np.sort(np.concatenate([eco.id_hashes, id_hashes(new.get_column("id"))]))
    eco.created_ms = np.concatenate([eco.created_ms, created])
    eco.gain = np.concatenate([eco.gain, gain])
    eco.state = np.concatenate([eco.state, _activity(score, eco.activity_cuts)])
    eco.drift = np.concatenate([eco.drift, rng.normal(0.0, DRIFT_SD, k)])
    eco.downloads = np.concatenate([eco.downloads, np.zeros(k, np.int64)])
    eco.all_time = np.concatenate([eco.all_time, np.zeros(k, np.int64)])
    eco.likes = np.concatenate([eco.likes, np.zeros(k, np.int64)])
    eco.like_rate = np.concatenate([eco.like_rate, _like_rates(rng, new)])
    eco.trending = np.concatenate([eco.trending, np.zeros(k, np.int64)])
    eco.modified_ms = np.concatenate([eco.modified_ms, created])
    eco.alive = np.concatenate([eco.alive, np.ones(k, dtype=bool)])
    named = pl.concat([new.get_column(c).drop_nulls() for c in ("base1", "base2", "base3")])
    eco.is_base = np.concatenate(
        [eco.is_base | models.get_column("id").is_in(named.implode()).to_numpy(), np.zeros(k, bool)]
    )


__all__ = ["INTERMEDIARY", "Ecosystem", "SeriesSpec", "Targets", "advance", "start"]
