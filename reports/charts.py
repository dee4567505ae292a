"""Charts of a document as PNG images (matplotlib, no pyplot).

`Figure` + the Agg canvas directly rather than `pyplot`: pyplot keeps global state and is not
safe in the report worker threads; a bare figure is.
"""

from __future__ import annotations

import io

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from reports.document import Chart

PALETTE = ["#1f5f8b", "#e07b39", "#4c9a5b", "#b03a48", "#7a5aa6", "#8c8c8c"]
MAX_TICK_LABELS = 14
MAX_BAR_LABELS = 30  # horizontal bars have room for one label each


def _compact(value: float, _pos: int | None = None) -> str:
    for limit, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.1f}{suffix}"
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.2f}"


def render_png(
    chart: Chart, *, width_in: float = 7.0, height_in: float = 3.2, dpi: int = 150
) -> bytes:
    """The chart as PNG bytes."""
    fig = Figure(figsize=(width_in, height_in), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    labels = [str(x) for x in chart.x]
    positions = list(range(len(labels)))
    names = list(chart.series)
    if chart.kind == "line":
        for i, name in enumerate(names):
            values = [float("nan") if v is None else v for v in chart.series[name]]
            ax.plot(positions, values, marker="o", markersize=2.5, linewidth=1.6,
                    color=PALETTE[i % len(PALETTE)], label=name)  # fmt: skip
    else:
        width = 0.8 / max(len(names), 1)
        for i, name in enumerate(names):
            values = [0.0 if v is None else v for v in chart.series[name]]
            offsets = [p - 0.4 + width * (i + 0.5) for p in positions]
            draw = ax.barh if chart.kind == "barh" else ax.bar
            draw(offsets, values, width, color=PALETTE[i % len(PALETTE)], label=name)
    value_axis = ax.xaxis if chart.kind == "barh" else ax.yaxis
    value_axis.set_major_formatter(FuncFormatter(_compact))
    most = MAX_BAR_LABELS if chart.kind == "barh" else MAX_TICK_LABELS
    step = max(1, -(-len(labels) // most))  # ceil: at most `most` labels
    ticks = positions[::step]
    if chart.kind == "barh":
        ax.set_yticks(ticks, [labels[t] for t in ticks], fontsize=7)
        ax.invert_yaxis()  # the first category (the largest, when ranked) on top
    else:
        rotate = 45 if max((len(x) for x in labels), default=0) > 4 else 0
        ax.set_xticks(ticks, [labels[t] for t in ticks], fontsize=7, rotation=rotate,
                      ha="right" if rotate else "center")  # fmt: skip
    value_axis.set_tick_params(labelsize=7)
    ax.set_title(chart.title, fontsize=10)
    ax.set_xlabel(chart.x_label if chart.kind != "barh" else chart.y_label, fontsize=8)
    ax.set_ylabel(chart.y_label if chart.kind != "barh" else chart.x_label, fontsize=8)
    ax.grid(axis="x" if chart.kind == "barh" else "y", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    if len(names) > 1:
        ax.legend(fontsize=7, frameon=False)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()
