"""One worker process: reap, claim, run, report; heartbeats while a job runs; graceful stop."""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from app import queue
from app.core.config import Settings
from app.models import AttemptOutcome
from app.queue import ClaimedJob, HeartbeatReply, Progress
from worker.executors.base import Execution, Executor, Outcome, executor_name
from worker.reporting import ManifestWriter, append_log
from worker.signals import StopSignal
from worker.wakeup import ChangeWatch

logger = logging.getLogger(__name__)

_SLICE_S = 0.25  # longest wait between two looks at signals, heartbeats and deadlines
_RECORD_RETRY_DELAYS_S = (0.0, 1.0, 2.0, 4.0)


@dataclass
class _Watch:
    """The state of one attempt under supervision."""

    next_beat: float
    latest: Progress | None = None
    reported_any: bool = False
    cancel: bool = False
    kill_at: float = float("inf")

    def wait_s(self) -> float:
        return min(_SLICE_S, max(self.next_beat - time.monotonic(), 0.0))

    def beat_due(self, now: float) -> bool:
        # The first progress goes out at once: it tells users the job really started.
        return now >= self.next_beat or (self.latest is not None and not self.reported_any)


@dataclass(frozen=True)
class Verdict:
    """How an attempt ended, in the vocabulary the attempts table records.

    `expired` means the lease was lost (the job was taken away): nothing is recorded.
    """

    outcome: AttemptOutcome
    result: dict[str, Any] | None = None
    reason: str = ""
    progress: Progress | None = None  # reported after the last heartbeat
    final: bool = False  # a failure another attempt would repeat: fail the job now


class Worker:
    """Claims queued jobs one at a time and runs each through the executor."""

    def __init__(
        self,
        *,
        settings: Settings,
        engine: Engine,
        executor: Executor,
        name: str,
        once: bool = False,
        stop: StopSignal | None = None,
    ) -> None:
        if settings.heartbeat_s > settings.lease_s / 2:
            raise ValueError(
                f"PTYCHOJOBS_HEARTBEAT_S ({settings.heartbeat_s}) must be at most half of "
                f"PTYCHOJOBS_LEASE_S ({settings.lease_s}), or leases expire between beats"
            )
        self.settings = settings
        self.engine = engine
        self.executor = executor
        self.executor_name = executor_name(executor)
        self.name = name
        self.once = once
        self.stop = stop or StopSignal()
        self.attempts_run = 0  # attempts this worker saw to an end (or lost)
        self._manifests = ManifestWriter(
            engine, settings.manifest_interval_s, settings.data_root.resolve()
        )
        self._changes = ChangeWatch(engine)
        self._next_reap_s = 0.0

    def run(self) -> None:
        """Work until stopped (or, with `once`, until the queue is empty)."""
        logger.info("worker %s started", self.name)
        try:
            while not self.stop.count:
                self._maybe_reap()
                self._manifests.flush()
                try:
                    job = queue.claim_next_job(
                        engine=self.engine,
                        worker=self.name,
                        lease_s=self.settings.lease_s,
                        executor=self.executor_name,
                    )
                except SQLAlchemyError:
                    logger.warning("claim failed; trying again", exc_info=True)
                    self.stop.event.wait(self.settings.poll_interval_s)
                    continue
                if job is not None:
                    self._run_job(job)
                    continue
                self._manifests.flush(force=True)
                if self.once:
                    break
                self._changes.wait(
                    self.settings.poll_interval_s, self.settings.idle_check_interval_s, self.stop
                )
        finally:
            self._manifests.close()
            self._changes.close()
        logger.info("worker %s stopped after %d jobs", self.name, self.attempts_run)

    def _run_job(self, job: ClaimedJob) -> None:
        extra = {"run_id": job.run_id, "job_id": job.job_id}
        logger.info("attempt %d of %s dose=%g", job.attempt, job.view, job.dose, extra=extra)
        append_log(job.log_path, f"attempt {job.attempt} started on worker {self.name}")
        execution: Execution | None = None
        try:
            execution = self.executor.start(job)
            verdict = self._supervise(job, execution)
        except Exception as exc:  # e.g. a path outside the data root: the attempt still ends
            logger.exception("could not run the attempt", extra=extra)
            reason = f"{type(exc).__name__}: {exc}"
            verdict = (
                Verdict(AttemptOutcome.interrupted, reason=reason)
                if self.stop.count
                else Verdict(AttemptOutcome.failed, reason=reason)
            )
        finally:
            if execution is not None:
                execution.kill()
        self.attempts_run += 1
        self._record(job, verdict)

    def _supervise(self, job: ClaimedJob, execution: Execution) -> Verdict:
        """Wait for the attempt while heartbeating; act on cancel, shutdown and lost leases."""
        watch = _Watch(next_beat=time.monotonic() + self.settings.heartbeat_s)
        while True:
            outcome = execution.wait(watch.wait_s())
            watch.latest = execution.take_progress() or watch.latest
            if outcome is not None:
                verdict = _judge(outcome, cancel=watch.cancel, shutdown=bool(self.stop.count))
                return replace(verdict, progress=watch.latest)
            now = time.monotonic()
            if watch.beat_due(now) and self._beat(job, execution, watch, now):
                return Verdict(AttemptOutcome.expired)
            if self.stop.count:
                grace_s = self.settings.shutdown_grace_s if self.stop.count == 1 else 0.0
                watch.kill_at = min(watch.kill_at, self.stop.first_at + grace_s)
            if now >= watch.kill_at:
                execution.kill()
                if watch.cancel:
                    return Verdict(
                        AttemptOutcome.cancelled, reason="cancelled; killed after the grace period"
                    )
                return Verdict(
                    AttemptOutcome.interrupted, reason="worker stopped before the job finished"
                )
            self._maybe_reap()
            self._manifests.flush()

    def _beat(self, job: ClaimedJob, execution: Execution, watch: _Watch, now: float) -> bool:
        """Heartbeat with the latest progress; True when the lease was lost (child killed)."""
        reply = self._heartbeat(job, watch.latest)
        watch.next_beat = now + self.settings.heartbeat_s
        if reply is None:
            return False
        watch.reported_any = watch.reported_any or watch.latest is not None
        watch.latest = None
        if reply.lost:
            execution.kill()
            return True
        if reply.cancel_requested and not watch.cancel:
            watch.cancel = True
            execution.request_stop()
            watch.kill_at = min(watch.kill_at, now + self.settings.cancel_grace_s)
        return False

    def _heartbeat(self, job: ClaimedJob, progress: Progress | None) -> HeartbeatReply | None:
        try:
            return queue.heartbeat(
                engine=self.engine,
                job_id=job.job_id,
                lease_token=job.lease_token,
                lease_s=self.settings.lease_s,
                progress=progress,
            )
        except SQLAlchemyError:
            # The lease still runs; the next beat may get through before it expires.
            logger.warning("heartbeat failed", exc_info=True, extra={"job_id": job.job_id})
            return None

    def _record(self, job: ClaimedJob, verdict: Verdict) -> None:
        extra = {"run_id": job.run_id, "job_id": job.job_id}
        if verdict.outcome == AttemptOutcome.expired:
            logger.warning("lease lost: the job was taken away; dropping this attempt", extra=extra)
            return
        for delay_s in _RECORD_RETRY_DELAYS_S:
            if delay_s:
                time.sleep(delay_s)
            try:
                recorded = _write_verdict(self.engine, job, verdict)
                break
            except SQLAlchemyError:
                logger.warning("could not record the attempt", exc_info=True, extra=extra)
        else:
            logger.error("gave up recording the attempt; its lease will expire", extra=extra)
            return
        if not recorded:
            logger.warning(
                "lease lost before the %s was recorded", verdict.outcome.value, extra=extra
            )
            return
        summary = verdict.reason.splitlines()[0] if verdict.reason else ""
        logger.info("attempt %d: %s %s", job.attempt, verdict.outcome.value, summary, extra=extra)
        if verdict.outcome != AttemptOutcome.succeeded:
            append_log(job.log_path, f"attempt {job.attempt} {verdict.outcome.value}: {summary}")
        self._manifests.job_ended(job.run_id)

    def _maybe_reap(self) -> None:
        now = time.monotonic()
        if now < self._next_reap_s:
            return
        self._next_reap_s = now + self.settings.reaper_interval_s
        try:
            runs = queue.requeue_expired(engine=self.engine)
        except SQLAlchemyError:
            logger.warning("reaper failed; trying again later", exc_info=True)
            return
        for run_id in runs:
            logger.info("requeued or failed expired jobs", extra={"run_id": run_id})
            self._manifests.job_ended(run_id)
        self._manifests.retry_owed()


