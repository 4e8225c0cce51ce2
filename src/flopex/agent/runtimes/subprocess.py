"""Run a ``command`` job as bash subprocesses in a fresh workspace per attempt.

Isolation, as far as a plain process can give it:

* the job sees a minimal clean environment, never the agent's (it holds tokens);
* each step runs in its own session and process group; on a time limit, a cancel or
  when a step ends, the whole group is killed, so background children do not survive
  (a job that calls ``setsid`` itself can escape the group: use a container runtime
  for jobs you do not trust at all);
* rlimits (address space, CPU time, file size, processes, no core dumps) are set in
  the child before ``exec``, and the parent-death signal kills the step with the agent;
* when the agent runs as root, jobs run as an unprivileged user: ``job_user``, else
  ``$FLOPEX_JOB_USER``, else ``nobody``. The workspace is chowned to that user, and the
  agent (root) still reads the outputs. Jobs sharing one user can see each other's
  processes; give each provider slot its own user where that matters.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import re
import resource
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from flopex.agent.runtimes.workspace import (
    OutputFile,
    Workspace,
    collect_outputs,
    reachable_work_root,
    remove_tree,
)
from flopex.client.workdir import DEFAULT_MAX_BYTES as WORKDIR_MAX_BYTES
from flopex.errors import LocalError

__all__ = ["Limits", "Outcome", "OutputFile", "RunRequest", "RunResult", "SubprocessRuntime"]

JOB_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LOG_CHUNK_BYTES = 64 * 1024
LOG_FLUSH_S = 0.5
POLL_S = 0.1
KILL_GRACE_S = 2.0
LOG_DRAIN_S = 2.0
REAP_TIMEOUT_S = 10.0
EXIT_WORKDIR_REJECTED = 125  # exit_code when the workdir archive was refused and nothing ran
_ATTEMPT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_PR_SET_PDEATHSIG = 1
_SIGKILL = int(signal.SIGKILL)


@dataclass(frozen=True)
class Limits:
    """What one attempt may use; ``None`` leaves a limit as the agent has it."""

    wall_clock_s: float
    memory_bytes: int | None = None  # RLIMIT_AS
    cpu_time_s: int | None = None  # RLIMIT_CPU
    file_size_bytes: int | None = None  # RLIMIT_FSIZE
    max_processes: int | None = None  # RLIMIT_NPROC, only when jobs run as their own user
    max_output_bytes: int = 256 * 1024 * 1024  # total size of files collected from the output dir


class Outcome(StrEnum):
    """How an attempt ended, as the runtime saw it."""

    COMPLETED = "completed"
    JOB_ERROR = "job_error"
    TIME_LIMIT = "time_limit"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class RunRequest:
    """One attempt of a ``command`` job."""

    attempt_id: str
    job_id: str
    setup: str | None
    run: str
    envs: dict[str, str]
    workdir_archive: bytes | None
    limits: Limits
    cuda_visible_devices: str | None = None


@dataclass(frozen=True)
class RunResult:
    """The end of an attempt: ``exit_code`` is -N when a signal N killed the last step."""

    outcome: Outcome
    exit_code: int
    duration_ms: int
    outputs: tuple[OutputFile, ...]


class SubprocessRuntime:
    """Runs attempts as subprocesses; workspaces live under ``root/<attempt_id>/``."""

    def __init__(
        self,
        root: Path,
        *,
        job_user: str | None = None,
        workdir_max_bytes: int = WORKDIR_MAX_BYTES,
    ) -> None:
        self._owner = _job_owner(job_user)
        self._root = reachable_work_root(root, self._owner)
        self._workdir_max_bytes = workdir_max_bytes

    def run(
        self, req: RunRequest, on_log: Callable[[bytes], None], cancel: threading.Event
    ) -> RunResult:
        """Run ``setup`` then ``run``; ``on_log`` gets output chunks, never two calls at once."""
        bash = _find_bash()
        ws = Workspace.at(self._workspace_dir(req.attempt_id))
        try:
            ws.prepare(req.workdir_archive, max_bytes=self._workdir_max_bytes, owner=self._owner)
        except LocalError as exc:
            if not exc.code.startswith("workdir."):
                raise
            on_log(_notice(exc.message))
            return RunResult(Outcome.JOB_ERROR, EXIT_WORKDIR_REJECTED, 0, ())
        started = time.monotonic()
        outcome, exit_code = self._run_steps(bash, req, ws, on_log, cancel, started)
        duration_ms = int((time.monotonic() - started) * 1000)
        try:
            outputs = collect_outputs(ws.output, max_bytes=req.limits.max_output_bytes)
        except LocalError as exc:
            on_log(_notice(f"{exc.message}; no outputs were kept"))
            outcome, outputs = Outcome.JOB_ERROR, ()
        return RunResult(outcome, exit_code, duration_ms, outputs)

    def cleanup(self, attempt_id: str) -> None:
        """Remove an attempt's workspace (call it once its outputs are uploaded)."""
        remove_tree(self._workspace_dir(attempt_id))

    def _workspace_dir(self, attempt_id: str) -> Path:
        if not _ATTEMPT_ID.fullmatch(attempt_id):
            raise LocalError(
                f"attempt id {attempt_id!r} cannot name a workspace directory",
                code="runtime.attempt_id_invalid",
            )
        return self._root / attempt_id

    def _run_steps(
        self,
        bash: str,
        req: RunRequest,
        ws: Workspace,
        on_log: Callable[[bytes], None],
        cancel: threading.Event,
        started: float,
    ) -> tuple[Outcome, int]:
        """Run setup (when given) and then run, sharing one wall-clock deadline."""
        env = _job_env(req, ws)
        deadline = started + req.limits.wall_clock_s
        steps = [("setup", req.setup)] if req.setup is not None else []
        outcome, exit_code = Outcome.COMPLETED, 0
        for name, script in [*steps, ("run", req.run)]:
            if cancel.is_set():
                outcome = Outcome.CANCELLED
                break
            argv = [bash, "--noprofile", "--norc", "-c", script]
            step = _Step(argv, ws.work, env, req.limits, self._owner)
            outcome, exit_code = step.run(on_log, cancel, deadline)
            if outcome is not Outcome.COMPLETED:
                on_log(_notice(_why_stopped(name, outcome, exit_code, req.limits)))
                break
        return outcome, exit_code


