"""``hypercrl bench plan``: milliseconds per MPC plan step at the original's CEM settings.

Each task family's ``paper`` setting (reference §4.1; :mod:`hypercrl.bench.family` reads it
from the task sequence and the presets) plans with the original's scheme: K samples, horizon
H, five refits, then one more draw of K whose best member is executed
(``CEMConfig(iterations=5, return_mode="final_best")``, K * H * 6 model evaluations per plan
step), through a HyperCRL model's cached predictor (hypernetwork weights generated once, as in
a training round).
Variants, timed in the same run:

* ``eager``: :class:`hypercrl.plan.MPCAgent` with :class:`hypercrl.plan.CEM`;
* ``compiled``: the same with ``compile=True`` (torch.compile; CUDA graphs on a GPU);
* ``plain_loop``: a straightforward CEM written the obvious way (one predictor call and one
  reward call per horizon step, argsort, fresh tensors everywhere) as the reference point;
* ``plain_loop_unfused_model``: the same loop over the model evaluated the obvious way too
  (concatenate, standardise, whole target net on the generated weights, de-standardise);
* ``ensemble<E>`` (``--ensembles``): ``eager`` through an ensemble of E members per task
  (``ensemble=E``, TS1: every sequence rolled out once per member), for each E > 1 asked.

Achieved GFLOP/s = 2 * multiply-adds of the MLP (mean head) per evaluation * evaluations / time,
set next to two matmuls measured in the same run: a large square one (2048^3 on CPU, 8192^3 on
CUDA) and one of the rollout's own dominant shape [K, 200] x [200, 200]. Shared machines are
noisy: the timings interleave with the matmul references, milliseconds are reported as median
and minimum, and GFLOP/s and fractions compare best times with best times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from hypercrl import ContinualDynamics
from hypercrl.bench import family
from hypercrl.bench.argtypes import int_list, positive_int
from hypercrl.cpu import cpu_model
from hypercrl.plan import CEM, CEMConfig, MPCAgent, RewardFn, StepFn

SQUARE_N = {"cpu": 2048, "cuda": 8192}  # size of the large square matmul reference


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _seconds(fn: Callable[[], Any], device: torch.device, n: int) -> float:
    """Mean wall time of ``fn`` over ``n`` calls (after one untimed call)."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(n):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / n


def _reward(goal: torch.Tensor) -> RewardFn:
    """A cheap batched reward of the original's kind: distance of the next state and effort."""

    def reward(state: torch.Tensor, action: torch.Tensor, next_state: torch.Tensor) -> torch.Tensor:
        return -(next_state - goal).square().sum(1) - 0.1 * action.square().sum(1)

    return reward


def plain_loop_cem(
    step: StepFn,
    reward: RewardFn,
    state: torch.Tensor,
    cfg: dict[str, Any],
    generator: torch.Generator,
) -> torch.Tensor:
    """CEM as one writes it first: the reference the optimised path is compared with."""
    k, h, a = cfg["K"], cfg["H"], cfg["action_dim"]
    mean = torch.zeros(h, a, device=state.device)
    std = torch.full((h, a), cfg["init_std"], device=state.device)

    def draw() -> tuple[torch.Tensor, torch.Tensor]:
        """K clipped samples of N(mean, std) and their indices by decreasing return."""
        noise = torch.randn(k, h, a, generator=generator, device=state.device)
        actions = (mean + std * noise).clamp(-1.0, 1.0)
        s = state.repeat(k, 1)
        returns = torch.zeros(k, device=state.device)
        for t in range(h):
            s2 = step(s, actions[:, t])
            returns = returns + reward(s, actions[:, t], s2)
            s = s2
        return actions, torch.argsort(returns, descending=True)

    for _ in range(cfg["iterations"]):
        actions, order = draw()
        elites = actions[order[: cfg["elites"]]]
        mean, std = elites.mean(0), elites.std(0, unbiased=False)
    actions, order = draw()  # the final draw: execute its best member
    return actions[order[0]]


