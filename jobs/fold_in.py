"""Submit the fold-in job: `python jobs/fold_in.py --help`. Same code as `python -m recsys_dist fold-in`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["fold-in", *sys.argv[1:]])
