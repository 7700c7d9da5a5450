"""``python -m models.serve``: see :mod:`models.serve.server`."""

import sys

from models.serve.server import main

if __name__ == "__main__":  # a spawned worker imports this module too, and must not run it
    sys.exit(main())
