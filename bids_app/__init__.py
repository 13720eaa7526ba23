"""NeuroStrat: patient stratification from structural brain MRI, as a BIDS App.

The package follows the flow of the data: :mod:`bids_app.cli` builds one frozen
:class:`bids_app.config.Config`; :mod:`bids_app.inputs` reads the BIDS dataset;
:mod:`bids_app.participant` (a nipype workflow per session) and :mod:`bids_app.group` (design,
estimators, statistics) run the two levels from the pure science modules
(:mod:`bids_app.preprocessing`, :mod:`bids_app.features`, :mod:`bids_app.models`,
:mod:`bids_app.deep`, :mod:`bids_app.statistics`); :mod:`bids_app.derivatives` owns every output
file name; :mod:`bids_app.reports` renders the HTML reports. :mod:`bids_app.synthetic` generates
cohorts with planted effects for tests and the demo; no product code imports it.
"""

from bids_app._version import __version__

__all__ = ["__version__"]
