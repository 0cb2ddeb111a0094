"""Credit every model to an origin namespace, lab, country, region and developer type, under three rules.

- `uploader`: the namespace hosting the repo (text before "/"; the `author` column for bare ids).
- `official`: only repos of registered labs count. A registered lab is a registry row whose developer type
  is not `intermediary`; community collectives and individuals who train their own models count, as
  ATOM counts NousResearch or allura-forge. Every other model is still emitted, once, with weight 0.0,
  null lab/country/region/developer type and evidence saying why it was excluded. So every model has
  exactly one row per rule under `uploader` and `official`, exclusions stay auditable, and any
  downstream sum of `downloads * weight` drops them from numerator and denominator alike.
- `lineage`: follow `base_models` to the root. A model without parents is its own root (depth 0). A
  parent in the snapshot is followed further; a parent outside it is credited by its namespace. A merge
  splits its credit equally over its parents, recursively; paths reaching the same credited namespace
  combine into one row (weights summed, the shortest depth kept), so a model's weights sum to 1.
  A walk stops at a cycle or self-reference (crediting the last model before the repeat), at a model
  whose parents are all malformed (crediting that model), or after `MAX_DEPTH` steps.

`reviewed` says whether the credited namespace is in the registry; unknowns keep null lab and country.
Lineage is resolved with iterative joins on a parent table, one per step, never a Python loop over rows.
Every repo id (the snapshot's, then parents outside it) gets a dense integer id once, so the walk joins
and gathers integers; the one string join maps parent ids onto the snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from warehouse.tables import ATTRIBUTIONS

RULES = ("uploader", "official", "lineage")
MAX_DEPTH = 16
DIMENSIONS = ("lab", "country", "region", "developer_type")
# A well-formed Hub repo id: exactly one "/" between two non-empty parts, no whitespace.
REPO_ID = r"^[^/\s]+/[^/\s]+$"
UNREVIEWED = "unreviewed namespace"
NODE = pl.UInt32()

Frame = pl.DataFrame | pl.LazyFrame


def namespace_of(model_id: pl.Expr, author: pl.Expr) -> pl.Expr:
    """The namespace of a repo id: the text before the first "/", else the author."""
    slash = model_id.str.find("/", literal=True)
    return pl.when(slash.is_not_null()).then(model_id.str.slice(0, slash)).otherwise(author)


@dataclass(frozen=True)
class Graph:
    """Every repo id seen (snapshot models first, then parents outside it) as dense integer nodes."""

    models: int  # nodes below this are in the snapshot
    names: pl.Series  # repo id per node
    namespaces: pl.Series  # credited namespace per node
    parents: pl.Series  # count of usable parents per node (0 outside the snapshot)
    edges: pl.DataFrame  # node, parent, parents: the usable parent links
    malformed: pl.DataFrame  # node, malformed: the first unusable parent of each model that has one


def graph_of(models: pl.DataFrame) -> Graph:
    """The parent graph of a snapshot: usable links, outside parents numbered after the models."""
    n = models.height
    index = pl.int_range(n, dtype=NODE)
    links = (
        models.select(index.alias("node"), pl.col("base_models").alias("parent_id"))
        .explode("parent_id")
        .filter(pl.col("parent_id").is_not_null())
    )
    links = _known_parents(links, models).with_columns(
        valid=pl.col("parent").is_not_null() | pl.col("parent_id").str.contains(REPO_ID)
    )
    outside = (
        links.filter(pl.col("parent").is_null() & pl.col("valid"))
        .select(pl.col("parent_id").unique(maintain_order=True))
        .with_columns((pl.int_range(pl.len(), dtype=NODE) + n).alias("outside"))
    )
    usable = (
        links.filter("valid")
        .join(outside, on="parent_id", how="left")
        .select("node", pl.coalesce("parent", "outside").alias("parent"))
    )
    names = pl.concat([models.get_column("model_id"), outside.get_column("parent_id")]).rename("name")
    authors = pl.concat([models.get_column("author"), pl.repeat(None, outside.height, dtype=pl.String(), eager=True)])
    namespaces = pl.DataFrame({"name": names, "author": authors}).select(
        namespace_of(pl.col("name"), pl.col("author")).alias("namespace")
    )
    counts = usable.group_by("node").len()
    parents = pl.zeros(names.len(), pl.Int32(), eager=True).scatter(counts["node"], counts["len"].cast(pl.Int32()))
    edges = usable.with_columns(parents=parents.gather(usable.get_column("node")))
    malformed = links.filter(~pl.col("valid")).group_by("node").agg(pl.col("parent_id").first().alias("malformed"))
    return Graph(n, names, namespaces.to_series(), parents.rename("parents"), edges, malformed)


def _known_parents(links: pl.DataFrame, models: pl.DataFrame) -> pl.DataFrame:
    """`links` with `parent`, the snapshot node of each parent id (null when outside the snapshot)."""
    # Joining on a 64-bit hash is twice as fast as on the strings; a collision would show as a matched
    # pair of different ids, and then the exact string join is used instead.
    ids = models.select(pl.col("model_id").hash().alias("key"), pl.int_range(pl.len(), dtype=NODE).alias("parent"))
    hashed = links.with_columns(key=pl.col("parent_id").hash()).join(ids, on="key", how="left").drop("key")
    matched = hashed.get_column("parent")
    names = models.get_column("model_id").gather(matched)
    if hashed.height == links.height and bool((names.is_null() | (names == hashed.get_column("parent_id"))).all()):
        return hashed
    exact = models.select(pl.col("model_id").alias("parent_id"), pl.int_range(pl.len(), dtype=NODE).alias("parent"))
    return links.join(exact, on="parent_id", how="left", maintain_order="left")


def _status(finished: pl.DataFrame, graph: Graph) -> pl.DataFrame:
    """`finished` with why each walk stopped at its node: outside snapshot, root or malformed parent."""
    flagged = finished.join(graph.malformed, on="node", how="left")
    return flagged.with_columns(
        status=pl.when(pl.col("node") >= graph.models)
        .then(pl.lit("outside snapshot"))
        .when(pl.col("malformed").is_not_null())
        .then(pl.concat_str(pl.lit("malformed parent "), "malformed"))
        .otherwise(pl.lit("root"))
    ).drop("malformed")


def lineage_walks(graph: Graph, *, max_depth: int = MAX_DEPTH) -> pl.DataFrame:
    """Each model's finished walks: origin, node, weight, depth, trail (null for own roots), status, split."""
    names, parents = graph.names, graph.parents
    nodes = pl.DataFrame({"node": pl.int_range(graph.models, dtype=NODE, eager=True)}).with_columns(
        parents=parents.slice(0, graph.models)
    )
    columns = ["origin", "node", "weight", "depth", "trail", "status", "split"]
    roots = _status(
        nodes.filter(pl.col("parents") == 0).select(
            pl.col("node").alias("origin"),
            "node",
            pl.lit(1.0).alias("weight"),
            pl.lit(0, pl.Int32()).alias("depth"),
            pl.lit(None, pl.String()).alias("trail"),
            pl.lit(False).alias("split"),
        ),
        graph,
    ).select(columns)
    done = [roots]
    derived = nodes.filter(pl.col("parents") > 0).get_column("node")
    # The walk's path is only materialised from the second step on: until then it is the origin alone.
    frontier = pl.DataFrame(
        {
            "origin": derived,
            "node": derived,
            "weight": pl.repeat(1.0, derived.len(), eager=True),
            "depth": pl.repeat(0, derived.len(), dtype=pl.Int32(), eager=True),
            "path": pl.repeat(None, derived.len(), dtype=pl.List(NODE), eager=True),
            "trail": names.gather(derived),
            "split": pl.repeat(False, derived.len(), eager=True),
        }
    )
    for _ in range(max_depth):
        if frontier.is_empty():
            break
        step = frontier.join(graph.edges, on="node").with_columns(
            pl.col("weight") / pl.col("parents"), split=pl.col("split") | (pl.col("parents") > 1)
        )
        cycle = step.select(
            (pl.col("parent") == pl.col("origin")) | pl.col("path").list.contains(pl.col("parent")).fill_null(False)
        ).to_series()
        stuck = step.filter(cycle)
        done.append(
            stuck.with_columns(
                status=pl.concat_str(pl.lit("cycle at "), names.gather(stuck.get_column("parent")))
            ).select(columns)
        )
        moved = step.filter(~cycle)
        target = moved.get_column("parent")
        moved = moved.select(
            "origin",
            "node",
            pl.col("parent"),
            "weight",
            pl.col("depth") + 1,
            "path",
            pl.concat_str("trail", pl.lit(" -> "), names.gather(target)).alias("trail"),
            "split",
            parents.gather(target).alias("parents"),
        )
        finished = pl.col("parents") == 0
        done.append(_status(moved.filter(finished).drop("node").rename({"parent": "node"}), graph).select(columns))
        frontier = moved.filter(~finished).select(
            "origin",
            pl.col("parent").alias("node"),
            "weight",
            "depth",
            pl.concat_list(pl.col("path").fill_null(pl.concat_list("origin")), "parent").alias("path"),
            "trail",
            "split",
        )
        merged = frontier.filter("split")
        if merged.height:
            collapsed = merged.group_by("origin", "node").agg(
                pl.col("weight").sum(),
                pl.col("depth").first(),
                pl.col("path", "trail").first(),
                pl.lit(True).alias("split"),
            )
            frontier = pl.concat([frontier.filter(~pl.col("split")), collapsed.select(frontier.columns)])
    if not frontier.is_empty():
        done.append(frontier.with_columns(status=pl.lit("depth limit")).select(columns))
    return pl.concat(done)


