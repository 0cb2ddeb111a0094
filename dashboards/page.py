"""Assemble the views into one self-contained HTML page (plus one PNG per view) and write it.

The page is Altair's inline template (the Vega bundle is embedded, so it works from file:// with no
network) with a header, an honest data label, a provenance footer and a render-status element that a
headless browser reads to check that every view drew its marks.

Provenance keys read by the page (all optional; missing ones show as "not recorded"):
    source            where the numbers come from: the Hub endpoint URL, or the import file
    source_kind       "hub" | "standin" | "synthetic" | "import"; anything but "hub" is labelled on the page
    scopes            how many snapshot dates each crawl scope listed ({"full": 90}); absent for imports
    stale_dates       imported dates that repeat the counts of the date before (stale copies in the source)
    partial_dates     imported dates that list under half the models of the date before
    dates             the snapshot dates (ISO strings); taken from the shares when absent
    rows              rows of metric data behind the page
    registry_version  version of the attribution registry used (that of the latest date)
    other_registry_dates  dates attributed with another registry than the latest date's
    generated_at      when the page was drawn (ISO 8601)
    code_version      the code that drew it
    metrics_code_versions  the code that computed the metrics drawn (every version among their partitions)
"""

from __future__ import annotations

import html
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import altair as alt
import polars as pl
import vl_convert as vlc
from altair.utils import spec_to_html

from dashboards import charts
from dashboards.frames import LABEL_CHARS, POPULATIONS, UNRECORDED, WINDOWS, ViewFrames, models_told, view_frames
from warehouse.provenance import source_label
from warehouse.publish import write_bytes_atomic, write_text_atomic

OUTPUT_DIV = "dashboard"
EMBED_OPTIONS = {"actions": False, "renderer": "svg"}
VL_CONVERT_VERSION = ".".join(alt.VEGALITE_VERSION.split(".")[:2])  # the Vega-Lite Altair writes


@dataclass(frozen=True)
class DashboardResult:
    """What `write_dashboard` wrote."""

    html: Path
    pngs: dict[str, Path]
    page_bytes: int
    charts: tuple[str, ...]


class ScriptSafeEncoder(json.JSONEncoder):
    """JSON that cannot close the <script> element it is embedded in, whatever the names inside."""

    def encode(self, o: Any) -> str:
        # `<`, `>` and `&` only occur inside JSON strings, where \u escapes mean the same characters.
        return super().encode(o).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def data_label(provenance: Mapping[str, Any]) -> str | None:
    """The visible warning for data that is not a crawl of the real Hub (None for the real Hub)."""
    return source_label(provenance.get("source_kind"))


def view_charts(frames: ViewFrames, *, standalone: bool = False) -> dict[str, alt.TopLevelMixin]:
    """Every view, by name; `standalone` views carry their own axis labels (for images)."""
    views = {name: getattr(charts, name)(frames) for name in charts.VIEWS}
    if standalone:
        views["lab_change_bars"] = charts.lab_change_bars(frames, labelled=True)
    return views


def styled(chart: alt.TopLevelMixin) -> alt.TopLevelMixin:
    """The house style, applied once at the top level."""
    return (
        chart.configure_view(stroke=None)
        .configure_title(fontSize=14, subtitleFontSize=11, subtitleColor="#555", offset=8)
        .configure_axis(labelFontSize=11, titleFontSize=11, gridColor="#eee")
        .configure_legend(labelLimit=180, titleFontSize=11)
    )


