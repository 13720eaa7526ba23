"""Synthetic cohorts with planted effects, for tests, benchmarks and the demo.

No product code imports this package. Each module generates one kind of data:

- :mod:`bids_app.synthetic.cohort`: BIDS datasets of whole-head images (multi-site, planted
  regional atrophy, lesions, repeated sessions); ``python -m bids_app.synthetic`` runs it.
  Its parts (anatomy, atrophy, lesions, tissues, sites, design, clinical, sessions, writing)
  are listed there.
- :mod:`bids_app.synthetic.crops`: CNN-ready crops with a planted pattern.
- :mod:`bids_app.synthetic.features`: feature tables with planted group and site effects.
- :mod:`bids_app.synthetic.subtypes`: ALS-like subtypes for the clustering analyses.
"""

from bids_app.synthetic.cohort import CohortSpec, main, make_cohort

__all__ = ["CohortSpec", "main", "make_cohort"]
