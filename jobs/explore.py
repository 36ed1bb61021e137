"""Submit the explore job: `python jobs/explore.py --help`. Same code as `python -m recsys_dist explore`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["explore", *sys.argv[1:]])
