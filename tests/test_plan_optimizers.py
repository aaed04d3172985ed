"""Trajectory optimisers: solution quality on known objectives, bounds, seeding, warm starts,
reset, NaN handling and argument checks."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch

from hypercrl.plan import (
    CEM,
    ICEM,
    MPPI,
    CEMConfig,
    ICEMConfig,
    MPPIConfig,
    make_optimizer,
)
from hypercrl.plan.icem import coloured_noise_filter
from hypercrl.plan.mppi import ar1_filter

H, A = 6, 3
LOWER = torch.tensor([-1.0, -0.5, 0.0])
UPPER = torch.tensor([1.0, 1.5, 0.8])
WIDTH = UPPER - LOWER

# name -> (config, tolerance on |plan - optimum| in action units for the quadratic, and in units
# of the box width for the linear objective). Best-sample modes need more iterations to settle
# every coordinate on a bound. iCEM gets a mild noise colour: the random targets here are white
# in time, which the default beta = 2 prior works against (it is tested on a smooth target
# below). MPPI keeps its noise level, so its plan scatters around the optimum.
OPTIMISERS = {
    "cem": (CEMConfig(population=300, elites=30, iterations=20), 0.01, 0.02),
    "cem-truncated-best": (
        CEMConfig(
            population=300, elites=30, iterations=30, alpha=0.1, bounds="truncated",
            return_mode="best",
        ),
        0.01,
        0.05,
    ),
    "cem-final-best": (
        CEMConfig(population=300, elites=30, iterations=20, return_mode="final_best"),
        0.01,
        0.02,
    ),
    "icem": (
        ICEMConfig(population=300, elites=30, iterations=30, noise_beta=0.5), 0.05, 0.12
    ),
    "mppi": (
        MPPIConfig(population=500, iterations=30, temperature=0.1, noise_sigma=0.1), 0.05, 0.1
    ),
}


def _make(name: str, seed: int = 0, horizon: int = H, **changes):
    config = OPTIMISERS[name][0]
    if changes:
        config = dataclasses.replace(config, **changes)
    gen = torch.Generator().manual_seed(seed)
    return make_optimizer(config, LOWER, UPPER, horizon, generator=gen)


def _problem(seed: int):
    g = torch.Generator().manual_seed(seed)
    target = LOWER + WIDTH * (0.1 + 0.8 * torch.rand(H, A, generator=g))  # inside the box
    sign = torch.where(torch.rand(H, A, generator=g) > 0.5, 1.0, -1.0)
    slope = (0.5 + torch.rand(H, A, generator=g)) * sign
    vertex = torch.where(slope > 0, UPPER, LOWER)  # the linear objective's optimum
    return target, slope, vertex


def _quadratic(target):
    return lambda a: -((a - target) ** 2).sum((1, 2))


def _linear(slope):
    return lambda a: (a * slope).sum((1, 2))


def _in_box(actions: torch.Tensor) -> bool:
    return bool(((actions >= LOWER) & (actions <= UPPER)).all())


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_finds_quadratic_optimum(name, seed):
    target, _, _ = _problem(seed)
    plan = _make(name, seed).optimize(_quadratic(target))
    assert plan.shape == (H, A)
    assert (plan - target).abs().max() < OPTIMISERS[name][1]


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
@pytest.mark.parametrize("seed", [0, 1])
def test_finds_linear_optimum_on_the_bounds(name, seed):
    _, slope, vertex = _problem(seed)
    plan = _make(name, seed).optimize(_linear(slope))
    assert _in_box(plan)
    assert ((plan - vertex).abs() / WIDTH).max() < OPTIMISERS[name][2]


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_never_samples_outside_the_bounds(name):
    _, slope, _ = _problem(0)
    seen = []

    def objective(a):
        seen.append(_in_box(a))
        return (a * slope * 100).sum((1, 2))  # pushes hard against the box

    # a wide initial distribution: most raw samples fall outside the box
    opt = _make(name, **({"noise_sigma": 5.0} if name == "mppi" else {"init_std": 5.0}))
    for _ in range(3):
        assert _in_box(opt.optimize(objective))
    assert seen and all(seen)


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_same_seed_same_plan(name):
    target, _, _ = _problem(0)
    plans = [_make(name, seed=s).optimize(_quadratic(target)) for s in (3, 3, 4)]
    assert torch.equal(plans[0], plans[1])
    assert not torch.equal(plans[0], plans[2])


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_warm_start_shifts_the_plan(name):
    target, _, _ = _problem(0)
    opt = _make(name, warm_start=True)
    centre = (LOWER + UPPER) / 2
    assert torch.equal(opt.mean, centre.expand(H, A))
    plan = opt.optimize(_quadratic(target))
    torch.testing.assert_close(opt.mean[:-1], plan[1:])
    torch.testing.assert_close(opt.mean[-1], centre)


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_cold_start_keeps_the_centre(name):
    target, _, _ = _problem(0)
    opt = _make(name, warm_start=False)
    opt.optimize(_quadratic(target))
    assert torch.equal(opt.mean, ((LOWER + UPPER) / 2).expand(H, A))


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_reset_clears_all_state(name):
    target, _, _ = _problem(0)
    objective = _quadratic(target)
    # few iterations, so that whatever carries over (shifted mean, kept elites) shows in the plan
    short = {"iterations": 2, "warm_start": True}
    used = _make(name, seed=5, **short)
    for _ in range(3):
        used.optimize(objective)
    fresh = _make(name, seed=9, **short)
    used.generator.manual_seed(9)
    assert not torch.equal(used.optimize(objective), fresh.optimize(objective))

    used.reset()
    fresh = _make(name, seed=9, **short)
    used.generator.manual_seed(9)
    assert torch.equal(used.optimize(objective), fresh.optimize(objective))


@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_nan_and_inf_returns_rank_lowest(name):
    _, slope, _ = _problem(0)
    slope = slope.abs()  # optimum: every action at its upper bound

    def objective(a):
        r = (a * slope).sum((1, 2))
        r = torch.where(a[:, 0, 0] > 0.5, math.nan, r)  # diverged above 0.5
        return torch.where(a[:, 1, 0] > 0.5, math.inf, r)  # and "infinitely good" there

    plan = _make(name).optimize(objective)
    assert torch.isfinite(plan).all()
    assert plan[0, 0] <= 0.5 and plan[1, 0] <= 0.5
    assert plan[0, 0] > 0.3 and plan[1, 0] > 0.3  # still pushed up to the edge of the valid set
    # all-NaN: a finite plan inside the box, and the optimiser keeps working afterwards
    opt = _make(name)
    assert _in_box(opt.optimize(lambda a: torch.full(a.shape[:1], math.nan)))
    assert _in_box(opt.optimize(objective))


def test_icem_population_schedule_and_kept_elites():
    config = ICEMConfig(
        population=100, elites=10, iterations=4, population_decay=2.0, keep_elites=0.3
    )
    opt = ICEM(LOWER, UPPER, H, config, generator=torch.Generator().manual_seed(0))
    sizes = []

    def objective(a):
        sizes.append(a.shape[0])
        return -(a**2).sum((1, 2))

    opt.optimize(objective)
    # fresh: 100, 50, 25, then the floor 2 * elites = 20; plus 3 kept elites; plus the mean last
    assert sizes == [103, 53, 28, 24]


def test_icem_samples_are_coloured_in_time():
    first = []

    def objective(a):
        if not first:
            first.append(a.clone())
        return -(a**2).sum((1, 2))

    # default beta = 2; a small std so that clipping does not blur the correlation
    opt = ICEM([-1, -1], [1, 1], 20, ICEMConfig(init_std=0.2),
               generator=torch.Generator().manual_seed(0))
    opt.optimize(objective)
    pop = first[0]  # the centre is 0: these are the raw perturbations
    lag1 = (pop[:, 1:] * pop[:, :-1]).mean() / pop.pow(2).mean()
    assert lag1 > 0.7  # theory: 0.78 for H = 20


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_coloured_noise_has_unit_variance_and_its_colour(beta):
    filt = coloured_noise_filter(16, beta, dtype=torch.float64, device=None)
    cov = filt @ filt.T
    torch.testing.assert_close(cov.diagonal(), torch.ones(16, dtype=torch.float64))
    lag1 = cov.diagonal(1).mean()
    if beta == 0:
        torch.testing.assert_close(filt, torch.eye(16, dtype=torch.float64))
    else:
        assert lag1 > {1.0: 0.4, 2.0: 0.7}[beta]  # neighbouring steps move together
    samples = torch.randn(20000, 16, 1, generator=torch.Generator().manual_seed(0))
    coloured = (filt.float() @ samples).squeeze(-1)
    assert abs(coloured.var() - 1) < 0.05


def test_ar1_smoothing_filter():
    filt = ar1_filter(10, 0.8, dtype=torch.float64, device=None)
    cov = filt @ filt.T
    torch.testing.assert_close(cov.diagonal(), torch.ones(10, dtype=torch.float64))
    torch.testing.assert_close(cov.diagonal(1), torch.full((9,), 0.8, dtype=torch.float64))


def test_cem_best_mode_returns_a_sample_and_mean_mode_the_mean():
    seen = []

    def objective(a):
        seen.append(a.clone())
        return -((a - 0.3) ** 2).sum((1, 2))

    cfg = CEMConfig(population=50, elites=5, iterations=3, return_mode="best")
    plan = CEM(LOWER, UPPER, H, cfg, generator=torch.Generator().manual_seed(0)).optimize(
        objective
    )
    samples = torch.cat(seen)
    assert (samples == plan).all(dim=(1, 2)).any()
    best = samples[objective(samples).argmax()]
    assert torch.equal(plan, best)


def _recording(objective):
    """``objective`` that also keeps a copy of every population it scores."""
    seen: list[torch.Tensor] = []

    def record(a):
        seen.append(a.clone())
        return objective(a)

    return record, seen


@pytest.mark.parametrize("bounds", ["clip", "truncated"])
def test_cem_final_best_returns_the_best_of_one_more_draw(bounds):
    target, _, _ = _problem(0)
    quadratic = _quadratic(target)
    seen: list[torch.Tensor] = []
    scores: list[torch.Tensor] = []

    def objective(a):
        # earlier populations score higher, so the best of all draws is never in the last one
        r = quadratic(a) + 100.0 * (10 - len(seen))
        seen.append(a.clone())
        scores.append(r)
        return r

    cfg = CEMConfig(
        population=64, elites=8, iterations=5, init_std=2.0, bounds=bounds,
        return_mode="final_best",
    )
    opt = CEM(LOWER, UPPER, H, cfg, generator=torch.Generator().manual_seed(0))
    for _ in range(2):  # the buffers are reused: the second plan follows the same scheme
        seen.clear()
        scores.clear()
        plan = opt.optimize(objective)
        # five refits plus the final draw, every one a full population: K * 6 evaluations
        assert [a.shape for a in seen] == [(64, H, A)] * 6
        assert all(_in_box(a) for a in seen)
        assert _in_box(plan)
        # exactly the argmax member of the last population, not the best of all draws
        assert torch.equal(plan, seen[-1][scores[-1].argmax()])
        assert not (torch.cat(seen[:-1]) == plan).all(dim=(1, 2)).any()


def test_cem_final_best_ranks_non_finite_returns_lowest():
    objective, seen = _recording(lambda a: torch.where(a[:, 0, 0] > 0, math.nan, -a[:, 0, 0]))
    cfg = CEMConfig(population=32, elites=4, iterations=2, return_mode="final_best")
    plan = CEM(LOWER, UPPER, H, cfg, generator=torch.Generator().manual_seed(0)).optimize(
        objective
    )
    last = seen[-1]
    valid = last[last[:, 0, 0] <= 0]
    assert len(valid) and torch.equal(plan, valid[(-valid[:, 0, 0]).argmax()])


def test_icem_final_best_draws_one_more_population_of_the_last_size():
    config = ICEMConfig(
        population=100, elites=10, iterations=4, population_decay=2.0, keep_elites=0.3,
        return_mode="final_best",
    )
    objective, seen = _recording(lambda a: -(a**2).sum((1, 2)))
    plan = ICEM(LOWER, UPPER, H, config, generator=torch.Generator().manual_seed(0)).optimize(
        objective
    )
    # fresh: 100, 50, 25, 20, then the final draw 20 again; 3 kept elites; the mean joins last
    assert [a.shape[0] for a in seen] == [103, 53, 28, 23, 24]
    last = seen[-1]
    assert torch.equal(plan, last[objective(last).argmax()])


@pytest.mark.parametrize(
    ("make", "names"),
    [
        (lambda: CEMConfig(population=10, elites=11), ["elites", "population"]),
        (lambda: CEMConfig(iterations=0), ["iterations"]),
        (lambda: CEMConfig(init_std=-1.0), ["init_std"]),
        (lambda: CEMConfig(alpha=1.0), ["alpha"]),
        (lambda: CEMConfig(bounds="reflect"), ["bounds"]),
        (lambda: CEMConfig(return_mode="median"), ["return_mode"]),
        (lambda: CEMConfig(return_mode="final"), ["return_mode", "final_best"]),
        (lambda: ICEMConfig(return_mode="last_best"), ["return_mode"]),
        (lambda: ICEMConfig(population_decay=0.5), ["population_decay"]),
        (lambda: ICEMConfig(keep_elites=1.5), ["keep_elites"]),
        (lambda: ICEMConfig(noise_beta=-1.0), ["noise_beta"]),
        (lambda: MPPIConfig(temperature=0.0), ["temperature"]),
        (lambda: MPPIConfig(smoothing=1.0), ["smoothing"]),
        (lambda: CEM(LOWER, UPPER, 0), ["horizon"]),
        (lambda: CEM(LOWER, UPPER, 2.5), ["horizon"]),
        (lambda: CEM(LOWER[None], UPPER[None], 5), ["bounds"]),
        (lambda: CEM(LOWER, UPPER[:2], 5), ["bounds"]),
        (lambda: CEM(UPPER, LOWER, 5), ["lower > upper"]),
        (lambda: CEM([-math.inf], [1.0], 5), ["finite"]),
        (lambda: MPPI(LOWER, UPPER, 5, device="tpu"), ["device", "tpu"]),
        (lambda: ICEM(LOWER, UPPER, 5, device="not a device"), ["device"]),
        (lambda: ICEM(LOWER, UPPER, 5, CEMConfig()), ["ICEMConfig"]),
        (lambda: make_optimizer("cem", LOWER, UPPER, 5), ["config"]),
    ],
)
def test_bad_arguments_raise_value_errors_that_name_them(make, names):
    with pytest.raises(ValueError) as err:
        make()
    for name in names:
        assert name in str(err.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without CUDA")
def test_cuda_without_cuda_is_a_value_error():
    with pytest.raises(ValueError, match="cuda"):
        CEM(LOWER, UPPER, 5, device="cuda")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", sorted(OPTIMISERS))
def test_runs_on_cuda(name):
    config, tol, _ = OPTIMISERS[name]
    target, _, _ = _problem(0)
    gen = torch.Generator(device="cuda").manual_seed(0)
    opt = make_optimizer(config, LOWER, UPPER, H, device="cuda", generator=gen)
    plan = opt.optimize(_quadratic(target.cuda()))
    assert plan.device.type == "cuda"
    assert ((plan.cpu() - target).abs() / WIDTH).max() < tol
