"""Submit the tune job: `python jobs/tune.py --help`. Same code as `python -m recsys_dist tune`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["tune", *sys.argv[1:]])
