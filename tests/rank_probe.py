"""A rank for tests/test_forked_ranks.py (run as ``python -m rank_probe``): writes where it
runs (its network interfaces and namespace, its session, one environment variable), prints
to both streams, and exits with the code in ``PROBE_EXIT``."""

import os
import socket
import sys

if __name__ == "__main__":
    print("probe stdout")
    print("probe stderr", file=sys.stderr)
    if os.environ.get("PROBE_EXIT", "0") != "0":
        sys.exit(int(os.environ["PROBE_EXIT"]))
    from rsdgc_sim.emulate.launcher import write_result

    write_result({"ifaces": [n for _, n in socket.if_nameindex()],
                  "netns": os.readlink("/proc/self/ns/net"),
                  "own_session": os.getsid(0) == os.getpid(),
                  "probe": os.environ.get("PROBE"), "rank": os.environ["RANK"],
                  "argv": sys.argv[1:], "stdin": os.read(0, 10).decode()})
