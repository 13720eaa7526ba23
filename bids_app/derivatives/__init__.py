"""BIDS-Derivatives output: the only place that decides file names and writes outputs."""
