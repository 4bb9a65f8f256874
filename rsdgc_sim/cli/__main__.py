"""``python -m rsdgc_sim.cli``: the ``rsdgc-sim`` command."""

import sys

from .app import main

sys.exit(main())
