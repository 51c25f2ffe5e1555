"""The CPU features that decide which format is fastest here (read from ``/proc/cpuinfo``).

int8 convolutions are only faster than fp32 with dot-product instructions:
AVX-512 VNNI or AVX-VNNI (``vpdpbusd``), or AMX tiles (``amx_int8``) on newer
Xeons; with plain AVX2 an int8 multiply-add takes several instructions. bf16
needs AVX512-BF16 or AMX-BF16. fp16 convolutions on x86 need AMX-FP16 (none of
the runtimes here use AVX512-FP16 for them).

Example:
    >>> info = cpu_info(text="model name : Demo CPU\\nflags : fpu avx2 fma\\n")
    >>> info.model, info.avx2, info.vnni, info.amx
    ('Demo CPU', True, False, False)
    >>> info.describe()
    'Demo CPU, 1 logical cores: AVX2 yes, AVX-512 no, VNNI no, AMX no, BF16 no'
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["CpuInfo", "cpu_info"]


@dataclass(frozen=True)
class CpuInfo:
    """What the formats table depends on.

    Attributes:
        model: ``model name`` of the first processor entry.
        cores: logical CPUs listed.
        avx2, avx512: AVX2 / AVX-512 Foundation.
        vnni: AVX-512 VNNI or AVX-VNNI (int8 dot products).
        amx: AMX tiles for int8 (``amx_int8``).
        bf16: AVX512-BF16 or AMX-BF16.
    """

    model: str
    cores: int
    avx2: bool
    avx512: bool
    vnni: bool
    amx: bool
    bf16: bool

    def describe(self) -> str:
        """One line, e.g. ``AMD EPYC, 2 logical cores: AVX2 yes, AVX-512 no, VNNI no, AMX no, BF16 no``."""
        yn = {True: "yes", False: "no"}
        return (f"{self.model}, {self.cores} logical cores: AVX2 {yn[self.avx2]}, AVX-512 {yn[self.avx512]}, "
                f"VNNI {yn[self.vnni]}, AMX {yn[self.amx]}, BF16 {yn[self.bf16]}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def cpu_info(text: str | None = None) -> CpuInfo:
    """Parse ``/proc/cpuinfo`` (or ``text``); fields unknown on other systems read as absent."""
    if text is None:
        try:
            with open("/proc/cpuinfo") as f:
                text = f.read()
        except OSError:
            text = ""
    model, flags, cores = "", set(), 0
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "processor":
            cores += 1
        elif key == "model name" and not model:
            model = value.strip()
        elif key == "flags" and not flags:
            flags = set(value.split())
    return CpuInfo(
        model=model or "unknown CPU", cores=cores or 1,
        avx2="avx2" in flags, avx512="avx512f" in flags,
        vnni=bool(flags & {"avx512_vnni", "avx_vnni"}), amx="amx_int8" in flags,
        bf16=bool(flags & {"avx512_bf16", "amx_bf16"}),
    )
