"""Resuming a job: a full checkpoint after every complete epoch, and the checks before using it.

`checkpoints/last.ckpt` holds everything `Trainer.fit(ckpt_path=...)` needs to continue
(weights, optimizer, loop counters, the callbacks' state, so the epoch history too). It is
written only when an epoch completes, and atomically, so a job killed at any moment leaves
the last complete epoch behind: interrupted in epoch k+1, the next attempt starts epoch k+1
again. A stop request that ends an epoch early never overwrites it.
"""

from __future__ import annotations

import contextlib
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import Checkpoint

LAST_NAME = "last.ckpt"


class LastCheckpoint(Checkpoint):
    """Writes `dirpath/last.ckpt` (full state) after every complete training epoch.

    A `Checkpoint`, so Lightning runs it after the other callbacks (the epoch history and the
    best-weights checkpoint have recorded the epoch by then); pass it after any
    `ModelCheckpoint`, which stays `trainer.checkpoint_callback`.
    """

    def __init__(self, dirpath: Path) -> None:
        self.dirpath = dirpath

    @property
    def path(self) -> Path:
        return self.dirpath / LAST_NAME

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return  # stopped inside the epoch: the previous epoch's state is the one to keep
        # The trainer's checkpoint IO (the job folder's) writes beside the target and renames
        # it into place: a reader never finds half a checkpoint.
        trainer.save_checkpoint(self.path)


def resumable_checkpoint(checkpoint_dir: Path) -> Path | None:
    """`last.ckpt` when it exists and is a complete file, else None (start from scratch)."""
    path = checkpoint_dir / LAST_NAME
    try:
        # torch.save writes a zip archive; a cut-off file has no central directory.
        return path if path.is_file() and zipfile.is_zipfile(path) else None
    except OSError:
        return None


@contextlib.contextmanager
def resume_warnings() -> Iterator[None]:
    """Silence what Lightning says about the folders a resumed job finds already filled."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message=r"Checkpoint directory .* exists and is not empty"
        )
        warnings.filterwarnings(
            "ignore", message=r"Experiment logs directory .* exists and is not empty"
        )
        yield
