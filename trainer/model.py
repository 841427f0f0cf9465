"""The built-in trainer's model: a configurable multi-layer perceptron for classification.

``layers`` hidden blocks of ``Linear -> [BatchNorm1d] -> activation -> [Dropout]``, each
``hidden`` wide, then a ``Linear`` to one logit per class (no softmax: the loss takes
logits).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

__all__ = ["MLP", "OUTPUT_INIT_STD", "decayed_weights", "init_weights", "make_activation", "weight_penalty"]

OUTPUT_INIT_STD = 0.01
"""The output layer's initial weight scale: small enough that the initial loss is about ln C."""

_GAIN_NAMES: dict[str, Literal["relu", "leaky_relu", "tanh"]] = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
}


class MLP(nn.Module):
    """A classifier from ``in_features`` inputs to ``num_classes`` logits.

    ``init`` picks how every ``Linear`` weight starts: ``xavier`` (Glorot uniform, gain 1)
    or ``kaiming`` (He normal, fan-in, with the gain of ``activation``; ELU uses ReLU's).
    The output layer starts small (normal, standard deviation 0.01), so the logits start
    near zero and the initial loss near ln(num_classes), as the usual sanity check expects.
    Biases start at zero. ``dropout`` is the probability of zeroing a hidden unit during
    training (0 adds no dropout layer).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        hidden: int = 128,
        layers: int = 2,
        activation: str = "relu",
        dropout: float = 0.0,
        batchnorm: bool = False,
        init: str = "kaiming",
    ) -> None:
        super().__init__()
        blocks: list[nn.Module] = []
        width = in_features
        for _ in range(layers):
            blocks.append(nn.Linear(width, hidden))
            if batchnorm:
                blocks.append(nn.BatchNorm1d(hidden))
            blocks.append(make_activation(activation))
            if dropout > 0:
                blocks.append(nn.Dropout(dropout))
            width = hidden
        output = nn.Linear(width, num_classes)
        blocks.append(output)
        self.net = nn.Sequential(*blocks)
        init_weights(self, init=init, activation=activation)
        nn.init.normal_(output.weight, std=OUTPUT_INIT_STD)

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.net(x)
        return logits


def make_activation(name: str) -> nn.Module:
    """The activation module called ``name`` (one of ``trainer.config.ACTIVATIONS``)."""
    match name:
        case "relu":
            return nn.ReLU()
        case "leaky_relu":
            return nn.LeakyReLU()
        case "tanh":
            return nn.Tanh()
        case "elu":
            return nn.ELU()
    raise ValueError(f"unknown activation {name!r}")


def init_weights(model: nn.Module, *, init: str, activation: str) -> None:
    """Initialise every ``Linear`` in ``model`` in place (see :class:`MLP`)."""
    # torch.nn.init knows no gain for ELU; ReLU's is the usual stand-in.
    nonlinearity = _GAIN_NAMES.get(activation, "relu")
    for module in model.modules():
        if not isinstance(module, nn.Linear):
            continue
        if init == "xavier":
            nn.init.xavier_uniform_(module.weight)
        elif init == "kaiming":
            nn.init.kaiming_normal_(module.weight, nonlinearity=nonlinearity)
        else:
            raise ValueError(f"unknown init {init!r}")
        nn.init.zeros_(module.bias)


def decayed_weights(model: nn.Module) -> list[Tensor]:
    """The tensors L2 regularisation applies to: ``Linear`` weights only (no biases, no
    BatchNorm scale or shift)."""
    return [module.weight for module in model.modules() if isinstance(module, nn.Linear)]


def weight_penalty(weights: list[Tensor]) -> Tensor:
    """``sum(w**2)`` over ``weights`` (see :func:`decayed_weights`), as a scalar tensor."""
    total = weights[0].square().sum()
    for w in weights[1:]:
        total = total + w.square().sum()
    return total
