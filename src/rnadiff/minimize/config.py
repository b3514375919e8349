"""`MinimizationConfig`: the options of the energy minimization (`model.stageD.energy_minimization`
plus the physics knobs), validated when built so that a bad choice fails before any work.

The default relax is the fast one: AMBER with a distance-dependent dielectric (ε = 4r) inside a
1 nm cutoff, ~10 ms per force evaluation of a 70-nt RNA on one core against 0.5 s with GBn2;
`electrostatics=reaction_field` is OpenMM's plain cutoff method (ε = 1 inside, continuum beyond).
An implicit solvent (`solvent=gbn2` or `obc2`) adds one final pass in that solvent, started from
the fast passes' minimum.
"""
from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from omegaconf import OmegaConf

from rnadiff.config.schema import typed
from rnadiff.errors import ConfigError

SOLVENT_FILES = {"gbn2": "implicit/gbn2.xml", "obc2": "implicit/obc2.xml", "none": None}
SOLVENT_ALIASES = {"vacuum": "none"}  # the old name of "no implicit solvent"
ELECTROSTATICS = ("distance_dielectric", "reaction_field")
PLATFORMS = ("auto", "CPU", "CUDA", "Reference")
# External engines and the executables they would need.
EXTERNAL_BACKENDS = {"gromacs": ("gmx",), "amber": ("sander", "pmemd")}


@dataclass
class MinimizationConfig:
    """Energy minimization options (units in the names' comments).

    enabled/steps/method mirror `model.stageD.energy_minimization`: steps = the most L-BFGS
    iterations of each minimizer pass (0 = until the tolerance is met); method = the engine
    (only OpenMM is implemented; GROMACS/AMBER fail at config time).
    cpu_threads: OpenMM CPU threads, 0 = every core this process may use. The default, one
    thread, is bitwise reproducible; more threads sum forces in a varying order, so repeated runs
    agree only to rounding, which the minimizer amplifies (measured on a noisy 70-nt RNA, 2
    threads: RMS 0.004–0.05 Å, single atoms up to 1 Å between runs) for a 1.3x faster relax on 2
    cores. Parallelise over structures instead.
    """

    enabled: bool = True
    steps: int = 0
    method: str = "OpenMM"
    forcefield: str = "amber14-all.xml"
    electrostatics: str = "distance_dielectric"  # of the fast passes: distance_dielectric | reaction_field
    solvent: str = "none"              # final implicit-solvent pass: none | gbn2 | obc2 (vacuum = none)
    restraint_k: float = 10.0          # kcal/mol/Å², harmonic on input heavy atoms
    tolerance: float = 10.0            # kJ/mol/nm
    cutoff: float = 1.0                # nm, CutoffNonPeriodic
    platform: str = "auto"             # auto | CPU | CUDA | Reference
    cpu_threads: int = 1               # 0 = every usable core (not reproducible)
    max_outer_iterations: int = 3
    hydrogens: bool = False            # keep hydrogens in the output
    chirality_k: float = 1.0e8         # kJ/mol/nm⁶, sugar signed volumes (covalent pass) and hand guard
    modified_restraint_k: float = 100.0  # kcal/mol/Å², holds modified nucleotides in place
    seed: int = 0                      # pdbfixer's placement of missing atoms

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        method = str(self.method).lower()
        if method in EXTERNAL_BACKENDS:
            exes = EXTERNAL_BACKENDS[method]
            found = [e for e in exes if shutil.which(e)]
            if not found:
                raise ConfigError(
                    f"energy_minimization.method={self.method}: executable {' or '.join(exes)} not found on PATH")
            raise ConfigError(
                f"energy_minimization.method={self.method}: found {found[0]}, but the {self.method} backend "
                "is not implemented in rnadiff; use method=OpenMM")
        if method != "openmm":
            raise ConfigError(f"energy_minimization.method={self.method!r}: expected OpenMM, GROMACS or AMBER")
        self.method = "OpenMM"
        self.solvent = SOLVENT_ALIASES.get(self.solvent, self.solvent)
        if self.solvent not in SOLVENT_FILES:
            raise ConfigError(f"solvent={self.solvent!r}: expected one of {sorted(SOLVENT_FILES)}")
        if self.electrostatics not in ELECTROSTATICS:
            raise ConfigError(f"electrostatics={self.electrostatics!r}: expected one of {list(ELECTROSTATICS)}")
        if self.platform not in PLATFORMS:
            raise ConfigError(f"platform={self.platform!r}: expected one of {list(PLATFORMS)}")
        for name in ("restraint_k", "tolerance", "cutoff", "chirality_k", "modified_restraint_k"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"{name} must be > 0 (got {getattr(self, name)!r})")
        if int(self.steps) < 0 or int(self.max_outer_iterations) < 1 or int(self.cpu_threads) < 0:
            raise ConfigError("steps and cpu_threads must be >= 0 and max_outer_iterations >= 1")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> "MinimizationConfig":
        """Build from a mapping (e.g. the `energy_minimization` section) through OmegaConf's
        structured config of this class: option strings become the fields' types, and an unknown
        key or a value of the wrong type is a one-line ConfigError naming the key."""
        node = typed(dict(values or {}), cls, where="energy_minimization")
        return OmegaConf.to_object(node)

    def with_overrides(self, overrides: list[str]) -> "MinimizationConfig":
        """Apply `key=value` strings (an optional `energy_minimization.` prefix is accepted)."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for item in overrides:
            if "=" not in item:
                raise ConfigError(f"override {item!r} is not key=value")
            key, value = item.split("=", 1)
            key = key.strip().removeprefix("model.stageD.").removeprefix("energy_minimization.")
            values[key] = value
        return MinimizationConfig.from_dict(values)

