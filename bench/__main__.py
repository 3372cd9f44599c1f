"""``python -m stateward.bench``: the same as the ``stateward`` command."""

import sys

from ._cli import main

sys.exit(main())
