"""How Sorter learns from its user: exemplar memory, feature cache, scoring from features.

Everything here works on pooled body features, not on photos, so a correction can re-score a whole
run in milliseconds and a retrain never decodes an unchanged photo twice. No Qt, no fastai.
"""