@dataclass(frozen=True)
class _Step:
    """One ``bash -c`` process group, supervised until it ends or is killed."""

    argv: list[str]
    cwd: Path
    env: dict[str, str]
    limits: Limits
    owner: tuple[int, int] | None  # (uid, gid) to run as; None keeps the agent's user

    def run(
        self, on_log: Callable[[bytes], None], cancel: threading.Event, deadline: float
    ) -> tuple[Outcome, int]:
        """The step's outcome and exit code; no process of its group survives the call."""
        proc = self._spawn()
        assert proc.stdout is not None
        pump = _LogPump(proc.stdout.fileno(), on_log)
        pump.start()
        try:
            stopped = _supervise(proc, cancel, deadline)
        finally:
            _kill_group(proc)
            pump.finish()
            proc.stdout.close()
        if pump.error is not None:
            raise pump.error
        if stopped is not None:
            return stopped, proc.returncode
        ok = proc.returncode == 0
        return (Outcome.COMPLETED if ok else Outcome.JOB_ERROR), proc.returncode

    def _spawn(self) -> subprocess.Popen[bytes]:
        owner = self.owner
        try:
            return subprocess.Popen(
                self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                bufsize=0,
                close_fds=True,
                start_new_session=True,
                user=None if owner is None else owner[0],
                group=None if owner is None else owner[1],
                extra_groups=None if owner is None else [],
                umask=0o022,
                # Safe enough despite threads: the hook only calls setrlimit and prctl.
                preexec_fn=_child_setup(self.limits, own_user=owner is not None),  # noqa: PLW1509
            )
        except FileNotFoundError as exc:
            raise _bash_missing() from exc
        except (OSError, subprocess.SubprocessError) as exc:
            raise LocalError(
                f"cannot start the job: {exc}",
                code="runtime.spawn_failed",
                hint="check the agent's work root and the job user's rlimits",
            ) from exc


def _supervise(
    proc: subprocess.Popen[bytes], cancel: threading.Event, deadline: float
) -> Outcome | None:
    """Wait for the step; on cancel or deadline stop it and say which, else None."""
    while not _exited(proc):
        if cancel.is_set():
            _terminate(proc)
            return Outcome.CANCELLED
        remaining_s = deadline - time.monotonic()
        if remaining_s <= 0:
            _terminate(proc)
            return Outcome.TIME_LIMIT
        cancel.wait(min(POLL_S, remaining_s))
    return None


def _exited(proc: subprocess.Popen[bytes]) -> bool:
    """Whether the step's main process ended, without reaping it (its pid keeps the group)."""
    if proc.returncode is not None:
        return True
    flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
    return os.waitid(os.P_PID, proc.pid, flags) is not None


