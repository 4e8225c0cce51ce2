"""The job spec: SkyPilot-compatible task YAML plus a ``flopex:`` block (pure; no I/O).

ARCHITECTURE "Job spec" and "Job spec details". Unknown fields are errors that name the dotted
field (``resources.acclerators``) and suggest the closest known one; every error is
:class:`~flopex.errors.SpecInvalid` with ``details["field"]`` (and line/column for YAML text).

:meth:`JobSpec.public_dict` is itself a valid spec: money, sizes and times appear in their exact
integer forms (``budget_ucr``, ``memory_bytes``, ``max_s``), which :func:`parse_spec` also
accepts, so a stored spec parses back to the same :class:`JobSpec` (secrets redacted).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from flopex.domain import spec_fields as f
from flopex.domain import spec_schema as schema
from flopex.domain.spec_yaml import load_yaml, locate
from flopex.errors import SpecInvalid

REDACTED = "<redacted>"


class JobKind(StrEnum):
    COMMAND = "command"
    INFERENCE = "inference"


class OnPreempt(StrEnum):
    REQUEUE = "requeue"
    FAIL = "fail"


@dataclass(frozen=True)
class ResourceOption:
    """One acceptable shape of machine for the job; a spec lists one or more."""

    accelerator: str | None  # canonical catalog name; None = CPU-only work
    accelerator_count: int  # 0 when CPU-only
    cpus: int  # vCPUs taken from an offer's pool; "4+" -> 4
    memory_bytes: int  # taken from the pool
    region: str | None  # resources.region
    interruptible_ok: bool  # resources.use_spot: interruptible offers are acceptable


@dataclass(frozen=True)
class Objective:
    """Placement weights (>= 0, not all zero)."""

    cost: float = 1.0
    time: float = 0.0
    carbon: float = 0.0


@dataclass(frozen=True)
class InputData:
    """Data the job reads, so placement can weigh moving it."""

    uri: str
    size_bytes: int
    region: str | None


@dataclass(frozen=True)
class Sampling:
    """Pinned sampling parameters of a verifiable inference job."""

    temperature: float
    top_p: float
    top_k: int  # 0 = no top-k cut
    max_tokens: int
    seed: int


@dataclass(frozen=True)
class InferenceSpec:
    """An LLM generation job: pinned weights, dtype, prompt token ids and sampling."""

    model: str
    weights_sha256: str
    dtype: str
    prompts: tuple[tuple[int, ...], ...]
    sampling: Sampling


@dataclass(frozen=True)
class JobSpec:
    """A validated job spec; money in µcr, sizes in bytes, times in seconds, instants in UTC."""

    name: str | None
    kind: JobKind
    options: tuple[ResourceOption, ...]  # >= 1 alternatives; preference order when `ordered`
    ordered: bool
    num_nodes: int
    workdir: str | None
    envs: dict[str, str]
    secrets: dict[str, str]
    setup: str | None
    run: str | None
    max_price_ucr_per_hour: int | None  # caps the whole hourly cost
    budget_ucr: int | None
    estimated_s: int | None
    max_s: int | None
    deadline_at: datetime | None
    objective: Objective
    inputs: tuple[InputData, ...]
    data_residency: tuple[str, ...] | None
    on_preempt: OnPreempt
    max_attempts: int | None
    verification: dict[str, Any] | None
    inference: InferenceSpec | None

    def public_dict(self) -> dict[str, Any]:
        """JSON-safe spec for storage and the API: secret values redacted, money as ``*_ucr``
        ints, instants as RFC 3339; :func:`parse_spec` reads it back."""
        return {
            "name": self.name,
            "resources": {
                ("ordered" if self.ordered else "any_of"): [_option_dict(o) for o in self.options]
            },
            "num_nodes": self.num_nodes,
            "workdir": self.workdir,
            "envs": dict(self.envs),
            "secrets": dict.fromkeys(self.secrets, REDACTED),
            "setup": self.setup,
            "run": self.run,
            "flopex": self._flopex_dict(),
        }

    def _flopex_dict(self) -> dict[str, Any]:
        return {
            "max_price_per_hour_ucr": self.max_price_ucr_per_hour,
            "budget_ucr": self.budget_ucr,
            "estimated_s": self.estimated_s,
            "max_s": self.max_s,
            "deadline": schema.rfc3339(self.deadline_at) if self.deadline_at else None,
            "objective": {
                "cost": self.objective.cost,
                "time": self.objective.time,
                "carbon": self.objective.carbon,
            },
            "inputs": [
                {"uri": i.uri, "size_bytes": i.size_bytes, "region": i.region} for i in self.inputs
            ],
            "data_residency": list(self.data_residency) if self.data_residency else None,
            "on_preempt": self.on_preempt.value,
            "max_attempts": self.max_attempts,
            "verification": self.verification,
            "inference": _inference_dict(self.inference) if self.inference else None,
        }


def _option_dict(option: ResourceOption) -> dict[str, Any]:
    accelerators = None
    if option.accelerator is not None:
        accelerators = f"{option.accelerator}:{option.accelerator_count}"
    return {
        "accelerators": accelerators,
        "cpus": option.cpus,
        "memory_bytes": option.memory_bytes,
        "region": option.region,
        "use_spot": option.interruptible_ok,
    }


def _inference_dict(inference: InferenceSpec) -> dict[str, Any]:
    s = inference.sampling
    return {
        "model": inference.model,
        "weights_sha256": inference.weights_sha256,
        "dtype": inference.dtype,
        "prompts": [list(p) for p in inference.prompts],
        "sampling": {
            "temperature": s.temperature,
            "top_p": s.top_p,
            "top_k": s.top_k,
            "max_tokens": s.max_tokens,
            "seed": s.seed,
        },
    }


def parse_spec_yaml(text: str, *, now: datetime) -> JobSpec:
    """Parse and validate task YAML text; errors carry the field's line and column."""
    data, marks = load_yaml(text)
    try:
        return parse_spec(data, now=now)
    except SpecInvalid as exc:
        raise locate(exc, marks) from None


