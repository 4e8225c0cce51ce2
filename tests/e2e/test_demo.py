"""``flopex demo`` (what ``make demo`` runs) goes end to end and ends with a passing audit."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.test_cli import flopex


def test_the_demo_runs_every_job_survives_a_kill_and_passes_its_audit(tmp_path: Path) -> None:
    res = flopex("demo", cwd=tmp_path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert "jobs succeeded: 10/10; failover after kill -9: yes" in res.stdout
    assert "ledger sums to 0: OK" in res.stdout
    assert "audit OK: checkpoint" in res.stdout
    assert "Traceback" not in res.stdout + res.stderr