def _terminate(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the group and give the main process ``KILL_GRACE_S`` to exit."""
    _signal_group(proc, signal.SIGTERM)
    give_up_at = time.monotonic() + KILL_GRACE_S
    while not _exited(proc) and time.monotonic() < give_up_at:
        time.sleep(0.05)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL whatever is left of the group, then reap the main process."""
    _signal_group(proc, signal.SIGKILL)
    try:
        proc.wait(timeout=REAP_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise LocalError(
            f"job process {proc.pid} did not die after SIGKILL",
            code="runtime.unkillable",
            hint="the process is stuck in the kernel (D state); check the device driver",
        ) from exc


def _signal_group(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.returncode is not None:
        return  # reaped: the pgid may belong to someone else now
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)


class _LogPump:
    """Hands a step's merged output to ``on_log`` in chunks of at most ``LOG_CHUNK_BYTES``."""

    def __init__(self, fd: int, on_log: Callable[[bytes], None]) -> None:
        self._fd = fd
        self._on_log = on_log
        self._stop_at: float | None = None
        self.error: Exception | None = None
        self._thread = threading.Thread(target=self._loop, name="flopex-log-pump", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def finish(self) -> None:
        """Wait for end of output, at most ``LOG_DRAIN_S`` (an escaped child may hold the pipe)."""
        self._stop_at = time.monotonic() + LOG_DRAIN_S
        self._thread.join(LOG_DRAIN_S + 1.0)

    def _loop(self) -> None:
        poller = select.poll()
        poller.register(self._fd, select.POLLIN | select.POLLHUP | select.POLLERR)
        buffer = bytearray()
        flush_at: float | None = None
        while self._stop_at is None or time.monotonic() < self._stop_at:
            wait_s = POLL_S if flush_at is None else max(0.0, flush_at - time.monotonic())
            if poller.poll(min(POLL_S, wait_s) * 1000):
                data = os.read(self._fd, LOG_CHUNK_BYTES - len(buffer))
                if not data:
                    break
                buffer += data
                flush_at = flush_at or time.monotonic() + LOG_FLUSH_S
            if buffer and (len(buffer) >= LOG_CHUNK_BYTES or time.monotonic() >= (flush_at or 0)):
                self._emit(bytes(buffer))
                buffer.clear()
                flush_at = None
        if buffer:
            self._emit(bytes(buffer))

    def _emit(self, chunk: bytes) -> None:
        if self.error is not None:
            return  # keep draining so the job never blocks on a full pipe
        try:
            self._on_log(chunk)
        except Exception as exc:
            self.error = exc


def _child_setup(limits: Limits, *, own_user: bool) -> Callable[[], None]:
    """The function run in the child before exec: rlimits and the parent-death signal."""
    wanted: list[tuple[int, int]] = [(resource.RLIMIT_CORE, 0)]
    optional = [
        (resource.RLIMIT_AS, limits.memory_bytes),
        (resource.RLIMIT_CPU, limits.cpu_time_s),
        (resource.RLIMIT_FSIZE, limits.file_size_bytes),
        (resource.RLIMIT_NPROC, limits.max_processes if own_user else None),
    ]
    wanted += [(which, value) for which, value in optional if value is not None]

    def setup() -> None:
        for which, value in wanted:
            _, hard = resource.getrlimit(which)
            capped = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (capped, capped))
        if _PRCTL is not None:
            _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL)

    return setup


def _load_prctl() -> Callable[..., int] | None:
    """libc's prctl, looked up in the parent: the child must not load libraries."""
    if not sys.platform.startswith("linux"):
        return None
    prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    return prctl


_PRCTL = _load_prctl()


def _job_owner(name: str | None) -> tuple[int, int] | None:
    """(uid, gid) of the unprivileged user jobs run as when the agent is root; else None."""
    if os.geteuid() != 0:
        return None
    name = name or os.environ.get("FLOPEX_JOB_USER") or "nobody"
    hint = "create an unprivileged user for jobs, or set FLOPEX_JOB_USER to one"
    try:
        entry = pwd.getpwnam(name)
    except KeyError as exc:
        msg = f"job user {name!r} does not exist"
        raise LocalError(msg, code="runtime.job_user_missing", hint=hint) from exc
    if entry.pw_uid == 0:
        msg = f"job user {name!r} is root; jobs must not run as root"
        raise LocalError(msg, code="runtime.job_user_privileged", hint=hint)
    return entry.pw_uid, entry.pw_gid


def _find_bash() -> str:
    bash = shutil.which("bash", path=JOB_PATH)
    if bash is None:
        raise _bash_missing()
    return bash


def _bash_missing() -> LocalError:
    return LocalError(
        f"bash was not found on {JOB_PATH}",
        code="runtime.bash_missing",
        hint="install bash on the provider machine; jobs run their steps with `bash -c`",
    )


def _job_env(req: RunRequest, ws: Workspace) -> dict[str, str]:
    """A clean environment: basics, then the job's envs, then what flopex promises."""
    env = {"PATH": JOB_PATH, "LANG": "C.UTF-8", "HOME": str(ws.root), "TMPDIR": str(ws.tmp)}
    env.update(req.envs)
    env.update(
        FLOPEX_JOB_ID=req.job_id,
        FLOPEX_ATTEMPT_ID=req.attempt_id,
        FLOPEX_OUTPUT_DIR=str(ws.output),
        CUDA_VISIBLE_DEVICES=req.cuda_visible_devices or "",
    )
    return env


def _why_stopped(step: str, outcome: Outcome, exit_code: int, limits: Limits) -> str:
    if outcome is Outcome.TIME_LIMIT:
        return f"wall clock limit of {limits.wall_clock_s:g} s reached during {step}; job stopped"
    if outcome is Outcome.CANCELLED:
        return f"job cancelled during {step}"
    how = f"was killed by signal {-exit_code}" if exit_code < 0 else f"exited with {exit_code}"
    return f"{step} {how}" + ("; run was skipped" if step == "setup" else "")


def _notice(text: str) -> bytes:
    """A line flopex adds to the job's log, marked so it is not mistaken for job output."""
    return f"\n[flopex] {text}\n".encode()
