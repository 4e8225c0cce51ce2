"""The consumer/provider SDK: a typed httpx client over the ``/v1`` wire models.

Errors come back as the same :mod:`flopex.errors` classes the server raised (code, hint kept);
a server that cannot be reached is :class:`~flopex.errors.Unavailable`. Requests that create or
move something carry an ``Idempotency-Key`` so that a retry after a lost answer is safe.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import Iterator
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel

from flopex import protocol as p
from flopex.errors import FlopexError, Unavailable, from_body, from_info

M = TypeVar("M", bound=BaseModel)
RETRIES = 3
RETRY_BACKOFF_S = 0.2


class Client:
    """Talks to one exchange with one token."""

    def __init__(self, server: str, token: str | None, *, timeout_s: float = 30.0) -> None:
        self.server = server.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout_s)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------
    def _send(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        content: bytes | None = None,
        idempotent: bool = False,
        timeout_s: float | None = None,
    ) -> httpx.Response:
        headers = {}
        if idempotent:
            headers["Idempotency-Key"] = uuid.uuid4().hex
        safe = method in ("GET", "HEAD", "PUT", "DELETE") or idempotent
        attempts = RETRIES if safe else 1
        for attempt in range(attempts):
            try:
                resp = self._http.request(
                    method,
                    path,
                    json=json,
                    params=params,
                    content=content,
                    headers=headers,
                    timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
                )
            except httpx.TransportError as exc:
                if attempt + 1 < attempts:
                    time.sleep(RETRY_BACKOFF_S * 2**attempt)
                    continue
                raise Unavailable(f"cannot reach {self.server}: {exc.__class__.__name__}") from None
            if resp.status_code >= 400:
                raise _error(resp)
            return resp
        raise AssertionError("unreachable")

    def _model(self, model: type[M], method: str, path: str, **kw: Any) -> M:
        return model.model_validate(self._send(method, path, **kw).json())

    # -- accounts ----------------------------------------------------------------------------
    def health(self) -> p.Health:
        """Server version, database kind, exchange public key."""
        return self._model(p.Health, "GET", "/v1/health")

    def create_account(self, name: str, roles: list[str]) -> p.AccountCreated:
        """Admin: a new account and its token (shown once)."""
        body = p.AccountCreate(name=name, roles=roles).model_dump()
        return self._model(p.AccountCreated, "POST", "/v1/accounts", json=body, idempotent=True)

    def me(self) -> p.Balances:
        """The caller's account and balances."""
        return self._model(p.Balances, "GET", "/v1/accounts/me")

    def new_token(self) -> p.TokenCreated:
        """A new token for the caller's account."""
        return self._model(p.TokenCreated, "POST", "/v1/accounts/me/tokens")

    def mint(self, account: str, amount_ucr: int) -> p.Transfer:
        """Admin: mint credits into an account."""
        body = p.Mint(account=account, amount_ucr=amount_ucr).model_dump()
        return self._model(p.Transfer, "POST", "/v1/credits/mint", json=body, idempotent=True)

    def ledger(self) -> p.LedgerSummary:
        """Admin or auditor: all ledger accounts and their sums."""
        return self._model(p.LedgerSummary, "GET", "/v1/ledger")

    def transfers(self, limit: int = 100, cursor: str | None = None) -> p.TransferPage:
        """The caller's ledger history."""
        params = {"limit": limit} | ({"cursor": cursor} if cursor else {})
        return self._model(p.TransferPage, "GET", "/v1/accounts/me/transfers", params=params)

    # -- market ------------------------------------------------------------------------------
    def register_node(self, body: p.NodeCreate) -> p.Node:
        """Register a node (idempotent by its public key)."""
        return self._model(p.Node, "POST", "/v1/nodes", json=body.model_dump())

    def create_offer(self, body: p.OfferCreate) -> p.Offer:
        """Publish an offer."""
        return self._model(p.Offer, "POST", "/v1/offers", json=body.model_dump(), idempotent=True)

    def withdraw_offer(self, offer_id: str) -> None:
        """Withdraw an offer."""
        self._send("DELETE", f"/v1/offers/{offer_id}")

    def offers(self, filter_expr: str = "", sort: str | None = None) -> p.OfferList:
        """Active offers matching a filter expression, optionally sorted."""
        params = {"filter": filter_expr} | ({"sort": sort} if sort else {})
        return self._model(p.OfferList, "GET", "/v1/offers", params=params)

    def heartbeat(self, node_id: str, body: p.Heartbeat) -> p.HeartbeatReply:
        """Renew leases."""
        return self._model(
            p.HeartbeatReply, "POST", f"/v1/nodes/{node_id}/heartbeat", json=body.model_dump()
        )

    # -- jobs --------------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any], workdir_sha256: str | None = None) -> p.Job:
        """Submit a job spec (a mapping as loaded from the task YAML)."""
        body = p.JobCreate(spec=spec, workdir_sha256=workdir_sha256).model_dump()
        return self._model(p.Job, "POST", "/v1/jobs", json=body, idempotent=True)

    def submit_batch(self, specs: list[dict[str, Any]]) -> p.JobBatch:
        """Submit many jobs in one request."""
        body = {"jobs": [{"spec": s} for s in specs]}
        return self._model(p.JobBatch, "POST", "/v1/jobs/batch", json=body, idempotent=True)

    def job(self, job_id: str) -> p.Job:
        """One of the caller's jobs."""
        return self._model(p.Job, "GET", f"/v1/jobs/{job_id}")

    def jobs(
        self,
        limit: int = 50,
        cursor: str | None = None,
        state: str | None = None,
        *,
        all_accounts: bool = False,
    ) -> p.JobPage:
        """The caller's jobs, newest first (``all_accounts``: every account's, for auditors)."""
        params: dict[str, Any] = {"limit": limit}
        if all_accounts:
            params["all"] = "true"
        if cursor:
            params["cursor"] = cursor
        if state:
            params["state"] = state
        return self._model(p.JobPage, "GET", "/v1/jobs", params=params)

    def cancel(self, job_id: str) -> p.Job:
        """Cancel a job."""
        return self._model(p.Job, "POST", f"/v1/jobs/{job_id}/cancel")

    def explain(self, job_id: str) -> p.Explanation:
        """Every offer considered and why."""
        return self._model(p.Explanation, "GET", f"/v1/jobs/{job_id}/explain")

    def logs(self, job_id: str, cursor: int = 0) -> p.LogPage:
        """Log chunks after ``cursor``."""
        return self._model(p.LogPage, "GET", f"/v1/jobs/{job_id}/logs", params={"cursor": cursor})

    def follow_logs(self, job_id: str, cursor: int = 0) -> Iterator[p.LogChunk]:
        """Stream log chunks (server-sent events) until the job ends."""
        params: dict[str, str | int] = {"cursor": cursor, "follow": "true"}
        try:
            with self._http.stream(
                "GET", f"/v1/jobs/{job_id}/logs", params=params, timeout=None
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise _error(resp)
                event = ""
                for line in resp.iter_lines():
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: ") and event == "log":
                        yield p.LogChunk.model_validate_json(line[6:])
                    elif line.startswith("data: ") and event == "end":
                        return
        except httpx.TransportError as exc:
            raise Unavailable(
                f"log stream from {self.server} broke: {exc.__class__.__name__}"
            ) from None

    def outputs(self, job_id: str) -> p.OutputList:
        """A job's output files."""
        return self._model(p.OutputList, "GET", f"/v1/jobs/{job_id}/outputs")

    def contract(self, contract_id: str) -> p.Contract:
        """A signed contract."""
        return self._model(p.Contract, "GET", f"/v1/contracts/{contract_id}")

    # -- blobs -------------------------------------------------------------------------------
    def has_blob(self, sha256: str) -> bool:
        """Whether the caller already stored (or may read) this blob."""
        try:
            self._send("HEAD", f"/v1/blobs/{sha256}")
        except FlopexError as exc:
            if exc.code.endswith("not_found"):
                return False
            raise
        return True

    def put_blob(self, sha256: str, data: bytes) -> None:
        """Upload a blob unless it is already there."""
        if not self.has_blob(sha256):
            self._send("PUT", f"/v1/blobs/{sha256}", content=data)

    def get_blob(self, sha256: str) -> bytes:
        """Download a blob."""
        return self._send("GET", f"/v1/blobs/{sha256}").content

    # -- the log ---------------------------------------------------------------------------
    def log_key(self) -> p.LogKey:
        """The log's origin and checkpoint key."""
        return self._model(p.LogKey, "GET", "/v1/log/key")

    def log_checkpoint(self, *, now: bool = False, witnesses: int = 0) -> str:
        """The newest signed checkpoint note with its cosignatures (``now``: admin asks for a
        fresh one; ``witnesses``: the newest that many witnesses cosigned)."""
        if now:
            return self._send("POST", "/v1/log/checkpoint").text
        params = {"witnesses": witnesses} if witnesses else None
        return self._send("GET", "/v1/log/checkpoint", params=params).text

    def post_cosignature(self, size: int, signature_line: str, witness_key: str) -> None:
        """A witness's cosignature on the checkpoint of ``size``."""
        body = p.Cosignature(size=size, signature_line=signature_line, witness_key=witness_key)
        self._send("POST", "/v1/log/cosignatures", json=body.model_dump())

    def log_entries(self, start: int, end: int) -> p.LogEntries:
        """A page of events from ``start`` (the server bounds its length)."""
        return self._model(
            p.LogEntries, "GET", "/v1/log/entries", params={"start": start, "end": end}
        )

    def log_openings(self, start: int, end: int) -> p.LogOpenings:
        """The caller's openings (salts and contents) among events ``[start, end)``."""
        return self._model(
            p.LogOpenings, "GET", "/v1/log/openings", params={"start": start, "end": end}
        )

    def log_inclusion(self, index: int, size: int) -> list[bytes]:
        """Inclusion proof hashes for event ``index`` in the tree of ``size``."""
        params = {"index": index, "size": size}
        got = self._model(p.LogProof, "GET", "/v1/log/proofs/inclusion", params=params)
        return [base64.b64decode(h) for h in got.hashes]

    def log_consistency(self, old: int, new: int) -> list[bytes]:
        """Consistency proof hashes from size ``old`` to ``new``."""
        params = {"old": old, "new": new}
        got = self._model(p.LogProof, "GET", "/v1/log/proofs/consistency", params=params)
        return [base64.b64decode(h) for h in got.hashes]

    # -- agent -------------------------------------------------------------------------------
    def claim(self, node_id: str, max_count: int, wait_s: float) -> p.ClaimReply:
        """Long-poll for work."""
        body = p.Claim(node_id=node_id, max=max_count, wait_s=wait_s).model_dump()
        return self._model(
            p.ClaimReply, "POST", "/v1/agent/claim", json=body, timeout_s=wait_s + 30
        )

    def post_log(self, attempt_id: str, epoch: int, seq: int, data: str) -> None:
        """Send a log chunk (safe to retry: the server dedups by seq)."""
        body = p.LogPost(lease_epoch=epoch, seq=seq, data=data).model_dump()
        self._send("POST", f"/v1/attempts/{attempt_id}/logs", json=body, idempotent=True)

    def complete(self, attempt_id: str, body: p.Complete) -> p.Completed:
        """Report a signed usage report."""
        return self._model(
            p.Completed, "POST", f"/v1/attempts/{attempt_id}/complete", json=body.model_dump()
        )

    def complete_many(self, bodies: list[p.Complete]) -> list[p.Completed | FlopexError]:
        """Report several signed usage reports in one request (one transaction); per report
        its settlement, or the error that refused it (rebuilt as the error class)."""
        body = p.CompleteBatch(reports=bodies).model_dump()
        got = self._model(p.CompletionResults, "POST", "/v1/attempts/completions", json=body)
        out: list[p.Completed | FlopexError] = []
        for r in got.results:
            if r.completed is not None:
                out.append(r.completed)
            else:
                assert r.error is not None
                out.append(from_info(r.error.model_dump()))
        return out

    def release(self, attempt_id: str, epoch: int) -> None:
        """Hand an attempt back (drain)."""
        body = p.Release(lease_epoch=epoch).model_dump()
        self._send("POST", f"/v1/attempts/{attempt_id}/release", json=body)


def _error(resp: httpx.Response) -> FlopexError:
    try:
        body = resp.json()
    except ValueError:
        body = None
    return from_body(resp.status_code, body)
