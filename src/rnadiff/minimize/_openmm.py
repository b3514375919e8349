"""The only place that imports OpenMM / pdbfixer (an optional extra: `pip install rnadiff[minimize]`)."""
from __future__ import annotations

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


def pick_platform(name: str, cpu_threads: int = 0):
    """(Platform, properties) for "auto" (CUDA when present, else CPU) or a named platform."""
    openmm, _, _, _ = require_openmm()
    available = [openmm.Platform.getPlatform(i).getName() for i in range(openmm.Platform.getNumPlatforms())]
    if name == "auto":
        name = "CUDA" if "CUDA" in available else "CPU"
    if name not in available:
        raise ConfigError(f"OpenMM platform {name!r} is not available here (have: {', '.join(available)})")
    props: dict[str, str] = {}
    if name == "CPU" and cpu_threads:
        props["Threads"] = str(int(cpu_threads))
    return openmm.Platform.getPlatformByName(name), props
