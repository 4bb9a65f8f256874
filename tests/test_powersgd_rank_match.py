"""Choosing PowerSGD's rank to match another compressor's bytes: ``wire_bytes`` follows
torch's rule (``(n + m) r'`` per compressed tensor, 1-D and not-worth-compressing tensors
whole) and ``rank_for_bytes`` returns the rank whose bytes come closest, the smaller on a
tie.

The small model, worked out by hand (float32, 4 bytes a value, ``min_compression_rate`` 2):

* ``A`` (8, 2, 3, 3), viewed 8 x 18 (144 elements): rank 1 sends 26 values
  (26 * 2 = 52 < 144), rank 2 sends 52 (104 < 144), rank 3 would send 78 but
  78 * 2 = 156 >= 144, so from rank 3 on it is sent whole (144);
* ``B`` (4, 8), 32 elements: rank 1 sends 12 (24 < 32), rank 2 would send 24 but
  48 >= 32: whole (32) from rank 2 on;
* ``c`` (8,): 1-D, always whole (8).

Bytes: rank 1: (26 + 12 + 8) * 4 = 184; rank 2: (52 + 32 + 8) * 4 = 368; ranks 3 to 8
(8 = min(8, 18), the largest rank that can matter): (144 + 32 + 8) * 4 = 736.
"""

from __future__ import annotations

import pytest

from rsdgc_sim.compress.powersgd import max_useful_rank, rank_for_bytes, wire_bytes

SHAPES = [(8, 2, 3, 3), (8,), (4, 8)]
#: bytes at ranks 1..8, by hand (module docstring)
BYTES = [184, 368, 736, 736, 736, 736, 736, 736]


def test_wire_bytes_by_hand():
    """wire_bytes gives the hand-computed bytes at every rank, and half of them at 2 bytes a
    value."""
    assert [wire_bytes(SHAPES, r) for r in range(1, 9)] == BYTES
    assert [wire_bytes(SHAPES, r, element_size=2) for r in range(1, 9)] == [b // 2 for b in BYTES]
    assert max_useful_rank(SHAPES) == 8


def test_wire_bytes_min_compression_rate_1_by_hand():
    """At min_compression_rate 1 A stays compressed up to rank 5 (130 < 144) and B at rank 2
    (24 < 32): (46, 84, 118, 144, 170, 184, 184, 184) values."""
    assert [wire_bytes(SHAPES, r, 1.0) // 4 for r in range(1, 9)] == [46, 84, 118, 144, 170, 184, 184, 184]


@pytest.mark.parametrize(("target", "rank"), [
    (0, 1),        # below every rank's bytes
    (184, 1),      # exact
    (275, 1),
    (276, 1),      # halfway between 184 and 368: the smaller rank
    (277, 2),
    (368, 2),
    (552, 2),      # halfway between 368 and 736: the smaller rank
    (553, 3),
    (10_000, 3),   # ranks 3..8 all send 736: the smallest of them
])
def test_rank_for_bytes_closest_smaller_on_ties(target, rank):
    """rank_for_bytes returns the rank whose bytes are closest to the target; on a tie (the
    midpoints, and the ranks past which nothing changes) the smaller rank."""
    assert rank_for_bytes(SHAPES, target) == rank


def test_rank_for_bytes_uses_the_byte_rule():
    """The rank follows min_compression_rate and element_size: 680 B is rank 5 (680 B) at
    rate 1 but rank 3 (736 B) at rate 2; at 2 bytes a value 276 B is rank 2 (184 B)."""
    assert rank_for_bytes(SHAPES, 680, min_compression_rate=1.0) == 5
    assert rank_for_bytes(SHAPES, 680) == 3
    assert rank_for_bytes(SHAPES, 276, element_size=2) == 2
    assert rank_for_bytes(SHAPES, 138, element_size=2) == 1  # halfway between 92 and 184


def test_cnn_small_issue_example():
    """cnn_small (10 classes) sends 6,032 bytes at rank 2 (the issue's example), so a target
    of 6,032 bytes is rank 2."""
    from rsdgc_sim.models import create

    shapes = [tuple(p.shape) for p in create("cnn_small", num_classes=10, input_size=32,
                                             device="meta").parameters()]
    assert wire_bytes(shapes, 2) == 6032
    assert rank_for_bytes(shapes, 6032) == 2


def test_only_1d_tensors_rank_1_and_bad_target():
    """With nothing to compress every rank sends the same: rank 1. A negative or NaN target
    is an error."""
    assert rank_for_bytes([(10,), (3,)], 1) == 1
    assert wire_bytes([(10,), (3,)], 4) == 52
    with pytest.raises(ValueError, match="target_bytes must be >= 0"):
        rank_for_bytes(SHAPES, -1)
    with pytest.raises(ValueError, match="target_bytes must be >= 0"):
        rank_for_bytes(SHAPES, float("nan"))
