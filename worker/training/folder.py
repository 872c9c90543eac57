"""A job's artifact folder, held open for the whole job: every write goes through it.

`JobFolder.open` takes the folder once, confined (no symlink from the root down to it,
`app.paths`), and keeps its descriptor. Every file the trainer writes (checkpoints, metric
logs, train.log lines, the bundle, result.json, the figure) is then opened by walking from
that descriptor, each component with `O_NOFOLLOW`: a folder or file swapped for a symlink
mid-training is refused (`PathRefused`, an OSError), never written through, and the job
fails with the path named. `check()` also refuses a job whose folder itself was moved or
replaced (its path no longer leads to the descriptor's folder); `ConfinementWatch` runs it
at every epoch. Lightning's own file writes are routed here by `FolderCheckpointIO` (the
checkpoints) and `FolderCSVLogger` (metrics.csv, hparams.yaml).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import lightning as L
import torch
import yaml
from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.loggers.csv_logs import ExperimentWriter

from app.errors import PathRefused
from app.paths import FILESYSTEM_ROOT, open_dir, open_dir_at, open_in, write_atomic_in
from app.study.npz import current_limits

_APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT


class JobFolder:
    """The open artifact folder of one job (see the module docstring)."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self.fd = open_dir(path, root=root, create=True)
        self._identity = _identity(self.fd)

    @classmethod
    def for_job(cls, out_dir: Path) -> JobFolder:
        """The folder confined to the worker's data root; from the command line, to itself."""
        root = current_limits().root
        if root is not None:
            return cls(out_dir, root)
        out_dir.mkdir(parents=True, exist_ok=True)
        resolved = out_dir.resolve()
        return cls(resolved, resolved if resolved == FILESYSTEM_ROOT else resolved.parent)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> JobFolder:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def relative(self, path: str | Path) -> Path:
        """`path` (absolute, or relative to the folder) as a path inside the folder."""
        candidate = Path(path)
        if not candidate.is_absolute():
            return candidate
        for base in (self.path, self.path.resolve()):
            if candidate.is_relative_to(base):
                return candidate.relative_to(base)
        raise PathRefused(os.fspath(candidate), os.fspath(self.path), "lies outside the job folder")

    def holds(self, path: str | Path) -> bool:
        try:
            self.relative(path)
        except PathRefused:
            return False
        return True

    @contextlib.contextmanager
    def directory(self, relative: Path, *, create: bool = False) -> Iterator[int]:
        fd = open_dir_at(self.fd, relative, create=create)
        try:
            yield fd
        finally:
            os.close(fd)

    def open(self, path: str | Path, flags: int = os.O_RDONLY, mode: int = 0o644) -> int:
        """A descriptor of a file in the folder (folders on the way made when writing)."""
        relative = self.relative(path)
        with self.directory(relative.parent, create=bool(flags & os.O_CREAT)) as parent:
            return open_in(parent, relative.name, flags, mode)

    def read_bytes(self, path: str | Path) -> bytes:
        with os.fdopen(self.open(path), "rb") as handle:
            return handle.read()

    def append_text(self, path: str | Path, text: str) -> None:
        with os.fdopen(self.open(path, _APPEND), "a", encoding="utf-8") as handle:
            handle.write(text)

    def write_bytes(self, path: str | Path, data: bytes) -> None:
        """Write beside the target, fsync, then rename over it: readers see old or new."""
        relative = self.relative(path)
        with self.directory(relative.parent, create=True) as parent:
            write_atomic_in(parent, relative.name, data)

    def write_json(self, path: str | Path, document: Any) -> None:
        """`document` as strict JSON (no NaN), written atomically."""
        self.write_bytes(path, (json.dumps(document, indent=2, allow_nan=False) + "\n").encode())

    def unlink(self, path: str | Path) -> None:
        relative = self.relative(path)
        with self.directory(relative.parent) as parent, contextlib.suppress(FileNotFoundError):
            os.unlink(relative.name, dir_fd=parent)

    def is_file(self, path: str | Path) -> bool:
        try:
            os.close(self.open(path))
        except (FileNotFoundError, NotADirectoryError):
            return False
        return True

    def check(self) -> None:
        """Refuse a folder whose path no longer leads here without a symlink (PathRefused)."""
        try:
            fd = open_dir(self.path, root=self.root)
        except FileNotFoundError:
            raise PathRefused(os.fspath(self.path), os.fspath(self.root), "was removed") from None
        try:
            if _identity(fd) != self._identity:
                why = "was replaced while the job ran"
                raise PathRefused(os.fspath(self.path), os.fspath(self.root), why)
        finally:
            os.close(fd)


