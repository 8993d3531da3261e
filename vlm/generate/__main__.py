"""``python -m vlm.generate``: the generate stage (same as ``mirada generate``)."""

import sys

from vlm.generate.cli import main

if __name__ == "__main__":
    sys.exit(main())