def dashboard_chart(frames: ViewFrames) -> alt.VConcatChart:
    """All views in one spec, sharing the population and window switches."""
    v = view_charts(frames)

    def row(*views: alt.TopLevelMixin, spacing: int = 24) -> alt.HConcatChart:
        # Each view keeps its own colours: "actor" means a region in one view and a lab in another.
        return alt.hconcat(*views, spacing=spacing).resolve_scale(color="independent", strokeDash="independent")

    grid = alt.vconcat(
        row(v["region_share_lines"], v["country_share_lines"]),
        row(v["effective_poles_lines"], v["hhi_lines"]),
        row(v["rule_comparison_bars"], v["size_class_bars"]),
        # The labs on the right: their names' axis, left of their plot, would otherwise push every row's plot right
        # by its width, widening the drawing (and shrinking it, and its text, in a narrow window) by as much.
        row(v["developer_type_areas"], row(v["lab_share_bars"], v["lab_change_bars"], spacing=6)),
        spacing=36,
    )
    grid = grid.add_params(*charts.switches(frames.windows, frames.populations)).resolve_scale(
        color="independent", strokeDash="independent"
    )
    # Resized on every switch: one that makes a row taller (a bar's label above its plot) moves the rows below
    # down, and a drawing of the first setting's size would cut off the bottom.
    return styled(grid).properties(autosize=alt.AutoSizeParams(type="pad", resize=True))


def dashboard_spec(frames: ViewFrames) -> dict[str, Any]:
    """The whole dashboard as one Vega-Lite spec, with its named datasets attached."""
    spec = dashboard_chart(frames).to_dict()
    spec["datasets"] = spec.get("datasets", {}) | charts.datasets(frames)
    return spec


def default_frames(frames: ViewFrames) -> ViewFrames:
    """Only the rows the default switch setting shows: what a static image draws."""
    default = (pl.col("population") == POPULATIONS[0]) & (pl.col("time_window") == WINDOWS[0])
    return replace(
        frames,
        series=frames.series.filter((pl.col("p") == POPULATIONS[0]) & (pl.col("w") == WINDOWS[0])),
        crossovers=frames.crossovers.filter(default),
        rules=frames.rules.filter(default),
        labs=frames.labs.filter(default),
        sizes=frames.sizes.filter(pl.col("time_window") == WINDOWS[0]),
        countries=frames.countries.filter(default),
    )


def static_chart(chart: alt.TopLevelMixin, frames: ViewFrames, provenance: Mapping[str, Any]) -> alt.TopLevelMixin:
    """One view as a standalone image: switches at their defaults, saying so, and the data label."""
    setting = " · ".join(
        [charts.POPULATION_LABELS["all"], charts.WINDOW_LABELS["30d"], f"{frames.rule} rule", f"{frames.latest}"]
    )
    label = data_label(provenance)
    heading = alt.Title(
        label or "Multipolar", subtitle=[setting], color="#b00020" if label else "#222", anchor="start", fontSize=13
    )
    return styled(alt.vconcat(chart).properties(title=heading).add_params(*charts.fixed_switches()))


def _text(value: Any) -> str:
    return html.escape("not recorded" if value is None or value == "" else str(value), quote=True)


def _short(value: str, limit: int = LABEL_CHARS) -> str:
    """An escaped one-line label, cut to `limit` characters, with the full text as its title."""
    flat = " ".join(value.split())
    shown = flat if len(flat) <= limit else flat[: limit - 1] + "…"
    return f'<span title="{html.escape(value, quote=True)}">{html.escape(shown)}</span>'


def headline(frames: ViewFrames) -> str:
    """One sentence with the default view's numbers: China and the United States, and the top lab."""
    default = (pl.col("population") == "all") & (pl.col("time_window") == "30d")
    rules = frames.rules.filter(default & (pl.col("rule") == frames.rule))
    gap = frames.gaps.filter(default)
    if not rules.height and gap.height:
        return f"{html.escape(gap['text'][0])} (all models, {html.escape(frames.rule)} rule)."
    shares = {row["actor"]: row for row in rules.iter_rows(named=True)}
    parts = [f"On {frames.latest} (all models, last 30 days, {html.escape(frames.rule)} rule):"]
    for actor in ("China", "United States"):
        if actor in shares and shares[actor]["share"] is None:
            parts.append(f"{actor} not known (none of its models has a count);")
        elif actor in shares:
            parts.append(f"{actor} {shares[actor]['share']:.1%} of downloads;")
    if shares:
        parts.append(f"{html.escape(next(iter(shares.values()))['crossover'])}.")
    top = frames.labs.filter(default & (pl.col("rank") == 1))
    if top.height:
        lab = top.row(0, named=True)
        parts.append(f"Top lab: {_short(lab['lab'])} ({lab['share']:.1%}).")
    return " ".join(parts)


