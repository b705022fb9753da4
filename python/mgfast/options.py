"""The one parser of device and precision strings, for every part of mgfast that takes them.

A device is ``"cpu"``, ``"cuda"`` (the first GPU) or ``"cuda:N"`` (N: one to six ASCII digits);
a precision is ``"fp32"``, ``"bf16"`` (the CPU engine) or ``"fp16"`` (the GPU engine). Each
problem is a ``ValueError`` that names the argument (``device``, ``backend``, ``--device``, ...),
says what is accepted and repeats what was given.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

Precision: TypeAlias = Literal["fp32", "bf16", "fp16"]
DeviceKind: TypeAlias = Literal["cpu", "cuda"]

PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16")
CPU_PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16")  # the oneDNN engine
GPU_PRECISIONS: tuple[Precision, ...] = ("fp32", "fp16")  # the cuDNN engine

_DEVICE = re.compile(r"(cpu)|(cuda)(?::([0-9]{1,6}))?")


@dataclass(frozen=True)
class Device:
    """A parsed device: ``kind`` "cpu" or "cuda", and the GPU's ``index`` (0 for "cpu")."""

    kind: DeviceKind
    index: int = 0

    @property
    def is_cuda(self) -> bool:
        return self.kind == "cuda"

    def __str__(self) -> str:
        """The canonical spelling: "cpu" or "cuda:N" (what the compiled core takes)."""
        return "cpu" if self.kind == "cpu" else f"cuda:{self.index}"


def _expected(kinds: tuple[DeviceKind, ...]) -> str:
    spellings = {"cpu": ["'cpu'"], "cuda": ["'cuda'", "'cuda:N'"]}
    words = [w for k in kinds for w in spellings[k]]
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def parse_device(
    device: object, name: str = "device", *, kinds: tuple[DeviceKind, ...] = ("cpu", "cuda")
) -> Device:
    """``device`` ("cpu", "cuda" or "cuda:N") as a ``Device``, or a ValueError naming ``name``.

    ``kinds`` restricts what is accepted: ``("cuda",)`` for a GPU-only argument.
    """
    m = _DEVICE.fullmatch(device) if isinstance(device, str) else None
    if m is not None:
        if m.group(1) and "cpu" in kinds:
            return Device("cpu")
        if m.group(2) and "cuda" in kinds:
            return Device("cuda", int(m.group(3) or 0))
    raise ValueError(f"{name}: expected {_expected(kinds)}, got {device!r}")


def cuda_index(device: object, name: str = "device") -> int:
    """N of "cuda" (0) or "cuda:N"; anything else (also "cpu") is a ValueError naming ``name``."""
    return parse_device(device, name, kinds=("cuda",)).index


def parse_precision(
    precision: object, device: Device | None = None, name: str = "precision"
) -> Precision:
    """``precision`` checked against what the engine of ``device`` runs (the CPU engine: fp32 and
    bf16; the GPU engine: fp32 and fp16; any of them when ``device`` is None), or a ValueError
    naming ``name``."""
    allowed = PRECISIONS if device is None else GPU_PRECISIONS if device.is_cuda else CPU_PRECISIONS
    for p in allowed:
        if precision == p and isinstance(precision, str):
            return p
    where = (
        ""
        if device is None
        else (
            f" on {device} (the CPU engine runs {', '.join(CPU_PRECISIONS)}, the GPU engine "
            f"{', '.join(GPU_PRECISIONS)})"
        )
    )
    raise ValueError(f"{name}: expected one of {allowed}{where}, got {precision!r}")


__all__ = [
    "CPU_PRECISIONS",
    "GPU_PRECISIONS",
    "PRECISIONS",
    "Device",
    "Precision",
    "cuda_index",
    "parse_device",
    "parse_precision",
]
