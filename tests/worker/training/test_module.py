"""LitPtychoPINN: both loss modes train through the physics; the optional scheduler."""

from __future__ import annotations

import pytest
import torch

from app.study.probe import make_probe
from worker.training.module import LitPtychoPINN


def _model(**overrides: object) -> LitPtychoPINN:
    probe = torch.from_numpy(make_probe(64)).to(torch.complex64)
    values: dict[str, object] = {"n": 64, "gridsize": 2, "intensity_scale": 30.0, "probe": probe}
    values.update(overrides)
    return LitPtychoPINN(**values)  # type: ignore[arg-type]


@pytest.mark.slow
@pytest.mark.parametrize("loss", ["poisson", "mae"])
def test_a_few_steps_lower_the_loss_on_a_fixed_batch(loss: str) -> None:
    torch.manual_seed(0)
    model = _model(loss=loss, lr=3e-3)
    diffraction = torch.rand(4, 4, 64, 64) * 0.1
    offsets = torch.randn(4, 4, 2) * 8
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(4):
        value = model.loss(model.predicted_amplitude(model(diffraction), offsets), diffraction)
        optimizer.zero_grad()
        value.backward()
        optimizer.step()
        losses.append(float(value.detach()))
    assert losses[-1] < losses[0]
    assert all(p.grad is not None for p in model.net.parameters())


def test_cosine_scheduler_is_optional() -> None:
    assert isinstance(_model().configure_optimizers(), torch.optim.Adam)
    configured = _model(scheduler="cosine", epochs=10).configure_optimizers()
    assert isinstance(configured["lr_scheduler"], torch.optim.lr_scheduler.CosineAnnealingLR)
    with pytest.raises(ValueError, match="scheduler"):
        _model(scheduler="step")


def test_probe_travels_in_the_state_dict_not_the_hyperparameters() -> None:
    model = _model()
    assert "probe" not in model.hparams
    rebuilt = LitPtychoPINN(**model.hparams)
    rebuilt.load_state_dict(model.state_dict())
    assert torch.equal(rebuilt.probe, model.probe)
