"""``python -m mrirecon COMMAND ...``: the ``mrirecon`` command (:mod:`mrirecon.cli`)."""

import sys

from mrirecon.cli import main

sys.exit(main())
