"""Command line: ``hypercrl bench train|plan|env`` (more subcommands arrive with the loop).

Only this module and ``launch/`` wire ``hypercrl`` to the simulators in ``envs``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# bench name -> module whose main(argv) prints the benchmark's JSON
BENCHES = {
    "train": "hypercrl.bench.train",
    "plan": "hypercrl.bench.plan",
    "env": "envs.bench",
}


def _bench(args: argparse.Namespace, rest: list[str]) -> int:
    module = importlib.import_module(BENCHES[args.name])
    return int(module.main(rest) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hypercrl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    bench = sub.add_parser("bench", help="run a benchmark and print JSON")
    bench.add_argument("name", choices=sorted(BENCHES), help="which benchmark")
    bench.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    try:
        return args.func(args, rest)
    except ValueError as err:
        print(f"hypercrl: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
