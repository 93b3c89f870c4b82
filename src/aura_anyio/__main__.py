"""``python -m aura_anyio``: the ``aura`` command."""

import sys

from ._cli import main

sys.exit(main())