def scope_text(scopes: Mapping[str, int] | None) -> str:
    """What the snapshots listed: one scope, or each with its number of dates (a change of scope moves every
    share, and the `between` window is not measured across one)."""
    if not scopes:
        return _text(None)
    if len(scopes) == 1:
        return html.escape(next(iter(scopes)))
    each = ", ".join(f"{html.escape(scope)} on {n} date{'s' if n != 1 else ''}" for scope, n in scopes.items())
    return f"{each}: shares move where the scope changes, and no between-snapshot window spans a change"


def caveats(provenance: Mapping[str, Any]) -> dict[str, str]:
    """Footer entries for imported dates that are stale copies or partial, and for dates attributed with another
    registry than the latest date's, when there are any."""
    found = {}
    if stale := provenance.get("stale_dates"):
        found["Stale copies"] = (
            f"{html.escape(', '.join(stale))}: the same counts as the date before for every model listed on both "
            "(the source repeated its values): no observation of their own, so left out of the views"
        )
    if partial := provenance.get("partial_dates"):
        found["Partial snapshots"] = (
            f"{html.escape(', '.join(partial))}: under half the models of the date before, so left out of the views"
        )
    if other := provenance.get("other_registry_dates"):
        found["Other registries"] = (
            f"{html.escape(', '.join(other))}: attributed with another registry than the latest date's, so a "
            "namespace added or changed since moves their shares but not the latest's: "
            "<code>multipolar recompute</code> attributes every date with the registry in use"
        )
    return found


def _snapshots(count: int, noun: str = "snapshot") -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def provenance_footer(frames: ViewFrames, provenance: Mapping[str, Any]) -> str:
    """The provenance footer: snapshot dates, rows, registry version, data source, generation time."""
    dates = sorted(str(d) for d in provenance.get("dates") or [d.isoformat() for d in frames.dates])
    rows = provenance.get("rows")
    items = {
        "Snapshots": (
            f"{_text(dates[0])} – {_text(dates[-1])} ({_snapshots(len(dates))})"
            if len(dates) > 1
            else f"{_text(dates[0])} ({_snapshots(1)})"
            if dates
            else _text(None)
        ),
        "Models": f"{rows:,}" + (f" on {_text(provenance['rows_date'])}" if provenance.get("rows_date") else "")
        if isinstance(rows, int)
        else _text(rows),
        "Registry version": _text(provenance.get("registry_version")),
        "Data source": f"{_text(provenance.get('source'))} ({_text(provenance.get('source_kind'))})",
        "Scope": scope_text(provenance.get("scopes"))
        if provenance.get("scopes") or provenance.get("source_kind") != "import"
        else "none: imported files, not a crawl",
        **caveats(provenance),
        "Drawn at": _text(provenance.get("generated_at")),
        "Drawn by code": _text(provenance.get("code_version")),
        "Metrics made by code": _text(", ".join(provenance.get("metrics_code_versions") or []) or None),
        "Rule over time": f"{_text(frames.rule)} (the rule comparison shows all three)",
    }
    entries = "\n".join(f"    <dt>{k}</dt><dd>{v}</dd>" for k, v in items.items())
    return (
        '<footer id="provenance">\n  <h2>Provenance</h2>\n  <dl>\n'
        f"{entries}\n  </dl>\n"
        '  <pre id="render-status" hidden></pre>\n</footer>\n'
    )


def page_header(frames: ViewFrames, provenance: Mapping[str, Any]) -> str:
    """Title, data label, headline and how to use the switches."""
    label = data_label(provenance)
    banner = f'  <p class="data-label" role="status">{html.escape(label)}</p>\n' if label else ""
    return (
        "<header>\n"
        "  <h1>Multipolar: whose open models does the world download?</h1>\n"
        f"{banner}"
        "  <p>Shares and concentration of Hugging Face Hub downloads by region, country, lab and developer"
        f" type, over {_snapshots(len(frames.dates), 'dated snapshot')}.</p>\n"
        f'  <p class="headline">{headline(frames)}</p>\n'
        '  <p class="how">The switches set the population and window of every view; hover a mark for'
        f" exact numbers.{unrecorded_note(frames)}</p>\n"
        "</header>\n"
    )


