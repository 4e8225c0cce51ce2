"""Replay the exchange's log events with its own rules, trusting nothing the server computed.

An auditor feeds every event, in log order, to :class:`Replay`. It rebuilds:

* each ledger account's four running totals from the transfer events (TigerBeetle-style
  two-phase transfers: pending, then posted — possibly in part, the rest released — or voided);
* each job's state, through the allowed transitions;
* each attempt's terms from its ``contract.signed`` event, and checks its ending against them:
  the cost is ``min(ceil(billed_ms × hourly / 3,600,000), hold)`` for reasons the consumer pays,
  nothing otherwise; the fee follows ``fee_bps``; the escrow transfers posted exactly those
  amounts; and time is billed only against a usage report signed by the node's own key (the key
  its ``node.registered`` event logged), never beyond the signed duration or the time limit.

It stops at the first event that breaks a rule, naming its index. Its state is plain data
(:meth:`Replay.to_state`), so an audit resumes where the last one stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from flopex.domain import money
from flopex.domain.commitment import opens
from flopex.domain.ledger import Balance
from flopex.domain.signing import load_public_key, verify
from flopex.domain.states import CONSUMER_PAYS
from flopex.domain.usage import USAGE_TYPE

_PAYING = {r.value for r in CONSUMER_PAYS}
_UNSIGNED = {"v", "at_ms", "signer", "sig"}  # what the log adds around an actor-signed event


@dataclass
class Totals:
    """A ledger account's running totals as the replay rebuilds them (µcr)."""

    debits_pending: int = 0
    debits_posted: int = 0
    credits_pending: int = 0
    credits_posted: int = 0

    def balance(self) -> Balance:
        """As the ledger's value type."""
        return Balance(
            self.debits_pending, self.debits_posted, self.credits_pending, self.credits_posted
        )


class ReplayError(ValueError):
    """Event ``index`` breaks a rule."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(f"event {index}: {message}")
        self.index = index


@dataclass
class OpenTransfer:
    debit: str
    credit: str
    amount: int
    state: str


@dataclass
class Terms:
    """An attempt's contract as its ``contract.signed`` event logged it, until it ends."""

    job: str
    node: str
    hourly_ucr: int
    time_limit_s: int
    fee_bps: int
    hold_transfer: str
    hold_ucr: int
    fee_transfer: str | None = None
    fee_hold_ucr: int = 0
    posted: dict[str, int] = field(default_factory=dict)  # escrow transfer -> posted µcr


class Signatures(Protocol):
    """Checks actors' Ed25519 signatures for the replay: at once, or later in bulk (an auditor
    checks them on other cores meanwhile); a bad one must end up as a :class:`ReplayError`
    naming its event."""

    def check(self, index: int, public_key_b64: str, payload: Any, signature: str) -> None:
        """Check that ``signature`` signs the canonical JSON of ``payload``."""
        ...


class InlineSignatures:
    """Check each signature when the replay meets it."""

    def check(self, index: int, public_key_b64: str, payload: Any, signature: str) -> None:
        """Raise :class:`ReplayError` at once if it does not verify."""
        if not signature_ok(public_key_b64, payload, signature):
            raise ReplayError(index, BAD_SIGNATURE)


BAD_SIGNATURE = "the actor's signature does not verify with its registered key"


def signature_ok(public_key_b64: str, payload: Any, signature: str) -> bool:
    """Whether ``signature`` (base64) signs ``payload`` under the base64 Ed25519 key."""
    key = load_public_key(public_key_b64)
    return key is not None and verify(key, payload, signature)


def _int(event: dict[str, Any], key: str, index: int) -> int:
    value = event.get(key)
    if type(value) is not int or value < 0:  # (type, not isinstance: a bool is no amount)
        raise ReplayError(index, f"{key} must be a non-negative integer, got {value!r}")
    return value


def _str(event: dict[str, Any], key: str, index: int) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise ReplayError(index, f"{key} must be a non-empty string, got {value!r}")
    return value


