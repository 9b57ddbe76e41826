"""The drift report: one self-contained HTML file per month, plots embedded as base64 PNG."""

from __future__ import annotations

import base64
import html
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

# matplotlib's object API (Figure + Agg canvas), never pyplot: no global state, no display
# backend, safe in Dagster's worker processes and threads (as in models/plots.py).
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .drift import ERROR_PSI, WARN_PSI, DriftComparison, FeatureDrift, drift_level

# The most drifted features get a distribution plot each; the rest are in the table.
TOP_FEATURES = 4
DPI = 90
# Numeric histograms span the 0.5-99.5% range of both months: one outlier must not squash them.
HISTOGRAM_BINS = 40
CLIP_QUANTILES = (0.005, 0.995)
# Whole-number features with at most this many distinct values get one bar pair per value.
MAX_BAR_VALUES = 25
# The distribution figures' margins (fractions of the fixed 5.0 x 2.8 in figure), what
# tight_layout gives for the widest y labels seen ("0.0005"): set, not computed, since the
# layout pass cost as much as drawing (96 of these figures per 12 demo months).
DISTRIBUTION_MARGINS = {"left": 0.19, "right": 0.97, "bottom": 0.14, "top": 0.87}
LEVEL_COLOURS = {"stable": "#4c9a2a", "moderate": "#e0a100", "major": "#c0392b"}
REFERENCE_COLOUR, CURRENT_COLOUR = "#7f8c8d", "#2471a3"


@dataclass(frozen=True)
class ReportSection:
    """One comparison with the rows it was computed from (for the distribution plots)."""

    comparison: DriftComparison
    reference: pd.DataFrame
    current: pd.DataFrame
    psi_png: bytes | None = None  # its psi_bar_png when the caller drew it already


def psi_bar_png(comparison: DriftComparison, warn: float = WARN_PSI, error: float = ERROR_PSI):
    """Horizontal PSI bars, one per feature, coloured by level, with the two thresholds."""
    features = list(reversed(comparison.features))  # most drifted on top
    figure = Figure(figsize=(6.0, 0.28 * len(features) + 1.2), dpi=DPI)
    axes = figure.add_subplot()
    values = [f.psi for f in features]
    colours = [LEVEL_COLOURS[drift_level(v, warn, error)] for v in values]
    axes.barh([f.feature for f in features], values, color=colours)
    for threshold, style in ((warn, "--"), (error, "-")):
        axes.axvline(threshold, color="#555555", linestyle=style, linewidth=1)
    axes.set_xlim(0, max([error * 1.2, *values]) * 1.05)
    axes.set_xlabel("PSI")
    axes.set_title(
        f"{comparison.current_as_of} vs {comparison.reference} ({comparison.reference_as_of})",
        fontsize=10,
    )
    axes.tick_params(axis="y", labelsize=8)
    return _png(figure)


def distribution_png(
    drift: FeatureDrift,
    reference: pd.Series,
    current: pd.Series,
    labels: tuple[str, str] = ("reference", "current"),
) -> bytes:
    """Reference vs current: histograms (continuous), or side-by-side shares per value."""
    figure = Figure(figsize=(5.0, 2.8), dpi=DPI)
    axes = figure.add_subplot()
    colours = (REFERENCE_COLOUR, CURRENT_COLOUR)
    if drift.kind == "numeric":
        ref = pd.to_numeric(reference).dropna().to_numpy(dtype=float)
        cur = pd.to_numeric(current).dropna().to_numpy(dtype=float)
        both = np.concatenate([ref, cur])
        if both.size and np.all(both == np.round(both)) and np.unique(both).size <= MAX_BAR_VALUES:
            values = np.unique(both)  # counts (rebuffers, tickets): one bar pair per value
            shares = [np.array([np.mean(side == v) for v in values]) for side in (ref, cur)]
            _paired_bars(axes, [f"{v:g}" for v in values], shares, labels, colours)
        else:
            low, high = np.quantile(both, CLIP_QUANTILES) if both.size else (0.0, 1.0)
            edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
            for side, colour, label in zip((ref, cur), colours, labels, strict=True):
                # One filled step outline per month, not a patch per bin: drawn ~3x faster
                # (120 of these figures per 12 demo months), the same picture as a histogram.
                density, _ = np.histogram(np.clip(side, low, high), bins=edges, density=True)
                axes.stairs(density, edges, fill=True, alpha=0.45, color=colour, label=label)
            axes.set_ylabel("density")
    else:
        shares = [np.array(drift.reference_share), np.array(drift.current_share)]
        _paired_bars(axes, list(drift.bins), shares, labels, colours)
    axes.set_title(f"{drift.feature}  (PSI {drift.psi:.3f})", fontsize=10)
    axes.legend(fontsize=8)
    figure.subplots_adjust(**DISTRIBUTION_MARGINS)
    return _png(figure, tight=False)


