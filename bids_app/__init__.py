"""NeuroStrat: patient stratification from structural brain MRI, as a BIDS App.

The package follows the flow of the data: :mod:`bids_app.cli` builds one frozen
:class:`bids_app.config.Config`; :mod:`bids_app.inputs` reads the BIDS dataset;
:mod:`bids_app.workflows` runs the participant and group levels from the pure science modules
(:mod:`bids_app.preprocessing`, :mod:`bids_app.statistics`); :mod:`bids_app.derivatives` owns
every output file name; :mod:`bids_app.reports` writes the HTML reports.
"""

from bids_app._version import __version__

__all__ = ["__version__"]
