"""Submit the fold-in job: `python jobs/fold_in.py --help`. Same code as `python -m recsys_dist fold-in`."""

import sys

from recsys_dist.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["fold-in", *sys.argv[1:]]))
