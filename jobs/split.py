"""Submit the split job: `python jobs/split.py --help`. Same code as `python -m recsys_dist split`."""

import sys

from recsys_dist.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["split", *sys.argv[1:]]))
