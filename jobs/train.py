"""Submit the train job: `python jobs/train.py --help`. Same code as `python -m recsys_dist train`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["train", *sys.argv[1:]])
