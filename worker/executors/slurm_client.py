"""SLURM's command-line tools, as the SLURM executor uses them: sbatch, scontrol, sacct, scancel.

Job states come from `scontrol show job`, which knows every job for MinJobAge seconds after
it ended (default 300) whether or not the cluster keeps accounting; once slurmctld has
forgotten a job, `sacct` is asked (it answers only where accounting is configured).
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Every SLURM job state that means "not over yet", from squeue(1) and scontrol(1).
ACTIVE_STATES = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "RESIZING",
        "SIGNALING",
        "STAGE_OUT",
        "STOPPED",
        "RESV_DEL_HOLD",
        "POWER_UP_NODE",
        "UPDATE_DB",
    }
)
# SLURM put the job back in its queue (preemption, `scontrol requeue`, a failed node).
REQUEUED_STATES = frozenset({"REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "SPECIAL_EXIT"})
_FIELD = {name: re.compile(rf"(?:^|\s){name}=(\S*)") for name in ("JobState", "ExitCode", "Reason")}
_RESTARTS = re.compile(r"(?:^|\s)Restarts=(\d+)")


class SlurmError(RuntimeError):
    """A SLURM command failed; the message has its output."""


@dataclass(frozen=True)
class SlurmJobState:
    """What SLURM says about one job: e.g. RUNNING, COMPLETED, CANCELLED, exit code "0:15"."""

    state: str
    exit_code: str = ""
    reason: str = ""
    restarts: int = 0

    @property
    def active(self) -> bool:
        return self.state in ACTIVE_STATES

    def describe(self) -> str:
        details = [f"exit code {self.exit_code}"] if self.exit_code else []
        if self.reason and self.reason != "None":
            details.append(f"reason {self.reason}")
        return self.state + (f" ({', '.join(details)})" if details else "")


class SlurmClient:
    """Runs SLURM's commands from `bin_dir` (or the PATH), each with a timeout."""

    def __init__(self, bin_dir: str = "", timeout_s: float = 60.0) -> None:
        self._bin_dir = Path(bin_dir) if bin_dir else None
        self._timeout_s = timeout_s

    def command(self, name: str) -> str:
        if self._bin_dir is not None:
            return str(self._bin_dir / name)
        return shutil.which(name) or name

    def available(self) -> bool:
        """True when sbatch can be found."""
        return Path(self.command("sbatch")).is_file()

    def submit(self, script: Path, options: Sequence[str]) -> str:
        """`sbatch --parsable OPTIONS SCRIPT`; the new job's id."""
        done = self._run("sbatch", "--parsable", *options, str(script))
        if done.returncode != 0:
            raise SlurmError(f"sbatch failed ({done.returncode}): {done.stderr.strip()}")
        return done.stdout.strip().split(";")[0]  # "<id>[;<cluster>]"

    def state(self, job_id: str) -> SlurmJobState | None:
        """The job's state; None when neither slurmctld nor accounting knows the job."""
        done = self._run("scontrol", "--oneliner", "show", "job", job_id)
        if done.returncode == 0 and (state := parse_scontrol(done.stdout)) is not None:
            return state
        if "Invalid job id" not in done.stderr:
            raise SlurmError(f"scontrol show job {job_id} failed: {done.stderr.strip()}")
        return self._state_from_sacct(job_id)

    def cancel(self, job_id: str) -> None:
        """`scancel JOB`: SIGTERM to its processes, SIGKILL after the cluster's KillWait."""
        done = self._run("scancel", job_id)
        if done.returncode != 0:
            logger.warning("scancel %s failed: %s", job_id, done.stderr.strip())

    def _state_from_sacct(self, job_id: str) -> SlurmJobState | None:
        fields = ("--noheader", "--parsable2", "--allocations", "--format=State,ExitCode")
        done = self._run("sacct", "--jobs", job_id, *fields)
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            return None
        state, _, exit_code = lines[0].partition("|")
        return SlurmJobState(state=state.split()[0], exit_code=exit_code)  # "CANCELLED by 0"

    def _run(self, name: str, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.command(name), *args]
        try:
            return subprocess.run(
                argv, capture_output=True, text=True, timeout=self._timeout_s, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SlurmError(f"{name} could not run: {exc}") from exc


def parse_scontrol(text: str) -> SlurmJobState | None:
    values = {name: pattern.search(text) for name, pattern in _FIELD.items()}
    if values["JobState"] is None:
        return None
    restarts = _RESTARTS.search(text)
    return SlurmJobState(
        state=values["JobState"].group(1),
        exit_code=values["ExitCode"].group(1) if values["ExitCode"] else "",
        reason=values["Reason"].group(1) if values["Reason"] else "",
        restarts=int(restarts.group(1)) if restarts else 0,
    )
