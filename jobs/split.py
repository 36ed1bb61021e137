"""Submit the split job: `python jobs/split.py --help`. Same code as `python -m recsys_dist split`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["split", *sys.argv[1:]])
