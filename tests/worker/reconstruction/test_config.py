"""ReconstructConfig: the study's Phase F defaults, and refused options."""

from __future__ import annotations

from pathlib import Path

import pytest

from worker.reconstruction import ALGORITHMS, ENGINES, ReconstructConfig


def test_defaults_follow_phase_f(tmp_path: Path) -> None:
    config = ReconstructConfig(input_npz=str(tmp_path / "in.npz"), out_dir=str(tmp_path))  # type: ignore[arg-type]

    assert (config.engine, config.epochs, config.batch_size) == ("lsqml", 100, 96)
    assert (config.noise_model, config.probe_trainable) == ("gaussian", False)
    assert config.algorithm == "LSQML"
    assert config.input_npz == tmp_path / "in.npz"
    assert config.resolved_log_path == tmp_path / "train.log"


def test_every_engine_has_the_study_s_algorithm_name() -> None:
    assert {engine: ALGORITHMS[engine] for engine in ENGINES} == {
        "lsqml": "LSQML", "epie": "ePIE", "rpie": "rPIE", "dm": "DM",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("engine", "raar"),
        ("noise_model", "laplace"),
        ("accelerator", "tpu"),
        ("epochs", 0),
        ("batch_size", -1),
        ("threads", 0),
        ("chunk_epochs", 0),
        ("nphotons", 0.0),
    ],
)
def test_a_bad_option_is_refused_by_name(tmp_path: Path, field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"ReconstructConfig.{field}"):
        ReconstructConfig(tmp_path / "in.npz", tmp_path, **{field: value})  # type: ignore[arg-type]
