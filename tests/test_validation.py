"""Every option is validated where it is defined: type, range, finiteness; a bad value is a
one-line ValueError naming the option, through the Python API and through ``hypercrl run``
(before anything is written)."""

import ast
import dataclasses
import math
import pathlib

import numpy as np
import pytest
import torch

from hypercrl import ContinualDynamics, cli
from hypercrl.cl import METHODS
from hypercrl.cl.hnet import ChunkedHnetOptions, HnetOptions
from hypercrl.devices import resolve_device
from hypercrl.learners.sac import SACOptions
from hypercrl.model.target import TargetNet

NAN, INF = math.nan, math.inf
HNETS = ("hnet", "chunked_hnet")
BASELINES = tuple(m for m in sorted(METHODS) if m not in HNETS)
ALL = tuple(sorted(METHODS))
SMALL = dict(hidden=(8,))  # keep construction cheap

# option -> bad values, for the methods that take it
BAD_FLOATS_POSITIVE = [NAN, INF, -INF, -1, 0, 0.0, "0.1", True, None]
BAD_FLOATS_NONNEG = [NAN, INF, -INF, -1, -1e-9, "0.1", True, None]
BAD_INTS = [0, -1, 2.5, "10", True, None, 10.0]
BAD_BOOLS = [1, 0, "yes", None, 1.0]
BAD_WIDTHS = [(), [], (0,), (-1, 5), (8, 2.5), "88", 8, (True,), None, (8, None)]

COMMON = {
    "lr": BAD_FLOATS_POSITIVE,
    "clip": [NAN, INF, -INF, 0, -1, "5", True],
}
HNET_OPTIONS = {
    "beta": BAD_FLOATS_NONNEG,
    "lookahead": BAD_BOOLS,
    "plastic_previous": BAD_BOOLS,
    "emb_dim": BAD_INTS,
    "hnet_hidden": BAD_WIDTHS,
    "hnet_activation": ["gelu", "", "ELU", None, 1],
    "init": ["normal", "", None, 0],
}
CHUNKED_OPTIONS = {
    "chunk_dim": BAD_INTS,
    "chunk_emb_dim": BAD_INTS,
    "init": ["hyperfan_in"],  # the chunked hypernetwork has only xavier
}
BASELINE_OPTIONS = {"multihead": BAD_BOOLS}
OWN_OPTIONS = {
    "coreset": {"coreset_size": BAD_INTS},
    "ewc": {
        "lam": BAD_FLOATS_NONNEG,
        "online": BAD_BOOLS,
        "gamma": [NAN, INF, -0.1, 1.5, "1", True, None],
        "fisher_samples": [0, -5, 1.5, "100", True],
    },
    "si": {"c": BAD_FLOATS_NONNEG, "xi": BAD_FLOATS_POSITIVE},
}


def _method_options(method):
    table = dict(COMMON)
    if method in HNETS:
        table.update(HNET_OPTIONS)
        if method == "chunked_hnet":
            table = {**table, **{k: table.get(k, []) + v for k, v in CHUNKED_OPTIONS.items()}}
    else:
        table.update(BASELINE_OPTIONS)
    table.update(OWN_OPTIONS.get(method, {}))
    return table


BAD_OPTION_CASES = [
    pytest.param(method, name, value, id=f"{method}-{name}={value!r}")
    for method in ALL
    for name, values in _method_options(method).items()
    for value in values
]


def _no_cuda_device() -> str:
    """A CUDA device that does not exist on this machine."""
    return f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"


BAD_MODEL_CASES = [
    *[("hidden", v) for v in BAD_WIDTHS],
    *[("activation", v) for v in ["gelu", "", None, 3]],
    *[("probabilistic", v) for v in BAD_BOOLS],
    *[("normalize_targets", v) for v in BAD_BOOLS],
    *[("batch_size", v) for v in [0, -1, 2.5, True, "100"]],
    *[("seed", v) for v in [1.5, "0", None, True]],
    *[("device", v) for v in [_no_cuda_device(), "cuda:99", "tpu", "not-a-device", None, 1.5]],
]


