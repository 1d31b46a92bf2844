"""Acknowledged events survive SIGKILLed web workers and a killed-and-restarted Redis, exactly
once (the scenario and its figures are in ``bench/fault.py``)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "fault", Path(__file__).resolve().parent.parent / "bench" / "fault.py"
)
fault = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fault)


@pytest.mark.slow
def test_no_acknowledged_event_is_lost_or_duplicated(capsys):
    lines: list[str] = []
    result = fault.run(seconds=14, clients=4, log=lines.append)
    with capsys.disabled():
        print("\n" + "\n".join(lines))
        print("durability: " + ", ".join(f"{k}={v}" for k, v in result.items()))
    assert result["faults"] == 5
    assert result["acknowledged"] > 200
    assert result["failed_attempts"] > 0, "the faults never bit: the test proved nothing"
    assert result["lost"] == 0
    assert result["duplicated"] == 0
    assert result["present"] == result["acknowledged"]
