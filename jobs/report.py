"""Submit the report job: `python jobs/report.py --help`. Same code as `python -m recsys_dist report`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["report", *sys.argv[1:]])
