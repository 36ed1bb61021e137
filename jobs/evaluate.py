"""Submit the evaluate job: `python jobs/evaluate.py --help`. Same code as `python -m recsys_dist evaluate`."""

import sys

from recsys_dist.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["evaluate", *sys.argv[1:]]))
