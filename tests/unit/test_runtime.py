"""The subprocess runtime, with real bash processes (each test well under 3 s)."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import stat
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flopex.agent.runtimes import subprocess as runtime_module
from flopex.agent.runtimes.subprocess import (
    Limits,
    Outcome,
    RunRequest,
    RunResult,
    SubprocessRuntime,
)
from flopex.agent.runtimes.workspace import reachable_work_root
from flopex.client.workdir import pack_workdir
from flopex.errors import LocalError


@pytest.fixture
def root() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are 0o700, and jobs run as `nobody` under root.
    path = Path(tempfile.mkdtemp(prefix="flopex-runtime-"))
    path.chmod(0o711)
    yield path / "attempts"
    shutil.rmtree(path)


def _request(run: str, **overrides: Any) -> RunRequest:
    base = RunRequest(
        attempt_id="att_1",
        job_id="job_1",
        setup=None,
        run=run,
        envs={},
        workdir_archive=None,
        limits=Limits(wall_clock_s=10),
    )
    return dataclasses.replace(base, **overrides)


def _run(
    root: Path, req: RunRequest, cancel: threading.Event | None = None
) -> tuple[RunResult, bytes]:
    chunks: list[bytes] = []
    result = SubprocessRuntime(root).run(req, chunks.append, cancel or threading.Event())
    return result, b"".join(chunks)


def _alive(pid: int) -> bool:
    """Whether a process runs (a zombie nobody reaped yet counts as dead)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_an_output_file_is_collected_with_its_sha256(root: Path) -> None:
    script = 'echo hello > "$FLOPEX_OUTPUT_DIR/out.txt"; mkdir "$FLOPEX_OUTPUT_DIR/sub"; '
    script += 'printf x > "$FLOPEX_OUTPUT_DIR/sub/y"'
    result, _ = _run(root, _request(script))
    assert result.outcome is Outcome.COMPLETED and result.exit_code == 0
    assert [(o.path, o.size_bytes) for o in result.outputs] == [("out.txt", 6), ("sub/y", 1)]
    out = result.outputs[0]
    assert out.sha256 == hashlib.sha256(b"hello\n").hexdigest()
    assert out.local_path.read_bytes() == b"hello\n"


def test_output_symlinks_are_not_followed(root: Path) -> None:
    script = 'ln -s /etc/passwd "$FLOPEX_OUTPUT_DIR/pw"; ln -s /etc "$FLOPEX_OUTPUT_DIR/etc"'
    result, _ = _run(root, _request(script))
    assert result.outcome is Outcome.COMPLETED
    assert result.outputs == ()


def test_an_output_dir_swapped_for_a_symlink_yields_nothing(root: Path) -> None:
    result, _ = _run(root, _request('rmdir "$FLOPEX_OUTPUT_DIR"; ln -s /etc "$FLOPEX_OUTPUT_DIR"'))
    assert result.outputs == ()


def test_outputs_over_the_limit_make_a_job_error(root: Path) -> None:
    limits = Limits(wall_clock_s=10, max_output_bytes=100)
    req = _request('head -c 200 /dev/zero > "$FLOPEX_OUTPUT_DIR/big"', limits=limits)
    result, log = _run(root, req)
    assert (result.outcome, result.exit_code, result.outputs) == (Outcome.JOB_ERROR, 0, ())
    assert b"[flopex] the output directory holds more than 100 bytes" in log


