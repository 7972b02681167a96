"""Scanning, classifying, placing and journaling photos: plain Python, no Qt, no fastai."""
