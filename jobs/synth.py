"""Submit the synth job: `python jobs/synth.py --help`. Same code as `python -m recsys_dist synth`."""

import sys

from recsys_dist.cli import run

if __name__ == "__main__":
    run(["synth", *sys.argv[1:]])
