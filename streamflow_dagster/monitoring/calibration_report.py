"""The calibration report: a reliability curve (PNG) and one self-contained HTML page a month,
written beside the drift report ($STREAMFLOW_HOME/reports/calibration/<AS_OF>.html and .png)."""

from __future__ import annotations

import base64
import html
import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .calibration import Calibration

DPI = 90
PREDICTED_COLOUR, IDEAL_COLOUR = "#2471a3", "#7f8c8d"


def reliability_png(result: Calibration, title: str) -> bytes:
    """Realized churn rate against mean predicted probability per bin, with the diagonal."""
    figure = Figure(figsize=(5.0, 4.2), dpi=DPI)
    axes = figure.add_subplot()
    predicted = [b.mean_predicted for b in result.bins]
    realized = [b.realized_rate for b in result.bins]
    top = max([*predicted, *realized, 0.05]) * 1.08
    axes.plot([0, top], [0, top], linestyle="--", color=IDEAL_COLOUR, label="calibrated")
    axes.plot(predicted, realized, marker="o", color=PREDICTED_COLOUR, label="scores")
    axes.set_xlim(0, top)
    axes.set_ylim(0, top)
    axes.set_xlabel("mean predicted churn probability (bin)")
    axes.set_ylabel("realized churn rate (bin)")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=8, loc="upper left")
    figure.tight_layout()
    buffer = io.BytesIO()
    FigureCanvasAgg(figure).print_png(buffer)
    return buffer.getvalue()


def reliability_table_md(result: Calibration) -> str:
    lines = [
        "| bin | users | scores | mean predicted | realized |",
        "|---|---|---|---|---|",
    ]
    for number, b in enumerate(result.bins, start=1):
        lines.append(
            f"| {number} | {b.users} | {b.low:.3f}-{b.high:.3f} | {b.mean_predicted:.3f} "
            f"| {b.realized_rate:.3f} |"
        )
    return "\n".join(lines)


def calibration_report_html(
    as_of: str, result: Calibration, verdict: str, notes: list[str], png: bytes
) -> str:
    rows = "".join(
        f"<tr><td>{n}</td><td>{b.users:,}</td><td>{b.low:.3f}&ndash;{b.high:.3f}</td>"
        f"<td>{b.mean_predicted:.4f}</td><td>{b.realized_rate:.4f}</td></tr>"
        for n, b in enumerate(result.bins, start=1)
    )
    image = base64.b64encode(png).decode()
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>StreamFlow calibration {html.escape(as_of)}</title><style>{_CSS}</style></head>"
        f"<body><h1>Calibration for {html.escape(as_of)}</h1>"
        f"<p>{result.rows:,} scored users with a label. Predicted churn rate "
        f"<b>{result.predicted_rate:.2%}</b>, realized <b>{result.realized_rate:.2%}</b>; "
        f"Brier score {result.brier:.4f} ({result.expected_brier:.4f} expected if the scores "
        "were calibrated).</p>"
        f"<p class='note'>{html.escape(verdict)}</p>"
        + "".join(f"<p class='note'>{html.escape(note)}</p>" for note in notes)
        + f"<img alt='reliability curve' src='data:image/png;base64,{image}'>"
        "<h2>Reliability (equal-count bins of users sorted by score)</h2>"
        "<table><tr><th>bin</th><th>users</th><th>scores</th><th>mean predicted</th>"
        f"<th>realized</th></tr>{rows}</table></body></html>\n"
    )


_CSS = (
    "body{font-family:system-ui,sans-serif;max-width:900px;margin:2em auto;color:#222}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 10px;text-align:left}"
    ".note{background:#f4f6f7;padding:.6em 1em;border-left:4px solid #2471a3}"
)