@dataclass
class Replay:
    """Balances, job states, node keys and open attempts rebuilt from events."""

    balances: dict[str, Totals] = field(default_factory=dict)
    transfers: dict[str, OpenTransfer] = field(default_factory=dict)
    jobs: dict[str, str] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)  # node id -> base64 Ed25519 key
    attempts: dict[str, Terms] = field(default_factory=dict)  # contracted, not yet ended
    contracts: dict[str, str] = field(default_factory=dict)  # contract id -> body SHA-256
    escrow: dict[str, str] = field(default_factory=dict)  # escrow transfer id -> attempt id
    exchange_key: str | None = None  # as the genesis event logged it
    events: int = 0
    signatures: Signatures = field(default_factory=InlineSignatures, repr=False, compare=False)

    def apply(self, index: int, event: dict[str, Any]) -> None:
        """Apply one event; :class:`ReplayError` when it breaks a rule."""
        kind = event.get("kind")
        if not isinstance(kind, str):
            raise ReplayError(index, "event has no kind")
        if "sig" in event:
            self._check_signer(index, event)
        if kind.startswith("transfer."):
            self._transfer(index, kind.removeprefix("transfer."), event)
        elif kind == "log.genesis":
            if index != 0 or self.exchange_key is not None:
                raise ReplayError(index, "a genesis event after the first")
            self.exchange_key = _str(event, "exchange_key", index)
        elif kind == "node.registered":
            self._node(index, event)
        elif kind == "job.submitted":
            self._job(index, event, None, "queued")
        elif kind == "contract.signed":
            self._contract(index, event)
        elif kind == "attempt.started":
            self._started(index, event)
        elif kind == "attempt.ended":
            self._ended(index, event)
        elif kind == "job.ended":
            self._job(index, event, {"queued"}, str(event.get("state")))
        self.events += 1

    # -- jobs, nodes, contracts, attempts ----------------------------------------------------
    def _job(self, index: int, event: dict[str, Any], before: set[str] | None, after: str) -> None:
        job = event.get("job")
        if not isinstance(job, str):
            raise ReplayError(index, "event names no job")
        now = self.jobs.get(job)
        if before is None and now is not None:
            raise ReplayError(index, f"job {job} submitted twice")
        if before is not None and now not in before:
            raise ReplayError(index, f"job {job} is {now}, cannot move to {after}")
        self.jobs[job] = after

    def _node(self, index: int, event: dict[str, Any]) -> None:
        node, key = _str(event, "node", index), _str(event, "public_key", index)
        if node in self.nodes:
            raise ReplayError(index, f"node {node} registered twice")
        if load_public_key(key) is None:
            raise ReplayError(index, f"node {node} registered a malformed key")
        self.nodes[node] = key

    def _contract(self, index: int, event: dict[str, Any]) -> None:
        self._job(index, event, {"queued"}, "matched")
        attempt, contract = _str(event, "attempt", index), _str(event, "contract", index)
        if attempt in self.attempts or contract in self.contracts:
            raise ReplayError(index, f"contract {contract} / attempt {attempt} signed twice")
        node = _str(event, "node", index)
        if node not in self.nodes:
            raise ReplayError(index, f"contract {contract} names node {node}, never registered")
        hold_id = _str(event, "hold_transfer", index)
        terms = Terms(
            job=_str(event, "job", index),
            node=node,
            hourly_ucr=_int(event, "hourly_ucr", index),
            time_limit_s=_int(event, "time_limit_s", index),
            fee_bps=_int(event, "fee_bps", index),
            hold_transfer=hold_id,
            hold_ucr=self._escrow(index, hold_id, attempt),
        )
        fee_id = event.get("fee_transfer")
        if fee_id is not None:
            terms.fee_transfer = str(fee_id)
            terms.fee_hold_ucr = self._escrow(index, terms.fee_transfer, attempt)
        self.attempts[attempt] = terms
        self.contracts[contract] = _str(event, "contract_sha256", index)

    def _escrow(self, index: int, transfer_id: str, attempt: str) -> int:
        """The amount of a pending hold the contract names, which now belongs to ``attempt``."""
        held = self.transfers.get(transfer_id)
        if held is None or held.state != "pending" or transfer_id in self.escrow:
            raise ReplayError(index, f"the contract's escrow {transfer_id} is not a fresh hold")
        self.escrow[transfer_id] = attempt
        return held.amount

    def _started(self, index: int, event: dict[str, Any]) -> None:
        terms = self._terms(index, event)
        if event.get("node") != terms.node:
            raise ReplayError(index, f"attempt started on {event.get('node')}, not {terms.node}")
        self._job(index, event, {"matched"}, "running")

    def _terms(self, index: int, event: dict[str, Any]) -> Terms:
        attempt = _str(event, "attempt", index)
        terms = self.attempts.get(attempt)
        if terms is None:
            raise ReplayError(index, f"attempt {attempt} has no open contract")
        if event.get("job") != terms.job:
            raise ReplayError(index, f"attempt {attempt} belongs to job {terms.job}")
        return terms

    def _ended(self, index: int, event: dict[str, Any]) -> None:
        terms = self._terms(index, event)
        attempt = str(event["attempt"])
        billed, cost, fee = (_int(event, k, index) for k in ("billed_ms", "cost_ucr", "fee_ucr"))
        reason = event.get("reason")
        if "usage" in event:
            self._check_usage(index, event, attempt, terms, billed)
        elif billed > 0 and reason in _PAYING:
            raise ReplayError(index, f"attempt {attempt} billed {billed} ms without a node report")
        if billed > terms.time_limit_s * 1000:
            raise ReplayError(index, f"attempt {attempt} billed {billed} ms past its time limit")
        want_cost = min(money.cost_ucr(billed, terms.hourly_ucr), terms.hold_ucr)
        want_cost = want_cost if reason in _PAYING else 0
        want_fee = min(money.fee_ucr(want_cost, terms.fee_bps), terms.fee_hold_ucr)
        if (cost, fee) != (want_cost, want_fee):
            raise ReplayError(
                index,
                f"attempt {attempt} ({reason}, {billed} ms) charged cost {cost} + fee {fee} µcr; "
                f"its contract gives {want_cost} + {want_fee}",
            )
        for tid, amount in ((terms.hold_transfer, cost), (terms.fee_transfer, fee)):
            if tid is not None and terms.posted.get(tid) != amount:
                raise ReplayError(
                    index,
                    f"escrow {tid} posted {terms.posted.get(tid, 'nothing')}, the attempt "
                    f"charged {amount} µcr",
                )
            self.escrow.pop(tid or "", None)
        del self.attempts[attempt]
        self._job(index, event, {"matched", "running"}, str(event.get("job_state")))

    def _check_signer(self, index: int, event: dict[str, Any]) -> None:
        """An event its actor signed: the signature over ``{kind, facts}`` verifies with the key
        it names, and that is the registered key of the node it speaks for, if any."""
        signer, signature = event.get("signer"), event.get("sig")
        payload = {k: v for k, v in event.items() if k not in _UNSIGNED}
        if not isinstance(signer, str) or not isinstance(signature, str):
            raise ReplayError(index, "an actor-signed event without its signer or signature")
        self.signatures.check(index, signer, payload, signature)
        node = event.get("node")
        if isinstance(node, str) and node in self.nodes and self.nodes[node] != signer:
            raise ReplayError(index, f"the event speaks for node {node} but is not signed by it")

    def _check_usage(
        self, index: int, event: dict[str, Any], attempt: str, terms: Terms, billed: int
    ) -> None:
        usage, signature = event.get("usage"), event.get("usage_sig")
        if not isinstance(usage, dict) or not isinstance(signature, str):
            raise ReplayError(index, "usage report without its signature")
        self.signatures.check(index, self.nodes[terms.node], usage, signature)
        if usage.get("type") != USAGE_TYPE or usage.get("attempt_id") != attempt:
            raise ReplayError(index, f"the signed usage report is not about attempt {attempt}")
        if usage.get("node_id") != terms.node:
            raise ReplayError(index, "the signed usage report names another node")
        if billed > _int(usage, "duration_ms", index):
            raise ReplayError(index, f"billed {billed} ms, more than the node signed for")

    # -- money -------------------------------------------------------------------------------
    def _account(self, account_id: object, index: int) -> Totals:
        if not isinstance(account_id, str) or not account_id:
            raise ReplayError(index, "transfer names no ledger account")
        totals = self.balances.get(account_id)
        if totals is None:  # (setdefault would build a Totals on every call)
            totals = self.balances[account_id] = Totals()
        return totals

    def _transfer(self, index: int, state: str, event: dict[str, Any]) -> None:
        tid = event.get("transfer")
        if not isinstance(tid, str):
            raise ReplayError(index, "transfer event has no id")
        amount, posted = _int(event, "amount_ucr", index), _int(event, "posted_ucr", index)
        debit_id, credit_id = event.get("debit"), event.get("credit")
        debit, credit = self._account(debit_id, index), self._account(credit_id, index)
        known = self.transfers.get(tid)
        if state == "pending":
            if known is not None:
                raise ReplayError(index, f"transfer {tid} appears twice")
            debit.debits_pending += amount
            credit.credits_pending += amount
            self.transfers[tid] = OpenTransfer(str(debit_id), str(credit_id), amount, "pending")
            return
        if state not in ("posted", "voided"):
            raise ReplayError(index, f"unknown transfer state {state!r}")
        if posted > amount or (state == "voided" and posted != 0):
            raise ReplayError(index, f"transfer {tid} posts {posted} of {amount} µcr")
        if known is None:  # single-phase
            if state != "posted" or posted != amount:
                raise ReplayError(index, f"transfer {tid} resolved without being pending")
            self.transfers[tid] = OpenTransfer(str(debit_id), str(credit_id), amount, "posted")
        else:
            if known.state != "pending":
                raise ReplayError(index, f"transfer {tid} resolved twice")
            if (known.debit, known.credit, known.amount) != (debit_id, credit_id, amount):
                raise ReplayError(index, f"transfer {tid} changed its accounts or amount")
            debit.debits_pending -= amount
            credit.credits_pending -= amount
            known.state = state
            owner = self.escrow.get(tid)
            if owner is not None:
                self.attempts[owner].posted[tid] = posted
        debit.debits_posted += posted
        credit.credits_posted += posted

    def check_invariants(self) -> None:
        """Money sums to zero and no user account went negative (the equity mint may)."""
        posted = sum(b.credits_posted - b.debits_posted for b in self.balances.values())
        pending = sum(b.credits_pending - b.debits_pending for b in self.balances.values())
        if posted != 0 or pending != 0:
            raise ReplayError(self.events - 1, f"ledger does not sum to zero ({posted}, {pending})")
        for account_id, totals in self.balances.items():
            available = totals.balance().available
            if not account_id.endswith(":equity") and available < 0:
                raise ReplayError(self.events - 1, f"{account_id} is negative ({available} µcr)")

    # -- resuming ----------------------------------------------------------------------------
    def to_state(self) -> dict[str, Any]:
        """Plain data to resume from (resolved transfers are dropped: they cannot change)."""
        return {
            "balances": {k: asdict(v) for k, v in self.balances.items()},
            "pending": {k: asdict(v) for k, v in self.transfers.items() if v.state == "pending"},
            "jobs": self.jobs,
            "nodes": self.nodes,
            "attempts": {k: asdict(v) for k, v in self.attempts.items()},
            "contracts": self.contracts,
            "escrow": self.escrow,
            "exchange_key": self.exchange_key,
            "events": self.events,
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Replay:
        """The replay :meth:`to_state` saved."""
        return cls(
            balances={k: Totals(**v) for k, v in state.get("balances", {}).items()},
            transfers={k: OpenTransfer(**v) for k, v in state.get("pending", {}).items()},
            jobs=dict(state.get("jobs", {})),
            nodes=dict(state.get("nodes", {})),
            attempts={k: Terms(**v) for k, v in state.get("attempts", {}).items()},
            contracts=dict(state.get("contracts", {})),
            escrow=dict(state.get("escrow", {})),
            exchange_key=state.get("exchange_key"),
            events=int(state.get("events", 0)),
        )


def check_opening(index: int, event: dict[str, Any], fields: dict[str, dict[str, str]]) -> None:
    """Each opened field's salt and content open the commitment event ``index`` logged: under
    ``commit.<field>``, or ``usage.<field>_commitment`` in a node-signed report."""
    for name, opening in fields.items():
        commitments = event.get("commit") or {}
        usage = event.get("usage") or {}
        logged = commitments.get(name) or usage.get(f"{name}_commitment")
        if not isinstance(logged, str):
            raise ReplayError(index, f"the opening of {name!r} matches no commitment")
        salt, content = str(opening.get("salt", "")), str(opening.get("content", ""))
        if not opens(logged, salt, content.encode()):
            raise ReplayError(index, f"the opening of {name!r} does not match its commitment")
