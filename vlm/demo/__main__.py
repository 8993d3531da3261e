import sys

from vlm.demo.cli import main

sys.exit(main())
