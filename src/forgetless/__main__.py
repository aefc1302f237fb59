"""``python -m forgetless``: the same commands as the ``forgetless`` script."""

import sys

from forgetless.cli import main

sys.exit(main())
