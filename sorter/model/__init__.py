"""What a model is and how it scores: the bundle file and its config, the network, preprocessing,
the parts a bundle carries (memory, replay, calibration tables), scoring from features, the
classifier on torch or ONNX Runtime, and the catalogue of models the app knows. No Qt, no fastai."""
