"""What a job spec may contain: its fields, the SkyPilot fields flopex refuses, and the rules
for values with a shape of their own (accelerators, cpus, envs, deadline, prompts)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flopex.domain.devices import parse_accelerator
from flopex.domain.spec_fields import (
    Block,
    invalid,
    to_int,
    to_list,
    to_text,
    type_name,
    wrap,
)
from flopex.domain.units import INT64_MAX, parse_duration_s

# Explicit bounds (TigerBeetle style): beyond these a spec is a mistake, not a job.
MAX_OPTIONS = 64
MAX_DEVICES = 1024
MAX_CPUS = 1 << 16
MAX_ATTEMPTS = 100
MAX_SEED = INT64_MAX
RESOURCE_KEYS = ("accelerators", "cpus", "memory", "memory_bytes", "region", "use_spot")
TOP_KEYS = (
    "name",
    "resources",
    "workdir",
    "envs",
    "secrets",
    "setup",
    "run",
    "num_nodes",
    "flopex",
)
FLOPEX_KEYS = (
    "max_price_per_hour",
    "max_price_per_hour_ucr",
    "budget",
    "budget_ucr",
    "estimated_hours",
    "estimated_s",
    "max_hours",
    "max_s",
    "deadline",
    "objective",
    "inputs",
    "data_residency",
    "on_preempt",
    "max_attempts",
    "verification",
    "inference",
)
OBJECTIVE_KEYS = ("cost", "time", "carbon")
INPUT_KEYS = ("uri", "size", "size_bytes", "region")
INFERENCE_KEYS = ("model", "weights_sha256", "dtype", "prompts", "sampling")
SAMPLING_KEYS = ("temperature", "top_p", "top_k", "max_tokens", "seed")

_PLACE = "flopex places jobs by resources.region and data_residency"
# SkyPilot fields whose meaning flopex cannot honour, with what to do instead.
UNSUPPORTED_TOP = {
    "file_mounts": "put files in workdir, or list data under flopex.inputs",
    "service": "flopex runs batch jobs, not services",
    "config": "flopex has no per-task SkyPilot config",
    "event_callback": "follow the job with `flopex job show` or `flopex job logs`",
    "volumes": "put files in workdir, or list data under flopex.inputs",
}
UNSUPPORTED_RESOURCES = {
    "cloud": _PLACE,
    "infra": _PLACE,
    "zone": _PLACE,
    "instance_type": "ask for accelerators, cpus and memory instead",
    "disk_size": "offers do not sell disk yet",
    "disk_tier": "offers do not sell disk yet",
    "network_tier": "offers do not sell network tiers",
    "image_id": "jobs run in the provider's runtime",
    "ports": "jobs cannot expose ports",
    "labels": "use the job's name",
    "accelerator_args": "offers take no accelerator arguments",
    "job_recovery": "use flopex.on_preempt and flopex.max_attempts",
    "autostop": "jobs end when run exits",
    "max_hourly_cost": "use flopex.max_price_per_hour",
}

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DATE_START = re.compile(r"\s*\d{4}-\d{2}-\d{2}")
_CPUS = re.compile(r"\s*([0-9]+)\s*\+?\s*")


def accelerators(value: Any, path: str) -> list[tuple[str, int]]:
    """``H100:8``, a list of those, or a set/mapping (``{A100:8, H100:8}``, ``{A100: 8}``)."""
    if isinstance(value, str):
        items: list[tuple[Any, Any]] = [(value, None)]
    elif isinstance(value, list | tuple):
        items = [(v, None) for v in to_list(value, path)]
    elif isinstance(value, Mapping):
        items = list(value.items())
    else:
        raise invalid(path, f"expected NAME:COUNT, a list or a set of them, got {type_name(value)}")
    if not items:
        raise invalid(path, "lists no accelerator")
    out = []
    for text, count in items:
        name, n = wrap(path, parse_accelerator, to_text(text, path))
        if count is not None:
            if ":" in text:
                raise invalid(path, f"{text!r} has a count twice; write {name}: {count}")
            n = to_int(count, path, minimum=1)
        if n > MAX_DEVICES:
            raise invalid(path, f"{n} devices of one node; the most is {MAX_DEVICES}")
        out.append((name, n))
    return out


def cpus(value: Any, path: str) -> int:
    """vCPUs: ``4`` or ``"4+"`` (at least 4; flopex takes exactly the minimum)."""
    if isinstance(value, str):
        match = _CPUS.fullmatch(value)
        if match is None:
            raise invalid(
                path, f"{value!r} is not a vCPU count; write a whole number such as 4 or 4+"
            )
        value = int(match[1])
    return to_int(value, path, minimum=1, maximum=MAX_CPUS)


def environment(top: Block) -> tuple[dict[str, str], dict[str, str]]:
    """``envs`` and ``secrets``: valid variable names, scalar values, no name in both."""
    envs, secrets = _variables(top, "envs"), _variables(top, "secrets")
    both = sorted(envs.keys() & secrets.keys())
    if both:
        raise invalid(f"secrets.{both[0]}", "is also set in envs; give each variable once")
    return envs, secrets


def _variables(top: Block, key: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in (top.mapping(key) or {}).items():
        path = f"{key}.{name}"
        if not isinstance(name, str) or not _ENV_NAME.fullmatch(name):
            raise invalid(path, "is not a variable name: letters, digits and _, not a digit first")
        if name.startswith("FLOPEX_"):
            raise invalid(path, "names starting with FLOPEX_ are reserved for flopex")
        out[name] = _variable_value(value, path)
    return out


def _variable_value(value: Any, path: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    if value is None:
        raise invalid(path, 'has no value; write NAME: value (use "" for an empty one)')
    raise invalid(path, f"expected a string, number or boolean, got {type_name(value)}")


def deadline(opts: Block, now: datetime) -> datetime | None:
    """``flopex.deadline``: RFC 3339 or a duration from ``now`` (``6h``); in the future, UTC."""
    value, path = opts.get("deadline"), opts.path("deadline")
    if value is None:
        return None
    if isinstance(value, str) and _DATE_START.match(value):
        at = _timestamp(value, path)
    elif isinstance(value, datetime):
        at = value
    elif isinstance(value, date):
        raise invalid(path, f"{value} is a date; give a time too, e.g. {value}T00:00:00Z")
    elif isinstance(value, str | int | float) and not isinstance(value, bool):
        try:
            at = now + timedelta(seconds=wrap(path, parse_duration_s, value))
        except OverflowError:
            raise invalid(path, f"{value!r} is too far in the future") from None
    else:
        raise invalid(
            path,
            "expected an RFC 3339 time (2025-01-31T18:00:00Z) or a duration "
            f"(6h), got {type_name(value)}",
        )
    if at.tzinfo is None or at.utcoffset() is None:
        raise invalid(path, f"{value!s} has no timezone; add one, e.g. Z for UTC")
    at = at.astimezone(UTC)
    if at <= now:
        raise invalid(path, f"{rfc3339(at)} is not in the future (now is {rfc3339(now)})")
    return at


def _timestamp(text: str, path: str) -> datetime:
    try:
        return datetime.fromisoformat(text.strip())
    except ValueError:
        raise invalid(
            path, f"{text!r} is not an RFC 3339 time such as 2025-01-31T18:00:00Z"
        ) from None


def rfc3339(at: datetime) -> str:
    """``2025-01-31T18:00:00Z`` (UTC, ``Z`` suffix)."""
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def sha256_hex(block: Block) -> str:
    """``weights_sha256``: 64 hex digits, lowercased."""
    text = block.required_text("weights_sha256").strip().lower()
    if not _SHA256.fullmatch(text):
        raise invalid(block.path("weights_sha256"), "expected 64 hex digits (a SHA-256)")
    return text


def prompts(block: Block) -> tuple[tuple[int, ...], ...]:
    """``prompts``: a non-empty list of non-empty lists of token ids (>= 0)."""
    path = block.path("prompts")
    items = to_list(block.get("prompts", required=True), path)
    if not items:
        raise invalid(path, "must list at least one prompt")
    out = []
    for i, prompt in enumerate(items):
        tokens = to_list(prompt, f"{path}[{i}]")
        if not tokens:
            raise invalid(f"{path}[{i}]", "a prompt needs at least one token id")
        out.append(tuple(to_int(t, f"{path}[{i}][{j}]", minimum=0) for j, t in enumerate(tokens)))
    return tuple(out)


def top_p(sampling: Block) -> float:
    """``top_p`` in (0, 1]; default 1 (no nucleus cut)."""
    value = sampling.number("top_p", minimum=0.0, maximum=1.0, default=1.0)
    if value == 0:
        raise invalid(sampling.path("top_p"), "must be above 0 (1 keeps every token)")
    return value


def known_fields() -> list[str]:
    """Every dotted field a spec may use; ``[]`` marks the items of a list."""
    nested = {
        "resources": (*RESOURCE_KEYS, "any_of", "ordered"),
        "resources.any_of[]": RESOURCE_KEYS,
        "resources.ordered[]": RESOURCE_KEYS,
        "flopex": FLOPEX_KEYS,
        "flopex.objective": OBJECTIVE_KEYS,
        "flopex.inputs[]": INPUT_KEYS,
        "flopex.inference": INFERENCE_KEYS,
        "flopex.inference.sampling": SAMPLING_KEYS,
    }
    fields = list(TOP_KEYS)
    for prefix, keys in nested.items():
        fields.extend(f"{prefix}.{key}" for key in keys)
    return fields
