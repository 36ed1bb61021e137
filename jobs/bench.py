"""Submit the bench job: `python jobs/bench.py --help`. Same code as `python -m recsys_dist bench`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["bench", *sys.argv[1:]])
