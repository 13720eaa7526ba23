"""``python -m bids_app.synthetic OUT_DIR [options]``: write a synthetic BIDS cohort."""

import sys

from bids_app.synthetic.cohort import main

if __name__ == "__main__":
    sys.exit(main())
