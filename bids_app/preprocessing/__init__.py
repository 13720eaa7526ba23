"""Anatomical preprocessing steps: pure functions on nibabel images, no file naming."""