def unrecorded_note(frames: ViewFrames) -> str:
    """A sentence naming the windows no snapshot records (and the switch therefore leaves out), or ""."""
    missing = [UNRECORDED[w] for w in WINDOWS if w not in frames.windows]
    if not missing:
        return ""
    return f" No snapshot here records {' or '.join(missing)}, so the window switch does not offer them."


STYLE = """
  <title>Multipolar dashboard</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <style>
    body { font-family: system-ui, sans-serif; margin: 1rem; color: #222; }
    h1 { font-size: 1.5rem; margin: 0 0 .4rem; }
    h2 { font-size: 1rem; }
    .data-label { display: inline-block; background: #b00020; color: #fff; font-weight: 600;
                  padding: .3rem .7rem; border-radius: 4px; margin: .2rem 0; }
    .headline { font-size: 1.05rem; }
    .how { color: #555; }
    #dashboard.vega-embed { flex-direction: column; }
    /* A window narrower than the drawing shrinks it to fit rather than scroll sideways (Vega's SVG keeps its
       viewBox, and a mark under the pointer is found from the element itself, so tooltips still match). */
    #dashboard > svg { max-width: 100%; height: auto; }
    #dashboard .vega-bindings { order: -1; position: sticky; top: 0; z-index: 1; background: #fff;
                                padding: .4rem 0; border-bottom: 1px solid #ddd; margin-bottom: .8rem; }
    #dashboard .vega-bind { display: inline-block; margin-right: 2rem; }
    footer dl { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
    footer dt { color: #555; }
    footer dd { margin: 0; overflow-wrap: anywhere; }
  </style>
"""

# Replaces Altair's bare `vegaEmbed(...)` call: records which views drew marks (first with the default
# switches, then under every switch combination), errors, and the time until the first full render.
STATUS_SCRIPT = """
  const views = %(views)s;
  const switches = %(switches)s;
  const status = {
    views: views.length, rendered: [], empty: [], marks: {}, switches: {}, clipped: {}, errors: [], ms: null,
  };
  const note = (message) => status.errors.push(String(message));
  window.addEventListener("error", (event) => note(event.message));
  window.addEventListener("unhandledrejection", (event) => note(event.reason));
  const dataMarks = (mark) => mark.marktype === "group"
    ? mark.items.reduce((n, group) => n + (group.items || []).reduce((m, child) => m + dataMarks(child), 0), 0)
    : (mark.role === "mark" ? mark.items.length : 0);
  const findMark = (mark, name) => {
    if (mark.name === name) return mark;
    if (mark.marktype !== "group") return null;
    for (const group of mark.items) for (const child of group.items || []) {
      const found = findMark(child, name);
      if (found) return found;
    }
    return null;
  };
  const marksPerView = (view) => Object.fromEntries(views.map((name) => {
    const group = findMark(view.scenegraph().root, name + "_group");
    return [name, group ? dataMarks(group) : 0];
  }));
  const painted = () => new Promise((resolve) => { requestAnimationFrame(() => resolve()); setTimeout(resolve, 500); });
  // Text drawn past the right or bottom edge of the drawing (a legend pushed off it, an axis title pushed below
  // it by a switch that makes a row taller) is cut off where the page shows it.
  const clippedText = () => {
    const drawing = document.querySelector("#%(div)s svg");
    if (!drawing) return [];
    const edge = drawing.getBoundingClientRect();
    return [...drawing.querySelectorAll("text")]
      .filter((text) => {
        const box = text.getBoundingClientRect();
        return text.textContent && (box.right > edge.right + 0.5 || box.bottom > edge.bottom + 0.5);
      })
      .map((text) => text.textContent);
  };
  vegaEmbed('#%(div)s', spec, embedOpt)
    .then(async (result) => {
      const view = result.view;
      await view.runAsync();
      await painted();
      status.ms = Math.round(performance.now());
      status.marks = marksPerView(view);
      for (const name of views) (status.marks[name] > 0 ? status.rendered : status.empty).push(name);
      const initial = Object.fromEntries(Object.keys(switches).map((name) => [name, view.signal(name)]));
      for (const population of switches.population) for (const timeWindow of switches.window) {
        await view.signal("population", population).signal("window", timeWindow).runAsync();
        await painted();
        const marks = marksPerView(view);
        status.switches[population + " / " + timeWindow] = views.filter((name) => marks[name] === 0);
        status.clipped[population + " / " + timeWindow] = clippedText();
      }
      for (const [name, value] of Object.entries(initial)) view.signal(name, value);
      await view.runAsync();
    })
    .catch((error) => { note(error); console.error(error); })
    .finally(() => {
      const element = document.getElementById("render-status");
      element.textContent = JSON.stringify(status);
      element.dataset.done = "1";
    });
"""


