"""Submit the bench job: `python jobs/bench.py --help`. Same code as `python -m recsys_dist bench`."""

import sys

from recsys_dist.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
