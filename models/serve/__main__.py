"""``python -m models.serve``: see :mod:`models.serve.server`."""

import sys

from models.serve.server import main

sys.exit(main())
