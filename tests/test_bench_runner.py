"""`make bench` runs bench/run_all.py: it must know every benchmark it names and run the ones asked for."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench import run_all


def test_every_benchmark_named_exists() -> None:
    bench = Path(run_all.__file__).parent
    assert all((bench / script).is_file() for script, _what in run_all.BENCHMARKS.values())


def test_runs_the_benchmarks_asked_for(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.main(["machine"]) == 0
    assert "1 of 1 benchmarks ran cleanly" in capsys.readouterr().out


def test_an_unknown_name_is_refused() -> None:
    with pytest.raises(SystemExit) as exc:
        run_all.main(["machine", "nope"])
    assert exc.value.code == 2
