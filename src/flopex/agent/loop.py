"""The provider agent: register the node, publish an offer, heartbeat, long-poll for work, run
each attempt in its runtime, stream logs, upload outputs and report signed usage.

Pull only (works behind NAT). SIGTERM drains: no new claims, running attempts get
``drain_timeout_s`` to finish, the rest are stopped and handed back (``provider_drained``).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from flopex import protocol as p
from flopex.agent.hardware import Hardware
from flopex.agent.reporter import Reporter
from flopex.agent.runtimes.subprocess import Limits, RunRequest, RunResult, SubprocessRuntime
from flopex.client.http import Client
from flopex.domain.signing import public_key_b64, sign
from flopex.domain.usage import Outcome as UsageOutcome
from flopex.domain.usage import OutputEntry, UsageReport
from flopex.errors import AttemptFenced, FlopexError, NotFound, Unavailable

log = logging.getLogger("flopex.agent")
LOG_CHUNK_BYTES = 64 * 1024
T = TypeVar("T")
ERROR_BACKOFF_S = 1.0
# A finished attempt's report waits this long for an unreachable server (a restart, a network
# blip) before the work is given up; heartbeats keep its lease alive once the server is back.
REPORT_RETRY_S = 120.0
REPORT_BACKOFF_MAX_S = 5.0


@dataclass(frozen=True)
class AgentConfig:
    """What the operator chose for this node's offer and behaviour."""

    region: str
    price_ucr_per_device_hour: int
    interruptible: bool = False
    cpus: int | None = None  # offered vCPUs (default: all detected)
    memory_bytes: int | None = None  # offered memory (default: detected)
    claim_wait_s: float = 20.0
    drain_timeout_s: float = 30.0
    job_memory_bytes: int | None = None  # per-job RLIMIT_AS
    job_max_processes: int | None = 512


@dataclass
class Running:
    """One attempt in flight on this node."""

    attempt_id: str
    lease_epoch: int
    cancel: threading.Event = field(default_factory=threading.Event)
    fenced: bool = False
    released: bool = False
    thread: threading.Thread | None = None
    logs: Any = field(default_factory=hashlib.sha256)  # of the chunks the exchange acknowledged


