from data_tools.draft.cli import main

raise SystemExit(main())
