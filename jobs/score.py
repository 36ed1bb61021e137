"""Submit the score job: `python jobs/score.py --help`. Same code as `python -m recsys_dist score`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["score", *sys.argv[1:]])
