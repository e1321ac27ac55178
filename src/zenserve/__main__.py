"""Allow `python -m zenserve`."""

import sys

from zenserve.cli import main

sys.exit(main())