def _identity(fd: int) -> tuple[int, int]:
    info = os.fstat(fd)
    return (info.st_dev, info.st_ino)


class FolderCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoints, saved and removed through the job folder (atomically)."""

    def __init__(self, folder: JobFolder) -> None:
        self.folder = folder

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None
    ) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        self.folder.write_bytes(path, buffer.getvalue())

    def load_checkpoint(
        self, path: Any, map_location: Any | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if not self.folder.holds(path):
            return super().load_checkpoint(path, map_location, weights_only)
        data = io.BytesIO(self.folder.read_bytes(path))
        loaded: dict[str, Any] = torch.load(
            data, map_location=map_location, weights_only=bool(weights_only)
        )
        return loaded

    def remove_checkpoint(self, path: Any) -> None:
        self.folder.unlink(path)


class _FolderFiles:
    """The few fsspec calls Lightning's CSV writer makes, answered through the job folder."""

    def __init__(self, folder: JobFolder) -> None:
        self.folder = folder

    def open(self, path: str, mode: str = "r", newline: str | None = None) -> IO[str]:
        flags = {"r": os.O_RDONLY, "w": os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "a": _APPEND}
        fd = self.folder.open(path, flags[mode.strip("bt")])
        return os.fdopen(fd, mode, encoding="utf-8", newline=newline)

    def isfile(self, path: str) -> bool:
        return self.folder.is_file(path)

    def exists(self, path: str) -> bool:
        return self.folder.is_file(path)

    def makedirs(self, path: str, exist_ok: bool = True) -> None:
        with self.folder.directory(self.folder.relative(path), create=True):
            pass

    def rm_file(self, path: str) -> None:
        self.folder.unlink(path)


class _FolderExperimentWriter(ExperimentWriter):
    def __init__(self, log_dir: str, folder: JobFolder) -> None:
        super().__init__(log_dir=log_dir)
        self._fs = _FolderFiles(folder)
        self._folder = folder

    def log_hparams(self, params: dict[str, Any]) -> None:
        self.hparams.update(params)
        text = yaml.safe_dump(_plain(self.hparams), sort_keys=True)
        self._folder.write_bytes(Path(self.log_dir) / self.NAME_HPARAMS_FILE, text.encode())


def _plain(value: Any) -> Any:
    """hparams as YAML-safe values (tensors and other objects by their repr)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return repr(value)


class FolderCSVLogger(CSVLogger):
    """Lightning's CSVLogger (metrics.csv, hparams.yaml), writing through the job folder."""

    def __init__(self, folder: JobFolder, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._folder = folder

    @property
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            with self._folder.directory(self._folder.relative(self.log_dir), create=True):
                pass
            self._experiment = _FolderExperimentWriter(self.log_dir, self._folder)
        return cast(ExperimentWriter, self._experiment)


class ConfinementWatch(Callback):
    """Fails the job (PathRefused) at the start and end of every epoch if its folder moved."""

    def __init__(self, folder: JobFolder) -> None:
        self.folder = folder

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.check()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.folder.check()


__all__ = [
    "ConfinementWatch",
    "FolderCSVLogger",
    "FolderCheckpointIO",
    "JobFolder",
]
