"""Submit the recommend job: `python jobs/recommend.py --help`. Same code as `python -m recsys_dist recommend`."""

import sys

from recsys_dist.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["recommend", *sys.argv[1:]]))
