from vlm.train.cli import main

raise SystemExit(main())
