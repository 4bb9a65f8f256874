"""``python -m rank_main TEST_MODULE``: one real DDP rank of a test, ``TEST_MODULE._rank_main()``
(:func:`helpers.launch_ranks` starts it with the project's launcher).

A test rank ends as soon as it has written its result (``write_result``, the last thing
every ``_rank_main`` does that a test reads): left to tear down, gloo's process-group
destructor can deadlock on the GIL with gloo's run-loop thread (about 1 launch in 5 with two
at a time on 2 cores; the launcher would stop the rank after its exit grace, 10 s later)."""

import importlib
import os
import sys

if __name__ == "__main__":
    from rsdgc_sim.emulate import launcher

    write_result = launcher.write_result

    def write_result_and_exit(data):
        write_result(data)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    launcher.write_result = write_result_and_exit
    importlib.import_module(sys.argv[1])._rank_main()
