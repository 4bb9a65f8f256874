"""Emulated networks and real DDP runs that check the simulator's predictions.

Importing this package (and :mod:`.calibration`, :mod:`.netns`, :mod:`.launcher`) does not
import torch: the simulator side reads calibration files from here.
"""