def _registry_table(registry: pl.DataFrame) -> pl.DataFrame:
    """The registry with a row number and its evidence preformatted once per rule."""
    registered = pl.col("developer_type") != "intermediary"
    return registry.select(
        pl.int_range(pl.len(), dtype=NODE).alias("entry"),
        "namespace",
        *DIMENSIONS,
        registered.alias("registered"),
        pl.concat_str(pl.lit("uploader:"), "namespace", pl.lit("; "), "evidence").alias("uploader_evidence"),
        pl.when(registered)
        .then(pl.concat_str(pl.lit("official: registered lab; "), "evidence"))
        .otherwise(pl.lit("excluded: not a registered lab repo (intermediary)"))
        .alias("official_evidence"),
        pl.concat_str(pl.lit("lineage: own root; "), "evidence").alias("root_evidence"),
        "evidence",
    )


def _credited(rule: str, model: pl.Series, namespace: pl.Series, entry: pl.Series, table: pl.DataFrame) -> pl.DataFrame:
    """Rows for `rule` crediting each model to a namespace and its registry entry (null when unreviewed)."""
    found = [table.get_column(c).gather(entry) for c in table.columns if c not in ("entry", "namespace")]
    return pl.DataFrame([model.rename("model_id"), namespace.rename("credited_namespace"), *found]).with_columns(
        pl.lit(rule).alias("rule"), entry.is_not_null().alias("reviewed")
    )


