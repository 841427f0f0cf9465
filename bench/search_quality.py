"""How good are hypersweep's search strategies, next to Optuna's samplers?

Every strategy gets the same budget on the same problems, over ``--seeds`` seeds, and the
table shows the median best value and the median regret (distance to the optimum) at each
budget. The budget N counts full trials: N trials of the problem's full epochs, or the
same number of epochs spent another way.

Problems, each over ``lr`` and ``reg`` (log axes) and ``dropout`` (linear):

* ``branin``: the Branin function (minimise; optimum 0.397887) on (lr, reg) in log10
  units, plus a bowl in dropout;
* ``hartmann``: the three-dimensional Hartmann function (minimise; optimum -3.86278) on
  (reg, lr, dropout) in unit coordinates of each axis's scale;
* ``cliff``: an accuracy (maximise; optimum 0.97) that climbs with the learning rate up to
  a cliff just past its best value, where training diverges and reports chance (0.1);
* ``digits``: the built-in trainer on scikit-learn's digits (maximise val_accuracy; lr
  up to 10, where training diverges); its regret is measured to the best value any run
  of this benchmark found at full epochs.

A full trial runs 4 epochs on the synthetic problems and 3 on digits. A 1-epoch trial is
cheaper and rougher: on the synthetic problems it sees the function made worse by an
offset and Gaussian noise, both a tenth of the gap between the optimum and the function's
median over the space; on digits it is the trainer run for one epoch.

Strategies. Ours go through the designers and the narrowing the service uses
(``service.search``), with the same ``update``/``suggest`` calls the store makes,
claiming ``--batch`` trials at a time and reporting them before the next claim:

* ``random``, ``grid`` (ceil(N^(1/3)) points per axis, N of them run), ``bayes-tpe``,
  ``bayes-gp``: one stage of N full trials;
* ``c2f``: coarse to fine with random search, as the bundled example splits it: a
  quarter of the epochs on 1-epoch trials (N on the synthetic problems, 3N/4 on digits),
  the rest on full trials (3N/4 on both) narrowed around the coarse stage's best
  ``top_k`` (the service's default, 3); ``c2f-tpe``: the same with a bayes (TPE) fine
  stage, which also learns from the coarse trials inside its space. The best value counts
  only the full trials, so the coarse stage pays for itself only through the narrowing.
* ``lipo``: one stage of N full trials of MaxLIPO with a trust region;
  ``c2f-local``: coarse to fine as ``c2f``, with a local (COBYQA) fine stage started from
  the coarse stage's best 2 (``top_k: 2``; one optimizer per start, so fewer starts each
  get further).

Optuna's ``RandomSampler``, ``TPESampler`` and ``GPSampler`` (their defaults, on the same
log-scaled distributions) run N full trials sequentially with ask-and-tell; a diverged
trial is told the value it reported. For every strategy the best value is the best
full-epoch trial that did not diverge.

Under the table: for each target pair (ours against Optuna's, coarse to fine against
random, lipo against random and TPE, c2f-local against c2f), the (problem, budget)
cells where the first is behind on median regret, and the cells where a paired sign
test over the seeds (same seed, which found the better value; ties left out) finds
either strategy better at p < 0.05; then the CPU seconds each strategy took. With 10
seeds a median moves by tens of percent from one set of seeds to another, so read single
cells with care (``--seeds 30``).

GP suggestions cost more with every trial (about a tenth of a second at 80 trials on one
core); ``--gp-max-budget`` stops both GP strategies early, leaving their larger budgets
blank. ``--quick`` runs 5 seeds at budgets 20 and 40.

    python bench/search_quality.py [--quick] [--seeds 10] [--budgets 20,40,80] [--gp-max-budget N]
                                   [--problems branin,hartmann,cliff,digits] [--batch 1] [--jobs 2]
"""

from __future__ import annotations

import argparse
import functools
import math
import multiprocessing
import os
import statistics
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter
from scipy.stats import binomtest, qmc  # type: ignore[import-untyped]

from hypersweep.service.search.base import Observation, Params, SearchConfig
from hypersweep.service.search.bayes import distribution
from hypersweep.service.search.registry import make_designer
from hypersweep.service.search.space import CategoricalParam, Space
from hypersweep.service.search.stages import narrow
from hypersweep.service.validation import DEFAULT_TOP_K

