"""The package's architecture: lazy top-level exports, and no import against the layers."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import rnadiff

SRC = Path(rnadiff.__file__).resolve().parent
# Lower rank = lower layer; a module may import only its own rank or below.
LAYERS = {
    "errors": 0, "geometry": 0, "chem": 0, "io": 0, "config": 0, "data": 0, "examples": 0,
    "model": 1, "diffusion": 1, "metrics": 1, "minimize": 1, "checkpoints": 1,
    "pipeline": 2, "refine": 2, "train": 2, "bench": 2, "api": 2,
    "cli": 3,
}


def room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            # a relative import would hide its target from the layer check below
            raise AssertionError(f"{path}: relative import (from {'.' * node.level}{node.module or ''} import ...)")
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "rnadiff" or m.startswith("rnadiff.")}


def test_every_room_has_a_layer():
    rooms = {p.name if p.is_dir() else p.stem for p in SRC.iterdir()
             if not p.name.startswith(("_", ".")) and (p.is_dir() or p.suffix == ".py")}
    assert rooms - set(LAYERS) == set(), "a new room needs a layer here"


def test_no_import_against_the_layers():
    upward = []
    for path in SRC.rglob("*.py"):
        rel = path.relative_to(SRC.parent).with_suffix("")
        here = room(".".join(rel.parts))
        if here == "__init__":
            continue  # the package root only names lazy exports
        for target in imports_of(path):
            there = room(target)
            if there in LAYERS and LAYERS[there] > LAYERS[here]:
                upward.append(f"{'/'.join(rel.parts)} imports {target}")
    assert not upward, "imports against the layers:\n" + "\n".join(sorted(upward))


@pytest.mark.parametrize("name", ["DiffusionModule", "DiffusionConditioning", "DiffusionSchedule",
                                  "ProtenixDiffusionManager", "DiffusionConfig", "load_protenix_checkpoint"])
def test_top_level_exports_are_lazy(name):
    code = (f"import sys, rnadiff; assert 'torch' not in sys.modules; obj = rnadiff.{name}; "
            f"from rnadiff import {name} as again; assert obj is again; print(obj.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().startswith("rnadiff.")
    with pytest.raises(AttributeError, match="no attribute"):
        rnadiff.NoSuchThing  # noqa: B018