def _paired_bars(axes, names: list[str], shares, labels, colours) -> None:
    positions = np.arange(len(names))
    for offset, share, label, colour in zip((-0.2, 0.2), shares, labels, colours, strict=True):
        axes.bar(positions + offset, share, 0.4, color=colour, label=label)
    axes.set_xticks(positions, names, fontsize=8)
    axes.set_ylabel("share of users")


def drift_report_html(
    as_of: str,
    sections: list[ReportSection],
    notes: list[str],
    warn: float = WARN_PSI,
    error: float = ERROR_PSI,
) -> str:
    """The whole report: a summary, then per reference month a PSI chart, table and plots."""
    parts = [
        f"<h1>Feature drift for {html.escape(as_of)}</h1>",
        f"<p>PSI per feature. Bands: &lt; {warn} stable, {warn}&ndash;{error} moderate (warn), "
        f"&ge; {error} major (error). Numeric features are cut at the reference month's "
        "deciles; categorical and boolean features use one bin per value.</p>",
        *(f"<p class='note'>{html.escape(note)}</p>" for note in notes),
    ]
    for section in sections:
        parts.append(_section_html(section, warn, error))
    body = "\n".join(parts)
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>StreamFlow drift {html.escape(as_of)}</title><style>{_CSS}</style></head>"
        f"<body>{body}</body></html>\n"
    )


def write_report(path: Path, text: str) -> Path:
    """Write atomically: a re-materialized month replaces its report, never half-writes it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, suffix=".tmp", delete=False, encoding="utf-8"
    ) as out:
        out.write(text)
    os.chmod(out.name, 0o644)  # a report to share: NamedTemporaryFile creates it owner-only
    os.replace(out.name, path)
    return path


def png_markdown(png: bytes, alt: str) -> str:
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def _section_html(section: ReportSection, warn: float, error: float) -> str:
    comparison = section.comparison
    level = comparison.level
    rows = "".join(
        f"<tr><td>{html.escape(f.feature)}</td><td>{f.kind}</td><td>{f.psi:.4f}</td>"
        f"<td class='{drift_level(f.psi, warn, error)}'>{drift_level(f.psi, warn, error)}</td></tr>"
        for f in comparison.features
    )
    plots = "".join(
        _img(
            distribution_png(
                f,
                section.reference[f.feature],
                section.current[f.feature],
                (f"{comparison.reference_as_of} (reference)", comparison.current_as_of),
            ),
            f.feature,
        )
        for f in comparison.features[:TOP_FEATURES]
    )
    return (
        f"<h2>vs {html.escape(comparison.reference)} ({comparison.reference_as_of})</h2>"
        f"<p>{comparison.current_rows:,} users in {comparison.current_as_of}, "
        f"{comparison.reference_rows:,} in {comparison.reference_as_of}. Max PSI "
        f"<b class='{level}'>{comparison.max_psi:.3f} ({level})</b>.</p>"
        f"{_img(section.psi_png or psi_bar_png(comparison, warn, error), 'PSI per feature')}"
        f"<h3>Most drifted features</h3><div>{plots}</div>"
        "<table><tr><th>feature</th><th>kind</th><th>PSI</th><th>level</th></tr>"
        f"{rows}</table>"
    )


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode()
    return f"<img alt='{html.escape(alt)}' src='data:image/png;base64,{data}'>"


def _png(figure: Figure, tight: bool = True) -> bytes:
    if tight:
        figure.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 10px;text-align:left}"
    ".stable{color:#4c9a2a}.moderate{color:#b07d00}.major{color:#c0392b}"
    ".note{background:#f4f6f7;padding:.6em 1em;border-left:4px solid #2471a3}img{margin:4px}"
)