def parse_spec(data: Mapping[str, Any], *, now: datetime) -> JobSpec:
    """Validate an already-loaded spec mapping (YAML or JSON); ``now`` resolves ``deadline``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if not isinstance(data, Mapping):
        raise f.invalid("", f"task spec must be a mapping of fields, got {f.type_name(data)}")
    top = f.Block(data, "", schema.TOP_KEYS, schema.UNSUPPORTED_TOP)
    opts = f.Block(top.mapping("flopex") or {}, "flopex", schema.FLOPEX_KEYS)
    residency = opts.regions("data_residency")
    options, ordered = _resource_options(top.mapping("resources") or {}, residency)
    inference = _inference(opts)
    kind = JobKind.INFERENCE if inference else JobKind.COMMAND
    envs, secrets = schema.environment(top)
    setup, run = top.text("setup"), top.text("run", allow_empty=False)
    _check_commands(kind, setup, run)
    estimated_s = opts.exact_or("estimated_hours", "estimated_s", f.parse_hours, f.seconds)
    max_s = opts.exact_or("max_hours", "max_s", f.parse_hours, f.seconds)
    if estimated_s and max_s and max_s < estimated_s:
        key = "max_hours" if opts.get("max_hours") is not None else "max_s"
        raise f.invalid(opts.path(key), "must not be less than the estimate (estimated_hours)")
    return JobSpec(
        name=top.text("name"),
        kind=kind,
        options=options,
        ordered=ordered,
        num_nodes=_num_nodes(top),
        workdir=top.text("workdir", allow_empty=False),
        envs=envs,
        secrets=secrets,
        setup=setup,
        run=run,
        max_price_ucr_per_hour=opts.exact_or(
            "max_price_per_hour", "max_price_per_hour_ucr", f.parse_money, f.ucr
        ),
        budget_ucr=opts.exact_or("budget", "budget_ucr", f.parse_money, f.ucr),
        estimated_s=estimated_s,
        max_s=max_s,
        deadline_at=schema.deadline(opts, now.astimezone(UTC)),
        objective=_objective(opts),
        inputs=_inputs(opts),
        data_residency=residency,
        on_preempt=OnPreempt(opts.choice("on_preempt", [p.value for p in OnPreempt]) or "requeue"),
        max_attempts=opts.integer("max_attempts", minimum=1, maximum=schema.MAX_ATTEMPTS),
        verification=opts.json_mapping("verification"),
        inference=inference,
    )


def _num_nodes(top: f.Block) -> int:
    nodes = top.integer("num_nodes", minimum=1) or 1
    if nodes > 1:
        raise f.invalid(
            top.path("num_nodes"),
            f"got {nodes}; num_nodes > 1 is not supported yet",
            hint="run on one node: drop num_nodes or set it to 1",
        )
    return nodes


def _check_commands(kind: JobKind, setup: str | None, run: str | None) -> None:
    if kind is JobKind.INFERENCE:
        for key, value in (("run", run), ("setup", setup)):
            if value is not None:
                raise f.invalid(key, "an inference job (flopex.inference) runs no commands")
    elif run is None:
        what = "setup alone does nothing" if setup is not None else "it is missing"
        raise f.invalid(
            "run",
            f"a command job needs a run script; {what}",
            hint="add `run: ...`, or a flopex.inference block for an inference job",
        )


def _objective(opts: f.Block) -> Objective:
    given = opts.mapping("objective")
    if given is None:
        return Objective()
    block = f.Block(given, opts.path("objective"), schema.OBJECTIVE_KEYS)
    # Weights left out are 0: `objective: {time: 1}` means time only.
    weights = {k: block.number(k, minimum=0.0, default=0.0) for k in schema.OBJECTIVE_KEYS}
    if not any(weights.values()):
        raise f.invalid(block.prefix, "at least one of cost, time, carbon must be above 0")
    return Objective(**weights)


def _inference(opts: f.Block) -> InferenceSpec | None:
    given = opts.mapping("inference")
    if given is None:
        return None
    block = f.Block(given, opts.path("inference"), schema.INFERENCE_KEYS)
    sampling = f.Block(
        block.mapping("sampling", required=True) or {}, block.path("sampling"), schema.SAMPLING_KEYS
    )
    return InferenceSpec(
        model=block.required_text("model"),
        weights_sha256=schema.sha256_hex(block),
        dtype=block.required_text("dtype"),
        prompts=schema.prompts(block),
        sampling=Sampling(
            temperature=sampling.number("temperature", minimum=0.0, default=1.0),
            top_p=schema.top_p(sampling),
            top_k=sampling.integer("top_k", minimum=0) or 0,
            max_tokens=sampling.integer("max_tokens", minimum=1, required=True) or 0,
            seed=sampling.integer("seed", minimum=0, maximum=schema.MAX_SEED, required=True) or 0,
        ),
    )


Raw = dict[str, tuple[Any, str]]  # resource key -> (value as given, dotted path)


def _resource_options(
    given: Mapping[str, Any], residency: tuple[str, ...] | None
) -> tuple[tuple[ResourceOption, ...], bool]:
    """``resources`` to its alternatives, and whether their order is a preference."""
    keys = (*schema.RESOURCE_KEYS, "any_of", "ordered")
    block = f.Block(given, "resources", keys, schema.UNSUPPORTED_RESOURCES)
    any_of, ordered = block.sequence("any_of"), block.sequence("ordered")
    if any_of is not None and ordered is not None:
        raise f.invalid("resources", "give any_of or ordered, not both")
    base = _raw(block)
    entries, name = (ordered, "ordered") if ordered is not None else (any_of, "any_of")
    if entries is None:
        # SkyPilot: a list of accelerators is tried in order; a set ({A: , B: }) in any order.
        in_order = isinstance(given.get("accelerators"), list | tuple)
        return _distinct(_expand(base, residency), "resources"), in_order
    if not entries:
        raise f.invalid(block.path(name), "must list at least one alternative")
    options: list[ResourceOption] = []
    for index, entry in enumerate(entries):
        path = f"{block.path(name)}[{index}]"
        entry_block = f.Block(
            f.to_mapping(entry, path), path, schema.RESOURCE_KEYS, schema.UNSUPPORTED_RESOURCES
        )
        options.extend(_expand(_merge(base, _raw(entry_block)), residency))
    return _distinct(options, block.path(name)), ordered is not None


def _raw(block: f.Block) -> Raw:
    return {
        key: (block.get(key), block.path(key))
        for key in schema.RESOURCE_KEYS
        if block.get(key) is not None
    }


def _merge(base: Raw, entry: Raw) -> Raw:
    """An ``any_of``/``ordered`` entry overrides the top-level resources key by key."""
    merged = dict(base)
    if "memory" in entry or "memory_bytes" in entry:
        merged.pop("memory", None)
        merged.pop("memory_bytes", None)
    return merged | entry


def _expand(raw: Raw, residency: tuple[str, ...] | None) -> list[ResourceOption]:
    """One option per accelerator alternative, sharing cpus, memory, region and use_spot."""
    devices: list[tuple[str | None, int]] = [(None, 0)]
    if "accelerators" in raw:
        devices = [(name, count) for name, count in schema.accelerators(*raw["accelerators"])]
    if "memory" in raw and "memory_bytes" in raw:
        raise f.invalid(raw["memory_bytes"][1], "give memory or memory_bytes, not both")
    memory = 0
    if "memory" in raw:
        memory = f.parse_memory(*raw["memory"])
    elif "memory_bytes" in raw:
        memory = f.byte_count(*raw["memory_bytes"])
    region = f.to_region(*raw["region"]) if "region" in raw else None
    if region is not None and residency is not None and region not in residency:
        raise f.invalid(
            raw["region"][1],
            f"region {region!r} is outside flopex.data_residency {list(residency)}",
        )
    cpus = schema.cpus(*raw["cpus"]) if "cpus" in raw else 1
    spot = f.to_bool(*raw["use_spot"]) if "use_spot" in raw else False
    return [ResourceOption(name, count, cpus, memory, region, spot) for name, count in devices]


def _distinct(options: list[ResourceOption], path: str) -> tuple[ResourceOption, ...]:
    unique = tuple(dict.fromkeys(options))
    if len(unique) > schema.MAX_OPTIONS:
        raise f.invalid(path, f"gives {len(unique)} alternatives; the most is {schema.MAX_OPTIONS}")
    return unique


def _inputs(opts: f.Block) -> tuple[InputData, ...]:
    items = opts.sequence("inputs") or []
    out = []
    for index, item in enumerate(items):
        path = f"{opts.path('inputs')}[{index}]"
        block = f.Block(f.to_mapping(item, path), path, schema.INPUT_KEYS)
        size = block.exact_or("size", "size_bytes", f.parse_size, f.byte_count)
        if size is None:
            raise f.invalid(block.path("size"), "this field is required (bytes, or e.g. 20GB)")
        region = block.get("region")
        out.append(
            InputData(
                uri=block.required_text("uri"),
                size_bytes=size,
                region=None if region is None else f.to_region(region, block.path("region")),
            )
        )
    return tuple(out)


def known_fields() -> list[str]:
    """Every dotted field a spec may use (``[]`` marks list items), for docs and completion."""
    return schema.known_fields()
