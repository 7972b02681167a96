"""Training and retraining with fastai: the only package that imports it."""

import warnings

with warnings.catch_warnings():
    # WORKAROUND: fastai 2.8 decorates its layers with torch.jit.script, which torch 2.14 deprecates
    # with a FutureWarning on every import; users of `sorter train` should not see it.
    warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)
    import fastai.layers  # noqa: F401
