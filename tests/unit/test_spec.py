"""The job spec: SkyPilot task YAML plus a `flopex:` block; every mistake is named, located and
explained, and the stored public form parses back to the same spec."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from flopex.domain.spec import (
    InferenceSpec,
    InputData,
    JobKind,
    JobSpec,
    Objective,
    OnPreempt,
    ResourceOption,
    Sampling,
    known_fields,
    parse_spec,
    parse_spec_yaml,
)
from flopex.domain.units import GIB
from flopex.errors import SpecInvalid

NOW = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
SHA = "ab" * 32


def parse(text: str) -> JobSpec:
    return parse_spec_yaml(text, now=NOW)


def error_of(text: str) -> SpecInvalid:
    with pytest.raises(SpecInvalid) as info:
        parse(text)
    assert info.value.code == "job.spec_invalid"
    return info.value


def data_error_of(data: Any) -> SpecInvalid:
    with pytest.raises(SpecInvalid) as info:
        parse_spec(data, now=NOW)
    assert info.value.code == "job.spec_invalid"
    return info.value


def cpu(cpus: int = 1, **kw: Any) -> ResourceOption:
    fields: dict[str, Any] = {"memory_bytes": 0, "region": None, "interruptible_ok": False} | kw
    return ResourceOption(accelerator=None, accelerator_count=0, cpus=cpus, **fields)


def gpu(name: str, count: int, **kw: Any) -> ResourceOption:
    fields: dict[str, Any] = {"cpus": 1, "memory_bytes": 0, "region": None} | kw
    return ResourceOption(name, count, interruptible_ok=fields.pop("spot", False), **fields)


INFERENCE = f"""
flopex:
  inference:
    model: tiny-llama
    weights_sha256: {SHA}
    dtype: bfloat16
    prompts: [[1, 2, 3], [4]]
    sampling: {{temperature: 0.7, top_p: 0.9, top_k: 40, max_tokens: 16, seed: 7}}
