"""What `rnadiff refine --mirror` does with an input's handedness (`io.mirror`).

Every input gets a verdict (right-handed / left-handed (mirror image) / undecidable, with the
log-odds score and how much evidence it rests on) in summary.json under "handedness". A
left-handed input:
- note (default): refined as given, one note line on stderr with the word "mirror";
- reflect: reflected through the plane x = (x of the centroid of all its atoms), in the input's own
  frame, before refining, so the output is the mirror-corrected model at the input's place; the
  given-atom deviations are then measured against the reflected input;
- error: an input error (one line, nothing written).
Only a left-handed verdict acts; an undecidable one never does.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rnadiff.errors import InputError
from rnadiff.geometry.handedness import Handedness
from rnadiff.io.mirror import reflect_structure, structure_handedness

MIRROR_POLICIES = ("note", "reflect", "error")
REFLECT_AXIS = 0  # x


@dataclass(frozen=True)
class MirrorCheck:
    handedness: Handedness
    action: str  # "none" (not left-handed), "noted", "reflected"

    def summary(self) -> dict[str, Any]:
        h = self.handedness
        return {"verdict": h.verdict, "score": round(h.score, 3), "evidence": h.evidence, "method": h.method,
                "action": self.action}


def check_mirror(structure, source: str, policy: str = "note"):
    """(structure to refine, MirrorCheck): the input, or its reflection under policy 'reflect'."""
    if policy not in MIRROR_POLICIES:
        raise InputError(f"--mirror must be one of {', '.join(MIRROR_POLICIES)}, got {policy!r}")
    h = structure_handedness(structure)
    if not h.is_mirror:
        return structure, MirrorCheck(h, "none")
    if policy == "error":
        raise InputError(f"the input is a mirror image: {h.describe()} (--mirror error; --mirror reflect "
                         "refines its reflection)", source)
    if policy == "reflect":
        return reflect_structure(structure, axis=REFLECT_AXIS), MirrorCheck(h, "reflected")
    return structure, MirrorCheck(h, "noted")


def mirror_note(source: str, handedness: dict[str, Any]) -> str | None:
    """The stderr note for a left-handed input (from its summary entry), or None."""
    action = handedness.get("action")
    if action not in ("noted", "reflected"):
        return None
    what = f"left-handed: log-odds {handedness['score']:+.1f} from {handedness['evidence']} {handedness['method']}"
    if action == "reflected":
        return (f"rnadiff: note: {source}: the input is a mirror image ({what}); "
                "reflected through x = centroid before refining")
    return (f"rnadiff: note: {source}: the input is a mirror image ({what}); refined as given "
            "(--mirror reflect corrects it, --mirror error refuses it)")


__all__ = ["MIRROR_POLICIES", "MirrorCheck", "check_mirror", "mirror_note"]
