from data_tools.prefs.cli import main

raise SystemExit(main())
