"""Submit the run job: `python jobs/run.py --help`. Same code as `python -m recsys_dist run`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["run", *sys.argv[1:]])
