"""Submit the evaluate job: `python jobs/evaluate.py --help`. Same code as `python -m recsys_dist evaluate`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["evaluate", *sys.argv[1:]])
