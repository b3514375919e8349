"""RNA chemistry: canonical atom vocabulary, residue templates, topology, features.

Light imports only (numpy, gemmi, torch): no OpenMM or Lightning here.
"""
from __future__ import annotations

from rnadiff.chem.bridging import aggregate_atom_to_token, broadcast_token_to_atom, validate_atom_to_token
from rnadiff.chem.collate import collate_features
from rnadiff.chem.features import (
    ATOM_FEATURES,
    TOKEN_FEATURES,
    Features,
    featurize,
    features_from_layout,
    features_from_sequence,
    layout_from_structure,
)
from rnadiff.chem.layout import AtomLayout, ResidueSpec, build_layout
from rnadiff.chem.library import (
    LINK_ANGLES,
    LINK_BOND_ESD,
    LINK_BOND_LENGTH,
    ResidueTemplate,
    get_template,
    known_template_names,
    signed_volumes,
)
from rnadiff.chem.topology import Topology, build_topology
from rnadiff.chem.vocab import (
    BACKBONE_ATOMS,
    BASE_ATOMS,
    RESTYPE_INDEX,
    canonical_atom_name,
    parent_of,
    template_name_for,
)

__all__ = [
    "aggregate_atom_to_token", "broadcast_token_to_atom", "validate_atom_to_token", "collate_features",
    "ATOM_FEATURES", "TOKEN_FEATURES", "Features", "featurize", "features_from_layout",
    "features_from_sequence", "layout_from_structure",
    "AtomLayout", "ResidueSpec", "build_layout",
    "LINK_ANGLES", "LINK_BOND_ESD", "LINK_BOND_LENGTH", "ResidueTemplate", "get_template",
    "known_template_names", "signed_volumes",
    "Topology", "build_topology",
    "BACKBONE_ATOMS", "BASE_ATOMS", "RESTYPE_INDEX", "canonical_atom_name", "parent_of", "template_name_for",
]
