"""trainer.fused: fused training follows each member's own run.

Separate runs are ``trainer.train`` with the same configs (same seed, so the same initial
weights, split and batch order). Without dropout the curves agree up to float32 rounding
(batched matrix products may sum in another order); with dropout the masks come from
another random stream, so fused and separate runs are compared as distributions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import pytest
import torch

from hypersweep.trainer import OPTIMIZERS, TrainerConfig, TrainResult, train
from hypersweep.trainer.fused import (
    FUSED_SETTINGS,
    FusedMLP,
    FusedOptimizer,
    FusedTraining,
    _StackedDropout,
    _StackedPReLU,
    fusion_key,
    member_losses,
    train_fused,
)
from hypersweep.trainer.loop import make_optimizer
from hypersweep.trainer.model import MLP, PRELU_INIT, decayed_weights, weight_penalty

#: Curves are float32 arithmetic over a few dozen steps: they agree to ~1e-6 relative.
REL = 1e-4
METRICS = ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "test_accuracy", "initial_loss")


@pytest.fixture(autouse=True)
def one_thread() -> Iterator[None]:
    # Small models gain nothing from more threads, and on a busy machine they wait for them.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def small(**settings: Any) -> TrainerConfig:
    """A quick config on digits: a narrow network, two epochs unless told otherwise."""
    return TrainerConfig(**{"hidden": 24, "epochs": 2, **settings})


def max_difference(fused: TrainResult, alone: TrainResult) -> float:
    """The largest relative difference between two runs' curves and final metrics."""
    assert len(fused.curve) == len(alone.curve)
    pairs = [(a[key], b[key]) for a, b in zip(fused.curve, alone.curve, strict=True) for key in a]
    pairs += [(fused.metrics[key], alone.metrics[key]) for key in METRICS]  # type: ignore[literal-required]
    worst = 0.0
    for mine, theirs in pairs:
        if math.isnan(mine) and math.isnan(theirs):
            continue
        worst = max(worst, abs(mine - theirs) / max(1.0, abs(theirs)))
    return worst


def assert_same_run(fused: TrainResult, alone: TrainResult, *, tolerance: float = REL) -> None:
    """The same run, up to rounding: the same ending at the same step, curves that agree."""
    assert fused.status == alone.status
    for key in ("stop_reason", "epochs_run", "steps", "stopped_at_step"):
        assert fused.metrics.get(key) == alone.metrics.get(key), key
    assert [point["epoch"] for point in fused.curve] == [point["epoch"] for point in alone.curve]
    assert max_difference(fused, alone) < tolerance


def test_fusion_key_ignores_exactly_the_fused_settings() -> None:
    base = small()
    assert set(FUSED_SETTINGS) == {"lr", "reg", "momentum", "dropout", "lr_schedule", "lr_gamma", "lr_step_epochs"}
    for settings in (
        {"lr": 0.5},
        {"reg": 1e-3},
        {"momentum": 0.5},
        {"dropout": 0.3},
        {"lr_schedule": "step", "lr_step_epochs": 1, "lr_gamma": 0.1},
        {"lr_schedule": "cosine"},
    ):
        assert fusion_key(small(**settings)) == fusion_key(base), settings
    for name, value in {
        "hidden": 25,
        "layers": 3,
        "activation": "tanh",
        "batchnorm": True,
        "init": "xavier",
        "batch_size": 32,
        "epochs": 3,
        "dataset": "spiral",
        "optimizer": "adam",
        "divergence_factor": 4.0,
        "seed": 1,
    }.items():
        assert fusion_key(small(**{name: value})) != fusion_key(base), name


def test_configs_that_differ_in_a_fixed_setting_are_refused() -> None:
    with pytest.raises(ValueError, match="differ in hidden, seed"):
        train_fused([small(), small(hidden=8, seed=3)])
    with pytest.raises(ValueError, match="no configs"):
        train_fused([])
    with pytest.raises(ValueError, match="2 callbacks for 1 configs"):
        train_fused([small()], on_epoch=[None, None])


