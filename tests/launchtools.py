"""The scripts under launch/ as modules, for tests (launch/ holds scripts, not a package)."""

import importlib.util
import pathlib


def launch_module(name: str):
    """``launch/<name>.py`` imported as a module of its own."""
    path = pathlib.Path(__file__).parents[1] / "launch" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"hypercrl_launch_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
