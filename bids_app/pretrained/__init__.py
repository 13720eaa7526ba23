"""Networks with published, pretrained weights, run at the participant level.

HD-BET (Isensee et al. 2019) for brain extraction, and brainchop's MeshNet models (Fedorov et
al. 2017; Masoud et al. 2023) for skull stripping (mindgrab) and parcellation. Pure functions on
images; the participant workflow wraps them.
"""