def attribute(models: Frame, registry: pl.DataFrame) -> pl.DataFrame:
    """ATTRIBUTIONS rows for every model under the `uploader`, `official` and `lineage` rules."""
    snapshot = models.lazy().select("model_id", "author", "base_models", "base_relation").collect()
    graph = graph_of(snapshot)
    table = _registry_table(registry)
    entries = (
        graph.namespaces.to_frame("namespace")
        .join(table.select("namespace", "entry"), on="namespace", how="left", maintain_order="left")
        .get_column("entry")
    )
    n = graph.models
    hosted = _credited("uploader", graph.names.slice(0, n), graph.namespaces.slice(0, n), entries.slice(0, n), table)
    depth0 = pl.lit(0, pl.Int32()).alias("lineage_depth")
    uploader = hosted.select(
        "model_id",
        "rule",
        "credited_namespace",
        *DIMENSIONS,
        "reviewed",
        depth0,
        pl.lit(1.0).alias("weight"),
        pl.coalesce(
            "uploader_evidence", pl.concat_str(pl.lit("uploader:"), "credited_namespace", pl.lit(f"; {UNREVIEWED}"))
        ).alias("evidence"),
    )
    counts = pl.col("registered").fill_null(False)
    official = hosted.select(
        "model_id",
        pl.lit("official").alias("rule"),
        "credited_namespace",
        *[pl.when(counts).then(pl.col(c)).alias(c) for c in DIMENSIONS],
        "reviewed",
        depth0,
        pl.when(counts).then(1.0).otherwise(0.0).alias("weight"),
        pl.coalesce("official_evidence", pl.lit(f"excluded: not a registered lab repo ({UNREVIEWED})")).alias(
            "evidence"
        ),
    )
    lineage = _lineage(snapshot, graph, entries, table)
    return pl.concat([uploader, official, lineage], how="vertical_relaxed").select(
        [pl.col(c).cast(t) for c, t in ATTRIBUTIONS.schema.items()]
    )