SYNTHETIC_SPACE: dict[str, Any] = {
    "lr": {"type": "float", "low": 1e-6, "high": 1.0, "scale": "log"},
    "reg": {"type": "float", "low": 1e-6, "high": 1e-1, "scale": "log"},
    "dropout": {"type": "float", "low": 0.0, "high": 0.7},
}
DIGITS_SPACE: dict[str, Any] = {**SYNTHETIC_SPACE, "lr": {"type": "float", "low": 1e-4, "high": 10.0, "scale": "log"}}

OURS = ["random", "grid", "bayes-tpe", "bayes-gp", "c2f", "c2f-tpe"]
OURS += ["lipo", "c2f-local"]
OPTUNA = ["optuna-random", "optuna-tpe", "optuna-gp"]
#: Strategies whose first N trials are the same whatever N is: one run serves every budget.
PREFIX_STRATEGIES = {"random", "bayes-tpe", "bayes-gp", *OPTUNA}
PREFIX_STRATEGIES |= {"lipo"}
#: Coarse to fine spends 1/COARSE_SHARE of the epochs on its coarse stage, as
#: examples/digits-coarse-to-fine.yaml does (32 one-epoch trials, then 12 of 8 epochs).
COARSE_SHARE = 4


def _units(params: Params) -> tuple[float, float, float]:
    """Each synthetic axis at [0, 1] in its own scale."""
    lr = (math.log10(float(params["lr"])) + 6) / 6
    reg = (math.log10(float(params["reg"])) + 6) / 5
    return lr, reg, float(params["dropout"]) / 0.7


def _from_units(lr: float, reg: float, dropout: float) -> Params:
    return {"lr": 10 ** (-6 + 6 * lr), "reg": 10 ** (-6 + 5 * reg), "dropout": 0.7 * dropout}


def branin(params: Params) -> float:
    u, v, w = _units(params)
    x1, x2 = -5 + 15 * u, 15 * v
    b, c, r, s, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s + 20 * (w - 0.3) ** 2


_H_ALPHA = [1.0, 1.2, 3.0, 3.2]
_H_A = [[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]]
_H_P = [[0.3689, 0.1170, 0.2673], [0.4699, 0.4387, 0.7470], [0.1091, 0.8732, 0.5547], [0.0381, 0.5743, 0.8828]]


def hartmann(params: Params) -> float:
    lr, reg, dropout = _units(params)
    x = (reg, lr, dropout)
    return -sum(
        alpha * math.exp(-sum(a * (xi - p) ** 2 for a, xi, p in zip(row, x, prow, strict=True)))
        for alpha, row, prow in zip(_H_ALPHA, _H_A, _H_P, strict=True)
    )


#: Past this learning rate the "cliff" model diverges; its best rate is 10**-1.
CLIFF_LR = 10**-0.8
CHANCE = 0.1


def cliff(params: Params) -> float | None:
    """``None`` when the run diverges (it then reports chance accuracy)."""
    lr, reg, dropout = float(params["lr"]), float(params["reg"]), float(params["dropout"])
    if lr > CLIFF_LR:
        return None
    accuracy = 0.97 - 0.05 * (math.log10(lr) + 1) ** 2 - 0.02 * (math.log10(reg) + 4) ** 2 - 0.3 * (dropout - 0.2) ** 2
    return max(accuracy, CHANCE)


@dataclass(frozen=True)
class Problem:
    name: str
    space: Space
    minimize: bool
    full_epochs: int
    #: The optimum, or ``None`` for the best full-epoch value found by any run.
    optimum: float | None
    #: ``(params, epochs, rng)`` -> (reported value or ``None``, diverged).
    evaluate: Callable[[Params, int, np.random.Generator], tuple[float | None, bool]]


def synthetic(name: str, f: Callable[[Params], float | None], *, minimize: bool, optimum: float) -> Problem:
    """A problem on the synthetic space. Its 1-epoch trials are worse by ``rough`` on
    average, with noise of standard deviation ``rough``: a tenth of the gap between the
    optimum and the median of ``f`` over the space (on 4096 Sobol points)."""
    values = [f(_from_units(*units)) for units in qmc.Sobol(3, scramble=True, seed=0).random(4096)]
    median = statistics.median(CHANCE if v is None else v for v in values)
    rough = abs(median - optimum) / 10
    sign = 1.0 if minimize else -1.0

    def evaluate(params: Params, epochs: int, rng: np.random.Generator) -> tuple[float | None, bool]:
        value = f(params)
        if value is None:
            return CHANCE, True
        if epochs < 4:
            value += sign * rough * (1 + float(rng.standard_normal()))
        return value, False

    return Problem(name, _space(SYNTHETIC_SPACE), minimize, 4, optimum, evaluate)


