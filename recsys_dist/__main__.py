from recsys_dist.cli import main

raise SystemExit(main())
