"""Entry point for ``python -m bids_app``."""

from bids_app.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
