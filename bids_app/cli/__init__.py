"""Command-line interface: the only place that reads ``sys.argv``."""
