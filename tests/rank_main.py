"""``python -m rank_main TEST_MODULE``: one real DDP rank of a test, ``TEST_MODULE._rank_main()``
(:func:`helpers.launch_ranks` starts it with the project's launcher)."""

import importlib
import sys

if __name__ == "__main__":
    importlib.import_module(sys.argv[1])._rank_main()
