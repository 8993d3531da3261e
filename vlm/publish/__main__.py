import sys

from vlm.publish.cli import main

sys.exit(main())
