"""``python -m mrirecon.app``: serve the web app (see :func:`mrirecon.app.serve.main`)."""

import sys

from .serve import main

if __name__ == "__main__":
    sys.exit(main())
