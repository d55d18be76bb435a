"""Start the mrirecon web app: ``python app/app.py [--host 127.0.0.1] [--port 7860] [--checkpoint DIR]
[--max-file-size 200mb] [--share]`` (see ``python -m mrirecon.app --help``)."""

import sys

from mrirecon.app import main

if __name__ == "__main__":
    sys.exit(main())
