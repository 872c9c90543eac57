"""Service configuration: one Settings class, read from PTYCHOJOBS_* variables and `.env`."""

from __future__ import annotations

import ipaddress
import json
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")

# A list from the environment: comma-separated (`a.example,b.example`) or a JSON list.
HostList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every knob of the service and its workers. `.env.example` lists them all."""

    model_config = SettingsConfigDict(env_prefix="PTYCHOJOBS_", env_file=".env", extra="ignore")

    data_root: Path = Field(
        Path("data"),
        validate_default=True,
        description="Client paths must lie inside this folder; relative to where settings load",
    )
    database_url: str = Field(
        "", description="SQLAlchemy URL; empty means SQLite at <data_root>/ptychojobs.db"
    )
    sqlite_busy_timeout_ms: int = Field(30_000, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    api_url: str = Field("http://127.0.0.1:8000", description="Where the CLI finds the API")
    log_level: str = "INFO"

    lease_s: float = Field(60.0, gt=0, description="How long a claim lasts without heartbeat")
    heartbeat_s: float = Field(10.0, gt=0, description="Heartbeat period, well inside lease_s")
    reaper_interval_s: float = Field(15.0, gt=0, description="How often expired leases are swept")
    poll_interval_s: float = Field(0.5, gt=0, description="Idle worker's wait between claims")
    max_attempts: int = Field(3, ge=1, description="Counted attempts before a job fails")
    cancel_grace_s: float = Field(10.0, ge=0, description="Wait before killing a cancelled job")
    shutdown_grace_s: float = Field(30.0, ge=0, description="Wait on SIGTERM before releasing")
    executor: str = Field(
        "worker.executors.training:TrainingExecutor",
        description="The workers' executor: local, slurm, ray, or a factory's module:attribute",
    )
    preload_ptychi: bool = Field(
        True,
        description="Import pty-chi in the local executor's fork server, so each reconstruction "
        "job starts warm (about 5 s per job); off saves that at worker start",
    )
    max_jobs_per_run: int = Field(20_000, ge=1, description="Refuse designs larger than this")
    idle_check_interval_s: float = Field(
        0.05, gt=0, description="How often an idle worker looks for new work on SQLite (lock-free)"
    )
    manifest_interval_s: float = Field(
        1.0, ge=0, description="Least time between a worker's manifest writes for one run"
    )

    # Security (README "Security"): who may call the API, from where, and how much.
    auth: Literal["auto", "on", "off"] = Field(
        "auto", description="Bearer tokens: auto = required unless the API binds to loopback"
    )
    trusted_hosts: HostList = Field(
        default_factory=list,
        description="Host headers served; empty: loopback names when bound to loopback, else any",
    )
    cors_origins: HostList = Field(
        default_factory=list, description="Origins allowed cross-site (CORS); empty: none"
    )
    api_token: SecretStr = Field(
        SecretStr(""), description="The CLI's token for an API that requires one"
    )
    max_body_bytes: int = Field(1 << 20, ge=1024, description="Larger request bodies get 413")
    max_npz_member_bytes: int = Field(
        4 << 30, ge=1, description="Refuse NPZ arrays declared larger than this (bytes)"
    )

    # The SLURM executor (PTYCHOJOBS_EXECUTOR=slurm); a run's `execution.cluster` overrides.
    slurm_partition: str = Field("", description="sbatch --partition; empty: the default")
    slurm_account: str = Field("", description="sbatch --account; empty: the user's default")
    slurm_time_limit: str = Field("", description="sbatch --time, e.g. 04:00:00; empty: default")
    slurm_mem: str = Field("", description="sbatch --mem, e.g. 16G; empty: the default")
    slurm_gpus: int = Field(1, ge=0, description="GPUs per job (--gres=gpu:N); 0 for none")
    slurm_cpus_per_task: int = Field(2, ge=1, description="sbatch --cpus-per-task")
    slurm_sbatch_args: str = Field("", description="More sbatch options, shell-quoted")
    slurm_bin_dir: str = Field("", description="Folder of sbatch, scontrol, scancel; empty: PATH")
    slurm_python: str = Field("", description="Python on the nodes; empty: the worker's own")
    slurm_poll_interval_s: float = Field(5.0, gt=0, description="How often a job's state is read")
    # The Ray executor (PTYCHOJOBS_EXECUTOR=ray); a run's `execution.cluster` overrides.
    ray_address: str = Field("auto", description="ray.init address: auto, ray://host:10001, ...")
    ray_num_gpus: float = Field(1.0, ge=0, description="GPUs per job's Ray task")
    ray_num_cpus: float = Field(1.0, ge=0, description="CPUs per job's Ray task")

    @field_validator("data_root")
    @classmethod
    def _absolute_data_root(cls, value: Path) -> Path:
        # Once, at load: a worker started from another folder must not find another root.
        return value.expanduser().resolve()

    @field_validator("trusted_hosts", "cors_origins", mode="before")
    @classmethod
    def _split_list(cls, value: object) -> object:
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                return json.loads(text)
            return [item.strip() for item in text.split(",") if item.strip()]
        return value

    @property
    def binds_loopback(self) -> bool:
        """Whether `host` is a loopback address (or localhost): reachable from this machine only."""
        if self.host in LOOPBACK_NAMES:
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def auth_required(self) -> bool:
        """Tokens are required when `auth` is on, or auto and the bind is not loopback."""
        return self.auth == "on" or (self.auth == "auto" and not self.binds_loopback)

    @property
    def allowed_hosts(self) -> list[str]:
        """Host headers the API answers: the configured ones, else loopback names or any."""
        if self.trusted_hosts:
            return list(self.trusted_hosts)
        return ["localhost", "127.0.0.1", "[::1]"] if self.binds_loopback else ["*"]

    @property
    def resolved_database_url(self) -> str:
        """The configured URL, or SQLite at <data_root>/ptychojobs.db (an absolute path)."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_root / 'ptychojobs.db'}"


@lru_cache
def get_settings() -> Settings:
    return Settings()
