import sys

from eval.judge.cli import main

sys.exit(main())
