"""The model bundle: weights + hyperparameters + job config + format version, in one file."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from worker.training.folder import JobFolder
from worker.training.module import LitPtychoPINN

BUNDLE_FORMAT = "ptychojobs-bundle"
BUNDLE_VERSION = 2
BUNDLE_NAME = "model_bundle.pt"
# Version 1 bundles predate the architecture choice: they hold the U-Net with back-projection
# inputs, and no scale, gain or detector-mask tensors (those start at their neutral values).
_V1_HPARAMS = {"architecture": "unet", "inputs": "amplitudes+backprop"}
_V1_MISSING = {"log_scale", "initial_log_scale", "log_gain", "detector_mask"}


def write_bundle(
    model: LitPtychoPINN, config: dict[str, Any], path: Path, folder: JobFolder | None = None
) -> tuple[str, int]:
    """Save the bundle (through the job's `folder`, when given, atomically); return its
    SHA-256 hex digest and size in bytes."""
    payload = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "hparams": dict(model.hparams),
        "config": config,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
    }
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    data = buffer.getvalue()
    if folder is not None:
        folder.write_bytes(path, data)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return hashlib.sha256(data).hexdigest(), len(data)


def load_bundle(path: Path) -> tuple[LitPtychoPINN, dict[str, Any]]:
    """Rebuild the model from a bundle; returns (model in eval mode, job config)."""
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if payload.get("format") != BUNDLE_FORMAT:
        raise ValueError(f"{path}: not a {BUNDLE_FORMAT} file")
    version = payload.get("format_version")
    if version not in (1, BUNDLE_VERSION):
        raise ValueError(
            f"{path}: bundle format version {version!r}, expected 1 to {BUNDLE_VERSION}"
        )
    hparams = dict(payload["hparams"])
    if version == 1:
        hparams = {**_V1_HPARAMS, **hparams}
    model = LitPtychoPINN(**hparams)
    missing, unexpected = model.load_state_dict(payload["state_dict"], strict=version != 1)
    if unexpected or not set(missing) <= _V1_MISSING:
        raise ValueError(f"{path}: weights do not fit the model ({missing}, {unexpected})")
    model.eval()
    return model, payload["config"]


def sha256_of(path: Path) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
