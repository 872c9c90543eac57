"""Prometheus metrics, read from the database at each scrape.

- `ptychojobs_jobs{status}`: jobs per status, all runs;
- `ptychojobs_queue_depth`: queued jobs;
- `ptychojobs_runs{status}`: runs per derived status;
- `ptychojobs_live_workers`: workers holding a running job (see `app.liveness`);
- `ptychojobs_claim_latency_seconds`: enqueue → first claim (first attempt's start minus the
  job's creation), one observation per claimed job;
- `ptychojobs_attempt_duration_seconds{outcome}`: ended attempts, start → end;
- `ptychojobs_job_duration_seconds{status}`: ended jobs, last start → end.

The histograms are rebuilt from the attempts table at each scrape, so every API process
reports the same numbers and nothing is lost on restart; counts only grow, as Prometheus
expects, because attempts are never deleted.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlmodel import Session, col, func, select

from app.core.files import as_utc
from app.liveness import live_workers
from app.models import Attempt, AttemptOutcome, Job, JobStatus, RunStatus, derive_run_status

CLAIM_BUCKETS_S = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600)
DURATION_BUCKETS_S = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600)


class DatabaseCollector(Collector):
    """Collects the service's metrics from one session's database."""

    def __init__(self, session: Session) -> None:
        self.session = session

    def collect(self) -> Iterator[Metric]:
        yield from self._jobs()
        yield from self._runs()
        workers = GaugeMetricFamily("ptychojobs_live_workers", "Workers holding a running job")
        workers.add_metric([], len(live_workers(session=self.session)))
        yield workers
        yield self._claim_latency()
        yield self._durations()
        yield self._job_durations()

    def _jobs(self) -> Iterator[Metric]:
        query = select(Job.status, func.count()).group_by(col(Job.status))
        counts = {JobStatus(status): n for status, n in self.session.exec(query)}
        jobs = GaugeMetricFamily("ptychojobs_jobs", "Jobs per status", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], counts.get(status, 0))
        yield jobs
        depth = GaugeMetricFamily("ptychojobs_queue_depth", "Jobs waiting to be claimed")
        depth.add_metric([], counts.get(JobStatus.queued, 0))
        yield depth

    def _runs(self) -> Iterator[Metric]:
        statuses: dict[int, list[JobStatus]] = {}
        for run_id, status in self.session.exec(select(Job.run_id, Job.status).distinct()):
            statuses.setdefault(run_id, []).append(JobStatus(status))
        tally = Counter(derive_run_status(found) for found in statuses.values())
        runs = GaugeMetricFamily("ptychojobs_runs", "Runs per status", labels=["status"])
        for status in RunStatus:
            runs.add_metric([status.value], tally.get(status, 0))
        return iter([runs])

    def _claim_latency(self) -> Metric:
        query = (
            select(Attempt.started_at, Job.created_at)
            .join(Job, col(Job.id) == col(Attempt.job_id))
            .where(Attempt.number == 1)
        )
        latencies = [_seconds(start, created) for start, created in self.session.exec(query)]
        return _histogram(
            "ptychojobs_claim_latency_seconds",
            "Time from a job's creation to its first claim",
            {(): latencies},
            CLAIM_BUCKETS_S,
        )

    def _durations(self) -> Metric:
        query = select(Attempt.outcome, Attempt.started_at, Attempt.ended_at).where(
            col(Attempt.ended_at).is_not(None)
        )
        by_outcome: dict[tuple[str, ...], list[float]] = {}
        for outcome, started, ended in self.session.exec(query):
            if ended is not None:
                by_outcome.setdefault((AttemptOutcome(outcome).value,), []).append(
                    _seconds(ended, started)
                )
        return _histogram(
            "ptychojobs_attempt_duration_seconds",
            "Duration of ended attempts, by outcome",
            by_outcome,
            DURATION_BUCKETS_S,
            labels=["outcome"],
        )

    def _job_durations(self) -> Metric:
        query = select(Job.status, Job.started_at, Job.finished_at).where(
            col(Job.started_at).is_not(None), col(Job.finished_at).is_not(None)
        )
        by_status: dict[tuple[str, ...], list[float]] = {}
        for status, started, finished in self.session.exec(query):
            if started is not None and finished is not None:
                key = (JobStatus(status).value,)
                by_status.setdefault(key, []).append(_seconds(finished, started))
        return _histogram(
            "ptychojobs_job_duration_seconds",
            "Duration of ended jobs (their last attempt's start to the end), by status",
            by_status,
            DURATION_BUCKETS_S,
            labels=["status"],
        )


def _seconds(later: datetime, earlier: datetime) -> float:
    return max((as_utc(later) - as_utc(earlier)).total_seconds(), 0.0)


def _histogram(
    name: str,
    documentation: str,
    series: dict[tuple[str, ...], list[float]],
    bounds: Sequence[float],
    labels: Iterable[str] = (),
) -> Metric:
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for label_values, values in sorted(series.items()):
        buckets = [(_bound(b), float(sum(1 for v in values if v <= b))) for b in bounds]
        buckets.append(("+Inf", float(len(values))))
        family.add_metric(list(label_values), buckets, sum_value=sum(values))
    return family


def _bound(value: float) -> str:
    return str(float(value))


def render_metrics(*, session: Session) -> bytes:
    """The metrics in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(session))
    return generate_latest(registry)