def _assert_names(err: pytest.ExceptionInfo, name: str) -> None:
    message = str(err.value)
    assert name in message, message
    assert "\n" not in message, message


# --- the Python API -------------------------------------------------------------------------
@pytest.mark.parametrize("method,name,value", BAD_OPTION_CASES)
def test_bad_method_option_is_a_value_error_naming_it(method, name, value):
    with pytest.raises(ValueError) as err:
        ContinualDynamics(3, 2, method, **SMALL, **{name: value})
    _assert_names(err, name)


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("name,value", BAD_MODEL_CASES,
                         ids=[f"{n}={v!r}" for n, v in BAD_MODEL_CASES])
def test_bad_model_argument_is_a_value_error_naming_it(method, name, value):
    kwargs = {**SMALL, name: value}
    with pytest.raises(ValueError) as err:
        ContinualDynamics(3, 2, method, **kwargs)
    _assert_names(err, name)
    if name == "device":
        assert repr(value) in str(err.value)


@pytest.mark.parametrize("name,value", [("state_dim", True), ("state_dim", 0),
                                        ("action_dim", 2.0), ("action_dim", -1)])
def test_bad_dimensions_are_refused(name, value):
    kwargs = {"state_dim": 3, "action_dim": 2, name: value}
    with pytest.raises(ValueError) as err:
        ContinualDynamics(method="finetune", **SMALL, **kwargs)
    _assert_names(err, name)


def test_cuda_without_cuda_is_a_value_error_naming_the_device():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    with pytest.raises(ValueError, match=r"device='cuda'.*CUDA.*not available"):
        ContinualDynamics(3, 2, "hnet", device="cuda")


def test_predictor_and_load_check_their_device(tmp_path):
    cd = ContinualDynamics(2, 1, "finetune", **SMALL)
    cd.begin_task()
    s = np.zeros((4, 2), np.float32)
    cd.fit(s, np.zeros((4, 1), np.float32), s + 0.1, steps=1, batch_size=4)
    cd.end_task()
    bad = _no_cuda_device()
    with pytest.raises(ValueError) as err:
        cd.predictor(0, device=bad)
    _assert_names(err, f"device={bad!r}")
    cd.save(tmp_path / "m.pt")
    with pytest.raises(ValueError) as err:
        ContinualDynamics.load(tmp_path / "m.pt", device=bad)
    _assert_names(err, f"device={bad!r}")
    assert ContinualDynamics.load(tmp_path / "m.pt").num_tasks == 1


@pytest.mark.parametrize("method", ALL)
def test_defaults_of_every_method_construct(method):
    cd = ContinualDynamics(3, 2, method, **SMALL)
    opts = cd.strategy.opts
    assert opts == type(opts)()  # the defaults pass their own checks unchanged
    assert cd.config["hidden"] == (8,)


@pytest.mark.parametrize("method,options", [
    ("hnet", dict(clip=None, beta=0, lr=1, hnet_hidden=[4, 3], init="hyperfan_in",
                  hnet_activation="tanh", lookahead=False, plastic_previous=True)),
    ("chunked_hnet", dict(chunk_dim=np.int64(7), chunk_emb_dim=2, hnet_hidden=(4,),
                          lr=np.float32(1e-3))),
    ("ewc", dict(gamma=0, lam=0, fisher_samples=1, online=True)),
    ("ewc", dict(gamma=1.0, fisher_samples=None)),
    ("si", dict(c=0, xi=1e-12)),
    ("coreset", dict(coreset_size=1, multihead=False)),
    ("finetune", dict(clip=0.5)),
])
def test_good_values_construct_and_are_normalised(method, options):
    cd = ContinualDynamics(3, 2, method, hidden=[8, 8], device=torch.device("cpu"), **options)
    opts = cd.strategy.opts
    assert cd.config["hidden"] == (8, 8)
    for name, value in options.items():
        got = getattr(opts, name)
        if isinstance(value, (list, tuple)):
            assert got == tuple(value) and isinstance(got, tuple)
        elif value is not None and not isinstance(value, (bool, str)):
            assert got == value and type(got) in (int, float)
        else:
            assert got == value


