"""``python -m mgfast``: the command line, where the ``mgfast`` script is not on PATH."""

import sys

from .cli import main

sys.exit(main())
