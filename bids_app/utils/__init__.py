"""Small helpers shared by several layers (atomic files, logging, progress)."""
