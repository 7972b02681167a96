"""Training and retraining with fastai: the only package that imports it."""
