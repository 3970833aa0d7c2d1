"""The machine's matmul peak and stage times normalised to a 200 GFLOP/s machine."""

from __future__ import annotations

import pytest

from salmon import machine


def test_normalised_seconds_by_hand():
    assert machine.normalised_seconds(100.0, 100.0) == 50.0  # a machine half as fast as the reference
    assert machine.normalised_seconds(30.0, 400.0) == 60.0
    with pytest.raises(ValueError):
        machine.normalised_seconds(1.0, 0.0)


def test_measure_record_and_read(tmp_path, one_torch_thread):
    info = machine.record_machine(tmp_path, seconds=0.05)
    assert info["matmul_gflops"] > 0 and info["matmul_bf16_gflops"] > 0
    assert info["matmul_shape"] == list(machine.PROBE_SHAPE)
    assert machine.read_machine(tmp_path) == info
    assert machine.read_machine(tmp_path / "nowhere") is None
