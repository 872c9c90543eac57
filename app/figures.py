"""The study report's figure: each quality metric against dose, one line per view.

Beside each view's model, its two baselines: the flat object (no learning, dashed) and the
input alone (no network, dotted), and, when the run has them, pty-chi's iterative
reconstruction (dash-dot). A last panel is the model's phase MAE skill against the
flat object, where 0 is a model that learned nothing and the verdict's "learned" line sits.

matplotlib is imported when a figure is drawn, not when the app starts, and draws with its
Agg canvas: no display, no global pyplot state shared between requests.
"""

from __future__ import annotations

import hashlib
import io
import math
import threading
from collections import OrderedDict

from app.report import BASELINE_LABELS, LOWER_IS_BETTER, StudyReport, first_ptychi
from app.verdict import FLAT, INPUT_ONLY, LEARNED_PHASE_MAE_DROP

VIEW_COLOURS = {"baseline": "#1f77b4", "dense": "#d62728", "sparse": "#2ca02c"}
COLUMNS = 3
SKILL_KEY = "phase_mae"  # the metric the verdict judges by


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
    """A grid of panels, one per metric: the model (solid), the flat object (dashed), the
    input only (dotted); then the model's skill against the flat object.

    A view skipped at every dose still gets its legend entries, with nothing drawn.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    keys = report.metric_keys
    panels = len(keys) + 1
    rows = math.ceil(panels / COLUMNS)
    figure = Figure(figsize=(4.2 * COLUMNS, 3.0 * rows + 0.6), layout="constrained")
    FigureCanvasAgg(figure)
    axes_grid = figure.subplots(rows, COLUMNS, squeeze=False)
    for index, key in enumerate(keys):
        axes = axes_grid[index // COLUMNS][index % COLUMNS]
        _panel(axes, report, key)
        _decorate(axes, _title(key), report.doses)
    skill_axes = axes_grid[len(keys) // COLUMNS][len(keys) % COLUMNS]
    _skill_panel(skill_axes, report)
    _decorate(
        skill_axes,
        f"{SKILL_KEY.replace('_', ' ')} skill vs flat object (1 perfect, 0 none)",
        report.doses,
    )
    for index in range(panels, rows * COLUMNS):
        axes_grid[index // COLUMNS][index % COLUMNS].set_axis_off()
    handles, labels = axes_grid[0][0].get_legend_handles_labels()
    if handles:
        # Column-major: each view's three lines stack in one column.
        columns = min(max(len(report.views), 1), 6)
        figure.legend(handles, labels, loc="outside lower center", ncols=columns, fontsize=8)
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
        flat = [(row.dose, row.baselines.get(FLAT, {}).get(key)) for row in rows]
        alone = [(row.dose, row.baselines.get(INPUT_ONLY, {}).get(key)) for row in rows]
        _line(axes, model, colour, "-", "o", f"{view} view: model")
        _line(axes, flat, colour, "--", "x", f"{view} view: {BASELINE_LABELS[FLAT]}")
        _line(axes, alone, colour, ":", "^", f"{view} view: {BASELINE_LABELS[INPUT_ONLY]}")
        if any(row.ptychi for row in rows):
            iterative = [(row.dose, first_ptychi(row).get(key)) for row in rows]
            _line(axes, iterative, colour, "-.", "s", f"{view} view: pty-chi")


def _title(key: str) -> str:
    better = "lower is better" if key in LOWER_IS_BETTER else "higher is better"
    return f"{key.replace('_', ' ')} ({better})"


def _skill_panel(axes: object, report: StudyReport) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    for view in report.views:
        rows = [row for row in report.rows if row.view == view]
        colour = VIEW_COLOURS.get(view, "#7f7f7f")
        for name, style, marker in (("model", "-", "o"), (INPUT_ONLY, ":", "^")):
            points = [(row.dose, row.skill.get(name, {}).get(SKILL_KEY)) for row in rows]
            _line(axes, points, colour, style, marker, None)
    axes.axhline(0.0, color="#555555", linewidth=1.0)
    axes.axhline(LEARNED_PHASE_MAE_DROP, color="#555555", linewidth=0.8, linestyle="--")
    for text, level in ((BASELINE_LABELS[FLAT], 0.0), ("learned above", LEARNED_PHASE_MAE_DROP)):
        axes.annotate(
            text,
            (0.02, level),
            xycoords=("axes fraction", "data"),
            xytext=(0, 3),
            textcoords="offset points",
            fontsize=7,
            color="#555555",
        )


def _decorate(axes: object, title: str, doses: list[float]) -> None:
    """Title, a log dose axis spanning the study's doses (a panel may have nothing drawn
    yet: its reference lines alone must not leave a log axis without positive limits)."""
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    axes.set_title(title, fontsize=9)
    positive = [dose for dose in doses if dose > 0]
    if positive:
        axes.set_xscale("log")
        axes.set_xlim(min(positive) / 2, max(positive) * 2)
    axes.set_xlabel("dose (photons)", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(True, alpha=0.3)


def _line(
    axes: object,
    points: list[tuple[float, float | None]],
    colour: str,
    style: str,
    marker: str,
    label: str | None,
) -> None:
    from matplotlib.axes import Axes

    assert isinstance(axes, Axes)
    kept = [(dose, value) for dose, value in points if value is not None]
    xs = [dose for dose, _ in kept]
    ys = [value for _, value in kept]
    axes.plot(xs, ys, linestyle=style, marker=marker, color=colour, label=label, markersize=4)
