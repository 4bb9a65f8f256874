"""Emulated networks and real DDP runs that check the simulator's predictions.

Modules: :mod:`.run` (``emulate_scenario``, the orchestration), :mod:`.point` (one launch of
N ranks for a grid point), :mod:`.predict` (prediction and composition),
:mod:`.calibrated` (the use of a calibration), :mod:`.profile_alone` (the profile measured
before), :mod:`.cores` (threads and pinning), :mod:`.report` (``emulate.json``),
:mod:`.netns`, :mod:`.launcher`, :mod:`.worker`, :mod:`.calibrate` and :mod:`.cli`. The
calibration model itself is :mod:`rsdgc_sim.calibration`.

Importing this package (and :mod:`.netns`, :mod:`.launcher`) does not import torch.
"""