"""


# --- the smallest job and its defaults -------------------------------------------------------


def test_a_run_script_alone_is_a_cpu_command_job_with_defaults() -> None:
    spec = parse("run: echo hi\n")
    assert spec.kind is JobKind.COMMAND
    assert spec.options == (cpu(),)
    assert spec.ordered is False
    assert spec.num_nodes == 1
    assert spec.run == "echo hi"
    assert (spec.name, spec.workdir, spec.setup) == (None, None, None)
    assert (spec.envs, spec.secrets) == ({}, {})
    assert spec.max_price_ucr_per_hour is None and spec.budget_ucr is None
    assert spec.deadline_at is None and spec.estimated_s is None and spec.max_s is None
    assert spec.objective == Objective(cost=1.0, time=0.0, carbon=0.0)
    assert spec.inputs == () and spec.data_residency is None
    assert spec.on_preempt is OnPreempt.REQUEUE
    assert spec.max_attempts is None and spec.verification is None and spec.inference is None


def test_skypilot_fields_are_read() -> None:
    spec = parse(
        "name: train\nworkdir: ./src\nsetup: pip install -r req.txt\nrun: python train.py\n"
        "num_nodes: 1\nresources:\n  accelerators: H100:8\n  cpus: 32\n  memory: 256\n"
        "  region: jp-tokyo\n  use_spot: true\n"
    )
    assert (spec.name, spec.workdir, spec.setup) == ("train", "./src", "pip install -r req.txt")
    assert spec.options == (
        gpu("H100", 8, cpus=32, memory_bytes=256 * GIB, region="jp-tokyo", spot=True),
    )


def test_null_fields_count_as_absent() -> None:
    spec = parse_spec({"run": "x", "name": None, "resources": None, "flopex": None}, now=NOW)
    assert spec.options == (cpu(),) and spec.name is None


def test_now_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError):
        parse_spec({"run": "x"}, now=datetime(2030, 1, 1))


# --- accelerators, cpus, memory, alternatives ------------------------------------------------


def test_accelerator_names_are_canonicalised_and_count_defaults_to_one() -> None:
    assert parse("run: x\nresources:\n  accelerators: h100\n").options == (gpu("H100", 1),)


def test_accelerator_set_form_gives_unordered_alternatives() -> None:
    spec = parse("run: x\nresources:\n  accelerators: {A100:8, H100:8}\n  cpus: 4\n")
    assert spec.options == (gpu("A100", 8, cpus=4), gpu("H100", 8, cpus=4))
    assert spec.ordered is False


def test_accelerator_mapping_form_takes_counts_as_values() -> None:
    spec = parse("run: x\nresources:\n  accelerators: {A100: 8, H100: 4}\n")
    assert spec.options == (gpu("A100", 8), gpu("H100", 4))


def test_accelerator_list_form_is_an_ordered_preference_as_in_skypilot() -> None:
    spec = parse("run: x\nresources:\n  accelerators: [L4:1, H100:1]\n")
    assert spec.options == (gpu("L4", 1), gpu("H100", 1))
    assert spec.ordered is True


def test_any_of_entries_override_top_level_resources() -> None:
    spec = parse(
        "run: x\nresources:\n  cpus: 8\n  region: jp-tokyo\n  any_of:\n"
        "    - accelerators: A100:8\n    - accelerators: H100:8\n      region: us-west\n"
    )
    assert spec.options == (
        gpu("A100", 8, cpus=8, region="jp-tokyo"),
        gpu("H100", 8, cpus=8, region="us-west"),
    )
    assert spec.ordered is False


def test_ordered_entries_keep_their_preference_order() -> None:
    spec = parse(
        "run: x\nresources:\n  accelerators: H100:1\n  ordered:\n"
        "    - region: jp-tokyo\n    - region: jp-osaka\n"
    )
    assert spec.options == (gpu("H100", 1, region="jp-tokyo"), gpu("H100", 1, region="jp-osaka"))
    assert spec.ordered is True


def test_identical_alternatives_are_kept_once() -> None:
    spec = parse("run: x\nresources:\n  any_of:\n    - cpus: 2\n    - cpus: 2\n")
    assert spec.options == (cpu(2),)


def test_any_of_and_ordered_together_are_refused() -> None:
    err = error_of("run: x\nresources:\n  any_of: [{cpus: 1}]\n  ordered: [{cpus: 2}]\n")
    assert err.message == "resources: give any_of or ordered, not both"


@pytest.mark.parametrize(
    ("resources", "field", "words"),
    [
        ("any_of: []", "resources.any_of", "at least one alternative"),
        ("ordered: [H100]", "resources.ordered[0]", "expected a mapping"),
        ("any_of: [{any_of: []}]", "resources.any_of[0].any_of", "unknown field"),
    ],
)
def test_bad_alternatives_are_refused(resources: str, field: str, words: str) -> None:
    err = error_of(f"run: x\nresources:\n  {resources}\n")
    assert err.details["field"] == field
    assert words in err.message


def test_cpus_and_memory_accept_skypilot_at_least_notation() -> None:
    spec = parse("run: x\nresources:\n  cpus: 4+\n  memory: 32+\n")
    assert spec.options == (cpu(4, memory_bytes=32 * GIB),)


def test_memory_accepts_units_and_fractions_of_gib() -> None:
    assert parse("run: x\nresources:\n  memory: 512MB\n").options[0].memory_bytes == 512 << 20
    assert parse("run: x\nresources:\n  memory: 0.5\n").options[0].memory_bytes == GIB // 2


def test_unknown_device_is_named_with_a_suggestion_and_located() -> None:
    err = error_of("run: x\nresources:\n  accelerators: H10:1\n")
    assert err.message == "resources.accelerators: unknown device 'H10' (did you mean H100?)"
    assert err.details["suggestion"] == "H100"
    assert (err.details["field"], err.details["line"], err.details["column"]) == (
        "resources.accelerators",
        3,
        3,
    )
    assert "H100" in err.hint


@pytest.mark.parametrize(
    ("accelerators", "words"),
    [
        ("H100:x", "bad count"),
        ("H100:0", "count must be >= 1"),
        ("[]", "lists no accelerator"),
        ("{}", "lists no accelerator"),
        ("8", "expected NAME:COUNT"),
        ("{H100:8: 2}", "count twice"),
        ("{H100: 0}", "between 1"),
        ("H100:5000", "the most is 1024"),
    ],
)
def test_bad_accelerators_are_refused(accelerators: str, words: str) -> None:
    err = error_of(f"run: x\nresources:\n  accelerators: {accelerators}\n")
    assert err.details["field"] == "resources.accelerators"
    assert err.message.startswith("resources.accelerators: ")
    assert words in err.message


# --- unknown and unsupported fields ----------------------------------------------------------


def test_unknown_field_is_named_with_suggestion() -> None:
    err = error_of("run: echo\nresources:\n  acclerators: H100:1\n")
    assert err.message == "resources.acclerators: unknown field (did you mean 'accelerators'?)"
    assert err.details == {
        "field": "resources.acclerators",
        "suggestion": "accelerators",
        "line": 3,
        "column": 3,
    }


def test_unknown_field_in_a_list_item_is_named_by_index() -> None:
    err = error_of("run: x\nresources:\n  any_of:\n    - cpus: 1\n    - cpu: 2\n")
    assert err.details["field"] == "resources.any_of[1].cpu"
    assert err.details["suggestion"] == "cpus"
    assert (err.details["line"], err.details["column"]) == (5, 7)


@pytest.mark.parametrize(
    ("text", "field", "suggestion"),
    [
        ("rnu: x\n", "rnu", "run"),
        ("run: x\nflopex:\n  budgett: 1\n", "flopex.budgett", "budget"),
        ("run: x\nflopex:\n  objective: {costs: 1}\n", "flopex.objective.costs", "cost"),
        ("run: x\nxyzzy: 1\n", "xyzzy", None),
    ],
)
def test_unknown_fields_everywhere_are_errors(
    text: str, field: str, suggestion: str | None
) -> None:
    err = error_of(text)
    assert err.details["field"] == field
    assert err.details["suggestion"] == suggestion
    assert err.message.startswith(f"{field}: unknown field")


def test_unknown_field_without_yaml_has_no_location() -> None:
    err = data_error_of({"run": "x", "resources": {"acclerators": "H100:1"}})
    assert err.details == {"field": "resources.acclerators", "suggestion": "accelerators"}


@pytest.mark.parametrize(
    "field",
    ["file_mounts", "service", "config", "event_callback"],
)
def test_unsupported_skypilot_top_level_fields_are_refused(field: str) -> None:
    err = error_of(f"run: x\n{field}: {{a: b}}\n")
    assert err.message == f"{field} is a SkyPilot field that flopex does not support"
    assert err.details["field"] == field
    assert err.hint


@pytest.mark.parametrize(
    "field",
    [
        "cloud",
        "instance_type",
        "disk_size",
        "disk_tier",
        "image_id",
        "ports",
        "zone",
        "labels",
        "accelerator_args",
        "infra",
        "job_recovery",
        "autostop",
    ],
)
def test_unsupported_skypilot_resource_fields_are_refused(field: str) -> None:
    err = error_of(f"run: x\nresources:\n  {field}: something\n")
    assert err.message == f"resources.{field} is a SkyPilot field that flopex does not support"
    assert (err.details["line"], err.details["column"]) == (3, 3)


# --- YAML itself -----------------------------------------------------------------------------


def test_invalid_yaml_reports_line_and_column() -> None:
    err = error_of("name: x\nrun: [unclosed\n")
    assert err.message.startswith("invalid YAML at line 3, column 1: ")
    assert (err.details["line"], err.details["column"]) == (3, 1)


def test_bad_indentation_is_invalid_yaml_with_its_place() -> None:
    err = error_of("run: x\nresources:\n  cpus: 1\n    memory: 2\n")
    assert err.message.startswith("invalid YAML at line 4, column 11: ")


@pytest.mark.parametrize("text", ["", "   \n", "# just a comment\n"])
def test_empty_document_is_refused(text: str) -> None:
    assert "empty" in error_of(text).message


@pytest.mark.parametrize("text", ["- run: x\n", "just text\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    err = error_of(text)
    assert "must be a mapping" in err.message
    assert err.details["field"] is None


def test_duplicate_keys_are_refused_not_silently_overwritten() -> None:
    err = error_of("run: a\nname: x\nrun: b\n")
    assert err.message == "run: duplicate key (first at line 1)"
    assert (err.details["line"], err.details["column"]) == (3, 1)


def test_python_tags_are_refused() -> None:
    err = error_of("run: !!python/object/apply:os.system [echo]\n")
    assert err.message.startswith("invalid YAML at line 1")


def test_anchors_and_merge_keys_work() -> None:
    spec = parse(
        "run: x\nresources:\n  any_of:\n    - &base {cpus: 4, memory: 8}\n"
        "    - <<: *base\n      accelerators: H100:1\n"
    )
    assert spec.options == (
        cpu(4, memory_bytes=8 * GIB),
        gpu("H100", 1, cpus=4, memory_bytes=8 * GIB),
    )


def test_alias_expansion_is_bounded() -> None:
    lines = ["a0: &a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]
    err = error_of("\n".join(lines) + "\nrun: x\n")
    assert "too large" in err.message


def test_missing_field_errors_point_at_the_enclosing_mapping() -> None:
    err = error_of("name: x\nsetup: make\n")
    assert err.details["field"] == "run"
    assert (err.details["line"], err.details["column"]) == (1, 1)


# --- commands, nodes, environment ------------------------------------------------------------


def test_a_command_job_needs_run() -> None:
    assert error_of("name: x\n").message.startswith("run: a command job needs a run script")


def test_setup_alone_is_an_error() -> None:
    err = error_of("setup: pip install x\n")
    assert err.message == "run: a command job needs a run script; setup alone does nothing"


def test_blank_run_is_an_error() -> None:
    assert error_of("run: '  '\n").message == "run: must not be empty"


def test_more_than_one_node_is_not_supported_yet() -> None:
    err = error_of("run: x\nnum_nodes: 2\n")
    assert "num_nodes > 1 is not supported yet" in err.message
    assert err.details["field"] == "num_nodes"


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        ("run: {}\n", "run", "expected a string, got a mapping"),
        ("run: x\nsetup: [a]\n", "setup", "expected a string, got a list"),
        ("run: x\nname: 5\n", "name", "expected a string, got an integer"),
        ("run: x\nresources:\n  cpus: [1]\n", "resources.cpus", "expected a whole number"),
        ("run: x\nresources:\n  cpus: 1.5\n", "resources.cpus", "expected a whole number"),
        ("run: x\nresources:\n  cpus: four\n", "resources.cpus", "not a vCPU count"),
        ("run: x\nresources:\n  cpus: 0\n", "resources.cpus", "between 1"),
        ("run: x\nresources:\n  use_spot: maybe\n", "resources.use_spot", "expected true or false"),
        ("run: x\nresources:\n  memory: lots\n", "resources.memory", "not a memory size"),
        ("run: x\nresources: [cpus]\n", "resources", "expected a mapping, got a list"),
        ("run: x\nnum_nodes: two\n", "num_nodes", "expected a whole number"),
        ("run: x\nnum_nodes: 0\n", "num_nodes", "between 1"),
        ("run: x\nenvs: [A]\n", "envs", "expected a mapping"),
        ("run: x\nflopex: 3\n", "flopex", "expected a mapping, got an integer"),
        ("run: x\nworkdir: ''\n", "workdir", "must not be empty"),
    ],
)
def test_type_errors_name_the_field_and_the_expected_type(
    text: str, field: str, words: str
) -> None:
    err = error_of(text)
    assert err.details["field"] == field
    assert err.message.startswith(f"{field}: ")
    assert words in err.message


def test_env_values_become_strings() -> None:
    spec = parse("run: x\nenvs:\n  A: 1\n  B: true\n  C: off\n  D: 1.5\n  E: text\n")
    assert spec.envs == {"A": "1", "B": "true", "C": "false", "D": "1.5", "E": "text"}


@pytest.mark.parametrize("section", ["envs", "secrets"])
@pytest.mark.parametrize(
    ("entry", "field", "words"),
    [
        ("1BAD: x", "1BAD", "not a variable name"),
        ("WITH-DASH: x", "WITH-DASH", "not a variable name"),
        ("FLOPEX_TOKEN: x", "FLOPEX_TOKEN", "reserved"),
        ("EMPTY:", "EMPTY", "has no value"),
        ("LIST: [1]", "LIST", "expected a string, number or boolean"),
    ],
)
def test_bad_variables_are_refused(section: str, entry: str, field: str, words: str) -> None:
    err = error_of(f"run: x\n{section}:\n  {entry}\n")
    assert err.details["field"] == f"{section}.{field}"
    assert words in err.message
    assert err.details["line"] == 3


def test_a_variable_cannot_be_both_env_and_secret() -> None:
    err = error_of("run: x\nenvs: {TOKEN: a}\nsecrets: {TOKEN: b}\n")
    assert err.details["field"] == "secrets.TOKEN"
    assert "also set in envs" in err.message


# --- money, time, deadline -------------------------------------------------------------------


def test_price_cap_and_budget_are_decimal_credits_in_microcredits() -> None:
    spec = parse("run: x\nflopex:\n  max_price_per_hour: 2.5\n  budget: '10.000001'\n")
    assert spec.max_price_ucr_per_hour == 2_500_000
    assert spec.budget_ucr == 10_000_001


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("0", "is zero"),
        ("-1", "is negative"),
        ("0.0000001", "finer than 1 µcr"),
        ("lots", "not a number"),
        ("[1]", "not a number"),
        ("10000000000000", "too large"),
    ],
)
@pytest.mark.parametrize("key", ["max_price_per_hour", "budget"])
def test_bad_amounts_are_spec_errors_naming_the_field(key: str, value: str, words: str) -> None:
    err = error_of(f"run: x\nflopex:\n  {key}: {value}\n")
    assert err.message.startswith(f"flopex.{key}: ")
    assert words in err.message
    assert err.details["field"] == f"flopex.{key}"
    assert (err.details["line"], err.details["column"]) == (3, 3)
    assert "µcr" in err.hint


def test_hours_become_whole_seconds() -> None:
    spec = parse("run: x\nflopex:\n  estimated_hours: 0.5\n  max_hours: '2'\n")
    assert (spec.estimated_s, spec.max_s) == (1800, 7200)


def test_max_hours_below_the_estimate_is_refused() -> None:
    err = error_of("run: x\nflopex:\n  estimated_hours: 2\n  max_hours: 1\n")
    assert err.details["field"] == "flopex.max_hours"


@pytest.mark.parametrize("value", ["0", "-1", "soon", "2h"])
def test_bad_hours_are_refused(value: str) -> None:
    assert error_of(f"run: x\nflopex:\n  max_hours: {value}\n").details["field"] == (
        "flopex.max_hours"
    )


@pytest.mark.parametrize(
    ("value", "delta"),
    [("6h", timedelta(hours=6)), ("1h30m", timedelta(minutes=90)), ("90", timedelta(seconds=90))],
)
def test_deadline_as_a_duration_is_resolved_against_now(value: str, delta: timedelta) -> None:
    spec = parse(f"run: x\nflopex:\n  deadline: {value}\n")
    assert spec.deadline_at == NOW + delta


def test_deadline_as_rfc3339_is_converted_to_utc() -> None:
    spec = parse("run: x\nflopex:\n  deadline: '2030-01-02T09:00:00+09:00'\n")
    assert spec.deadline_at == datetime(2030, 1, 2, 0, 0, tzinfo=UTC)
    assert spec.deadline_at.tzinfo is UTC


def test_deadline_as_an_unquoted_yaml_timestamp_works() -> None:
    spec = parse("run: x\nflopex:\n  deadline: 2030-01-02T00:00:00Z\n")
    assert spec.deadline_at == datetime(2030, 1, 2, tzinfo=UTC)


def test_deadline_from_json_with_offset() -> None:
    tokyo = timezone(timedelta(hours=9))
    spec = parse_spec({"run": "x", "flopex": {"deadline": "2030-01-02T09:00:00+09:00"}}, now=NOW)
    assert spec.deadline_at == datetime(2030, 1, 2, 9, tzinfo=tokyo)


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("2029-12-31T00:00:00Z", "not in the future"),
        ("'2030-01-01T12:00:00Z'", "not in the future"),
        ("2030-01-02T00:00:00", "no timezone"),
        ("2030-01-02", "is a date; give a time too"),
        ("'2030-01-02'", "no timezone"),
        ("'2030-13-45T00:00:00Z'", "not an RFC 3339 time"),
        ("tomorrow", "not a duration"),
        ("0s", "more than zero"),
        ("[6h]", "expected an RFC 3339 time"),
        ("999999999d", "too far in the future"),
    ],
)
def test_bad_deadlines_are_refused(value: str, words: str) -> None:
    err = error_of(f"run: x\nflopex:\n  deadline: {value}\n")
    assert err.details["field"] == "flopex.deadline"
    assert words in err.message


# --- objective, inputs, residency, retries, verification -------------------------------------


def test_objective_weights_left_out_are_zero() -> None:
    spec = parse("run: x\nflopex:\n  objective: {time: 1, carbon: 0.5}\n")
    assert spec.objective == Objective(cost=0.0, time=1.0, carbon=0.5)


@pytest.mark.parametrize(
    ("objective", "field", "words"),
    [
        ("{cost: -1}", "flopex.objective.cost", "between 0"),
        ("{cost: 0, time: 0}", "flopex.objective", "at least one"),
        ("{}", "flopex.objective", "at least one"),
        ("{time: yes}", "flopex.objective.time", "expected a number"),
        ("{carbon: .nan}", "flopex.objective.carbon", "expected a number"),
        ("fast", "flopex.objective", "expected a mapping"),
    ],
)
def test_bad_objectives_are_refused(objective: str, field: str, words: str) -> None:
    err = error_of(f"run: x\nflopex:\n  objective: {objective}\n")
    assert err.details["field"] == field
    assert words in err.message


def test_inputs_take_sizes_in_bytes_or_with_units() -> None:
    spec = parse(
        "run: x\nflopex:\n  inputs:\n    - {uri: 's3://a', size: 1000, region: jp-tokyo}\n"
        "    - {uri: 'https://b', size: 2GB}\n    - {uri: 'c', size: '12'}\n"
    )
    assert spec.inputs == (
        InputData("s3://a", 1000, "jp-tokyo"),
        InputData("https://b", 2 * GIB, None),
        InputData("c", 12, None),
    )


@pytest.mark.parametrize(
    ("item", "field", "words"),
    [
        ("{uri: a}", "flopex.inputs[0].size", "required"),
        ("{size: 1}", "flopex.inputs[0].uri", "required"),
        ("{uri: a, size: -1}", "flopex.inputs[0].size", "between 0"),
        ("{uri: a, size: 1.5}", "flopex.inputs[0].size", "expected a whole number"),
        ("{uri: a, size: 1, region: Tokyo}", "flopex.inputs[0].region", "lowercase"),
        ("{uri: a, size: 1, bytes: 2}", "flopex.inputs[0].bytes", "unknown field"),
        ("s3://a", "flopex.inputs[0]", "expected a mapping"),
    ],
)
def test_bad_inputs_are_refused(item: str, field: str, words: str) -> None:
    err = error_of(f"run: x\nflopex:\n  inputs:\n    - {item}\n")
    assert err.details["field"] == field
    assert words in err.message


def test_data_residency_is_a_list_of_regions() -> None:
    spec = parse("run: x\nflopex:\n  data_residency: [jp-tokyo, jp-osaka, jp-tokyo]\n")
    assert spec.data_residency == ("jp-tokyo", "jp-osaka")


def test_region_outside_data_residency_is_refused() -> None:
    err = error_of("run: x\nresources:\n  region: us-west\nflopex:\n  data_residency: [jp-tokyo]\n")
    assert err.details["field"] == "resources.region"
    assert "outside flopex.data_residency" in err.message
    assert err.details["line"] == 3


def test_region_inside_data_residency_is_accepted() -> None:
    spec = parse("run: x\nresources:\n  region: jp-tokyo\nflopex:\n  data_residency: [jp-tokyo]\n")
    assert spec.options[0].region == "jp-tokyo"


def test_regions_must_be_lowercase_with_a_suggestion() -> None:
    err = error_of("run: x\nresources:\n  region: JP_Tokyo\n")
    assert "did you mean 'jp-tokyo'?" in err.message
    assert err.details["suggestion"] == "jp-tokyo"


@pytest.mark.parametrize(
    ("residency", "field"),
    [("[]", "flopex.data_residency"), ("[jp-tokyo, 'a b!']", "flopex.data_residency[1]")],
)
def test_bad_data_residency_is_refused(residency: str, field: str) -> None:
    assert error_of(f"run: x\nflopex:\n  data_residency: {residency}\n").details["field"] == field


def test_on_preempt_and_max_attempts_are_read() -> None:
    spec = parse("run: x\nflopex:\n  on_preempt: fail\n  max_attempts: 3\n")
    assert (spec.on_preempt, spec.max_attempts) == (OnPreempt.FAIL, 3)


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ("on_preempt: retry", "flopex.on_preempt"),
        ("max_attempts: 0", "flopex.max_attempts"),
        ("max_attempts: 1000", "flopex.max_attempts"),
    ],
)
def test_bad_retry_settings_are_refused(entry: str, field: str) -> None:
    assert error_of(f"run: x\nflopex:\n  {entry}\n").details["field"] == field


def test_verification_is_kept_as_given() -> None:
    spec = parse("run: x\nflopex:\n  verification: {canaries: 2, redundant: [a, b]}\n")
    assert spec.verification == {"canaries": 2, "redundant": ["a", "b"]}


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("[1]", "flopex.verification"),
        ("{when: 2030-01-01}", "flopex.verification.when"),
        ("{x: .inf}", "flopex.verification.x"),
    ],
)
def test_verification_must_be_a_json_mapping(value: str, field: str) -> None:
    assert error_of(f"run: x\nflopex:\n  verification: {value}\n").details["field"] == field


# --- inference jobs --------------------------------------------------------------------------


def test_an_inference_block_makes_an_inference_job() -> None:
    spec = parse("resources:\n  accelerators: H100:1\n" + INFERENCE)
    assert spec.kind is JobKind.INFERENCE
    assert spec.run is None
    assert spec.inference == InferenceSpec(
        model="tiny-llama",
        weights_sha256=SHA,
        dtype="bfloat16",
        prompts=((1, 2, 3), (4,)),
        sampling=Sampling(temperature=0.7, top_p=0.9, top_k=40, max_tokens=16, seed=7),
    )


def test_inference_sampling_defaults_to_plain_sampling() -> None:
    text = INFERENCE.replace("temperature: 0.7, top_p: 0.9, top_k: 40, ", "")
    assert parse(text).inference == InferenceSpec(
        "tiny-llama", SHA, "bfloat16", ((1, 2, 3), (4,)), Sampling(1.0, 1.0, 0, 16, 7)
    )


@pytest.mark.parametrize("key", ["run", "setup"])
def test_an_inference_job_has_no_commands(key: str) -> None:
    err = error_of(f"{key}: echo\n" + INFERENCE)
    assert err.details["field"] == key
    assert "runs no commands" in err.message


@pytest.mark.parametrize(
    ("old", "new", "field"),
    [
        (f"weights_sha256: {SHA}", "weights_sha256: abc", "flopex.inference.weights_sha256"),
        ("model: tiny-llama", "model: ''", "flopex.inference.model"),
        ("dtype: bfloat16", "dtype: [bf16]", "flopex.inference.dtype"),
        ("[[1, 2, 3], [4]]", "[[1, -2]]", "flopex.inference.prompts[0][1]"),
        ("[[1, 2, 3], [4]]", "[[1], []]", "flopex.inference.prompts[1]"),
        ("[[1, 2, 3], [4]]", "[]", "flopex.inference.prompts"),
        ("[[1, 2, 3], [4]]", "[1, 2]", "flopex.inference.prompts[0]"),
        ("seed: 7", "seed: -1", "flopex.inference.sampling.seed"),
        (", seed: 7", "", "flopex.inference.sampling.seed"),
        ("max_tokens: 16", "max_tokens: 0", "flopex.inference.sampling.max_tokens"),
        ("top_p: 0.9", "top_p: 0", "flopex.inference.sampling.top_p"),
        ("top_p: 0.9", "top_p: 1.5", "flopex.inference.sampling.top_p"),
        ("temperature: 0.7", "temperature: -1", "flopex.inference.sampling.temperature"),
        ("top_k: 40", "topk: 40", "flopex.inference.sampling.topk"),
    ],
)
def test_bad_inference_fields_are_refused(old: str, new: str, field: str) -> None:
    assert old in INFERENCE
    err = error_of(INFERENCE.replace(old, new))
    assert err.details["field"] == field
    assert err.message.startswith(field)


def test_weights_hash_is_lowercased() -> None:
    spec = parse(INFERENCE.replace(SHA, SHA.upper()))
    assert spec.inference is not None and spec.inference.weights_sha256 == SHA


# --- the public, stored form -----------------------------------------------------------------

FULL = """
name: full
workdir: .
envs: {MODE: fast}
secrets: {HF_TOKEN: hf_secret_value}
setup: make
run: ./go
resources:
  cpus: 2
  memory: 1.5
  use_spot: true
  ordered:
    - accelerators: {A100:8, H100:8}
    - region: jp-tokyo
