"""``python -m tmtlib``: see ``tmtlib.cli``."""

import sys

from .cli import main

sys.exit(main())
