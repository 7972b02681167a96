"""The network Sorter trains and sorts with, and its portable file format (no fastai, no Qt)."""
