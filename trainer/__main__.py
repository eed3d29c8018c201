"""``python -m trainer train|encode|evaluate ...``: the headless commands."""

import sys

from .cli import main

sys.exit(main())
