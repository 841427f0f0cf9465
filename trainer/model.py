"""The built-in trainer's model: a configurable multi-layer perceptron for classification.

``layers`` hidden blocks of ``Linear -> [BatchNorm1d] -> activation -> [Dropout]``, each
``hidden`` wide, then a ``Linear`` to one logit per class (no softmax: the loss takes
logits). With ``maxout`` each block's ``Linear`` (and BatchNorm) is ``MAXOUT_PIECES`` x
``hidden`` wide, and the activation keeps the largest of each ``MAXOUT_PIECES`` units.
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor, nn

__all__ = [
    "MAXOUT_PIECES",
    "MLP",
    "OUTPUT_INIT_STD",
    "PRELU_INIT",
    "Maxout",
    "decayed_weights",
    "init_weights",
    "make_activation",
    "weight_penalty",
]

OUTPUT_INIT_STD = 0.01
"""The output layer's initial weight scale: small enough that the initial loss is about ln C."""

MAXOUT_PIECES = 2
"""Linear pieces per maxout unit: a maxout layer of ``hidden`` units reads ``2 * hidden``."""

PRELU_INIT = 0.25
"""PReLU's initial negative slope (PyTorch's default, and He et al.'s)."""

_GAIN_NAMES: dict[str, Literal["relu", "leaky_relu", "tanh", "sigmoid"]] = {
    "relu": "relu",
    "leaky_relu": "leaky_relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "prelu": "leaky_relu",
}


class MLP(nn.Module):
    """A classifier from ``in_features`` inputs to ``num_classes`` logits.

    ``init`` picks how every ``Linear`` weight starts: ``xavier`` (Glorot uniform, gain 1)
    or ``kaiming`` (He normal, fan-in, with the gain of ``activation``: ELU and maxout use
    ReLU's, sigmoid 1, PReLU leaky ReLU's at its initial slope, as He et al. derive it).
    The output layer starts small (normal, standard deviation 0.01), so the logits start
    near zero and the initial loss near ln(num_classes), as the usual sanity check expects.
    Biases start at zero. ``dropout`` is the probability of zeroing a hidden unit during
    training (0 adds no dropout layer).

    ``activation`` is one of ``trainer.config.ACTIVATIONS``. ``prelu`` learns one negative
    slope per hidden layer (``nn.PReLU()``, starting at ``PRELU_INIT``), which no L2
    penalty touches (see :func:`decayed_weights`). ``maxout`` is :class:`Maxout` with
    ``MAXOUT_PIECES`` pieces, so the ``Linear`` feeding it is that many times wider.
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
        # Maxout reduces each group of pieces to one unit: the layer feeding it is wider.
        units = hidden * MAXOUT_PIECES if activation == "maxout" else hidden
        for _ in range(layers):
            blocks.append(nn.Linear(width, units))
            if batchnorm:
                blocks.append(nn.BatchNorm1d(units))
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
        case "sigmoid":
            return nn.Sigmoid()
        case "prelu":
            return nn.PReLU(init=PRELU_INIT)
        case "maxout":
            return Maxout(MAXOUT_PIECES)
    raise ValueError(f"unknown activation {name!r}")


class Maxout(nn.Module):
    """Maxout (Goodfellow et al., 2013): the last dimension's units taken in consecutive
    groups of ``pieces``, each group replaced by its largest unit, so ``pieces * n``
    inputs give ``n`` outputs. Works on any leading dimensions (a fused model's too)."""

    def __init__(self, pieces: int) -> None:
        super().__init__()
        if pieces < 2:
            raise ValueError(f"maxout needs at least 2 pieces, not {pieces}")
        self.pieces = pieces

    def forward(self, x: Tensor) -> Tensor:
        groups = x.reshape(*x.shape[:-1], -1, self.pieces)
        return groups.amax(dim=-1)

    def extra_repr(self) -> str:
        return f"pieces={self.pieces}"


def init_weights(model: nn.Module, *, init: str, activation: str) -> None:
    """Initialise every ``Linear`` in ``model`` in place (see :class:`MLP`)."""
    # torch.nn.init knows no gain for ELU; ReLU's is the usual stand-in.
    nonlinearity = _GAIN_NAMES.get(activation, "relu")
    # The negative slope in the leaky ReLU gain: PReLU's initial one; leaky_relu keeps 0.
    slope = PRELU_INIT if activation == "prelu" else 0.0
    for module in model.modules():
        if not isinstance(module, nn.Linear):
            continue
        if init == "xavier":
            nn.init.xavier_uniform_(module.weight)
        elif init == "kaiming":
            nn.init.kaiming_normal_(module.weight, a=slope, nonlinearity=nonlinearity)
        else:
            raise ValueError(f"unknown init {init!r}")
        nn.init.zeros_(module.bias)


def decayed_weights(model: nn.Module) -> list[Tensor]:
    """The tensors L2 regularisation applies to: ``Linear`` weights only (no biases, no
    BatchNorm scale or shift, no PReLU slope: decaying a slope would pull it towards 0,
    turning PReLU into ReLU, which is why He et al. leave it out)."""
    return [module.weight for module in model.modules() if isinstance(module, nn.Linear)]


def weight_penalty(weights: list[Tensor]) -> Tensor:
    """``sum(w**2)`` over ``weights`` (see :func:`decayed_weights`), as a scalar tensor."""
    total = weights[0].square().sum()
    for w in weights[1:]:
        total = total + w.square().sum()
    return total
