"""Submit the similar-items job: `python jobs/similar_items.py --help`. Same code as `python -m recsys_dist similar-items`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["similar-items", *sys.argv[1:]])
