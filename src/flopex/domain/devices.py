"""The accelerator catalog and the ``NAME:COUNT`` notation (SkyPilot style, e.g. ``H100:8``)."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources

from flopex.errors import RequestInvalid


@dataclass(frozen=True)
class DeviceModel:
    """One accelerator model of the catalog (figures from ``data/devices.json``)."""

    name: str
    vendor: str
    memory_gib: int
    bf16_tflops: int
    power_w: int
    source: str


@cache
def catalog() -> dict[str, DeviceModel]:
    """Canonical name -> model, read once from the package's ``data/devices.json``."""
    raw = json.loads(resources.files("flopex.data").joinpath("devices.json").read_text("utf-8"))
    out: dict[str, DeviceModel] = {}
    for row in raw["devices"]:
        out[row["name"]] = DeviceModel(
            name=row["name"],
            vendor=row["vendor"],
            memory_gib=int(row["memory_gib"]),
            bf16_tflops=int(row["bf16_tflops"]),
            power_w=int(row["power_w"]),
            source=row["source"],
        )
    return out


@cache
def _aliases() -> dict[str, str]:
    raw = json.loads(resources.files("flopex.data").joinpath("devices.json").read_text("utf-8"))
    out: dict[str, str] = {}
    for row in raw["devices"]:
        out[_fold(row["name"])] = row["name"]
        for alias in row.get("aliases", []):
            out[_fold(alias)] = row["name"]
    return out


def _fold(name: str) -> str:
    return name.strip().upper().replace(" ", "").replace("_", "-")


def suggest_accelerator(name: str) -> str | None:
    """The closest catalog name to a misspelt one, or ``None``."""
    folded = _fold(name)
    names = list(catalog())
    close = difflib.get_close_matches(folded, [_fold(n) for n in names], n=1, cutoff=0.5)
    if close:
        return _aliases()[close[0]]
    prefix = [n for n in names if _fold(n).startswith(folded) or folded.startswith(_fold(n))]
    return prefix[0] if prefix else None


def canonical_accelerator(name: str) -> str | None:
    """The catalog's canonical name for ``name`` (case and alias insensitive), or ``None``."""
    return _aliases().get(_fold(name))


def parse_accelerator(text: str, *, field: str = "accelerators") -> tuple[str, int]:
    """Parse ``H100:8`` (count defaults to 1) into a canonical name and a count >= 1."""
    name, sep, count_text = str(text).partition(":")
    count = 1
    if sep:
        try:
            count = int(count_text)
        except ValueError:
            raise RequestInvalid(
                f"{field}: bad count {count_text!r} in {text!r}",
                hint="write NAME:COUNT, e.g. H100:8",
                details={"field": field},
            ) from None
    if count < 1:
        raise RequestInvalid(f"{field}: count must be >= 1, got {count}", details={"field": field})
    canonical = canonical_accelerator(name)
    if canonical is None:
        suggestion = suggest_accelerator(name)
        tail = f" (did you mean {suggestion}?)" if suggestion else ""
        raise RequestInvalid(
            f"{field}: unknown device {name.strip()!r}{tail}",
            hint="known devices: " + ", ".join(sorted(catalog())),
            details={"field": field, "suggestion": suggestion},
        )
    return canonical, count
