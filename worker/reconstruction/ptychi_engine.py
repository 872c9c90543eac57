"""pty-chi behind a small seam: build a task from `EngineInputs`, run it some epochs at a time.

pty-chi sets process-wide torch state when it builds a task (the default device and dtype)
and seeds the global random generators. `PtychiSession` keeps that state to itself: every
call into pty-chi runs inside `_turn`, which swaps pty-chi's state in and the caller's back
out, so between chunks (and after the session) the process is as the caller left it.
"""

from __future__ import annotations

import contextlib
import logging
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from worker.reconstruction.config import ReconstructConfig
from worker.reconstruction.inputs import EngineInputs

logger = logging.getLogger(__name__)

# pty-chi logs every epoch at INFO and draws a tqdm bar unless its loggers are quieter.
_PTYCHI_LOGGER = "ptychi"
# Harmless warnings raised inside pty-chi 2.2.0 (it builds its ROI box from a tensor that
# requires grad).
_EXPECTED_WARNINGS = (r"Converting a tensor with requires_grad=True to a scalar",)
# DM's exit-wave update visits this many positions at a time (memory, not convergence).
DM_CHUNK_LENGTH = 64
PREDICT_BATCH = 256


def resolve_device(accelerator: str) -> str:
    """The torch device type for the job's accelerator option: "cuda" or "cpu".

    auto takes CUDA when there is a device; gpu (or cuda) without one is refused.
    """
    available = torch.cuda.is_available()
    if accelerator in ("gpu", "cuda"):
        if not available:
            raise RuntimeError(f"accelerator {accelerator!r} asked for, but CUDA is unavailable")
        return "cuda"
    if accelerator == "auto" and available:
        return "cuda"
    return "cpu"


@dataclass
class _TorchState:
    """The process-wide state pty-chi changes: default device and dtype, threads, RNGs."""

    device: torch.device | None
    dtype: torch.dtype
    threads: int
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] | None
    numpy_rng: Any
    python_rng: Any

    @classmethod
    def capture(cls) -> _TorchState:
        # torch.get_default_device() reports "cpu" both when none is set and when "cpu" is
        # set; only the former avoids the per-call cost of a device mode, so read which.
        context = getattr(torch._GLOBAL_DEVICE_CONTEXT, "device_context", None)
        return cls(
            device=None if context is None else torch.device(context.device),
            dtype=torch.get_default_dtype(),
            threads=torch.get_num_threads(),
            torch_rng=torch.get_rng_state(),
            cuda_rng=torch.cuda.get_rng_state_all() if _cuda_initialized() else None,
            numpy_rng=np.random.get_state(),
            python_rng=random.getstate(),
        )

    def restore(self) -> None:
        torch.set_default_device(self.device)
        torch.set_default_dtype(self.dtype)
        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        torch.set_rng_state(self.torch_rng)
        if self.cuda_rng is not None:
            torch.cuda.set_rng_state_all(self.cuda_rng)
        np.random.set_state(self.numpy_rng)
        random.setstate(self.python_rng)


def _cuda_initialized() -> bool:
    initialized: bool = torch.cuda.is_initialized()  # type: ignore[no-untyped-call]
    return initialized


def build_options(config: ReconstructConfig, inputs: EngineInputs, device: str) -> Any:
    """pty-chi's options for the job: our geometry, the absolute amplitude kept."""
    import ptychi.api as api

    classes = {
        "lsqml": api.LSQMLOptions,
        "epie": api.EPIEOptions,
        "rpie": api.RPIEOptions,
        "dm": api.DMOptions,
    }
    options = classes[config.engine]()
    options.data_options.fft_shift = True  # our patterns have the zero frequency centred
    obj = options.object_options
    obj.pixel_size_m = 1.0  # one object pixel; only ratios of pixel sizes matter
    obj.determine_position_origin_coords_by = api.ObjectPosOriginCoordsMethods.SPECIFIED
    obj.position_origin_coords = np.asarray(inputs.origin, dtype=np.float64)
    # Rescaling object against probe would change the amplitude the known probe fixes.
    obj.remove_object_probe_ambiguity.enabled = False
    options.probe_options.optimizable = config.probe_trainable
    options.probe_position_options.optimizable = False
    recon = options.reconstructor_options
    recon.num_epochs = config.epochs
    recon.random_seed = config.seed
    recon.default_device = api.Devices.GPU if device == "cuda" else api.Devices.CPU
    recon.default_dtype = api.Dtypes.FLOAT32
    if config.engine == "dm":
        recon.displayed_loss_function = None  # DM records its own error
        recon.chunk_length = DM_CHUNK_LENGTH
    else:
        recon.batch_size = config.batch_size
    if config.engine == "lsqml":
        recon.noise_model = api.NoiseModels(config.noise_model)
        recon.rescale_probe_intensity_in_first_epoch = False
    return options


