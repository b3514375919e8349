"""The only place that imports OpenMM / pdbfixer (an optional extra: `pip install rnadiff[minimize]`)."""
from __future__ import annotations

import os

from rnadiff.errors import ConfigError


def require_openmm():
    """Return the (openmm, openmm.app, openmm.unit, pdbfixer) modules or raise a ConfigError."""
    try:
        import openmm
        from openmm import app, unit
    except ImportError as exc:
        raise ConfigError(
            "energy minimization needs OpenMM: pip install 'rnadiff[minimize]' (openmm, pdbfixer)") from exc
    try:
        import pdbfixer
    except ImportError as exc:
        raise ConfigError(
            "energy minimization needs pdbfixer: pip install 'rnadiff[minimize]' (openmm, pdbfixer)") from exc
    return openmm, app, unit, pdbfixer


def usable_cores() -> int:
    """Cores this process may run on (its affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


def pick_platform(name: str, cpu_threads: int = 0):
    """(Platform, properties) for "auto" (CUDA when present, else CPU) or a named platform.

    On the CPU platform cpu_threads=0 means every usable core: OpenMM's own default reads the
    machine's core count, which oversubscribes a process restricted to fewer (containers, taskset).
    """
    openmm, _, _, _ = require_openmm()
    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name == "auto":
        name = "CUDA" if "CUDA" in available else "CPU"
    if name not in available:
        raise ConfigError(f"OpenMM platform {name!r} is not available here (have: {', '.join(available)})")
    props: dict[str, str] = {}
    if name == "CPU":
        props["Threads"] = str(int(cpu_threads) or usable_cores())
    return openmm.Platform.getPlatformByName(name), props
