"""Small simulated study data, made once per session and only read by the tests.

Tests that write (overlap views, broken files) do so under their own tmp_path.
"""

from __future__ import annotations

import pytest

from app.study.simulate import PhaseCResult, SimulationConfig, simulate_phase_c

# Dense enough that dense views are kept and sparse views rejected (see app.study.demo_data).
SMALL = SimulationConfig(
    patch_size=64, object_size=240, n_positions=300, scan="random", seed=7, doses=(1e3, 1e5)
)


@pytest.fixture(scope="session")
def small_phase_c(tmp_path_factory: pytest.TempPathFactory) -> PhaseCResult:
    """Phase C of SMALL: two doses, 300 random positions at N = 64."""
    return simulate_phase_c(SMALL, tmp_path_factory.mktemp("phase_c"))