class Agent:
    """One node's agent; ``run(stop)`` until ``stop`` is set, then drain."""

    def __init__(
        self,
        client: Client,
        key: Ed25519PrivateKey,
        hardware: Hardware,
        config: AgentConfig,
        work_dir: Path,
    ) -> None:
        self.client = client
        self.key = key
        self.hardware = hardware
        self.config = config
        self.runtime = SubprocessRuntime(work_dir)
        self.node_id = ""
        self.offer_id = ""
        self.heartbeat_interval_s = 3.0
        self._running: dict[str, Running] = {}
        self._lock = threading.Lock()
        self.reporter = Reporter(
            lambda bodies: _until_reachable(lambda: self.client.complete_many(bodies))
        )

    # -- setup -----------------------------------------------------------------------------
    def register(self) -> None:
        """Register the node (same key: same node) and publish its offer."""
        hw = self.hardware
        node = self.client.register_node(
            p.NodeCreate(
                public_key=public_key_b64(self.key),
                hardware=hw.to_dict(),
                region=self.config.region,
                simulated=hw.simulated,
            )
        )
        self.node_id = node.id
        offer = self.client.create_offer(
            p.OfferCreate(
                node_id=node.id,
                accelerator=hw.accelerator,
                devices=len(hw.gpus) if hw.accelerator else 0,
                cpus=self.config.cpus or hw.cpus,
                memory_bytes=self.config.memory_bytes or hw.memory_bytes,
                region=self.config.region,
                price_ucr_per_device_hour=self.config.price_ucr_per_device_hour,
                interruptible=self.config.interruptible,
            )
        )
        self.offer_id = offer.id
        log.info("node %s registered, offer %s published", node.id, offer.id)

    # -- main loop ---------------------------------------------------------------------------
    def run(self, stop: threading.Event) -> None:
        """Claim and run work until ``stop``; then drain."""
        beat = threading.Thread(target=self._heartbeats, args=(stop,), daemon=True)
        beat.start()
        while not stop.is_set():
            try:
                reply = self.client.claim(self.node_id, 16, self.config.claim_wait_s)
            except Unavailable:
                stop.wait(ERROR_BACKOFF_S)
                continue
            self.heartbeat_interval_s = reply.heartbeat_interval_s
            for assignment in reply.assignments:
                self._start(assignment)
        self.drain()

    def _start(self, a: p.Assignment) -> None:
        run = Running(a.attempt_id, a.lease_epoch)
        run.thread = threading.Thread(target=self._execute, args=(a, run), daemon=True)
        with self._lock:
            self._running[a.attempt_id] = run
        run.thread.start()

    def _heartbeats(self, stop: threading.Event) -> None:
        draining = False
        while True:
            draining = draining or stop.is_set()
            with self._lock:
                running = [
                    p.RunningAttempt(attempt_id=r.attempt_id, lease_epoch=r.lease_epoch)
                    for r in self._running.values()
                ]
            if draining and not running:
                return
            try:
                reply = self.client.heartbeat(
                    self.node_id, p.Heartbeat(running=running, draining=draining)
                )
                self._apply(reply)
            except FlopexError as exc:
                log.warning("heartbeat failed: %s", exc.message)
            time.sleep(
                min(self.heartbeat_interval_s, 1.0 if draining else self.heartbeat_interval_s)
            )

    def _apply(self, reply: p.HeartbeatReply) -> None:
        with self._lock:
            for attempt_id in reply.cancel:
                if attempt_id in self._running:
                    self._running[attempt_id].cancel.set()
            for attempt_id in reply.fenced:
                if attempt_id in self._running:
                    self._running[attempt_id].fenced = True
                    self._running[attempt_id].cancel.set()

    # -- one attempt -------------------------------------------------------------------------
    def _execute(self, a: p.Assignment, run: Running) -> None:
        try:
            result = self._run(a, run)
            if not run.fenced and not run.released:
                self._report(a, result, run.logs.hexdigest())
        except (AttemptFenced, NotFound):
            log.info("attempt %s was fenced; dropping its work", a.attempt_id)
        except FlopexError as exc:
            log.error("attempt %s failed to report: %s", a.attempt_id, exc.message)
        finally:
            self.runtime.cleanup(a.attempt_id)
            with self._lock:
                self._running.pop(a.attempt_id, None)

    def _run(self, a: p.Assignment, run: Running) -> RunResult:
        archive = self.client.get_blob(a.workdir_sha256) if a.workdir_sha256 else None
        spec = a.spec
        seq = 0

        def on_log(chunk: bytes) -> None:
            nonlocal seq
            if run.fenced:
                return
            text = chunk.decode("utf-8", "replace")
            for attempt in range(LOG_CHUNK_TRIES):  # same seq each time: the server dedupes
                try:
                    self.client.post_log(a.attempt_id, a.lease_epoch, seq, text)
                    run.logs.update(text.encode())  # acknowledged: the report commits to it
                    break
                except AttemptFenced:
                    run.fenced = True
                    run.cancel.set()
                    return
                except FlopexError as exc:
                    if attempt + 1 == LOG_CHUNK_TRIES:
                        log.warning("log chunk %d lost: %s", seq, exc.message)
                    else:
                        time.sleep(0.2 * (attempt + 1))
            seq += 1  # a lost chunk keeps its number: the next one never collides with it

        request = RunRequest(
            attempt_id=a.attempt_id,
            job_id=a.job_id,
            setup=spec.get("setup"),
            run=str(spec.get("run") or ""),
            envs={str(k): str(v) for k, v in (spec.get("envs") or {}).items()},
            workdir_archive=archive,
            limits=Limits(
                wall_clock_s=float(a.time_limit_s),
                memory_bytes=self.config.job_memory_bytes,
                max_processes=self.config.job_max_processes,
            ),
            cuda_visible_devices=None,
        )
        return self.runtime.run(request, on_log, run.cancel)

    def _report(self, a: p.Assignment, result: RunResult, logs_sha256: str) -> None:
        outputs = []
        if result.outcome.value == UsageOutcome.COMPLETED.value:
            for out in result.outputs:
                data = out.local_path.read_bytes()
                _until_reachable(lambda: self.client.put_blob(out.sha256, data))  # noqa: B023
                outputs.append(OutputEntry(out.path, out.sha256, out.size_bytes))
        report = UsageReport(
            attempt_id=a.attempt_id,
            lease_epoch=a.lease_epoch,
            node_id=self.node_id,
            duration_ms=result.duration_ms,
            exit_code=result.exit_code,
            outcome=UsageOutcome(result.outcome.value),
            outputs=tuple(outputs),
            logs_sha256=logs_sha256,
        )
        body = p.Complete(
            report=p.UsageReport.model_validate(report.wire()),
            signature=sign(self.key, report.payload()),
        )
        done = self.reporter.report(body)  # batched with reports that end close by
        log.info("attempt %s ended: %s", a.attempt_id, done.attempt.reason)

    # -- drain -------------------------------------------------------------------------------
    def drain(self) -> None:
        """Withdraw the offer, let running attempts finish for a while, hand back the rest."""
        try:
            self.client.withdraw_offer(self.offer_id)
        except FlopexError as exc:
            log.warning("could not withdraw offer: %s", exc.message)
        deadline = time.monotonic() + self.config.drain_timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if not self._running:
                    return
            time.sleep(0.1)
        with self._lock:
            left = list(self._running.values())
        for run in left:
            run.released = True
            run.cancel.set()
            try:
                self.client.release(run.attempt_id, run.lease_epoch)
            except FlopexError as exc:
                log.warning("could not hand back %s: %s", run.attempt_id, exc.message)
        for run in left:
            if run.thread is not None:
                run.thread.join(timeout=5)


LOG_CHUNK_TRIES = 3


def _until_reachable(call: Callable[[], T]) -> T:
    """``call()``, again with backoff while the server is unreachable, for up to REPORT_RETRY_S.

    Safe to repeat: blob uploads are content-addressed, and a completion the server already took
    answers 409 (fenced) on the retry, which the caller treats as done elsewhere.
    """
    deadline = time.monotonic() + REPORT_RETRY_S
    backoff = 0.25
    while True:
        try:
            return call()
        except Unavailable as exc:
            if time.monotonic() + backoff > deadline:
                raise
            log.warning("server unreachable (%s); retrying in %.1f s", exc.message, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, REPORT_BACKOFF_MAX_S)