def test_the_job_sees_its_envs_and_not_the_agents(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOPEX_AGENT_SECRET", "s3cret")
    req = _request("env", envs={"LR": "0.1"}, cuda_visible_devices="2,3")
    result, log = _run(root, req)
    env = dict(line.split("=", 1) for line in log.decode().splitlines() if "=" in line)
    assert result.outcome is Outcome.COMPLETED
    assert b"s3cret" not in log and "FLOPEX_AGENT_SECRET" not in env
    assert env["LR"] == "0.1" and env["CUDA_VISIBLE_DEVICES"] == "2,3"
    assert (env["FLOPEX_JOB_ID"], env["FLOPEX_ATTEMPT_ID"]) == ("job_1", "att_1")
    assert env["FLOPEX_OUTPUT_DIR"] == str(root / "att_1" / "output")
    assert env["HOME"] == str(root / "att_1") and env["LANG"] == "C.UTF-8"
    assert env["TMPDIR"].startswith(env["HOME"])


def test_a_job_without_devices_sees_none(root: Path) -> None:
    _, log = _run(root, _request('echo "[$CUDA_VISIBLE_DEVICES]"'))
    assert log == b"[]\n"


def test_the_workdir_is_unpacked_into_the_writable_cwd(root: Path, tmp_path: Path) -> None:
    (tmp_path / "train.py").write_text("print('hi')\n")
    archive = pack_workdir(tmp_path).data
    req = _request("cat train.py && touch made_here && id -u", workdir_archive=archive)
    result, log = _run(root, req)
    assert result.outcome is Outcome.COMPLETED, log
    lines = log.decode().splitlines()
    assert lines[0] == "print('hi')"
    assert (root / "att_1" / "work" / "made_here").exists()
    if os.geteuid() == 0:
        assert lines[1] != "0"  # dropped to the job user


def test_an_unsafe_workdir_is_a_job_error_and_runs_nothing(root: Path) -> None:
    result, log = _run(root, _request("touch ran", workdir_archive=b"garbage"))
    assert result.outcome is Outcome.JOB_ERROR
    assert b"[flopex] the workdir archive is not a valid tar.gz" in log
    assert not (root / "att_1" / "work" / "ran").exists()


def test_a_failing_setup_skips_run(root: Path) -> None:
    result, log = _run(root, _request("touch ran", setup="echo preparing; exit 3"))
    assert (result.outcome, result.exit_code) == (Outcome.JOB_ERROR, 3)
    assert not (root / "att_1" / "work" / "ran").exists()
    assert log.startswith(b"preparing\n") and b"setup exited with 3; run was skipped" in log


def test_setup_runs_before_run_in_bash(root: Path) -> None:
    result, log = _run(root, _request("cat marker", setup="[[ 1 == 1 ]] && echo ok > marker"))
    assert (result.outcome, log) == (Outcome.COMPLETED, b"ok\n")


def test_a_non_zero_exit_is_a_job_error_with_its_code(root: Path) -> None:
    result, _ = _run(root, _request("exit 7"))
    assert (result.outcome, result.exit_code) == (Outcome.JOB_ERROR, 7)


def test_a_job_killed_by_a_signal_reports_a_negative_code(root: Path) -> None:
    result, _ = _run(root, _request("kill -9 $$"))
    assert (result.outcome, result.exit_code) == (Outcome.JOB_ERROR, -9)


def test_the_wall_clock_limit_kills_the_job_and_its_children(root: Path) -> None:
    req = _request("sleep 30 & echo $!; sleep 30", limits=Limits(wall_clock_s=0.5))
    started = time.monotonic()
    result, log = _run(root, req)
    assert time.monotonic() - started < 3
    assert result.outcome is Outcome.TIME_LIMIT and result.exit_code < 0
    assert 500 <= result.duration_ms < 3000
    assert b"[flopex] wall clock limit of 0.5 s reached during run" in log
    assert not _alive(int(log.split(b"\n")[0]))


def test_background_children_do_not_outlive_a_finished_job(root: Path) -> None:
    result, log = _run(root, _request("sleep 30 & echo $!"))
    assert result.outcome is Outcome.COMPLETED
    assert not _alive(int(log.strip()))


def test_the_cancel_event_stops_the_job(root: Path) -> None:
    cancel = threading.Event()
    threading.Timer(0.3, cancel.set).start()
    started = time.monotonic()
    result, log = _run(root, _request("sleep 30"), cancel)
    assert result.outcome is Outcome.CANCELLED
    assert time.monotonic() - started < 3
    assert b"[flopex] job cancelled during run" in log


def test_logs_arrive_in_order_complete_and_in_bounded_chunks(root: Path) -> None:
    chunks: list[bytes] = []
    req = _request("for i in $(seq 1 2000); do printf '%099d\\n' $i; done")
    result = SubprocessRuntime(root).run(req, chunks.append, threading.Event())
    expected = b"".join(b"%099d\n" % i for i in range(1, 2001))
    assert result.outcome is Outcome.COMPLETED
    assert len(expected) == 200_000 and b"".join(chunks) == expected
    assert max(len(c) for c in chunks) <= 64 * 1024


def test_logs_flow_while_the_job_runs(root: Path) -> None:
    arrived: list[float] = []
    started = time.monotonic()
    req = _request("echo first; sleep 1.5; echo second")
    SubprocessRuntime(root).run(req, lambda _: arrived.append(time.monotonic()), threading.Event())
    assert len(arrived) == 2 and arrived[0] - started < 0.9


def test_the_file_size_limit_stops_a_huge_write(root: Path) -> None:
    limits = Limits(wall_clock_s=10, file_size_bytes=1_000_000)
    result, _ = _run(root, _request("head -c 5000000 /dev/zero > big", limits=limits))
    assert result.outcome is Outcome.JOB_ERROR and result.exit_code != 0
    assert (root / "att_1" / "work" / "big").stat().st_size <= 1_000_000


def test_cleanup_removes_the_workspace(root: Path) -> None:
    runtime = SubprocessRuntime(root)
    script = 'd="$FLOPEX_OUTPUT_DIR/d"; mkdir -p "$d/e" && touch "$d/e/f" && chmod 0 "$d"'
    runtime.run(_request(script), lambda _: None, threading.Event())
    runtime.cleanup("att_1")
    assert not (root / "att_1").exists()
    runtime.cleanup("att_1")  # a second cleanup is a no-op


def test_a_missing_bash_is_a_local_error(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime_module, "JOB_PATH", str(root))
    with pytest.raises(LocalError) as err:
        _run(root, _request("true"))
    assert err.value.code == "runtime.bash_missing"


def test_an_attempt_id_cannot_escape_the_root(root: Path) -> None:
    with pytest.raises(LocalError) as err:
        _run(root, _request("true", attempt_id="../x"))
    assert err.value.code == "runtime.attempt_id_invalid"


def test_an_unreachable_work_root_moves_to_a_private_passable_dir(tmp_path: Path) -> None:
    hidden = tmp_path / "agent"  # pytest's tmp_path parents are 0o700
    hidden.mkdir(mode=0o700)
    nobody = (65534, 65534)
    moved = reachable_work_root(hidden / "work", nobody)
    try:
        assert moved != hidden / "work"
        st = moved.lstat()
        assert stat.S_IMODE(st.st_mode) == 0o711  # passable, not listable
        assert st.st_uid == os.geteuid()
        assert reachable_work_root(hidden / "work", nobody) == moved  # stable across restarts
    finally:
        shutil.rmtree(moved)


def test_a_reachable_work_root_is_kept(root: Path) -> None:
    assert reachable_work_root(root, (65534, 65534)) == root
    assert reachable_work_root(root, None) == root


@pytest.mark.skipif(os.geteuid() != 0, reason="jobs drop privileges only when the agent is root")
def test_a_job_runs_as_nobody_under_a_private_agent_dir(tmp_path: Path) -> None:
    hidden = tmp_path / "agent"
    hidden.mkdir(mode=0o700)
    runtime = SubprocessRuntime(hidden / "work")
    chunks: list[bytes] = []
    result = runtime.run(_request("id -u"), chunks.append, threading.Event())
    runtime.cleanup("att_1")
    assert result.outcome is Outcome.COMPLETED, b"".join(chunks)
    assert b"65534" in b"".join(chunks)
