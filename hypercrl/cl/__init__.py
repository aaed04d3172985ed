"""Continual-learning strategies; every one trains the same target architecture."""

from hypercrl.cl.base import Strategy, StrategyOptions
from hypercrl.cl.hnet import (
    ChunkedHnetStrategy,
    HnetStrategy,
    IntervalHnetStrategy,
    LowRankHnetStrategy,
    MipHnetStrategy,
    RecurrentHnetStrategy,
)
from hypercrl.cl.module import FinetuneStrategy, ModuleStrategy, SingleStrategy
from hypercrl.cl.penalty import EWCStrategy, SIStrategy
from hypercrl.cl.regularizer import adam_lookahead, output_regularizer
from hypercrl.cl.replay import CoresetStrategy, MultitaskStrategy

METHODS: dict[str, type[Strategy]] = {
    s.name: s
    for s in (
        HnetStrategy,
        ChunkedHnetStrategy,
        LowRankHnetStrategy,
        MipHnetStrategy,
        RecurrentHnetStrategy,
        IntervalHnetStrategy,
        FinetuneStrategy,
        SingleStrategy,
        MultitaskStrategy,
        CoresetStrategy,
        EWCStrategy,
        SIStrategy,
    )
}


def strategy_class(method: str) -> type[Strategy]:
    """The strategy class of ``method``; ValueError lists the known methods."""
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; known methods: {sorted(METHODS)}")
    return METHODS[method]


__all__ = [
    "METHODS",
    "ModuleStrategy",
    "Strategy",
    "StrategyOptions",
    "adam_lookahead",
    "output_regularizer",
    "strategy_class",
]
