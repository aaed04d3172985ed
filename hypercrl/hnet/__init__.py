"""Hypernetworks: task embedding -> every weight tensor of a target network."""

from hypercrl.hnet.base import HyperNetwork, param_shapes
from hypercrl.hnet.chunked import ChunkedHyperNetwork
from hypercrl.hnet.embeddings import TaskEmbeddings
from hypercrl.hnet.full import FullHyperNetwork
from hypercrl.hnet.interval import IntervalHyperNetwork
from hypercrl.hnet.lowrank import LowRankHyperNetwork
from hypercrl.hnet.mip import MipHyperNetwork
from hypercrl.hnet.recurrent import RecurrentHyperNetwork

__all__ = [
    "ChunkedHyperNetwork",
    "FullHyperNetwork",
    "HyperNetwork",
    "IntervalHyperNetwork",
    "LowRankHyperNetwork",
    "MipHyperNetwork",
    "RecurrentHyperNetwork",
    "TaskEmbeddings",
    "param_shapes",
]
