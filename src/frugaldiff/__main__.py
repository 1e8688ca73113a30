"""`python -m frugaldiff` is the same as the `frugaldiff` console script."""

import sys

from frugaldiff.cli import main

sys.exit(main())
