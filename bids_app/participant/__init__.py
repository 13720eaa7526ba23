"""Participant level: the nipype workflow of one session and the CNN inference on it."""
