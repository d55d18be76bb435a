"""``python -m mrirecon.evaluate``."""

import sys

from .cli import main

sys.exit(main())
