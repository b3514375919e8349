"""Training of the standalone refinement model (CoordinateConditioner + DiffusionModule).

    data.py      folder/tarball of PDB/mmCIF -> featurized Records; split.py: split by sequence
    crop.py      contiguous / spatial token crops;  partial.py: simulated partial inputs
    examples.py  the deterministic example stream (a pure function of seed and step)
    lightning_module.py  RefinementLightning (loss, AdamW + warm-up, EMA, checkpoint hooks)
    run.py       train_from_config(cfg): Trainer, checkpoints, logs, early stopping, export
    export.py    Lightning .ckpt -> rnadiff refinement checkpoint (safetensors + JSON)

Lightning is imported only by lightning_module/run, so `rnadiff refine` never needs it.
"""