def test_every_member_starts_as_the_template_and_computes_what_it_computes() -> None:
    torch.manual_seed(0)
    template = MLP(64, 10, hidden=16, layers=2, batchnorm=True, activation="elu").eval()
    fused = FusedMLP(template, 3).eval()
    x = torch.randn(20, 64)

    logits = fused(x)
    assert logits.shape == (3, 20, 10)
    for member in range(3):
        for stacked, own in zip(fused.parameters(), template.parameters(), strict=True):
            assert torch.equal(stacked[member], own)
        torch.testing.assert_close(logits[member], template(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("family", OPTIMIZERS)
def test_fused_optimizer_applies_torch_optims_update_per_member(family: str) -> None:
    lrs, momenta = [0.1, 0.01, 0.003], [0.9, 0.0, 0.5]
    torch.manual_seed(0)
    start = torch.randn(3, 5, 4)
    separate = [start[k].clone().requires_grad_() for k in range(3)]
    optimizers = [make_optimizer(family, [p], lr=lrs[k], momentum=momenta[k]) for k, p in enumerate(separate)]
    stacked = start.clone().requires_grad_()
    fused = FusedOptimizer(family, lr=torch.tensor(lrs), momentum=torch.tensor(momenta))

    for _ in range(6):
        grads = torch.randn(3, 5, 4)
        for k, (param, optimizer) in enumerate(zip(separate, optimizers, strict=True)):
            param.grad = grads[k].clone()
            optimizer.step()
        stacked.grad = grads.clone()
        fused.step([stacked])

    for k in range(3):
        torch.testing.assert_close(stacked.detach()[k], separate[k].detach(), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("family", OPTIMIZERS)
def test_fused_training_matches_separate_runs_without_dropout(family: str) -> None:
    # Rates and momenta spread over what a sweep would try for each family.
    scale = 0.1 if family in ("sgd", "momentum", "nesterov", "adagrad") else 0.003
    configs = [
        small(optimizer=family, lr=scale, reg=0.0, momentum=0.9),
        small(optimizer=family, lr=scale / 3, reg=1e-3, momentum=0.5),
        small(optimizer=family, lr=scale / 10, reg=1e-4, momentum=0.0),
    ]
    # Adagrad's first steps move every weight by about lr whatever its gradient's size, so
    # rounding in tiny gradients grows to ~1e-3: as much as between two separate runs
    # with different thread counts.
    tolerance = 1e-2 if family == "adagrad" else REL
    for fused, config in zip(train_fused(configs), configs, strict=True):
        assert_same_run(fused, train(config), tolerance=tolerance)
        assert fused.metrics["stop_reason"] == "completed"


def test_fused_training_matches_separate_runs_with_batchnorm_and_more_layers() -> None:
    shared = {"layers": 3, "batchnorm": True, "activation": "tanh", "init": "xavier", "batch_size": 50}
    configs = [small(lr=0.05, optimizer="nesterov", **shared), small(lr=0.2, reg=1e-4, optimizer="nesterov", **shared)]
    for fused, config in zip(train_fused(configs), configs, strict=True):
        assert_same_run(fused, train(config))


@pytest.mark.parametrize("family", ["momentum", "adam"])
def test_members_with_their_own_lr_schedules_match_separate_runs(family: str) -> None:
    scale = 0.1 if family == "momentum" else 0.003
    configs = [
        small(optimizer=family, lr=scale, epochs=4),
        small(optimizer=family, lr=scale, epochs=4, lr_schedule="step", lr_step_epochs=2, lr_gamma=0.1),
        small(optimizer=family, lr=scale / 3, epochs=4, lr_schedule="exponential", lr_gamma=0.5, reg=1e-4),
        small(optimizer=family, lr=scale, epochs=4, lr_schedule="inverse_time", lr_gamma=2.0),
        small(optimizer=family, lr=scale, epochs=4, lr_schedule="cosine", momentum=0.5),
    ]
    results = train_fused(configs)
    for fused, config in zip(results, configs, strict=True):
        assert_same_run(fused, train(config))
    # The schedules made a difference: same start, other endings.
    assert len({result.metrics["val_loss"] for result in (results[0], results[1], results[3], results[4])}) == 4


@pytest.mark.parametrize("activation", ["sigmoid", "prelu", "maxout"])
def test_fused_training_matches_separate_runs_with_the_newer_activations(activation: str) -> None:
    shared = {"activation": activation, "layers": 2, "optimizer": "momentum", "epochs": 2}
    configs = [small(lr=0.05, **shared), small(lr=0.2, reg=1e-3, **shared), small(lr=0.01, momentum=0.5, **shared)]
    results = train_fused(configs)
    for fused, config in zip(results, configs, strict=True):
        assert_same_run(fused, train(config))


def test_each_member_learns_its_own_prelu_slopes() -> None:
    configs = [small(activation="prelu", lr=0.1), small(activation="prelu", lr=0.01)]
    training = FusedTraining(configs, on_epoch=None, on_result=None, data_dir=None, device="cpu")
    prelus = [module for module in training.model.modules() if isinstance(module, _StackedPReLU)]
    assert [tuple(prelu.weight.shape) for prelu in prelus] == [(2, 1), (2, 1)]
    assert torch.equal(prelus[0].weight, torch.full((2, 1), PRELU_INIT))

    training.run()

    first, second = prelus[0].weight[:, 0].tolist()
    assert PRELU_INIT != first != second != PRELU_INIT


def test_a_diverging_member_is_frozen_and_the_others_are_undisturbed() -> None:
    # lr 100 diverges within the first epoch, lr 1e30 turns the loss NaN at step 2.
    configs = [small(lr=0.05, epochs=3), small(lr=100.0, epochs=3), small(lr=1e30, epochs=3), small(lr=0.1, epochs=3)]
    ended: list[tuple[int, int]] = []  # (member, epochs the survivors had finished then)
    finished_epochs = [0]

    def on_epoch(epoch: int, metrics: dict[str, float]) -> bool:
        finished_epochs[0] = epoch
        return True

    def on_result(member: int, result: TrainResult) -> None:
        ended.append((member, finished_epochs[0]))

    results = train_fused(configs, on_epoch=[on_epoch] * 4, on_result=on_result)

    assert [result.metrics["stop_reason"] for result in results] == ["completed", "diverged", "nan", "completed"]
    # Finished at once, in the first epoch, not when the group ended.
    assert sorted(ended[:2]) == [(1, 0), (2, 0)]
    assert sorted(ended[2:]) == [(0, 3), (3, 3)]
    assert results[2].metrics["stopped_at_step"] == 2
    assert results[1].curve == [] and results[2].curve == []
    for fused, config in zip(results, configs, strict=True):
        assert_same_run(fused, train(config))


def test_a_member_whose_callback_says_stop_leaves_alone() -> None:
    configs = [small(lr=0.05, epochs=3), small(lr=0.02, epochs=3)]
    results = train_fused(configs, on_epoch=[lambda epoch, metrics: True, lambda epoch, metrics: epoch < 2])

    assert results[0].metrics["stop_reason"] == "completed"
    assert results[0].metrics["epochs_run"] == 3
    assert results[1].metrics["stop_reason"] == "stopped"
    assert results[1].metrics["epochs_run"] == 2
    assert results[1].status == "completed"
    assert_same_run(results[0], train(configs[0]))
    assert max_difference(results[1], train(configs[1], on_epoch=lambda epoch, metrics: epoch < 2)) < REL


def test_each_member_drops_units_at_its_own_rate() -> None:
    rates = torch.tensor([0.0, 0.2, 0.5, 0.8])
    model = FusedMLP(MLP(8, 3, hidden=4, dropout=0.5), 4, dropout=rates).train()
    dropout = next(module for module in model.modules() if isinstance(module, _StackedDropout))
    torch.manual_seed(0)
    ones = torch.ones(4, 200, 500)

    out = dropout(ones)

    samples = ones[0].numel()
    for member, rate in enumerate(rates.tolist()):
        kept = out[member] != 0
        # Survivors are scaled so that each unit's expectation is unchanged.
        assert torch.allclose(out[member][kept], torch.tensor(1 / (1 - rate)))
        dropped = 1 - kept.float().mean().item()
        assert abs(dropped - rate) < 5 * math.sqrt(max(rate * (1 - rate), 1e-12) / samples) + 1e-12
    assert torch.equal(out[0], ones[0])
    # Independent masks: two members at nearby rates do not share their zeros.
    both = ((out[1] == 0) & (out[2] == 0)).float().mean().item()
    assert abs(both - 0.2 * 0.5) < 0.01
    assert torch.equal(model.eval()(torch.ones(5, 8))[0], model(torch.ones(5, 8))[1])


def test_with_dropout_fused_members_vary_like_separate_runs() -> None:
    # Eight copies of one config: the same training except for their dropout masks. The
    # separate run is one more draw of the same noise, so it falls within their spread.
    config = small(lr=0.05, dropout=0.3, optimizer="momentum", epochs=2)
    fused = train_fused([config] * 8)
    alone = train(config)

    losses = [result.metrics["val_loss"] for result in fused]
    assert len(set(losses)) == 8  # every member drew its own masks
    mean = sum(losses) / 8
    spread = math.sqrt(sum((loss - mean) ** 2 for loss in losses) / 7)
    assert abs(alone.metrics["val_loss"] - mean) < 4 * spread + 1e-3
    assert all(result.metrics["stop_reason"] == "completed" for result in fused)
    # Dropout at rate 0 in a group with dropout is the same run as without any.
    config = small(lr=0.05, optimizer="momentum")
    plain, noisy = train_fused([config, small(lr=0.05, optimizer="momentum", dropout=0.5)])
    assert_same_run(plain, train(config))
    assert noisy.metrics["val_loss"] != plain.metrics["val_loss"]


def test_member_losses_add_each_members_own_penalty() -> None:
    torch.manual_seed(0)
    template = MLP(6, 3, hidden=5)
    model = FusedMLP(template, 2)
    x, y = torch.randn(7, 6), torch.randint(0, 3, (7,))

    losses = member_losses(model, x, y, torch.tensor([0.0, 0.1]))

    plain = torch.nn.functional.cross_entropy(template(x), y)
    penalty = weight_penalty(decayed_weights(template))
    torch.testing.assert_close(losses, torch.stack([plain, plain + 0.1 * penalty]).detach())


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fused_training_on_cuda_matches_separate_runs() -> None:
    configs = [small(lr=0.05, optimizer="adam"), small(lr=0.01, optimizer="adam", reg=1e-4)]
    for fused, config in zip(train_fused(configs, device="cuda"), configs, strict=True):
        alone = train(config, device="cuda")
        assert fused.metrics["stop_reason"] == alone.metrics["stop_reason"]
        assert max_difference(fused, alone) < 1e-3  # cuBLAS may pick other algorithms
