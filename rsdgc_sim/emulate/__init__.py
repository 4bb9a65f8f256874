"""Emulated networks and real DDP runs that check the simulator's predictions.

Modules: :mod:`.orchestrate` (``emulate_scenario``, the orchestration), :mod:`.point` (one launch of
N ranks for a grid point), :mod:`.predict` (prediction and composition), :mod:`.calibrate`
(measuring a calibration, and choosing the one an emulation uses), :mod:`.profile_alone`
(the profile measured before), :mod:`.cores` (threads and pinning), :mod:`.report`
(``emulate.json``), :mod:`.netns` (namespaces, veths, the bridge, tbf), :mod:`.launcher`
(rank processes) and :mod:`.worker` (what a rank runs). The calibration model itself is
:mod:`rsdgc_sim.calibration`; the commands are :mod:`rsdgc_sim.cli.emulate`.

Importing this package (and :mod:`.netns`, :mod:`.launcher`) does not import torch.
"""