def _judge(outcome: Outcome, *, cancel: bool, shutdown: bool) -> Verdict:
    # A result the database would refuse must fail the attempt, not stall it.
    unstorable = _unstorable(outcome.result)
    if outcome.status == "succeeded":
        if unstorable:
            return Verdict(AttemptOutcome.failed, reason=unstorable)
        return Verdict(AttemptOutcome.succeeded, result=outcome.result)
    if cancel:  # what training had when it stopped (metrics, image) is kept
        kept = None if unstorable else outcome.result
        return Verdict(AttemptOutcome.cancelled, result=kept, reason="cancelled")
    if outcome.status == "interrupted":  # preempted or requeued by the cluster: not counted
        return Verdict(AttemptOutcome.interrupted, reason=outcome.error or "interrupted")
    if outcome.status == "stopped":
        if shutdown:
            return Verdict(AttemptOutcome.interrupted, reason="stopped while the worker shut down")
        return Verdict(AttemptOutcome.failed, reason="training stopped without being asked to")
    reason = outcome.error or "unknown failure"
    return Verdict(AttemptOutcome.failed, reason=reason, final=outcome.final)


def _unstorable(result: dict[str, Any] | None) -> str:
    """Why `result` cannot be stored as JSON; '' when it can."""
    try:
        json.dumps(result, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"the result is not storable as JSON: {exc}"
    return ""


def _write_verdict(engine: Engine, job: ClaimedJob, verdict: Verdict) -> bool:
    job_id, token = job.job_id, job.lease_token
    if verdict.outcome == AttemptOutcome.succeeded:
        return queue.complete_job(
            engine=engine,
            job_id=job_id,
            lease_token=token,
            result=verdict.result or {},
            progress=verdict.progress,
        )
    if verdict.outcome == AttemptOutcome.failed:
        return queue.fail_attempt(
            engine=engine, job_id=job_id, lease_token=token, error=verdict.reason,
            final=verdict.final,
        )  # fmt: skip
    if verdict.outcome == AttemptOutcome.cancelled:
        return queue.confirm_cancelled(
            engine=engine, job_id=job_id, lease_token=token, result=verdict.result
        )
    reason = verdict.reason
    return queue.release_job(engine=engine, job_id=job_id, lease_token=token, reason=reason)
