"""What this machine offers: usable vCPUs and memory (cgroup aware) and its NVIDIA GPUs.

GPUs come from ``nvidia-smi`` (then ``torch.cuda`` if importable); ``--devices H100:2
--simulated`` lists catalog devices that are not there, labelled simulated.
"""

from __future__ import annotations

import csv
import importlib
import os
import platform
import shutil
import subprocess
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from flopex.domain.devices import canonical_accelerator, catalog, parse_accelerator
from flopex.errors import RequestInvalid

MIB = 2**20
GIB = 2**30
MAX_GPUS = 64  # bound on GPUs per node, real or simulated
NVIDIA_SMI_TIMEOUT_S = 5.0
NVIDIA_SMI_QUERY = "--query-gpu=index,uuid,name,memory.total,driver_version"
CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")
PROC_MEMINFO = Path("/proc/meminfo")
# cgroup v1 writes "no limit" as a huge page-aligned number (e.g. 9223372036854771712).
_V1_NO_LIMIT_BYTES = 2**62


@dataclass(frozen=True)
class Gpu:
    """One GPU: catalog name (or the raw name if unknown), memory in bytes, uuid."""

    index: int
    name: str
    raw_name: str
    memory_bytes: int
    uuid: str
    simulated: bool


@dataclass(frozen=True)
class Hardware:
    """The facts an agent registers: vCPUs, memory, GPUs and whether they are simulated."""

    cpus: int
    memory_bytes: int
    gpus: tuple[Gpu, ...]
    accelerator: str | None
    simulated: bool
    os: str
    driver: str | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict (GPUs as a list of dicts)."""
        out = asdict(self)
        out["gpus"] = [asdict(g) for g in self.gpus]
        return out


# -- GPUs ------------------------------------------------------------------------------------
def _gpu(index: int, raw_name: str, memory_bytes: int, uuid: str, *, simulated: bool) -> Gpu:
    name = canonical_accelerator(raw_name) or raw_name
    return Gpu(index, name, raw_name, memory_bytes, uuid, simulated)


def parse_nvidia_smi_csv(text: str) -> tuple[list[Gpu], str | None]:
    """GPUs and driver version from ``nvidia-smi --query-gpu=index,uuid,name,memory.total,
    driver_version --format=csv,noheader,nounits``; lines that do not parse are skipped."""
    gpus: list[Gpu] = []
    driver: str | None = None
    for row in csv.reader(text.splitlines()[:MAX_GPUS], skipinitialspace=True):
        if len(row) < 5:
            continue
        # A name containing a comma spans several fields: the other four are at the ends.
        index_text, uuid, *name_parts, memory_text, driver_text = (f.strip() for f in row)
        try:
            index = int(index_text)
        except ValueError:
            continue
        memory_mib = int(memory_text) if memory_text.isdigit() else 0
        gpus.append(_gpu(index, ",".join(name_parts), memory_mib * MIB, uuid, simulated=False))
        if driver is None and driver_text and not driver_text.startswith("["):
            driver = driver_text
    return gpus, driver


def _run_nvidia_smi() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run(
            [exe, NVIDIA_SMI_QUERY, "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=NVIDIA_SMI_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


def _torch_gpus() -> list[Gpu]:
    """CUDA devices as torch sees them; ``[]`` when torch is absent or has no CUDA."""
    try:
        torch = importlib.import_module("torch")
        if not torch.cuda.is_available():
            return []
        gpus = []
        for i in range(min(int(torch.cuda.device_count()), MAX_GPUS)):
            props = torch.cuda.get_device_properties(i)
            uuid = str(getattr(props, "uuid", "") or f"cuda:{i}")
            gpus.append(_gpu(i, str(props.name), int(props.total_memory), uuid, simulated=False))
        return gpus
    except Exception:  # any failure of an optional probe means "no GPU from torch"
        return []


def simulated_gpus(name: str, count: int) -> list[Gpu]:
    """``count`` catalog devices named ``name`` that are not really there (uuid ``SIM-<n>``)."""
    memory_bytes = catalog()[name].memory_gib * GIB
    return [Gpu(i, name, name, memory_bytes, f"SIM-{i}", True) for i in range(count)]


def describe_gpus(gpus: list[Gpu]) -> str:
    """A short human summary such as ``8× H100`` or ``1× RTX4090 + 1× L4``."""
    if not gpus:
        return "no NVIDIA GPU"
    return " + ".join(f"{n}× {name}" for name, n in Counter(g.name for g in gpus).items())


def _accelerator(gpus: list[Gpu]) -> str | None:
    names = {g.name for g in gpus}
    if len(names) != 1:
        return None
    (name,) = names
    return name if name in catalog() else None


# -- CPUs and memory -------------------------------------------------------------------------
def _read(path: Path) -> str | None:
    try:
        return path.read_text("utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None


def _quota_cpus(quota_us: int, period_us: int) -> int | None:
    if quota_us <= 0 or period_us <= 0:
        return None
    return max(1, quota_us // period_us)


def read_cpu_max(path: Path) -> int | None:
    """vCPUs allowed by a cgroup v2 ``cpu.max`` ("200000 100000" -> 2); ``None`` if no cap."""
    fields = (_read(path) or "").split()
    if len(fields) != 2 or not fields[0].isdigit() or not fields[1].isdigit():
        return None
    return _quota_cpus(int(fields[0]), int(fields[1]))


def read_cfs_quota(quota_path: Path, period_path: Path) -> int | None:
    """vCPUs allowed by cgroup v1 ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (-1: no cap)."""
    try:
        return _quota_cpus(int(_read(quota_path) or ""), int(_read(period_path) or ""))
    except ValueError:
        return None


def read_memory_limit(path: Path) -> int | None:
    """Bytes allowed by a v2 ``memory.max`` or v1 ``memory.limit_in_bytes``; ``None`` if no cap."""
    text = _read(path) or ""
    if not text.isdigit() or int(text) >= _V1_NO_LIMIT_BYTES:
        return None
    return int(text)


def read_meminfo_total(path: Path = PROC_MEMINFO) -> int | None:
    """``MemTotal`` of ``/proc/meminfo`` in bytes."""
    for line in (_read(path) or "").splitlines():
        fields = line.split()
        if len(fields) >= 2 and fields[0] == "MemTotal:" and fields[1].isdigit():
            return int(fields[1]) * 1024
    return None


def _cgroup_dirs(mount: Path, proc_cgroup_text: str, controller: str) -> list[Path]:
    """This process's cgroup under ``mount`` and its ancestors up to ``mount``: a cap set on any
    of them applies. ``controller`` is "" for the v2 unified hierarchy."""
    rel = "/"
    for line in proc_cgroup_text.splitlines():
        _, _, rest = line.partition(":")
        names, _, path = rest.partition(":")
        if controller in names.split(","):
            rel = path
    parts = [p for p in rel.split("/") if p and p not in {".", ".."}]
    return [mount.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _smallest(values: list[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return min(present) if present else None


def cgroup_limits(
    root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_SELF_CGROUP
) -> tuple[int | None, int | None]:
    """(vCPU cap, memory cap in bytes) from cgroup v2, else v1; ``None`` where there is none."""
    procs = _read(proc_cgroup) or ""
    if (root / "cgroup.controllers").exists():
        dirs = _cgroup_dirs(root, procs, "")
        cpus = _smallest([read_cpu_max(d / "cpu.max") for d in dirs])
        return cpus, _smallest([read_memory_limit(d / "memory.max") for d in dirs])
    cpu_mount = next((m for m in (root / "cpu", root / "cpu,cpuacct") if m.is_dir()), root / "cpu")
    cpu_dirs = _cgroup_dirs(cpu_mount, procs, "cpu")
    mem_dirs = _cgroup_dirs(root / "memory", procs, "memory")
    cpus = _smallest(
        [read_cfs_quota(d / "cpu.cfs_quota_us", d / "cpu.cfs_period_us") for d in cpu_dirs]
    )
    return cpus, _smallest([read_memory_limit(d / "memory.limit_in_bytes") for d in mem_dirs])


def _machine_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return os.cpu_count() or 1


def _machine_memory_bytes() -> int:
    total = read_meminfo_total()
    if total is not None:
        return total
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 0


# -- detection -------------------------------------------------------------------------------
def _real_gpus(
    run_nvidia_smi: Callable[[], str | None], torch_gpus: Callable[[], list[Gpu]]
) -> tuple[list[Gpu], str | None]:
    try:
        gpus, driver = parse_nvidia_smi_csv(run_nvidia_smi() or "")
    except Exception:  # detection never raises: a broken probe means no GPU from it
        gpus, driver = [], None
    return (gpus, driver) if gpus else (torch_gpus(), None)


def _wanted(devices: str | None, simulated: bool) -> tuple[str, int] | None:
    """The ``NAME:COUNT`` asked for, or ``None`` for "whatever is there" / "cpu"."""
    if devices is None:
        if simulated:
            raise RequestInvalid(
                "--simulated needs --devices NAME:COUNT", hint="e.g. --devices H100:2 --simulated"
            )
        return None
    if devices.strip().lower() == "cpu":
        return None
    name, count = parse_accelerator(devices, field="--devices")
    if count > MAX_GPUS:
        raise RequestInvalid(f"--devices: at most {MAX_GPUS} devices per node, got {count}")
    return name, count


def _pick(found: list[Gpu], devices: str, name: str, count: int) -> list[Gpu]:
    picked = [g for g in found if g.name == name][:count]
    if len(picked) < count:
        raise RequestInvalid(
            f"--devices {devices}: this machine has {describe_gpus(found)}; "
            "pass --simulated to list simulated devices",
            hint="without --devices the agent lists the GPUs it finds",
            details={"found": [g.raw_name for g in found]},
        )
    return picked


def detect(
    *,
    devices: str | None = None,
    simulated: bool = False,
    run_nvidia_smi: Callable[[], str | None] | None = None,
    torch_gpus: Callable[[], list[Gpu]] | None = None,
) -> Hardware:
    """This machine's hardware; ``devices`` ("H100:2", "cpu") picks the GPUs to list or, with
    ``simulated``, makes them up. Raises :class:`RequestInvalid` when real GPUs do not match."""
    want = _wanted(devices, simulated)
    gpus: list[Gpu] = []
    driver = None
    if want is not None and simulated:
        gpus = simulated_gpus(*want)
    elif devices is None or want is not None:
        gpus, driver = _real_gpus(run_nvidia_smi or _run_nvidia_smi, torch_gpus or _torch_gpus)
        if want is not None:
            gpus = _pick(gpus, str(devices), *want)
    cap_cpus, cap_memory = cgroup_limits()
    cpus = _machine_cpus()
    return Hardware(
        cpus=max(1, min(cpus, cap_cpus) if cap_cpus else cpus),
        memory_bytes=_smallest([_machine_memory_bytes() or None, cap_memory]) or 0,
        gpus=tuple(gpus),
        accelerator=_accelerator(gpus),
        simulated=bool(gpus) and simulated,
        os=platform.platform(),
        driver=driver,
    )
