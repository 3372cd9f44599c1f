"""``python -m stateward.bench``: the same as the ``stateward`` command."""

import sys

from stateward.__main__ import main

sys.exit(main())
