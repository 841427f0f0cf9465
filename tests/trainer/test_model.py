"""trainer.model: the MLP's shape, its initialisation, and what L2 regularisation covers."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from hypersweep.trainer.config import ACTIVATIONS
from hypersweep.trainer.model import (
    MAXOUT_PIECES,
    MLP,
    PRELU_INIT,
    Maxout,
    decayed_weights,
    make_activation,
    weight_penalty,
)


def _count(model: nn.Module, kind: type[nn.Module]) -> int:
    return sum(isinstance(module, kind) for module in model.modules())


def _first_linear(model: nn.Module) -> nn.Linear:
    return next(module for module in model.modules() if isinstance(module, nn.Linear))


def test_mlp_has_the_requested_blocks_and_outputs_one_logit_per_class() -> None:
    model = MLP(64, 10, hidden=32, layers=3, dropout=0.5, batchnorm=True)

    assert _count(model, nn.Linear) == 4
    assert _count(model, nn.BatchNorm1d) == 3
    assert _count(model, nn.Dropout) == 3
    assert model(torch.randn(5, 64)).shape == (5, 10)

    plain = MLP(64, 10, hidden=32, layers=1)
    assert _count(plain, nn.BatchNorm1d) == 0 and _count(plain, nn.Dropout) == 0


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_is_built(name: str) -> None:
    model = MLP(8, 3, hidden=16, layers=2, activation=name)
    kinds = {
        "relu": nn.ReLU,
        "leaky_relu": nn.LeakyReLU,
        "tanh": nn.Tanh,
        "elu": nn.ELU,
        "sigmoid": nn.Sigmoid,
        "prelu": nn.PReLU,
        "maxout": Maxout,
    }
    assert _count(model, kinds[name]) == 2
    assert model(torch.randn(5, 8)).shape == (5, 3)


def test_maxout_keeps_the_largest_of_each_pair_and_doubles_the_layer_feeding_it() -> None:
    maxout = Maxout(2)
    x = torch.tensor([[1.0, -2.0, 0.5, 3.0, -1.0, -4.0]])
    assert torch.equal(maxout(x), torch.tensor([[1.0, 3.0, -1.0]]))
    # Any leading dimensions, as a fused model's (members, batch, units).
    assert maxout(torch.randn(3, 5, 8)).shape == (3, 5, 4)

    model = MLP(8, 3, hidden=16, layers=2, activation="maxout", batchnorm=True)
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    assert [layer.out_features for layer in linears] == [16 * MAXOUT_PIECES, 16 * MAXOUT_PIECES, 3]
    assert [layer.in_features for layer in linears] == [8, 16, 16]
    assert next(m for m in model.modules() if isinstance(m, nn.BatchNorm1d)).num_features == 16 * MAXOUT_PIECES


def test_prelu_learns_one_slope_per_layer_that_no_penalty_touches() -> None:
    model = MLP(8, 3, hidden=16, layers=2, activation="prelu")
    slopes = [module.weight for module in model.modules() if isinstance(module, nn.PReLU)]
    assert [slope.tolist() for slope in slopes] == [[PRELU_INIT], [PRELU_INIT]]
    assert all(slope.requires_grad for slope in slopes)
    penalty = weight_penalty(decayed_weights(model)).item()
    with torch.no_grad():
        for slope in slopes:
            slope.fill_(10.0)
    assert weight_penalty(decayed_weights(model)).item() == penalty


def test_kaiming_uses_each_activations_gain() -> None:
    torch.manual_seed(0)
    fan_in = 256
    gains = {"sigmoid": 1.0, "prelu": math.sqrt(2 / (1 + PRELU_INIT**2)), "maxout": math.sqrt(2), "relu": math.sqrt(2)}
    for activation, gain in gains.items():
        layer = _first_linear(MLP(fan_in, 10, hidden=512, layers=1, activation=activation))
        assert layer.weight.std().item() == pytest.approx(gain / math.sqrt(fan_in), rel=0.02), activation


def test_unknown_activation_or_init_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown activation"):
        make_activation("swish")
    with pytest.raises(ValueError, match="unknown init"):
        MLP(4, 2, init="orthogonal")


def test_kaiming_and_xavier_give_their_scales_and_zero_biases() -> None:
    torch.manual_seed(0)
    fan_in, fan_out = 256, 512
    kaiming = _first_linear(MLP(fan_in, 10, hidden=fan_out, layers=1, init="kaiming"))
    xavier = _first_linear(MLP(fan_in, 10, hidden=fan_out, layers=1, init="xavier"))

    # He normal for ReLU: std = sqrt(2 / fan_in); Glorot uniform: |w| <= sqrt(6 / (in+out)).
    assert kaiming.weight.std().item() == pytest.approx(math.sqrt(2 / fan_in), rel=0.02)
    bound = math.sqrt(6 / (fan_in + fan_out))
    assert xavier.weight.abs().max().item() <= bound
    assert xavier.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.02)
    assert not kaiming.bias.any() and not xavier.bias.any()


def test_weight_penalty_sums_squared_linear_weights_only() -> None:
    model = MLP(6, 3, hidden=5, layers=2, batchnorm=True)
    weights = decayed_weights(model)
    linears = [module for module in model.modules() if isinstance(module, nn.Linear)]
    expected = sum((layer.weight**2).sum().item() for layer in linears)

    assert len(weights) == 3
    assert weight_penalty(weights).item() == pytest.approx(expected, rel=1e-6)

    with torch.no_grad():  # biases and BatchNorm parameters are not regularised
        for module in model.modules():
            if isinstance(module, nn.Linear | nn.BatchNorm1d):
                module.bias.fill_(10.0)
            if isinstance(module, nn.BatchNorm1d):
                module.weight.fill_(10.0)
    assert weight_penalty(weights).item() == pytest.approx(expected, rel=1e-6)
