from data_tools.review.cli import main

raise SystemExit(main())
