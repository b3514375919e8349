#!/usr/bin/env bash
# The recipe of the default refinement checkpoint shipped in src/rnadiff/data/checkpoints/default/.
#
#   scripts/train_default_checkpoint.sh            # train, or continue from runs/default/checkpoints/last.ckpt
#   scripts/train_default_checkpoint.sh --export   # export best.ckpt (EMA weights) into the package
#
# CPU only, fp32, one torch thread; the model and data settings are those of
# src/rnadiff/config/standalone/default.yaml plus the overrides below. Extra key=value words
# are passed on to `rnadiff train`.
#
# History of the shipped run (runs/default): steps 0-1200 used the Protenix smooth-lDDT radius
# for nucleotides (30 Å); from step 1200 on (resumed from last.ckpt) 15 Å, as below: with 32-nt
# crops nearly every atom pair lies within 30 Å and that loss took ~40% of the step time.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${DATA:-../shared/data/rna_dev.tar.gz}
RUN_DIR=${RUN_DIR:-runs/default}
if [[ "${1:-}" == "--export" ]]; then
    shift
    exec python3 -m rnadiff.train.export "$RUN_DIR/checkpoints/best.ckpt" src/rnadiff/data/checkpoints/default --overwrite "$@"
fi
exec python3 -m rnadiff.cli.main train \
    data.path="$DATA" trainer.run_dir="$RUN_DIR" trainer.resume=auto \
    trainer.max_steps=${MAX_STEPS:-20000} trainer.val_check_interval=200 trainer.checkpoint_every=50 \
    trainer.early_stopping_patience=15 trainer.threads=1 trainer.log_every=25 trainer.progress_refresh=25 \
    data.crop_size=32 model.stageD.training.N_sample=8 \
    model.stageD.training.loss.lddt_nucleotide_radius=15 "$@"
