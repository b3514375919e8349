#!/usr/bin/env bash
# The recipe of the base-pair classifier shipped in src/rnadiff/data/pair_classifier/ (about 10 min on
# one CPU thread): an MLP over the anchor distances around every complementary candidate pair,
# trained on the training split of rna_dev + rna_extra under every partial-input mode, 5 draws of
# each (their own jitter and noise; session 6: 1 draw and 12 epochs before). Session 8 added the
# candidates stacked on a pair whose residue has no given anchor (the 5' residue of P-only inputs);
# the shipped weights predate that and were kept: a retrain with them scored lower on the aside
# chains (provenance.candidates_since_session8 in config.json).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED=${SHARED:-../shared/data}
exec python3 -m rnadiff.train.pair_classifier --data "$SHARED/rna_dev.tar.gz" "$SHARED/rna_extra.tar.gz" \
    --out src/rnadiff/data/pair_classifier --draws 5 --epochs 20 "$@"