def digits_evaluate(params: Params, epochs: int, rng: np.random.Generator) -> tuple[float | None, bool]:
    from hypersweep.trainer import TrainerConfig, train

    result = train(TrainerConfig(dataset="digits", epochs=epochs, seed=0, **params), device="cpu")
    value = float(result.metrics["val_accuracy"])
    return (value if math.isfinite(value) else None), result.status == "diverged"


def _space(raw: dict[str, Any]) -> Space:
    return TypeAdapter(Space).validate_python(raw)


@functools.cache
def problems() -> dict[str, Problem]:
    return {
        "branin": synthetic("branin", branin, minimize=True, optimum=0.397887),
        "hartmann": synthetic("hartmann", hartmann, minimize=True, optimum=-3.86278),
        "cliff": synthetic("cliff", cliff, minimize=False, optimum=0.97),
        "digits": Problem("digits", _space(DIGITS_SPACE), False, 3, None, digits_evaluate),
    }


# -- running a strategy -------------------------------------------------------------------------


@dataclass
class Trial:
    number: int
    stage: int
    epochs: int
    params: Params
    value: float | None
    diverged: bool


@dataclass(frozen=True)
class StagePlan:
    trials: int
    epochs: int
    search: dict[str, Any]
    top_k: int | None = None


#: The fine stage of each coarse-to-fine strategy.
FINE_STAGES: dict[str, dict[str, Any]] = {
    "c2f": {"kind": "random"},
    "c2f-tpe": {"kind": "bayes", "sampler": "tpe"},
    "c2f-local": {"kind": "local"},
}
#: The fine stage's ``top_k`` where it is not the service's default: local search runs
#: one optimizer per start, and fewer starts each get further.
FINE_TOP_K: dict[str, int] = {"c2f-local": 2}


def plan(strategy: str, budget: int, full_epochs: int) -> list[StagePlan]:
    """The stages a strategy runs for a budget of ``budget`` full trials."""
    if strategy in ("c2f", "c2f-tpe", "c2f-local"):
        # 1-epoch trials on a quarter of the epochs, full trials on the rest.
        epochs = budget * full_epochs
        coarse = epochs // COARSE_SHARE
        fine = FINE_STAGES[strategy]
        return [
            StagePlan(coarse, 1, {"kind": "random"}),
            StagePlan(
                (epochs - coarse) // full_epochs, full_epochs, fine, top_k=FINE_TOP_K.get(strategy, DEFAULT_TOP_K)
            ),
        ]
    if strategy == "grid":
        return [StagePlan(budget, full_epochs, {"kind": "grid", "grid_points": math.ceil(budget ** (1 / 3))})]
    kind, _, sampler = strategy.partition("-")
    search = {"kind": kind, "sampler": sampler} if sampler else {"kind": kind}
    return [StagePlan(budget, full_epochs, search)]


def run_ours(problem: Problem, stages: Sequence[StagePlan], seed: int, batch: int) -> list[Trial]:
    """Run the stages as the service would: each stage's designer is shown the trials
    finished since its last claim (of this stage and the ones before), a later stage's
    space is narrowed around the best ``top_k`` of the stage before."""
    trials: list[Trial] = []
    noise = np.random.default_rng([seed, 0x6E6F])
    space = problem.space
    sign = 1.0 if problem.minimize else -1.0
    for index, stage in enumerate(stages):
        top: list[Params] = []
        if index > 0:
            assert stage.top_k is not None
            ranked = sorted(
                (sign * t.value, t.number, t.params)
                for t in trials
                if t.stage == index - 1 and t.value is not None and not t.diverged
            )
            top = [params for _, _, params in ranked[: stage.top_k]]
            space = narrow(space, original=problem.space, top=top, stage=index - 1).space
        config = SearchConfig(seed=seed, **stage.search)
        designer = make_designer(space, config=config, stage=index, minimize=problem.minimize)
        if designer.starts_from_previous:
            designer.start_from(top)
        capacity = designer.capacity()
        count = stage.trials if capacity is None else min(stage.trials, capacity)
        shown, generated = 0, 0
        while generated < count:
            # What the store passes: results and divergences, not failed runs; nothing is
            # active, as each claim is reported before the next.
            news = [Observation(t.params, t.value, t.diverged, stage=t.stage) for t in trials[shown:]]
            shown = len(trials)
            designer.update([o for o in news if o.diverged or o.value is not None], [])
            chunk = designer.suggest(generated, min(batch, count - generated))
            for params in chunk:
                value, diverged = problem.evaluate(params, stage.epochs, noise)
                trials.append(Trial(len(trials), index, stage.epochs, params, value, diverged))
            generated += len(chunk)
            if not chunk:
                break  # nothing is pending here, so a designer that proposes nothing is done
    return trials


