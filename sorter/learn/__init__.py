"""How Sorter fits things to data: the memory's strength, calibration and its update from reviews,
the "none of these" fit, head adaptation, replay capping, recalibration, datasets and evaluation.

Everything here works on pooled body features where it can, so a correction re-scores a whole run
in milliseconds and a retrain never decodes an unchanged photo twice. No Qt, no fastai.
"""
