"""Thin nipype interfaces around the pure science functions."""
