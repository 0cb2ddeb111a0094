"""Synthetic Hub worlds: seeded, stand-in `/api/models` listings for tests, demos and scale runs.

A world is one JSONL file, one listing item per line, in the Hub's own field names (`id`, `author`,
`createdAt`, `lastModified`, `downloads` = trailing 30 days, `downloadsAllTime`, `likes`,
`trendingScore`, `tags` with `base_model:` lineage, `pipeline_tag`, `library_name`, `gated`,
`safetensors` when sized, `private`). A series is one world per day: models are born (mostly
derivatives of popular models) and deleted, downloads drift, all-time counts only grow, and the
China/US balance of LLM downloads tips from the US to China on the crossover day.

Cast: the registered lab namespaces of `SYNTHETIC_LAB_REGIONS` (China, United States, Europe, Rest of
world), intermediaries (unsloth, bartowski, TheBloke, mlx-community, lmstudio-community,
mradermacher, QuantFactory) and individual accounts `user-NNNNNN`, whose repos are mostly finetunes,
adapters, quantizations and merges of lab models, up to four generations deep. A few `base_model`
tags name `OUT_OF_WORLD_BASES`, repos the listing does not return.

Calibration (day 0; `calibration_report` measures any world; targets in `Targets`):

| measure                                        | target | measured, 20k | 200k  | 3M    |
|------------------------------------------------|--------|---------------|-------|-------|
| top-200 share of 30-day downloads (H4: 49.6 %) | 0.50   | 0.50          | 0.48  | 0.48  |
| models with 30-day downloads > 0               | 0.35   | 0.35          | 0.35  | 0.35  |
| models with any all-time downloads             | 0.60   | 0.60          | 0.60  | 0.60  |
| <1B share of sized 30-day downloads            | 0.78   | 0.79          | 0.76  | 0.76  |
| <1B share of sized all-time downloads (HF-SU26: 83 %) | — | 0.83        | 0.90  | 0.90  |

The top-200 share is held by a rank tilt, so it does not depend on the world's size; the others by
offsets per cell (uploader kind among LLMs, China/US parity of lab-hosted and derived LLMs, size
class), fitted by iterative proportional fitting on the day-0 world. After calibration the
China/US ratio of LLM downloads is set each day to exp(swing * tanh((day - crossover + 0.5) / width)),
for lab-hosted and derived repos alike, so China passes the US on the crossover day under both the
uploader and the lineage rule.

Same seed, same arguments: byte-identical files. Strings come from a fixed vocabulary without quotes
or backslashes, which is what lets the writer spell JSON lines with polars string expressions.
"""

from __future__ import annotations

from flows.synthetic.catalogue import LLM_PIPELINES, OUT_OF_WORLD_BASES, SYNTHETIC_LAB_REGIONS
from flows.synthetic.ecosystem import Ecosystem, SeriesSpec, Targets, advance, start
from flows.synthetic.report import calibration_report, lineage_roots, llm_region_shares, read_world
from flows.synthetic.world import (
    evolve,
    generate_world,
    json_lines,
    listing,
    series_spec,
    world_frame,
    world_name,
    worlds,
    write_world,
    write_worlds,
)

__all__ = [
    "LLM_PIPELINES",
    "OUT_OF_WORLD_BASES",
    "SYNTHETIC_LAB_REGIONS",
    "Ecosystem",
    "SeriesSpec",
    "Targets",
    "advance",
    "calibration_report",
    "evolve",
    "generate_world",
    "json_lines",
    "lineage_roots",
    "listing",
    "llm_region_shares",
    "read_world",
    "series_spec",
    "start",
    "world_frame",
    "world_name",
    "worlds",
    "write_world",
    "write_worlds",
]
