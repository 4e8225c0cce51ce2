"""Hardware detection, tested on recorded ``nvidia-smi`` output and fake cgroup files (no GPU)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from flopex.agent.hardware import (
    GIB,
    MIB,
    Gpu,
    cgroup_limits,
    detect,
    parse_nvidia_smi_csv,
    read_cfs_quota,
    read_cpu_max,
    read_meminfo_total,
    read_memory_limit,
)
from flopex.errors import RequestInvalid

DATA = Path(__file__).parent / "data"


def _smi(name: str) -> str:
    return (DATA / f"nvidia_smi_{name}.txt").read_text("utf-8")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# -- nvidia-smi output -----------------------------------------------------------------------
def test_h100_box_maps_vendor_names_to_the_catalog_with_memory_and_driver() -> None:
    gpus, driver = parse_nvidia_smi_csv(_smi("h100x8"))
    assert [g.index for g in gpus] == list(range(8))
    assert {g.name for g in gpus} == {"H100"}
    assert {g.raw_name for g in gpus} == {"NVIDIA H100 80GB HBM3"}
    assert all(g.memory_bytes == 81559 * MIB for g in gpus)
    assert all(g.uuid.startswith("GPU-") and not g.simulated for g in gpus)
    assert len({g.uuid for g in gpus}) == 8
    assert driver == "550.54.15"


def test_a100_80gb_maps_to_its_own_catalog_entry() -> None:
    gpus, driver = parse_nvidia_smi_csv(_smi("a100"))
    assert [(g.name, g.memory_bytes) for g in gpus] == [("A100-80GB", 81920 * MIB)]
    assert driver == "535.129.03"


def test_mixed_box_keeps_each_model() -> None:
    gpus, driver = parse_nvidia_smi_csv(_smi("mixed"))
    assert [g.name for g in gpus] == ["RTX4090", "L4"]
    assert [g.memory_bytes for g in gpus] == [24564 * MIB, 23034 * MIB]
    assert driver == "550.90.07"


@pytest.mark.parametrize("sample", ["garbage", "empty"])
def test_garbage_or_empty_output_means_no_gpu(sample: str) -> None:
    assert parse_nvidia_smi_csv(_smi(sample)) == ([], None)


def test_unknown_model_keeps_its_raw_name_and_odd_fields_are_tolerated() -> None:
    text = "0, GPU-1, NVIDIA RTX PRO 6000, Blackwell, [N/A], [N/A]\nnot, a, gpu, line, x\n"
    (gpu,), driver = parse_nvidia_smi_csv(text)
    assert gpu.name == gpu.raw_name == "NVIDIA RTX PRO 6000,Blackwell"
    assert gpu.memory_bytes == 0
    assert driver is None


# -- detect ----------------------------------------------------------------------------------
def test_detect_reads_cpus_and_memory_of_this_machine() -> None:
    hw = detect(run_nvidia_smi=lambda: None, torch_gpus=list)
    assert hw.cpus >= 1
    assert hw.memory_bytes > 0
    assert hw.os
    assert (hw.gpus, hw.accelerator, hw.simulated, hw.driver) == ((), None, False, None)


def test_detect_lists_real_gpus_with_their_driver() -> None:
    hw = detect(run_nvidia_smi=lambda: _smi("h100x8"), torch_gpus=list)
    assert (len(hw.gpus), hw.accelerator, hw.driver, hw.simulated) == (
        8,
        "H100",
        "550.54.15",
        False,
    )


def test_mixed_box_has_no_single_accelerator() -> None:
    hw = detect(run_nvidia_smi=lambda: _smi("mixed"), torch_gpus=list)
    assert len(hw.gpus) == 2
    assert hw.accelerator is None


def test_unknown_model_is_not_offered_as_an_accelerator() -> None:
    hw = detect(run_nvidia_smi=lambda: "0, GPU-1, Mystery GPU, 1024, 1.0\n", torch_gpus=list)
    assert hw.gpus[0].name == "Mystery GPU"
    assert hw.accelerator is None


def test_simulated_devices_come_from_the_catalog_and_are_labelled() -> None:
    hw = detect(devices="H100:2", simulated=True, run_nvidia_smi=lambda: _smi("a100"))
    assert hw.simulated
    assert hw.accelerator == "H100"
    assert [(g.index, g.uuid, g.simulated) for g in hw.gpus] == [
        (0, "SIM-0", True),
        (1, "SIM-1", True),
    ]
    assert all(g.memory_bytes == 80 * GIB for g in hw.gpus)
    assert hw.driver is None


def test_devices_pick_matching_real_gpus() -> None:
    hw = detect(devices="h100:2", run_nvidia_smi=lambda: _smi("h100x8"), torch_gpus=list)
    assert [g.index for g in hw.gpus] == [0, 1]
    assert (hw.accelerator, hw.simulated) == ("H100", False)


def test_devices_pick_one_model_from_a_mixed_box() -> None:
    hw = detect(devices="L4:1", run_nvidia_smi=lambda: _smi("mixed"), torch_gpus=list)
    assert [(g.index, g.name) for g in hw.gpus] == [(1, "L4")]
    assert hw.accelerator == "L4"


@pytest.mark.parametrize(
    ("devices", "sample", "found"),
    [("H100:1", "a100", "1× A100-80GB"), ("H100:9", "h100x8", "8× H100"), ("L4:1", "empty", "no")],
)
def test_devices_that_real_gpus_do_not_match_ask_for_simulated(
    devices: str, sample: str, found: str
) -> None:
    with pytest.raises(RequestInvalid) as info:
        detect(devices=devices, run_nvidia_smi=lambda: _smi(sample), torch_gpus=list)
    assert found in info.value.message
    assert "--simulated" in info.value.message


def test_devices_cpu_lists_no_gpu_even_on_a_gpu_box() -> None:
    hw = detect(devices="cpu", run_nvidia_smi=lambda: _smi("h100x8"), torch_gpus=list)
    assert (hw.gpus, hw.accelerator, hw.simulated) == ((), None, False)


def test_unknown_device_name_suggests_the_closest() -> None:
    with pytest.raises(RequestInvalid, match=r"unknown device 'H10' \(did you mean H100\?\)"):
        detect(devices="H10:1", simulated=True)


def test_simulated_without_devices_is_refused() -> None:
    with pytest.raises(RequestInvalid, match="--devices"):
        detect(simulated=True)


def test_failing_probe_means_no_gpu_not_an_error() -> None:
    def broken() -> str | None:
        raise OSError("nvidia-smi vanished")

    assert detect(run_nvidia_smi=broken, torch_gpus=list).gpus == ()


def test_torch_is_asked_when_nvidia_smi_finds_nothing() -> None:
    gpu = Gpu(0, "L4", "NVIDIA L4", 23034 * MIB, "GPU-t", False)
    hw = detect(run_nvidia_smi=lambda: _smi("garbage"), torch_gpus=lambda: [gpu])
    assert (hw.gpus, hw.accelerator, hw.driver) == ((gpu,), "L4", None)


def test_real_nvidia_smi_is_run_with_the_csv_query(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = _write(
        tmp_path / "nvidia-smi",
        "#!/bin/sh\n"
        '[ "$1" = "--query-gpu=index,uuid,name,memory.total,driver_version" ] || exit 9\n'
        f"cat '{DATA / 'nvidia_smi_a100.txt'}'\n",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")
    assert detect(torch_gpus=list).accelerator == "A100-80GB"
    _write(script, "#!/bin/sh\necho 'NVIDIA-SMI has failed' >&2\nexit 9\n")
    assert detect(torch_gpus=list).gpus == ()


def test_to_dict_is_json_safe() -> None:
    hw = detect(devices="L4:2", simulated=True)
    data = json.loads(json.dumps(hw.to_dict()))
    assert data["gpus"][1] == {
        "index": 1,
        "name": "L4",
        "raw_name": "L4",
        "memory_bytes": 24 * GIB,
        "uuid": "SIM-1",
        "simulated": True,
    }
    assert (data["accelerator"], data["simulated"], data["cpus"]) == ("L4", True, hw.cpus)


# -- cgroup and /proc files ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("200000 100000", 2),
        ("max 100000", None),
        ("150000 100000", 1),
        ("50000 100000", 1),
        ("", None),
    ],
)
def test_cgroup_v2_cpu_max(tmp_path: Path, text: str, cpus: int | None) -> None:
    assert read_cpu_max(_write(tmp_path / "cpu.max", text + "\n")) == cpus


def test_missing_cgroup_files_mean_no_cap(tmp_path: Path) -> None:
    assert read_cpu_max(tmp_path / "cpu.max") is None
    assert read_memory_limit(tmp_path / "memory.max") is None
    assert read_cfs_quota(tmp_path / "q", tmp_path / "p") is None


@pytest.mark.parametrize(("quota", "cpus"), [("400000", 4), ("-1", None)])
def test_cgroup_v1_cfs_quota(tmp_path: Path, quota: str, cpus: int | None) -> None:
    period = _write(tmp_path / "cpu.cfs_period_us", "100000\n")
    assert read_cfs_quota(_write(tmp_path / "cpu.cfs_quota_us", quota + "\n"), period) == cpus


@pytest.mark.parametrize(
    ("text", "limit"),
    [("max", None), ("4294967296", 4 * GIB), ("9223372036854771712", None), ("junk", None)],
)
def test_cgroup_memory_limit(tmp_path: Path, text: str, limit: int | None) -> None:
    assert read_memory_limit(_write(tmp_path / "memory.max", text + "\n")) == limit


def test_meminfo_total_is_in_bytes(tmp_path: Path) -> None:
    path = _write(tmp_path / "meminfo", "MemTotal:       16318048 kB\nMemFree:  1 kB\n")
    assert read_meminfo_total(path) == 16318048 * 1024


def test_cgroup_v2_takes_the_tightest_cap_of_this_cgroup_and_its_ancestors(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cgroup.controllers", "cpu memory\n")
    _write(root / "cpu.max", "max 100000\n")
    _write(root / "a" / "b" / "cpu.max", "300000 100000\n")
    _write(root / "a" / "cpu.max", "200000 100000\n")
    _write(root / "a" / "b" / "memory.max", "max\n")
    _write(root / "a" / "memory.max", f"{2 * GIB}\n")
    proc = _write(tmp_path / "self_cgroup", "0::/a/b\n")
    assert cgroup_limits(root, proc) == (2, 2 * GIB)


def test_cgroup_v1_reads_the_cpu_and_memory_hierarchies(tmp_path: Path) -> None:
    root = tmp_path / "cgroup"
    _write(root / "cpu,cpuacct" / "cpu.cfs_quota_us", "-1\n")
    _write(root / "cpu,cpuacct" / "cpu.cfs_period_us", "100000\n")
    _write(root / "cpu,cpuacct" / "job" / "cpu.cfs_quota_us", "300000\n")
    _write(root / "cpu,cpuacct" / "job" / "cpu.cfs_period_us", "100000\n")
    _write(root / "memory" / "memory.limit_in_bytes", "9223372036854771712\n")
    _write(root / "memory" / "job" / "memory.limit_in_bytes", f"{GIB}\n")
    proc = _write(tmp_path / "self_cgroup", "4:memory:/job\n2:cpu,cpuacct:/job\n0::/\n")
    assert cgroup_limits(root, proc) == (3, GIB)


def test_no_cgroup_means_no_cap(tmp_path: Path) -> None:
    assert cgroup_limits(tmp_path / "none", tmp_path / "none" / "cgroup") == (None, None)
