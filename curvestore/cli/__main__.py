"""``python -m curvestore.cli``: the ``curvestore`` command."""

import sys

from curvestore.cli import main

sys.exit(main())
