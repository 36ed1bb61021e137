"""Submit the ingest job: `python jobs/ingest.py --help`. Same code as `python -m recsys_dist ingest`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["ingest", *sys.argv[1:]])