class PtychiSession:
    """One pty-chi task: `run(epochs)` continues it; the results come back as numpy."""

    def __init__(
        self,
        config: ReconstructConfig,
        inputs: EngineInputs,
        *,
        initial_object: np.ndarray | None = None,
    ) -> None:
        """`initial_object`: a buffer to start from (`EngineInputs.buffer_of`), else ones."""
        from ptychi.api.task import PtychographyTask

        self.config = config
        self.inputs = inputs
        self.device = resolve_device(config.accelerator)
        self.threads = config.threads or (1 if self.device == "cpu" else torch.get_num_threads())
        self._state: _TorchState | None = None
        start = inputs.initial_object() if initial_object is None else initial_object
        with self._turn():
            self.task: Any = PtychographyTask(
                build_options(config, inputs, self.device),
                diffraction_data=inputs.intensities,
                object_data=start[None],
                probe_data=inputs.probe[None, None],
                probe_position_x_px=inputs.xcoords,
                probe_position_y_px=inputs.ycoords,
                opr_mode_weights_data=np.ones((len(inputs.xcoords), 1), dtype=np.float32),
            )
            self.device_name = str(torch.get_default_device())

    @contextlib.contextmanager
    def _turn(self) -> Iterator[None]:
        """pty-chi's torch state in, the caller's back afterwards (even on an error)."""
        caller = _TorchState.capture()
        quiet = logging.getLogger(_PTYCHI_LOGGER)
        level = quiet.level
        quiet.setLevel(logging.WARNING)
        try:
            if self._state is not None:
                self._state.restore()
            torch.set_num_threads(self.threads)
            with warnings.catch_warnings():
                for message in _EXPECTED_WARNINGS:
                    warnings.filterwarnings("ignore", message=message, category=UserWarning)
                yield
        finally:
            self._state = _TorchState.capture()
            caller.restore()
            quiet.setLevel(level)

    @property
    def epochs_done(self) -> int:
        return int(self.task.reconstructor.current_epoch)

    @property
    def batches_per_epoch(self) -> int:
        return len(self.task.reconstructor.dataloader)

    def run(self, epochs: int) -> list[float]:
        """Run `epochs` more epochs; their losses (pty-chi's displayed loss, or DM's error)."""
        with self._turn():
            self.task.run(n_epochs=epochs)
        return self.losses()[-epochs:]

    def losses(self) -> list[float]:
        return [float(value) for value in self.task.reconstructor.loss_tracker.table["loss"]]

    def object_buffer(self) -> np.ndarray:
        with self._turn():
            data = self.task.get_data_to_cpu("object", as_numpy=True)
        return np.asarray(data[0], dtype=np.complex64)

    def probe(self) -> np.ndarray:
        """The first mode of the (possibly refined) probe, pty-chi's units."""
        with self._turn():
            data = self.task.get_data_to_cpu("probe", as_numpy=True)
        return np.asarray(data[0, 0], dtype=np.complex64)

    def predicted_intensities(self) -> np.ndarray:
        """The forward model's intensities of every position, zero frequency centred."""
        count = len(self.inputs.xcoords)
        blocks = []
        with self._turn(), torch.no_grad():
            for start in range(0, count, PREDICT_BATCH):
                indices = torch.arange(start, min(start + PREDICT_BATCH, count))
                predicted = self.task.reconstructor.forward_model(indices)
                blocks.append(torch.fft.fftshift(predicted, dim=(-2, -1)).cpu().numpy())
        return np.concatenate(blocks).astype(np.float32)
