"""Per-session features: volumes, brain-stem subdivision, cortical thickness, radiomics, histograms.

Pure functions on nibabel images and arrays; no nipype, CLI or file naming here.
"""
