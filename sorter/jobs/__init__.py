"""The use cases that join files and models: the decision policy, the sorting job, re-scoring,
re-sorting and the review queue. The CLI and the GUI drive these; no Qt, no fastai."""
