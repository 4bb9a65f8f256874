"""Training with N virtual workers: the real accuracy cost of compression at N workers.

Each virtual worker has its own data shard, its own gradient and its own compressor state;
their payloads are aggregated exactly as the collective would (the mean of the dense
tensors, or of the decompressed sparse payloads), on the device at hand.
"""

from .data import ImageFolderData, SyntheticData, load_dataset
from .virtual import TrainResult, train_virtual

__all__ = ["ImageFolderData", "SyntheticData", "TrainResult", "load_dataset", "train_virtual"]
