"""`python -m flows` = the `stepfoley` console script (for environments without the script)."""

import sys

from flows.cli import main

sys.exit(main())
