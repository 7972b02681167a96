"""Sorter: sort a folder of photos into per-category folders with a transfer-learned classifier."""

__version__ = "0.1.0"
APP_NAME = "Sorter"
