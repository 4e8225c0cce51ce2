"""The agent's completions, batched: attempts that end close together are reported in one
request and settled in one transaction (``POST /v1/attempts/completions``).

Each attempt's thread hands its signed report to :class:`Reporter` and waits for its own
outcome. The reporter's thread takes the first waiting report, gathers what else arrives within
``gather_s`` (at most ``MAX_BATCH``), sends them, and hands each thread its settlement or the
error that refused its report. A report waits at most ``gather_s`` (20 ms) for company.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from flopex import protocol as p
from flopex.errors import FlopexError

log = logging.getLogger("flopex.agent")

MAX_BATCH = 64  # the server's bound
GATHER_S = 0.02  # how long a batch waits for more reports after its first


class Reporter:
    """Sends reports through ``send`` (a batch call that retries while the server is away)."""

    def __init__(
        self,
        send: Callable[[list[p.Complete]], list[p.Completed | FlopexError]],
        gather_s: float = GATHER_S,
    ) -> None:
        self.send = send
        self.gather_s = gather_s
        self.waiting: queue.Queue[tuple[p.Complete, Future[p.Completed]]] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def report(self, body: p.Complete) -> p.Completed:
        """Report one attempt and wait for its outcome (raises the error that refused it)."""
        done: Future[p.Completed] = Future()
        self._ensure_thread()
        self.waiting.put((body, done))
        return done.result()

    def _ensure_thread(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, daemon=True, name="reporter")
                self._thread.start()

    def _loop(self) -> None:
        while True:
            batch = [self.waiting.get()]
            gather_until = time.monotonic() + self.gather_s
            while len(batch) < MAX_BATCH:
                left = gather_until - time.monotonic()
                try:
                    batch.append(
                        self.waiting.get(timeout=left) if left > 0 else self.waiting.get_nowait()
                    )
                except queue.Empty:
                    break
            self._send(batch)

    def _send(self, batch: list[tuple[p.Complete, Future[p.Completed]]]) -> None:
        try:
            outcomes = self.send([body for body, _ in batch])
        except Exception as exc:
            for _, done in batch:
                done.set_exception(exc)
            return
        for (_, done), outcome in zip(batch, outcomes, strict=True):
            if isinstance(outcome, FlopexError):
                done.set_exception(outcome)
            else:
                done.set_result(outcome)