def run_optuna(problem: Problem, sampler_name: str, seed: int, budget: int) -> list[Trial]:
    import optuna
    from optuna.trial import TrialState

    samplers: dict[str, Callable[[], Any]] = {
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
    }
    study = optuna.create_study(
        direction="minimize" if problem.minimize else "maximize", sampler=samplers[sampler_name]()
    )
    distributions = {name: distribution(param) for name, param in problem.space.items()}
    noise = np.random.default_rng([seed, 0x6E6F])
    trials: list[Trial] = []
    for _ in range(budget):
        trial = study.ask(distributions)
        value, diverged = problem.evaluate(trial.params, problem.full_epochs, noise)
        if value is None:
            study.tell(trial, state=TrialState.FAIL)
        else:
            study.tell(trial, value)
        trials.append(Trial(len(trials), 0, problem.full_epochs, dict(trial.params), value, diverged))
    return trials


def best_full(trials: Sequence[Trial], problem: Problem) -> float | None:
    values = [t.value for t in trials if t.epochs == problem.full_epochs and not t.diverged and t.value is not None]
    if not values:
        return None
    return min(values) if problem.minimize else max(values)


@dataclass(frozen=True)
class Job:
    problem: str
    strategy: str
    seed: int
    budgets: tuple[int, ...]
    batch: int


@dataclass
class Outcome:
    job: Job
    best: dict[int, float | None] = field(default_factory=dict)
    seconds: float = 0.0


def run_job(job: Job) -> Outcome:
    problem = problems()[job.problem]
    started = time.process_time()
    outcome = Outcome(job)
    if job.strategy in PREFIX_STRATEGIES:
        most = max(job.budgets)
        if job.strategy == ENQUEUE:
            trials = run_enqueue(problem, job.seed, most, job.batch)
        elif job.strategy.startswith("optuna-"):
            trials = run_optuna(problem, job.strategy.removeprefix("optuna-"), job.seed, most)
        else:
            trials = run_ours(problem, plan(job.strategy, most, problem.full_epochs), job.seed, job.batch)
        for budget in job.budgets:
            outcome.best[budget] = best_full(trials[:budget], problem)
    else:
        for budget in job.budgets:
            trials = run_ours(problem, plan(job.strategy, budget, problem.full_epochs), job.seed, job.batch)
            outcome.best[budget] = best_full(trials, problem)
    outcome.seconds = time.process_time() - started
    return outcome


def _init_worker() -> None:
    # One thread per process: the processes already fill the cores, and the GP's small
    # BLAS and OpenMP calls slow down badly when their threads compete.
    import optuna
    import torch
    from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

    threadpool_limits(1)
    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)


# -- the table ----------------------------------------------------------------------------------


Medians = dict[tuple[str, str, int], tuple[float, float]]

#: Pairs the targets compare: ours against Optuna's, coarse to fine against one stage.
TARGETS = [("bayes-tpe", "optuna-tpe"), ("bayes-gp", "optuna-gp"), ("c2f", "random"), ("c2f-tpe", "random")]
TARGETS += [("lipo", "random"), ("lipo", "bayes-tpe"), ("c2f-local", "c2f")]


def medians(outcomes: Sequence[Outcome]) -> Medians:
    """``(problem, strategy, budget)`` -> (median best value, median regret) over seeds."""
    results: dict[tuple[str, str, int], list[float]] = defaultdict(list)
    for outcome in outcomes:
        for budget, value in outcome.best.items():
            if value is not None:
                results[outcome.job.problem, outcome.job.strategy, budget].append(value)
    optimum: dict[str, float] = {}
    for name, problem in problems().items():
        found = [v for (p, _, _), values in results.items() if p == name for v in values]
        if problem.optimum is not None:
            optimum[name] = problem.optimum
        elif found:
            optimum[name] = min(found) if problem.minimize else max(found)
    return {
        key: (statistics.median(values), statistics.median(abs(v - optimum[key[0]]) for v in values))
        for key, values in results.items()
    }


