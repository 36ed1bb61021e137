"""Submit the recommend job: `python jobs/recommend.py --help`. Same code as `python -m recsys_dist recommend`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["recommend", *sys.argv[1:]])