def _replace_once(page: str, old: str, new: str) -> str:
    if page.count(old) != 1:
        raise RuntimeError(f"the Altair page template changed: expected {old!r} exactly once")
    return page.replace(old, new)


def dashboard_html(frames: ViewFrames, provenance: Mapping[str, Any]) -> str:
    """The whole page as one string: inline Vega bundle, spec, header, footer and render status."""
    # What `Chart.to_html(inline=True)` does, on the spec with its datasets attached.
    page = spec_to_html(
        dashboard_spec(frames),
        mode="vega-lite",
        vega_version=alt.VEGA_VERSION,
        vegaembed_version=alt.VEGAEMBED_VERSION,
        vegalite_version=alt.VEGALITE_VERSION,
        output_div=OUTPUT_DIV,
        embed_options=dict(EMBED_OPTIONS),
        json_kwds={"cls": ScriptSafeEncoder},
        template="inline",
    )
    page = _replace_once(page, '<meta charset="UTF-8">', '<meta charset="UTF-8">' + STYLE)
    page = _replace_once(page, "<body>\n", "<body>\n" + page_header(frames, provenance))
    page = _replace_once(
        page,
        f"vegaEmbed('#{OUTPUT_DIV}', spec, embedOpt).catch(console.error);",
        STATUS_SCRIPT
        % {
            "views": json.dumps(list(charts.VIEWS)),
            "switches": json.dumps({charts.POPULATION: list(frames.populations), charts.WINDOW: list(frames.windows)}),
            "div": OUTPUT_DIV,
        },
    )
    container = f'<div class="vega-visualization" id="{OUTPUT_DIV}"></div>\n'
    return _replace_once(page, container, container + provenance_footer(frames, provenance))


def write_dashboard(
    shares: pl.DataFrame,
    concentration: pl.DataFrame,
    crossovers: pl.DataFrame,
    provenance: Mapping[str, Any],
    out_dir: Path,
    *,
    rule: str = "uploader",
) -> DashboardResult:
    """Write `index.html` and one PNG per view into `out_dir` from the metric series (with `snapshot_date`)."""
    told = models_told(provenance.get("rows_by_date") or {}, provenance.get("counted_by_date") or {})
    frames = view_frames(shares, concentration, crossovers, rule=rule, models=told)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    page = out_dir / "index.html"
    write_text_atomic(page, dashboard_html(frames, provenance))
    pngs = {name: out_dir / f"{name}.png" for name in charts.VIEWS}
    still = default_frames(frames)
    rows = charts.datasets(still)
    for name, chart in view_charts(still, standalone=True).items():
        spec = static_chart(chart, still, provenance).to_dict() | {"datasets": rows}
        write_bytes_atomic(pngs[name], vlc.vegalite_to_png(spec, vl_version=VL_CONVERT_VERSION))
    return DashboardResult(html=page, pngs=pngs, page_bytes=page.stat().st_size, charts=charts.VIEWS)
