"""launch/learnability.py: a plain fit on random transitions, with options changed per method."""

import json

import pytest
from launchtools import launch_module

learnability = launch_module("learnability")


def _fits(capsys):
    out = capsys.readouterr().out
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"method"')]


def test_an_option_fits_the_method_again_with_it_changed(capsys):
    learnability.main(["--sequence", "push", "--episodes", "2", "--fits", "1", "--steps", "3",
                       "--methods", "finetune", "--normalize", "yes",
                       "--option", "finetune:lr=0.5"])
    fits = _fits(capsys)
    assert [(f["method"], f["options"], f["normalize_targets"]) for f in fits] == [
        ("finetune", {}, True), ("finetune", {"lr": 0.5}, True)]
    # three steps at lr 0.5 land elsewhere than three at the preset's 1e-3
    assert fits[0]["heldout_mse"] != fits[1]["heldout_mse"]


def test_no_methods_fits_only_the_options(capsys):
    learnability.main(["--sequence", "push", "--episodes", "2", "--fits", "1", "--steps", "3",
                       "--methods", "", "--normalize", "yes", "--option", "finetune:lr=0.5"])
    assert [(f["method"], f["options"]) for f in _fits(capsys)] == [("finetune", {"lr": 0.5})]
    with pytest.raises(SystemExit) as stop:
        learnability.main(["--methods", ""])
    assert stop.value.code == 2 and "nothing to fit" in capsys.readouterr().err


@pytest.mark.parametrize("bad", ["hnet", "hnet:lr", "lr=1e-3", "hnet:=3"])
def test_a_malformed_option_names_itself(bad, capsys):
    with pytest.raises(SystemExit) as stop:
        learnability.main(["--option", bad])
    assert stop.value.code == 2
    assert f"--option {bad}: expected METHOD:KEY=VALUE" in capsys.readouterr().err


@pytest.mark.parametrize(("bad", "says"), [
    ("finetune:lr=fast", "lr must be a number"),
    ("finetune:horizon=5", "horizon is not an option of method 'finetune'"),
])
def test_an_option_is_typed_and_checked_as_set_is(bad, says, capsys):
    with pytest.raises(SystemExit) as stop:
        learnability.main(["--methods", "finetune", "--option", bad])
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert f"--option {bad}:" in err and says in err
