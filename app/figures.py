"""The study report's figure: each quality metric against dose, one line per view.

matplotlib is imported when a figure is drawn, not when the app starts, and draws with its
Agg canvas: no display, no global pyplot state shared between requests.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict

from app.baselines import BASELINE_NAME
from app.report import LOWER_IS_BETTER, StudyReport

VIEW_COLOURS = {"baseline": "#1f77b4", "dense": "#d62728", "sparse": "#2ca02c"}
COLUMNS = 3


_CACHE_SIZE = 32
_drawn: OrderedDict[str, bytes] = OrderedDict()
_drawn_lock = threading.Lock()


def report_figure_png(report: StudyReport) -> bytes:
    """The report's figure; the same report is drawn once (dashboards ask again and again)."""
    key = hashlib.sha256(report.model_dump_json().encode()).hexdigest()
    with _drawn_lock:
        if key in _drawn:
            _drawn.move_to_end(key)
            return _drawn[key]
    png = draw_report_figure(report)
    with _drawn_lock:
        _drawn[key] = png
        while len(_drawn) > _CACHE_SIZE:
            _drawn.popitem(last=False)
    return png


def draw_report_figure(report: StudyReport) -> bytes:
    """A grid of panels, one per metric: the model (solid) and the flat baseline (dashed).

    A view skipped at every dose still gets its legend entry, with nothing drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = report.metric_keys
    rows = math.ceil(len(keys) / COLUMNS)
    figure = Figure(figsize=(4.2 * COLUMNS, 3.0 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes_grid = figure.subplots(rows, COLUMNS, squeeze=False)
    for index, key in enumerate(keys):
        axes = axes_grid[index // COLUMNS][index % COLUMNS]
        _panel(axes, report, key)
    for index in range(len(keys), rows * COLUMNS):
        axes_grid[index // COLUMNS][index % COLUMNS].set_axis_off()
    handles, labels = axes_grid[0][0].get_legend_handles_labels()
    if handles:
        figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 6))
    figure.suptitle(f"run {report.run_id}: quality against dose ({report.status.value})")
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    return buffer.getvalue()


def _panel(axes: object, report: StudyReport, key: str) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    for view in report.views:
        rows = [row for row in report.rows if row.view == view]
        colour = VIEW_COLOURS.get(view, "#7f7f7f")
        model = [(row.dose, row.metrics.get(key)) for row in rows]
        flat = [(row.dose, row.baselines.get(BASELINE_NAME, {}).get(key)) for row in rows]
        _line(axes, model, colour, "-", "o", view)
        _line(axes, flat, colour, "--", "x", f"{view}: {BASELINE_NAME} baseline")
    better = "lower is better" if key in LOWER_IS_BETTER else "higher is better"
    axes.set_title(f"{key.replace('_', ' ')} ({better})", fontsize=9)
    axes.set_xscale("log")
    axes.set_xlabel("dose (photons)", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(True, alpha=0.3)


def _line(
    axes: object,
    points: list[tuple[float, float | None]],
    colour: str,
    style: str,
    marker: str,
    label: str,
) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    kept = [(dose, value) for dose, value in points if value is not None]
    xs = [dose for dose, _ in kept]
    ys = [value for _, value in kept]
    axes.plot(xs, ys, linestyle=style, marker=marker, color=colour, label=label, markersize=4)