def unfused_step(cd: ContinualDynamics, task: int) -> StepFn:
    """next state the obvious way: concatenate, standardise, run the whole target net on the
    generated weights (log-variance head included), de-standardise, apply the state spec."""
    with torch.no_grad():
        weights = {k: v[0] for k, v in cd.strategy.weights([task]).items()}
    norm = cd.normalizers[task]

    @torch.no_grad()
    def step(state: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([cd.spec.features(state), action], dim=1)
        mean, _ = cd.net.run(weights, norm.norm_x(x))
        return cd.spec.apply(state, norm.denorm_y(mean))

    return step


def _model(cfg: dict[str, Any], device: torch.device, ensemble: int = 1):
    spec = cfg["state_spec"]
    cd = ContinualDynamics(
        state_dim=len(spec), action_dim=cfg["action_dim"], method="hnet", seed=0,
        hidden=cfg["hidden"], probabilistic=cfg["probabilistic"], state_spec=spec,
        device=device, ensemble=ensemble,
    )
    cd.begin_task()
    return cd


def _hnet_params(cd: ContinualDynamics) -> int:
    """Trainable numbers of the hypernetwork and of one task's embeddings."""
    strat = cd.strategy
    return (sum(p.numel() for p in strat.hnet.parameters())
            + sum(e.numel() for e in strat.own_embeddings(0)))


def _mlp_macs(cd: ContinualDynamics) -> int:
    """Multiply-adds of one evaluation of the mean head: what the planner computes."""
    widths = [cd.net.in_dim, *cd.config["hidden"], cd.state_dim]
    return sum(a * b for a, b in zip(widths[:-1], widths[1:], strict=True))


def _start_state(cfg: dict[str, Any], device: torch.device) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    state = 0.1 * torch.randn(len(cfg["state_spec"]), generator=g)
    for i, kind in enumerate(cfg["state_spec"]):
        if kind == "quat" and (i == 0 or cfg["state_spec"][i - 1] != "quat"):
            state[i : i + 4] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    return state.to(device)


def bench_setting(
    cfg: dict[str, Any], device: torch.device, repeats: int, compile_: bool,
    ensembles: tuple[int, ...] = (),
) -> dict[str, Any]:
    """Times one setting (:func:`hypercrl.bench.family.setting`'s keys) on ``device``."""
    cd = _model(cfg, device)
    predictor = cd.predictor(0, device=device)  # weights generated once, as per training round
    k, h, a = cfg["K"], cfg["H"], cfg["action_dim"]
    state = _start_state(cfg, device)
    reward = _reward(torch.zeros_like(state))
    macs = _mlp_macs(cd)
    populations = cfg["iterations"] + 1  # the refits and the final draw (choose_best)
    evals = k * h * populations
    gflop = 2 * macs * evals / 1e9
    width = cfg["hidden"][0]
    x = torch.randn(k, width, device=device)
    w = torch.randn(width, width, device=device)
    out = torch.empty(k, width, device=device)
    # about 50 ms of same-shape matmuls per timing, whatever the machine
    same_reps = max(20, int(0.05 / max(_seconds(lambda: torch.mm(x, w, out=out), device, 5), 1e-7)))

    def optimiser() -> CEM:
        gen = torch.Generator(device=device).manual_seed(0)
        config = CEMConfig(
            population=k, elites=cfg["elites"], iterations=cfg["iterations"],
            init_std=cfg["init_std"], return_mode="final_best",
        )
        return CEM([-1.0] * a, [1.0] * a, h, config, device=device, generator=gen)

    variants: dict[str, Callable[[], Any]] = {}
    errors: dict[str, str] = {}  # a variant that fails is reported, the others still run
    agent = MPCAgent(cd, reward, optimiser(), task=0)
    variants["eager"] = lambda: agent.act(state)
    params = {1: _hnet_params(cd)}
    for e in ensembles:
        if e > 1:
            member_cd = _model(cfg, device, ensemble=e)
            params[e] = _hnet_params(member_cd)
            member_agent = MPCAgent(member_cd, reward, optimiser(), task=0)
            variants[f"ensemble{e}"] = lambda agent=member_agent: agent.act(state)
    if compile_:
        compiled = MPCAgent(cd, reward, optimiser(), task=0, compile=True)
        start = time.perf_counter()
        try:
            compiled.act(state)  # compiles
        except Exception as err:
            errors["compiled"] = f"{type(err).__name__}: {err}"
        else:
            variants["compiled"] = lambda: compiled.act(state)
        compile_s = time.perf_counter() - start
    gen = torch.Generator(device=device).manual_seed(0)
    variants["plain_loop"] = lambda: plain_loop_cem(predictor, reward, state, cfg, gen)
    unfused = unfused_step(cd, 0)
    variants["plain_loop_unfused_model"] = lambda: plain_loop_cem(unfused, reward, state, cfg, gen)

    times: dict[str, list[float]] = {v: [] for v in variants}
    same: list[float] = []
    for _ in range(repeats):
        same.append(_seconds(lambda: torch.mm(x, w, out=out), device, same_reps))
        for v, fn in list(variants.items()):
            try:
                times[v].append(_seconds(fn, device, 1))
            except Exception as err:
                errors[v] = f"{type(err).__name__}: {err}"
                del variants[v], times[v]
    same_gflops = 2 * k * width * width / min(same) / 1e9
    result: dict[str, Any] = {
        "state_dim": len(cfg["state_spec"]), "action_dim": a, "hidden": list(cfg["hidden"]),
        "model_in_dim": cd.net.in_dim, "K": k, "H": h, "elites": cfg["elites"],
        "populations_per_plan": populations, "evaluations_per_plan": evals,
        "mlp_macs_per_evaluation": macs, "gflop_per_plan": round(gflop, 4),
        f"same_shape_matmul_gflops[{k}x{width}x{width}]": round(same_gflops, 1),
        "hnet_params_per_ensemble_size": params,
        "variants": {},
    }
    for v, ts in times.items():
        result["variants"][v] = {
            "ms_per_plan_step": round(statistics.median(ts) * 1e3, 2),
            "ms_min": round(min(ts) * 1e3, 2),
            "gflops": round(gflop / min(ts), 1),
            "fraction_of_same_shape_matmul": round(gflop / min(ts) / same_gflops, 3),
        }
    for v, message in errors.items():
        result["variants"][v] = {"error": message}
    if compile_:
        result["variants"]["compiled"]["compile_seconds"] = round(compile_s, 1)
    return result


def square_matmul_gflops(device: torch.device, repeats: int) -> tuple[int, float]:
    n = SQUARE_N[device.type]
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    for _ in range(3):  # warm the BLAS threads and the clock up
        torch.mm(a, b)
    sec = min(_seconds(lambda: torch.mm(a, b), device, 3) for _ in range(repeats))
    return n, 2 * n**3 / sec / 1e9


def run_device(device: torch.device, args: argparse.Namespace,
               setups: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Every setting of ``setups`` (family name -> setting) timed on ``device``."""
    compile_ = not args.no_compile and (device.type == "cuda" or not args.quick)
    out: dict[str, Any] = {}
    if device.type == "cuda":
        out["name"] = torch.cuda.get_device_name(device)
    reps = max(3, args.repeats // 2)
    # measured before and after the settings; the better of the two is the machine's limit
    n, before = square_matmul_gflops(device, reps)
    settings = {}
    for name, cfg in setups.items():
        try:
            settings[name] = bench_setting(cfg, device, args.repeats, compile_,
                                           args.ensembles)
        except Exception as err:  # unattended runs: record the failure, go on
            settings[name] = {"error": f"{type(err).__name__}: {err}"}
    n, after = square_matmul_gflops(device, reps)
    square = max(before, after)
    out[f"square_matmul_gflops[{n}^3]"] = round(square, 1)
    out["square_matmul_gflops_before_after"] = [round(before, 1), round(after, 1)]
    for res in settings.values():
        for v in res.get("variants", {}).values():
            if "gflops" in v:
                v["fraction_of_square_matmul"] = round(v["gflops"] / square, 3)
    out["settings"] = settings
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="hypercrl bench plan", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--device", choices=("cpu", "cuda", "all"), default="all",
                        help="all: the CPU, and CUDA when there is one")
    parser.add_argument("--repeats", type=positive_int, default=10,
                        help="timed plan steps per variant")
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 2 repeats, no compilation on CPU")
    parser.add_argument("--no-compile", action="store_true", help="skip the compiled variant")
    parser.add_argument("--threads", type=positive_int, default=None,
                        help="torch CPU threads (default: the bench default, up to 2)")
    parser.add_argument("--families", nargs="+", default=family.known(),
                        help="task families whose `paper` model and planner settings to time "
                             f"(default: all, {' '.join(family.known())})")
    parser.add_argument("--ensembles", type=int_list, default=(),
                        help="comma list of ensemble sizes E to time as well (e.g. 3,5)")
    args = parser.parse_args(argv)
    args.ensembles = tuple(args.ensembles)
    if any(e < 1 for e in args.ensembles):
        parser.error(f"--ensembles {args.ensembles}: every size must be 1 or more")
    try:
        setups = {name: family.setting(name) for name in family.parse(" ".join(args.families))}
    except ValueError as err:
        parser.error(str(err))
    if args.quick:
        args.repeats = 2
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    devices = []
    if args.device in ("cpu", "all"):
        devices.append(torch.device("cpu"))
    if args.device in ("cuda", "all") and torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    if args.device == "cuda" and not devices:
        raise ValueError("--device cuda: CUDA is not available")
    report: dict[str, Any] = {
        "bench": "plan",
        "torch": torch.__version__,
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "repeats": args.repeats,
        "devices": {dev.type: run_device(dev, args, setups) for dev in devices},
    }
    print(json.dumps(report, indent=2))
    return 0
