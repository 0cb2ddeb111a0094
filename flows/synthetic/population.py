"""Synthetic models and their lineage: lab releases, individuals' originals, derivatives of both.

A population is a polars frame, one row per model, holding the static facts the Hub would list
(id, author, task, library, licence, size, gate, `base_model` parents) plus the generator's own
bookkeeping (kind of uploader, regions, popularity prior, generation, creation key).
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl

from flows.synthetic.catalogue import (
    FINETUNE_TASK_OF,
    FINETUNE_WORDS,
    INTERMEDIARIES,
    LAB_QUANT_SUFFIXES,
    LABS,
    LADDERS,
    LLM_PIPELINES,
    MERGE_WORDS,
    ORIGINAL_LICENSES,
    ORIGINAL_TASKS,
    ORIGINAL_WORDS,
    OUT_OF_WORLD_BASES,
    REGION_CODE,
    RELATIONS,
    SYNTHETIC_LAB_REGIONS,
    TASK_WORDS,
    USER_QUANT_SUFFIXES,
    VARIANTS,
)

LAB, INTERMEDIARY, USER = 0, 1, 2
MAX_NAME = 96
MAX_GENERATION = 4
GENERATION_SHARES = (0.70, 0.21, 0.07, 0.02)
SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "author": pl.String(),
    "kind": pl.Int8(),
    "uploader_region": pl.Int8(),
    "root_region": pl.Int8(),
    "root": pl.String(),
    "pipeline_tag": pl.String(),
    "library_name": pl.String(),
    "license": pl.String(),
    "params": pl.Float64(),
    "has_safetensors": pl.Boolean(),
    "gated": pl.String(),
    "base1": pl.String(),
    "base2": pl.String(),
    "base3": pl.String(),
    "relation": pl.String(),
    "generation": pl.Int8(),
    "log_w": pl.Float64(),
    "key": pl.Float64(),
}


def initial_population(n_models: int, rng: np.random.Generator) -> pl.DataFrame:
    """`n_models` models with lineage up to MAX_GENERATION deep, sorted by creation key."""
    n_lab = max(3 * len(LABS), round(n_models * 0.003))
    n_orig = round(n_models * 0.33)
    labs = lab_models(rng, n_lab, min_per_lab=3)
    n_deriv = max(0, n_models - labs.height - n_orig)
    originals = user_originals(rng, n_orig, n_users(n_models))
    blocks = [labs, originals]
    counts = _split(n_deriv, GENERATION_SHARES)
    parents = pl.concat([labs, out_of_world_bases()], how="vertical")
    for generation, count in enumerate(counts, start=1):
        pool_weight = _pool_weight(parents, generation)
        children = derivatives(rng, parents, pool_weight, count, n_users(n_models), generation)
        children = unique_ids(children)
        blocks.append(children)
        parents = children
    # Repeats across generations are rare; later ones are renamed, and a child naming the renamed id
    # then names its same-named elder (in practice a sibling re-upload of the same parent).
    return unique_ids(pl.concat(blocks, how="vertical")).sort("key", maintain_order=True)


def n_users(n_models: int) -> int:
    """How many individual accounts share the individuals' models."""
    return max(20, n_models // 7)


def out_of_world_bases() -> pl.DataFrame:
    """Bases named by tags but missing from the listing, shaped like population rows."""
    rows = []
    for model_id, pipeline, params, lic in OUT_OF_WORLD_BASES:
        namespace = model_id.split("/", 1)[0]
        region = REGION_CODE.get(SYNTHETIC_LAB_REGIONS.get(namespace, ""), 0)
        rows.append(
            {
                "id": model_id,
                "author": namespace,
                "kind": LAB,
                "uploader_region": region,
                "root_region": region,
                "root": model_id,
                "pipeline_tag": pipeline,
                "library_name": "transformers",
                "license": lic,
                "params": params,
                "has_safetensors": False,
                "gated": "false",
                "base1": None,
                "base2": None,
                "base3": None,
                "relation": None,
                "generation": 0,
                "log_w": 6.0,
                "key": 0.0,
            }
        )
    return pl.DataFrame(rows, schema=SCHEMA)


def lab_models(rng: np.random.Generator, count: int, *, min_per_lab: int = 0) -> pl.DataFrame:
    """Official releases of the registered labs, `count` in all, shared by each lab's catalogue size."""
    repos = np.array([lab.repos for lab in LABS])
    per_lab = rng.multinomial(max(0, count - min_per_lab * len(LABS)), repos / repos.sum()) + min_per_lab
    rows = []
    for lab, k in zip(LABS, per_lab, strict=True):
        region = REGION_CODE[lab.region]
        appeal = np.array([f.appeal for f in lab.families])
        picks = rng.choice(len(lab.families), size=k, p=appeal / appeal.sum())
        noise = rng.normal(0.0, 1.8, size=k)
        for family_index, eps in zip(picks, noise, strict=True):
            family = lab.families[family_index]
            ladder = LADDERS[family.ladder]
            label, params = ladder[rng.integers(len(ladder))]
            variants = VARIANTS[family.ladder]
            variant = variants[rng.integers(len(variants))]
            name = f"{family.stem}-{label}{variant}" if label else f"{family.stem}{variant}"
            if rng.random() < 0.5:  # dated re-releases, as in Mistral-Small-24B-Instruct-2501
                name += f"-{rng.integers(23, 27)}{rng.integers(1, 13):02d}"
            is_llm = family.pipeline in LLM_PIPELINES
            gated = lab.gated if (lab.gated and is_llm and rng.random() < 0.8) else "false"
            rows.append(
                {
                    "id": f"{lab.namespace}/{name}",
                    "author": lab.namespace,
                    "kind": LAB,
                    "uploader_region": region,
                    "root_region": region,
                    "root": None,
                    "pipeline_tag": family.pipeline,
                    "library_name": family.library,
                    "license": family.license,
                    "params": params * float(rng.uniform(0.97, 1.03)),
                    "has_safetensors": bool(rng.random() < 0.95),
                    "gated": gated,
                    "base1": None,
                    "base2": None,
                    "base3": None,
                    "relation": None,
                    "generation": 0,
                    "log_w": 7.0 + math.log(lab.downloads * family.appeal) + float(eps),
                    "key": float(rng.random()),
                }
            )
    frame = pl.DataFrame(rows, schema=SCHEMA)
    frame = unique_ids(frame)
    return frame.with_columns(root=pl.col("id"))


def user_originals(rng: np.random.Generator, count: int, users: int) -> pl.DataFrame:
    """Individuals' models trained from scratch or uploaded without `base_model` tags."""
    shares = np.array([t[2] for t in ORIGINAL_TASKS])
    task = rng.choice(len(ORIGINAL_TASKS), size=count, p=shares / shares.sum())
    pipelines = np.array([t[0] for t in ORIGINAL_TASKS], dtype=object)[task]
    libraries = np.array([t[1] for t in ORIGINAL_TASKS], dtype=object)[task]
    params = np.full(count, np.nan)
    for index, (_, _, _, ladder) in enumerate(ORIGINAL_TASKS):
        if ladder == "none":
            continue
        mask = task == index
        sizes = np.array([p for _, p in LADDERS[ladder]])
        params[mask] = sizes[rng.integers(len(sizes), size=int(mask.sum()))] * rng.uniform(0.8, 1.2, int(mask.sum()))
    words = np.array(ORIGINAL_WORDS)[rng.integers(len(ORIGINAL_WORDS), size=count)]
    stems = np.where(pipelines == None, "model", pipelines).astype(str)  # noqa: E711
    frame = pl.DataFrame(
        {
            "author": _user_names(rng, count, users),
            "word": words,
            "stem": stems,
            "serial": rng.integers(0, 1000, size=count),
        }
    )
    licenses = np.array(ORIGINAL_LICENSES, dtype=object)[rng.integers(len(ORIGINAL_LICENSES), size=count)]
    frame = frame.select(
        id=pl.format("{}/{}-{}-{}", "author", "word", "stem", "serial"),
        author="author",
        kind=pl.lit(USER, pl.Int8),
        uploader_region=pl.lit(0, pl.Int8),
        root_region=pl.lit(0, pl.Int8),
        root=pl.lit(None, pl.String),
        pipeline_tag=pl.Series(pipelines.tolist(), dtype=pl.String),
        library_name=pl.Series(libraries.tolist(), dtype=pl.String),
        license=pl.Series(licenses.tolist(), dtype=pl.String),
        params=pl.Series(params).fill_nan(None),
        has_safetensors=pl.Series(~np.isnan(params) & (rng.random(count) < 0.7)),
        gated=pl.Series(_user_gates(rng, count)),
        base1=pl.lit(None, pl.String),
        base2=pl.lit(None, pl.String),
        base3=pl.lit(None, pl.String),
        relation=pl.lit(None, pl.String),
        generation=pl.lit(0, pl.Int8),
        log_w=pl.Series(rng.normal(1.0, 2.0, size=count)),
        key=pl.Series(rng.random(count)),
    )
    frame = unique_ids(frame)
    return frame.with_columns(root=pl.col("id"))


def derivatives(
    rng: np.random.Generator,
    parents: pl.DataFrame,
    weight: np.ndarray,
    count: int,
    users: int,
    generation: int | np.ndarray,
) -> pl.DataFrame:
    """`count` finetunes, adapters, quantizations and merges of `parents`, drawn by `weight`."""
    if count == 0 or parents.height == 0:
        return pl.DataFrame(schema=SCHEMA)
    pipelines = parents.get_column("pipeline_tag").to_numpy()
    is_llm = np.isin(pipelines, LLM_PIPELINES)
    is_image = pipelines == "text-to-image"
    eligible = {
        "finetune": np.ones(parents.height, dtype=bool),
        "adapter": is_llm | is_image,
        "quantized": is_llm,
        "merge": is_llm & (parents.get_column("generation").to_numpy() >= 1),
    }
    mix = {"finetune": 0.45, "adapter": 0.20, "quantized": 0.32, "merge": 0.03 if generation == 1 else 0.12}
    relation_index = rng.choice(len(RELATIONS), size=count, p=np.array([mix[r] for r in RELATIONS]) / sum(mix.values()))
    parent_index = np.empty(count, dtype=np.int64)
    relation = np.empty(count, dtype=object)
    for index, name in enumerate(RELATIONS):
        chosen = relation_index == index
        mask = eligible[name]
        if not mask.any():
            mask = eligible["finetune"]
            name = "finetune"
        p = np.where(mask, weight, 0.0)
        parent_index[chosen] = rng.choice(parents.height, size=int(chosen.sum()), p=p / p.sum())
        relation[chosen] = name
    parent = parents[parent_index]
    p_kind = parent.get_column("kind").to_numpy()
    p_author = parent.get_column("author").to_numpy().astype(object)
    p_basename = parent.get_column("id").str.split_exact("/", 1).struct.field("field_1").to_numpy().astype(object)
    p_pipeline = parent.get_column("pipeline_tag").to_numpy().astype(object)
    p_library = parent.get_column("library_name").to_numpy().astype(object)
    p_params = parent.get_column("params").to_numpy()
    p_region = parent.get_column("root_region").to_numpy()
    is_lab_parent = (p_kind == LAB) & (parent.get_column("generation").to_numpy() == 0)

    # Who uploads: quantizers re-upload, individuals finetune, labs sometimes publish their own variants.
    u = rng.random(count)
    kind = np.full(count, USER, dtype=np.int8)
    quant = relation == "quantized"
    kind[quant & (u < 0.60)] = INTERMEDIARY
    kind[quant & (u >= 0.60) & (u < 0.66) & is_lab_parent] = LAB
    kind[(relation == "finetune") & (u < 0.06) & is_lab_parent & is_llm[parent_index]] = LAB
    kind[(relation == "finetune") & (u >= 0.06) & (u < 0.08)] = INTERMEDIARY
    author = _user_names(rng, count, users).to_numpy().astype(object)
    author[kind == LAB] = p_author[kind == LAB]

    suffix = np.empty(count, dtype=object)
    library = p_library.copy()
    has_st = ~np.isnan(p_params) & (relation != "adapter") & (relation != "quantized")
    inter = np.flatnonzero(kind == INTERMEDIARY)
    shares = np.array([i[1] for i in INTERMEDIARIES])
    which = rng.choice(len(INTERMEDIARIES), size=inter.size, p=shares / shares.sum())
    for index, (namespace, _, suffixes, lib) in enumerate(INTERMEDIARIES):
        rows = inter[which == index]
        author[rows] = namespace
        suffix[rows] = np.array(suffixes, dtype=object)[rng.integers(len(suffixes), size=rows.size)]
        library[rows] = lib
    # Intermediaries' finetunes (unsloth's fixed chat templates) stay finetunes, not quantizations.
    ft_inter = inter[relation[inter] == "finetune"]
    author[ft_inter] = "unsloth"
    suffix[ft_inter] = ""
    library[ft_inter] = p_library[ft_inter]
    has_st[ft_inter] = ~np.isnan(p_params[ft_inter])

    lab_quant = np.flatnonzero(quant & (kind == LAB))
    suffix[lab_quant] = np.array(LAB_QUANT_SUFFIXES, dtype=object)[
        rng.integers(len(LAB_QUANT_SUFFIXES), size=lab_quant.size)
    ]
    user_quant = np.flatnonzero(quant & (kind == USER))
    suffix[user_quant] = np.array(USER_QUANT_SUFFIXES, dtype=object)[
        rng.integers(len(USER_QUANT_SUFFIXES), size=user_quant.size)
    ]
    quant_rows = np.flatnonzero(quant)
    quant_suffix = suffix[quant_rows].astype(str)
    is_gguf = np.char.find(quant_suffix, "GGUF") >= 0
    is_mlx = (np.char.find(quant_suffix, "bit") >= 0) & (np.char.find(quant_suffix, "bnb") < 0)
    library[quant_rows[is_gguf]] = None
    library[quant_rows[is_mlx & (kind[quant_rows] != INTERMEDIARY)]] = "mlx"
    library[quant_rows[~is_gguf & ~is_mlx & (kind[quant_rows] != INTERMEDIARY)]] = "transformers"
    has_st[quant_rows[np.char.find(quant_suffix, "FP8") >= 0]] = True

    pipeline = p_pipeline.copy()
    finetune = relation == "finetune"
    for source, targets in FINETUNE_TASK_OF.items():
        rows = np.flatnonzero(finetune & (p_pipeline == source))
        pipeline[rows] = np.array(targets, dtype=object)[rng.integers(len(targets), size=rows.size)]
    changed = finetune & (pipeline != p_pipeline)
    library[changed & (pipeline != "sentence-similarity")] = "transformers"
    library[changed & (pipeline == "sentence-similarity")] = "sentence-transformers"
    words = np.array(FINETUNE_WORDS, dtype=object)[rng.integers(len(FINETUNE_WORDS), size=count)]
    tasks = np.array(TASK_WORDS, dtype=object)[rng.integers(len(TASK_WORDS), size=count)]
    ft_user = finetune & (kind != LAB) & (suffix == None)  # noqa: E711
    suffix[ft_user] = "-" + words[ft_user]
    suffix[ft_user & changed] = "-finetuned-" + tasks[ft_user & changed]
    ft_lab = finetune & (kind == LAB)
    suffix[ft_lab] = np.array(("-Thinking", "-Math", "-Coder", "-Reasoning", "-Long"), dtype=object)[
        rng.integers(5, size=int(ft_lab.sum()))
    ]
    adapter = relation == "adapter"
    suffix[adapter] = "-lora-" + words[adapter]
    library[adapter] = "peft"
    merge = relation == "merge"
    suffix[merge] = (
        "-"
        + words[merge]
        + "-"
        + np.array(MERGE_WORDS, dtype=object)[rng.integers(len(MERGE_WORDS), size=int(merge.sum()))]
    )
    library[merge] = "transformers"
    suffix[suffix == None] = ""  # noqa: E711

    base2, base3 = _merge_partners(rng, parents, parent_index, merge)
    relation[merge & (base2 == None)] = "finetune"  # noqa: E711

    gated = np.where(kind == LAB, parent.get_column("gated").to_numpy().astype(object), _user_gates(rng, count))
    spread = {LAB: (0.8, 1.0, 0.6), INTERMEDIARY: (0.7, -1.0, 1.5), USER: (0.45, -1.5, 2.2)}
    p_log_w = parent.get_column("log_w").to_numpy()
    log_w = np.empty(count)
    for k, (slope, shift, sd) in spread.items():
        rows = kind == k
        log_w[rows] = slope * p_log_w[rows] + shift + rng.normal(0.0, sd, size=int(rows.sum()))
    p_key = parent.get_column("key").to_numpy()
    key = p_key + (1.0 - p_key) * rng.random(count) ** 0.8
    lab_region = np.array(
        [REGION_CODE.get(SYNTHETIC_LAB_REGIONS.get(a, ""), 0) for a in author[kind == LAB]], dtype=np.int8
    )
    uploader_region = np.zeros(count, dtype=np.int8)
    uploader_region[kind == LAB] = lab_region
    generations = parent.get_column("generation").to_numpy().astype(np.int8) + 1

    names = pl.Series(p_basename.tolist(), dtype=pl.String) + pl.Series(suffix.tolist(), dtype=pl.String)
    frame = pl.DataFrame(
        {
            "author": pl.Series(author.tolist(), dtype=pl.String),
            "name": names.str.slice(0, MAX_NAME),
        }
    ).select(
        id=pl.format("{}/{}", "author", "name"),
        author="author",
        kind=pl.Series(kind),
        uploader_region=pl.Series(uploader_region),
        root_region=pl.Series(p_region.astype(np.int8)),
        root=parent.get_column("root"),
        pipeline_tag=pl.Series(pipeline.tolist(), dtype=pl.String),
        library_name=pl.Series(library.tolist(), dtype=pl.String),
        license=parent.get_column("license"),
        params=pl.Series(p_params),
        has_safetensors=pl.Series(has_st),
        gated=pl.Series(gated.tolist(), dtype=pl.String),
        base1=parent.get_column("id"),
        base2=pl.Series(base2.tolist(), dtype=pl.String),
        base3=pl.Series(base3.tolist(), dtype=pl.String),
        relation=pl.Series(relation.tolist(), dtype=pl.String),
        generation=pl.Series(generations),
        log_w=pl.Series(log_w),
        key=pl.Series(key),
    )
    return frame.cast(SCHEMA)  # type: ignore[arg-type]


def unique_ids(frame: pl.DataFrame, taken: np.ndarray | None = None) -> pl.DataFrame:
    """`frame` with ids made unique by a `-vN` suffix on every later repeat.

    `taken` holds the sorted `id_hashes` of ids already in use; a new id whose hash is among them is
    renamed too.
    """
    ids = frame.get_column("id")
    for _ in range(8):
        clash = ids.is_duplicated()
        if taken is not None and taken.size:
            clash = clash | pl.Series(_member(id_hashes(ids), taken))
        if not clash.any():
            break
        rows = clash.arg_true()
        subset = ids.gather(rows)
        occurrence = pl.DataFrame({"id": subset}).select(pl.col("id").cum_count().over("id")).to_series()
        if taken is not None and taken.size:
            occurrence = occurrence + pl.Series(_member(id_hashes(subset), taken)).cast(pl.UInt32)
        renamed = pl.select(
            pl.when(occurrence > 1).then(pl.format("{}-v{}", subset, occurrence)).otherwise(subset)
        ).to_series()
        ids = ids.scatter(rows, renamed)
    return frame.with_columns(id=ids.alias("id"))


def id_hashes(ids: pl.Series) -> np.ndarray:
    """Stable 64-bit hashes of repo ids, for cheap membership tests."""
    return ids.hash(seed=0).to_numpy()


def _member(values: np.ndarray, sorted_values: np.ndarray) -> np.ndarray:
    at = np.minimum(np.searchsorted(sorted_values, values), sorted_values.size - 1)
    return sorted_values[at] == values


def _pool_weight(parents: pl.DataFrame, generation: int) -> np.ndarray:
    log_w = parents.get_column("log_w").to_numpy()
    weight = np.exp(0.5 * (log_w - log_w.max()))
    if generation == 1:
        pull = {lab.namespace: lab.derived for lab in LABS}
        weight = weight * np.array([pull.get(a, 1.0) for a in parents.get_column("author").to_list()])
        # Roots outside the listing take a small, fixed share of first-generation derivatives.
        outside = parents.get_column("id").is_in(pl.Series([b[0] for b in OUT_OF_WORLD_BASES]).implode()).to_numpy()
        weight = weight / weight[~outside].sum()
        weight[outside] = 0.015 / max(1, outside.sum())
    return weight / weight.sum()


def _merge_partners(
    rng: np.random.Generator, parents: pl.DataFrame, parent_index: np.ndarray, merge: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Second and third bases of merges, drawn from parents that share the first base's root."""
    count = parent_index.size
    base2 = np.full(count, None, dtype=object)
    base3 = np.full(count, None, dtype=object)
    rows = np.flatnonzero(merge)
    if rows.size == 0:
        return base2, base3
    roots = parents.get_column("root").cast(pl.Categorical).to_physical().to_numpy()
    order = np.argsort(roots, kind="stable")
    first = np.searchsorted(roots[order], roots, side="left")
    size = np.searchsorted(roots[order], roots, side="right") - first
    ids = parents.get_column("id").to_numpy().astype(object)
    own = parent_index[rows]
    for target, take in ((base2, np.ones(rows.size, dtype=bool)), (base3, rng.random(rows.size) < 0.35)):
        pick = order[first[own] + (rng.random(rows.size) * size[own]).astype(np.int64)]
        valid = take & (pick != own)
        if target is base3:
            valid &= ids[pick] != base2[rows]
        target[rows[valid]] = ids[pick[valid]]
    base3[base2 == None] = None  # noqa: E711
    return base2, base3


def _user_names(rng: np.random.Generator, count: int, users: int) -> pl.Series:
    # A few prolific accounts and a long tail of one-model accounts.
    index = np.floor(users * rng.random(count) ** 2.5).astype(np.int64)
    return pl.select(author=pl.format("user-{}", pl.lit(pl.Series(index)).cast(pl.String).str.zfill(6))).to_series()


def _user_gates(rng: np.random.Generator, count: int) -> np.ndarray:
    u = rng.random(count)
    return np.where(u < 0.006, "auto", np.where(u < 0.01, "manual", "false")).astype(object)


def _split(total: int, shares: tuple[float, ...]) -> list[int]:
    counts = [int(total * s) for s in shares]
    counts[0] += total - sum(counts)
    return counts
