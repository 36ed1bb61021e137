from recsys_dist.cli import run

run()