def test_lists_are_stored_as_tuples():
    assert HnetOptions(hnet_hidden=[5, 6]).hnet_hidden == (5, 6)
    assert ChunkedHnetOptions(hnet_hidden=[5]).hnet_hidden == (5,)
    assert SACOptions(net_arch=[32]).net_arch == (32,)


# --- SAC's options --------------------------------------------------------------------------
SAC_CASES = [
    *[("learning_rate", v) for v in BAD_FLOATS_POSITIVE],
    *[("gamma", v) for v in [NAN, INF, 0, -0.5, 1.01, "0.9", True]],
    *[("tau", v) for v in [NAN, INF, 0, 2, "0.1", None]],
    *[("gradient_steps", v) for v in BAD_INTS],
    *[("net_arch", v) for v in BAD_WIDTHS],
]


@pytest.mark.parametrize("name,value", SAC_CASES, ids=[f"{n}={v!r}" for n, v in SAC_CASES])
def test_bad_sac_option_is_a_value_error_naming_it(name, value):
    with pytest.raises(ValueError) as err:
        SACOptions(**{name: value})
    _assert_names(err, name)


def test_sac_defaults_construct():
    assert SACOptions() == SACOptions(**dataclasses.asdict(SACOptions()))


# --- the run layer --------------------------------------------------------------------------
CLI_CASES = [
    ("hnet", "lr=nan", "lr"),
    ("hnet", "lr=-1", "lr"),
    ("hnet", "lr=inf", "lr"),
    ("hnet", "beta=nan", "beta"),
    ("hnet", "beta=-1", "beta"),
    ("hnet", "hnet_hidden=()", "hnet_hidden"),
    ("hnet", "hnet_activation=gelu", "hnet_activation"),
    ("chunked_hnet", "init=hyperfan_in", "init"),
    ("chunked_hnet", "chunk_dim=0", "chunk_dim"),
    ("finetune", "clip=0", "clip"),
    ("coreset", "coreset_size=0", "coreset_size"),
    ("ewc", "gamma=2", "gamma"),
    ("ewc", "lam=nan", "lam"),
    ("ewc", "fisher_samples=0", "fisher_samples"),
    ("si", "xi=0", "xi"),
    ("sb3-sac", "learning_rate=nan", "learning_rate"),
    ("sb3-sac", "net_arch=()", "net_arch"),
]


@pytest.mark.parametrize("method,item,key", CLI_CASES, ids=[f"{m}-{i}" for m, i, _ in CLI_CASES])
def test_run_refuses_a_bad_option_in_one_line_before_writing(method, item, key, tmp_path,
                                                              monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "--sequence", "push", "--method", method, "--profile", "smoke",
                     "--set", item, "--dry-run"])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], err
    assert not (tmp_path / "runs").exists()


def test_run_without_dry_run_writes_nothing_for_a_bad_option(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = cli.main(["run", "--sequence", "push", "--profile", "smoke", "--set", "lr=nan"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "lr" in err
    assert list(tmp_path.iterdir()) == []


# --- the device helper and the layering -----------------------------------------------------
def test_resolve_device_lives_below_plan_and_keeps_its_behaviour():
    from hypercrl.plan import base as plan_base

    assert plan_base.resolve_device is resolve_device
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(ValueError, match="not a torch device"):
        resolve_device("not-a-device")
    with pytest.raises(ValueError, match="only 'cpu' and 'cuda'"):
        resolve_device("meta")


def test_api_and_strategies_do_not_import_the_planner_layer():
    root = pathlib.Path(__file__).resolve().parents[1] / "hypercrl"
    files = [root / "api.py", root / "devices.py", *sorted((root / "cl").glob("*.py"))]
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: resolve it against the file's own package
                    package = path.parent.relative_to(root.parent).parts
                    base = package[: len(package) - node.level + 1]
                    names = [".".join([*base, *([node.module] if node.module else [])])]
                else:
                    names = [node.module or ""]
            for name in names:
                assert not name.startswith("hypercrl.plan"), f"{path.name} imports {name}"


def test_target_net_refuses_non_integer_widths():
    with pytest.raises(ValueError, match="hidden"):
        TargetNet(3, 2, hidden=(2.5,))
