"""The dynamics model: target network, state spec, per-task normaliser, fast predictor."""

from hypercrl.model.normalizer import Normalizer
from hypercrl.model.predictor import EnsemblePredictor, Predictor
from hypercrl.model.spec import StateSpec, quat_conj, quat_mul, wrap_angle
from hypercrl.model.target import TargetNet, gaussian_nll

__all__ = [
    "Normalizer",
    "EnsemblePredictor",
    "Predictor",
    "StateSpec",
    "TargetNet",
    "gaussian_nll",
    "quat_conj",
    "quat_mul",
    "wrap_angle",
]
