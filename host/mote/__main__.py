"""`python -m mote`: the same command line as `mote`, for builds that have an interpreter
but no venv on PATH."""

import sys

from mote.cli import main

sys.exit(main())