flopex:
  max_price_per_hour: 12.5
  budget: 100
  estimated_hours: 1
  max_hours: 1.5
  deadline: 1d
  objective: {cost: 1, carbon: 2}
  inputs: [{uri: 's3://d', size: 3GB, region: jp-osaka}]
  data_residency: [jp-tokyo, jp-osaka]
  on_preempt: fail
  max_attempts: 2
  verification: {canaries: 1}
"""


def test_public_dict_redacts_secret_values_but_keeps_their_names() -> None:
    public = parse(FULL).public_dict()
    assert public["secrets"] == {"HF_TOKEN": "<redacted>"}
    assert "hf_secret_value" not in json.dumps(public)
    assert public["envs"] == {"MODE": "fast"}


def test_public_dict_is_json_with_money_as_microcredits_and_times_as_rfc3339() -> None:
    public = json.loads(json.dumps(parse(FULL).public_dict()))
    flopex = public["flopex"]
    assert flopex["max_price_per_hour_ucr"] == 12_500_000
    assert flopex["budget_ucr"] == 100_000_000
    assert (flopex["estimated_s"], flopex["max_s"]) == (3600, 5400)
    assert flopex["deadline"] == "2030-01-02T12:00:00Z"
    assert public["resources"]["ordered"][0] == {
        "accelerators": "A100:8",
        "cpus": 2,
        "memory_bytes": 3 * GIB // 2,
        "region": None,
        "use_spot": True,
    }
    assert (public["run"], public["setup"]) == ("./go", "make")


@pytest.mark.parametrize("text", [FULL, "run: x\n", "resources: {cpus: 2}\n" + INFERENCE])
def test_public_dict_parses_back_to_the_same_spec(text: str) -> None:
    spec = parse(text)
    again = parse_spec(json.loads(json.dumps(spec.public_dict())), now=NOW)
    assert again == JobSpec(
        **{**spec.__dict__, "secrets": dict.fromkeys(spec.secrets, "<redacted>")}
    )


def test_alternatives_expand_in_order_across_entries() -> None:
    spec = parse(FULL)
    assert [(o.accelerator, o.region) for o in spec.options] == [
        ("A100", None),
        ("H100", None),
        (None, "jp-tokyo"),
    ]
    assert spec.ordered is True


def test_exact_and_human_forms_of_one_quantity_cannot_both_be_given() -> None:
    err = data_error_of({"run": "x", "flopex": {"budget": "1", "budget_ucr": 1_000_000}})
    assert err.message == "flopex.budget_ucr: give budget or budget_ucr, not both"


def test_non_mapping_data_is_refused() -> None:
    err = data_error_of(["run", "x"])
    assert err.message.startswith("task spec: ")
    assert err.details == {"field": None}


# --- documentation ---------------------------------------------------------------------------


def test_known_fields_list_every_accepted_dotted_name() -> None:
    fields = known_fields()
    for name in [
        "run",
        "resources.accelerators",
        "resources.any_of[].accelerators",
        "resources.ordered[].region",
        "flopex.max_price_per_hour",
        "flopex.objective.carbon",
        "flopex.inputs[].size",
        "flopex.inference.sampling.seed",
    ]:
        assert name in fields
    assert "resources.cloud" not in fields
    assert len(fields) == len(set(fields))
