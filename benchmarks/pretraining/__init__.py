"""The parts of ``benchmarks/pretrain_finetune.py`` (does direct pre-training pay?):
:mod:`.plan` (settings and runs), :mod:`.data` (splits and options),
:mod:`.training` (timed ``mtt train`` runs and their evaluation), :mod:`.results`
(time-to-accuracy) and :mod:`.report` (tables and figure)."""
