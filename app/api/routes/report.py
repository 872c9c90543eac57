"""Study report: quality per dose × view with trivial baselines, as JSON, CSV or a figure."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from sqlmodel import Session

from app.api.deps import RunId, heavy_read
from app.figures import report_figure_png
from app.report import StudyReport, build_report, report_csv

router = APIRouter(prefix="/runs", tags=["report"])


@router.get(
    "/{run_id}/report",
    response_model=StudyReport,
    responses={200: {"content": {"text/csv": {}}}},
)
async def read_run_report(
    run_id: RunId,
    request: Request,
    format: Annotated[Literal["json", "csv"], Query(description="json or csv")] = "json",
) -> StudyReport | Response:
    """Read a run's study report: metrics per dose × view beside trivial baselines, the skill
    against the flat object and a verdict per job ("learned", "no better than flat", …)."""
    report = await heavy_read(request, lambda session: build_report(session=session, run_id=run_id))
    if format == "csv":
        headers = {"Content-Disposition": f'inline; filename="run-{run_id}-report.csv"'}
        return Response(report_csv(report), media_type="text/csv", headers=headers)
    return report


@router.get(
    "/{run_id}/report/figure.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def read_run_report_figure(run_id: RunId, request: Request) -> Response:
    """Draw each metric against dose, one line per view: the flat object (no learning) dashed,
    the input only (no network) dotted; and the model's phase MAE skill against the flat object."""

    def figure(session: Session) -> bytes:
        return report_figure_png(build_report(session=session, run_id=run_id))

    png = await heavy_read(request, figure)
    return Response(png, media_type="image/png", headers={"Cache-Control": "no-cache"})
