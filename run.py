#!/usr/bin/env python
"""BIDS-Apps entry point: ``run.py bids_dir output_dir participant|group [options]``."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bids_app.cli.main import main

if __name__ == "__main__":
    raise SystemExit(main())