def table(summary: Medians, names: Sequence[str], strategies: Sequence[str], budgets: Sequence[int]) -> str:
    header = "| problem | strategy | " + " | ".join(f"best @{b} | regret @{b}" for b in budgets) + " |"
    lines = [header, "|" + " --- |" * (2 + 2 * len(budgets))]
    for name in names:
        for strategy in strategies:
            cells = []
            for budget in budgets:
                if (name, strategy, budget) in summary:
                    best, regret = summary[name, strategy, budget]
                    cells += [f"{best:.4g}", f"{regret:.3g}"]
                else:
                    cells += ["-", "-"]
            lines.append(f"| {name} | {strategy} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paired(outcomes: Sequence[Outcome], ours: str, theirs: str) -> dict[tuple[str, int], tuple[int, int, float]]:
    """``(problem, budget)`` -> (seeds where ``ours`` found the better value, seeds where
    ``theirs`` did, the two-sided sign test's p-value) over the seeds both strategies ran;
    ties count for neither."""
    by_seed: dict[tuple[str, str, int, int], float] = {}
    for outcome in outcomes:
        for budget, value in outcome.best.items():
            if value is not None:
                by_seed[outcome.job.problem, outcome.job.strategy, budget, outcome.job.seed] = value
    counts: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for (name, strategy, budget, seed), value in by_seed.items():
        other = by_seed.get((name, theirs, budget, seed))
        if strategy != ours or other is None or value == other:
            continue
        better = value < other if problems()[name].minimize else value > other
        counts[name, budget][0 if better else 1] += 1
    return {
        cell: (ahead, behind, float(binomtest(ahead, ahead + behind).pvalue) if ahead + behind else 1.0)
        for cell, (ahead, behind) in counts.items()
    }


def verdicts(
    summary: Medians, outcomes: Sequence[Outcome], names: Sequence[str], budgets: Sequence[int], alpha: float = 0.05
) -> list[str]:
    """For each target pair: in how many (problem, budget) cells the first strategy's median
    regret is at most the second's, and in which cells a paired sign test over the seeds
    finds either one significantly better."""
    lines = []
    for ours, theirs in TARGETS:
        cells = [(n, b) for n in names for b in budgets if (n, ours, b) in summary and (n, theirs, b) in summary]
        if not cells:
            continue
        behind = [f"{n} @{b}" for n, b in cells if summary[n, ours, b][1] > summary[n, theirs, b][1]]
        level = len(cells) - len(behind)
        verdict = f"{ours} vs {theirs}: median regret at most as large in {level} of {len(cells)} cells"
        lines.append(verdict + (f"; behind at {', '.join(behind)}" if behind else ""))
        tests = paired(outcomes, ours, theirs)
        won: list[str] = []
        lost: list[str] = []
        counts: list[str] = []
        for n, b in cells:
            ahead, behind_seeds, p = tests.get((n, b), (0, 0, 1.0))
            counts.append(f"{n} @{b} {ahead}:{behind_seeds}")
            if p < alpha:
                (won if ahead > behind_seeds else lost).append(f"{n} @{b} ({ahead}:{behind_seeds}, p={p:.2g})")
        lines.append("  seeds where each found the better value: " + ", ".join(counts))
        lines.append(
            f"  sign test over seeds, p < {alpha}: {ours} better at "
            + (", ".join(won) or "none")
            + f"; {theirs} better at "
            + (", ".join(lost) or "none")
        )
    return lines


# -- guess and check: an enqueued known good point, then random search ----------------------------

#: One enqueued trial at a known good point, then random search: N trials in all. The
#: service runs an enqueued trial first and its random designer numbers only its own
#: trials, so the random trials are the first N - 1 of ``random`` with the same seed.
ENQUEUE = "random+enqueue"
OURS.append(ENQUEUE)
PREFIX_STRATEGIES.add(ENQUEUE)
TARGETS.append((ENQUEUE, "random"))
#: The known good point is the best of this many Sobol points over the problem's space (a
#: scrambled sequence of its own seed): what a person knows from an earlier, wider search.
GUESS_POINTS = 64
#: digits' known good point by that rule (``best_of_sobol(problems()["digits"])``, val_accuracy
#: 0.9417), written out so that a run does not first train 64 models in every process.
DIGITS_GUESS: Params = {"lr": 0.3477945292288027, "reg": 0.012766475436356046, "dropout": 0.09262492498382925}


@functools.cache
def known_good(name: str) -> Params:
    """The point enqueued on problem ``name``: good, not the optimum."""
    return DIGITS_GUESS if name == "digits" else best_of_sobol(problems()[name])


def best_of_sobol(problem: Problem) -> Params:
    """The best of ``GUESS_POINTS`` Sobol points that did not diverge."""
    axes = ("lr", "reg", "dropout")
    sign = 1.0 if problem.minimize else -1.0
    ranked: list[tuple[float, Params]] = []
    for units in qmc.Sobol(len(axes), scramble=True, seed=0x6775).random(GUESS_POINTS):
        params: Params = {}
        for axis, u in zip(axes, units, strict=True):
            param = problem.space[axis]
            assert not isinstance(param, CategoricalParam)
            params[axis] = param.from_unit(float(u))
        value, diverged = problem.evaluate(params, problem.full_epochs, np.random.default_rng(0))
        if value is not None and not diverged:
            ranked.append((sign * value, params))
    return min(ranked, key=lambda entry: entry[0])[1]


def run_enqueue(problem: Problem, seed: int, budget: int, batch: int) -> list[Trial]:
    """The known good point as trial 0, then ``budget - 1`` random trials as ``run_ours`` runs them."""
    guess = known_good(problem.name)
    value, diverged = problem.evaluate(guess, problem.full_epochs, np.random.default_rng([seed, 0x6571]))
    rest = run_ours(problem, plan("random", budget - 1, problem.full_epochs), seed, batch)
    return [Trial(0, 0, problem.full_epochs, guess, value, diverged)] + [
        Trial(t.number + 1, t.stage, t.epochs, t.params, t.value, t.diverged) for t in rest
    ]


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="5 seeds, budgets 20 and 40")
    parser.add_argument("--seeds", type=int, default=None, help="seeds per strategy (default 10; 5 with --quick)")
    parser.add_argument("--budgets", default=None, help="comma-separated full-trial budgets (default 20,40,80)")
    parser.add_argument("--problems", default="branin,hartmann,cliff,digits")
    parser.add_argument("--strategies", default=",".join(OURS + OPTUNA))
    parser.add_argument("--gp-max-budget", type=int, default=None, help="largest budget the GP strategies run")
    parser.add_argument("--batch", type=int, default=1, help="trials per claim for our strategies")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="worker processes")
    args = parser.parse_args(argv)
    seeds = args.seeds or (5 if args.quick else 10)
    budgets = tuple(int(b) for b in (args.budgets or ("20,40" if args.quick else "20,40,80")).split(","))
    names = [n for n in args.problems.split(",") if n]
    strategies = [s for s in args.strategies.split(",") if s]
    unknown = sorted(set(names) - set(problems())) + sorted(set(strategies) - set(OURS + OPTUNA))
    if unknown:
        parser.error(f"unknown problem or strategy: {', '.join(unknown)}")

    def budgets_of(strategy: str) -> tuple[int, ...]:
        if strategy.endswith("gp") and args.gp_max_budget is not None:
            return tuple(b for b in budgets if b <= args.gp_max_budget)
        return budgets

    jobs = [
        Job(n, s, seed, budgets_of(s), args.batch)
        for n in names
        for s in strategies
        for seed in range(seeds)
        if budgets_of(s)
    ]
    # The slowest jobs first, so the pool does not end on one long GP run.
    jobs.sort(key=lambda j: (not j.strategy.endswith("gp"), j.problem != "digits"))
    started = time.perf_counter()
    with multiprocessing.get_context("spawn").Pool(args.jobs, initializer=_init_worker) as pool:
        outcomes = list(pool.imap_unordered(run_job, jobs))
    elapsed = time.perf_counter() - started

    print(f"median over {seeds} seeds; budget N = full trials (or their epochs); claims of {args.batch}\n")
    summary = medians(outcomes)
    print(table(summary, names, strategies, budgets))
    print()
    print("\n".join(verdicts(summary, outcomes, names, budgets)))
    seconds: dict[str, float] = defaultdict(float)
    for outcome in outcomes:
        seconds[outcome.job.strategy] += outcome.seconds
    spent = ", ".join(f"{s} {seconds[s]:.0f}" for s in strategies)
    print(f"\nCPU seconds per strategy (all problems and seeds): {spent}")
    print(f"wall time {elapsed:.0f} s on {args.jobs} processes")


if __name__ == "__main__":
    main()
