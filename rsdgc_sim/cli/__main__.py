"""``python -m rsdgc_sim.cli``: the ``rsdgc-sim`` command."""

import sys

from .main import main

sys.exit(main())