def _lineage(snapshot: pl.DataFrame, graph: Graph, entries: pl.Series, table: pl.DataFrame) -> pl.DataFrame:
    """The `lineage` rows: one per model and credited namespace, weights summing to 1."""
    walks = lineage_walks(graph)
    walks = walks.with_columns(
        credited_namespace=graph.namespaces.gather(walks.get_column("node")),
        relation=snapshot.get_column("base_relation").gather(walks.get_column("origin")),
        own=pl.col("trail").is_null() & (pl.col("status") == "root"),
    ).with_columns(
        trail=pl.when("own")
        .then(None)
        .otherwise(
            pl.concat_str(
                pl.lit("lineage: "),
                pl.coalesce("trail", graph.names.gather(walks.get_column("origin"))),
                pl.lit(" ("),
                "status",
                pl.concat_str(pl.lit(", "), "relation").fill_null(""),
                pl.lit(")"),
            )
        )
    )
    keys = ["origin", "credited_namespace"]
    single = walks.filter(~pl.col("split")).select(*keys, "node", "weight", "depth", "trail")
    merged = (
        walks.filter("split")
        .sort("origin", "trail")
        .group_by(keys, maintain_order=True)
        .agg(pl.col("node").first(), pl.col("weight").sum(), pl.col("depth").min(), pl.col("trail").str.join(" | "))
    )
    walks = pl.concat([single, merged.select(single.columns)])
    credited = _credited(
        "lineage",
        graph.names.gather(walks.get_column("origin")),
        walks.get_column("credited_namespace"),
        entries.gather(walks.get_column("node")),
        table,
    ).with_columns(walks.select("weight", "depth", "trail"))
    return credited.select(
        "model_id",
        "rule",
        "credited_namespace",
        *DIMENSIONS,
        "reviewed",
        pl.col("depth").alias("lineage_depth"),
        "weight",
        pl.when(pl.col("trail").is_null())
        .then(pl.coalesce("root_evidence", pl.lit(f"lineage: own root; {UNREVIEWED}")))
        .otherwise(pl.concat_str("trail", pl.lit("; "), pl.col("evidence").fill_null(UNREVIEWED)))
        .alias("evidence"),
    )


def registry_gaps(models: Frame, attributions: Frame, *, rule: str = "uploader", top: int = 50) -> pl.DataFrame:
    """Unreviewed namespaces ranked by the 30-day downloads credited to them, with their share of all."""
    downloads = models.lazy().select("model_id", pl.col("downloads_30d").fill_null(0))
    total = downloads.select(pl.col("downloads_30d").sum()).collect().item() or 0
    # Under `official`, excluded rows carry weight 0; their namespace still holds the full downloads.
    held = pl.when(pl.col("weight") > 0).then(pl.col("weight")).otherwise(1.0) * pl.col("downloads_30d")
    return (
        attributions.lazy()
        .filter((pl.col("rule") == rule) & ~pl.col("reviewed"))
        .join(downloads, on="model_id", how="left")
        .group_by("credited_namespace")
        .agg(pl.len().alias("models"), held.sum().alias("downloads_30d"))
        .with_columns(share=pl.col("downloads_30d") / total if total else pl.lit(None, pl.Float64()))
        .sort(["downloads_30d", "credited_namespace"], descending=[True, False])
        .head(top)
        .collect()
    )
