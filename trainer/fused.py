"""Fused trials: many trials of one architecture trained together as one batched model.

Trials in a sweep are small models that differ in a few numbers. Trained one at a time,
a CPU or GPU spends most of its time on per-operation overhead rather than arithmetic;
trained as one model whose parameters are the trials' parameters stacked along a new
leading dimension, every operation does the work of all of them at once (the idea of
HFTA, Wang et al., MLSys 2021).

The module is longer than most (about 550 lines) because the stacked layers, the fused
optimizer and the run are one design: each stacks what the one-trial code keeps apart, and
each is checked against the one-trial path member by member (``tests/trainer/test_fused.py``).

A *group* is a list of :class:`TrainerConfig` that agree on everything except
:data:`FUSED_SETTINGS` (``lr``, ``reg``, ``momentum``, ``dropout`` and the learning-rate
schedule): :func:`fusion_key` says what must agree. Every setting the trainer has can be
fused: a group shares its architecture (activation included), and each member keeps its
own values of the fused settings. :func:`train_fused` trains a group so that member ``k``
follows the run ``train(configs[k])`` would make:

* the same initial weights: the group shares ``seed``, so one :class:`MLP` built right
  after ``torch.manual_seed(seed)`` has exactly the weights each member's own run would
  start from; its parameters are copied once per member;
* the same mini-batches in the same order (the shuffling generator is seeded with the
  shared ``seed`` and every member reads the same batch);
* its own objective, ``cross_entropy + reg_k * sum(w**2)``; the group minimises the sum
  of the members' objectives, and since member ``k``'s parameters appear in no other
  member's objective, each gets exactly the gradient of its own loss (the penalty's part
  added directly, :func:`add_penalty_gradients`);
* its own dropout: a mask drawn per member and per unit at that member's rate;
* the update rule of ``torch.optim`` for the optimizer family, with the member's own
  learning rate and momentum (:class:`FusedOptimizer`); the rate is set at each epoch's
  start from the member's own schedule (:func:`trainer.schedule.epoch_lr`);
* its own PReLU slopes, stacked like the weights;
* its own training and validation accuracy, evaluated at each epoch's end;
* its own divergence check against its own first loss, its own curve, callbacks and
  result. A member that diverges, turns NaN or is stopped by its callback is evaluated
  with the weights it had at that moment (before the diverging step's update, as ``train``
  does), handed to ``on_result`` at once, and removed from the stacks; the others carry on
  as if it had never been there.

Without dropout, fused and separate runs agree up to floating-point rounding (a batched
matrix product may sum in another order than a single one). With dropout, the masks come
from another random stream than a separate run's, so the runs agree in distribution only.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hypersweep.trainer.config import SETTINGS, TrainerConfig
from hypersweep.trainer.loop import EVAL_BATCH
from hypersweep.trainer.model import MLP
from hypersweep.trainer.run import (
    EpochCallback,
    StopReason,
    TrainLoss,
    TrainResult,
    accuracy_sample,
    finish,
    set_up,
)
from hypersweep.trainer.schedule import epoch_lr

__all__ = [
    "FUSED_SETTINGS",
    "FusedMLP",
    "FusedOptimizer",
    "FusedTraining",
    "ResultCallback",
    "add_penalty_gradients",
    "evaluate_members",
    "fusion_key",
    "member_losses",
    "train_fused",
]

#: The settings that may differ between the members of one group: each member keeps its
#: own value. Every other setting must be the same (see :func:`fusion_key`).
FUSED_SETTINGS: tuple[str, ...] = ("lr", "reg", "momentum", "dropout", "lr_schedule", "lr_gamma", "lr_step_epochs")

#: ``on_result(member, result)``: member ``member`` (its index in ``configs``) has ended.
ResultCallback = Callable[[int, TrainResult], None]

# torch.optim's defaults, which ``trainer.loop.make_optimizer`` keeps for these families.
_ADAM_BETAS = (0.9, 0.999)
_ADAM_EPS = 1e-8
_ADAGRAD_EPS = 1e-10
_RMSPROP_ALPHA = 0.99
_RMSPROP_EPS = 1e-8
_FAMILIES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam")


def fusion_key(config: TrainerConfig) -> tuple[tuple[str, Any], ...]:
    """What members of one group must share: every setting except :data:`FUSED_SETTINGS`
    (data set, seed, batch size, epochs, architecture, optimizer family, divergence
    factor), as ``(name, value)`` pairs. Configs with equal keys can be fused."""
    settings = config.as_dict()
    return tuple((name, settings[name]) for name in SETTINGS if name not in FUSED_SETTINGS)


class _StackedLinear(nn.Module):
    """``members`` copies of one ``nn.Linear``: ``weight`` is ``(members, out, in)``, in
    ``nn.Linear``'s layout, ``bias`` is ``(members, out)``."""

    def __init__(self, linear: nn.Linear, members: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(linear.weight.detach().repeat(members, 1, 1))
        self.bias = nn.Parameter(linear.bias.detach().repeat(members, 1))

    def forward(self, x: Tensor) -> Tensor:
        members, out_features, in_features = self.weight.shape
        if x.dim() == 2:
            # The input batch, shared by every member: one matrix product against all the
            # members' weights side by side, the cheapest way to feed them all.
            flat = torch.addmm(self.bias.view(-1), x, self.weight.view(-1, in_features).t())
            return flat.view(len(x), members, out_features).transpose(0, 1)
        return torch.baddbmm(self.bias.unsqueeze(1), x, self.weight.transpose(1, 2))


class _StackedBatchNorm(nn.Module):
    """``members`` copies of one ``nn.BatchNorm1d``, each normalising over its own batch
    with its own running statistics and affine parameters (all ``(members, features)``)."""

    def __init__(self, norm: nn.BatchNorm1d, members: int) -> None:
        super().__init__()
        if norm.running_mean is None or norm.running_var is None or norm.momentum is None:
            raise ValueError("only BatchNorm1d with running statistics and a momentum can be fused")
        self.eps = norm.eps
        self.momentum = norm.momentum
        self.weight = nn.Parameter(norm.weight.detach().repeat(members, 1))
        self.bias = nn.Parameter(norm.bias.detach().repeat(members, 1))
        self.running_mean: Tensor
        self.running_var: Tensor
        self.register_buffer("running_mean", norm.running_mean.repeat(members, 1))
        self.register_buffer("running_var", norm.running_var.repeat(members, 1))

    def forward(self, x: Tensor) -> Tensor:
        members, batch, features = x.shape
        # Laid out as (batch, members * features), member k's feature j is one channel of
        # an ordinary batch norm: the same kernel and the same statistics as BatchNorm1d.
        # The flat views of the running statistics are updated in place.
        flat = F.batch_norm(
            x.transpose(0, 1).reshape(batch, members * features),
            self.running_mean.view(-1),
            self.running_var.view(-1),
            self.weight.view(-1),
            self.bias.view(-1),
            training=self.training,
            momentum=self.momentum,
            eps=self.eps,
        )
        return flat.view(batch, members, features).transpose(0, 1)


class _StackedDropout(nn.Module):
    """Dropout with one rate per member: each member's units are zeroed independently
    with that member's probability and the survivors scaled by ``1 / (1 - rate)``, as
    ``nn.Dropout`` does; a member at rate 0 passes through unchanged."""

    def __init__(self, rates: Tensor) -> None:
        super().__init__()
        self.rates: Tensor
        self.register_buffer("rates", rates.detach().clone())

    def forward(self, x: Tensor) -> Tensor:
        if not self.training:
            return x
        keep = 1.0 - self.rates.view(-1, *([1] * (x.dim() - 1)))
        # floor(keep + uniform[0, 1)) is 1 with probability keep and 0 otherwise (the mask
        # TensorFlow's dropout draws); all float arithmetic, cheaper than comparing to a
        # per-member threshold and converting the booleans.
        mask = torch.rand_like(x).add_(keep).floor_().div_(keep)
        return x * mask


class _StackedPReLU(nn.Module):
    """``members`` copies of one ``nn.PReLU`` with a single slope: ``weight`` is
    ``(members, 1)``, and member ``k``'s units below 0 are scaled by its own slope."""

    def __init__(self, prelu: nn.PReLU, members: int) -> None:
        super().__init__()
        if prelu.weight.numel() != 1:
            raise ValueError("only a PReLU with one slope can be fused")
        self.weight = nn.Parameter(prelu.weight.detach().repeat(members, 1))

    def forward(self, x: Tensor) -> Tensor:
        slope = self.weight.view(-1, *([1] * (x.dim() - 1)))
        # nn.PReLU's definition: x where x > 0, else slope * x.
        return torch.where(x > 0, x, slope * x)


class FusedMLP(nn.Module):
    """``members`` copies of ``template`` (an :class:`MLP`) as one model.

    Every parameter and buffer is the template's stacked along a new first dimension, one
    row per member, in the template's order; every copy starts equal to the template.
    ``dropout`` holds one rate per member; a template without dropout layers gets none.

    ``forward(x)`` takes one batch ``(batch, features)``, fed to every member, and returns
    logits ``(members, batch, classes)``. :meth:`select_` keeps only some rows.
    """

    def __init__(self, template: MLP, members: int, *, dropout: Tensor | None = None) -> None:
        super().__init__()
        if members < 1:
            raise ValueError(f"a fused model needs at least one member, not {members}")
        rates = torch.zeros(members) if dropout is None else dropout.detach().float()
        if rates.shape != (members,):
            raise ValueError(f"dropout must hold one rate per member, got shape {tuple(rates.shape)}")
        blocks: list[nn.Module] = []
        for module in template.net:
            if isinstance(module, nn.Linear):
                blocks.append(_StackedLinear(module, members))
            elif isinstance(module, nn.BatchNorm1d):
                blocks.append(_StackedBatchNorm(module, members))
            elif isinstance(module, nn.Dropout):
                blocks.append(_StackedDropout(rates))
            elif isinstance(module, nn.PReLU):
                blocks.append(_StackedPReLU(module, members))
            else:
                # An activation without parameters, elementwise or (maxout) over the last
                # dimension: it serves every member as is.
                blocks.append(module)
        self.net = nn.Sequential(*blocks)

    @property
    def members(self) -> int:
        return int(next(self.parameters()).shape[0])

    def forward(self, x: Tensor) -> Tensor:
        logits: Tensor = self.net(x)
        return logits

    def decayed_weights(self) -> list[Tensor]:
        """The stacked ``Linear`` weights, the tensors L2 regularisation applies to."""
        return [module.weight for module in self.modules() if isinstance(module, _StackedLinear)]

    @torch.no_grad()
    def select_(self, rows: Tensor) -> None:
        """Keep only the members at ``rows`` (a 1-D index tensor), in that order. The
        parameters are replaced by new ones, so an optimizer's references go stale: see
        :meth:`FusedOptimizer.select_`."""
        for module in self.modules():
            for name, param in list(module.named_parameters(recurse=False)):
                setattr(module, name, nn.Parameter(param[rows]))
            for name, buffer in list(module.named_buffers(recurse=False)):
                setattr(module, name, buffer[rows])


def member_losses(model: FusedMLP, x: Tensor, y: Tensor, reg: Tensor) -> Tensor:
    """Each member's training objective on the batch ``(x, y)``, shape ``(members,)``:
    the mean cross-entropy plus ``reg[k] * sum(w**2)`` over its ``Linear`` weights.

    Only the cross-entropy is in the autograd graph; :func:`add_penalty_gradients` adds
    the penalty's gradient after ``backward``: through autograd the penalty would cost a
    saved square, a sum and their backward passes over every weight at every step."""
    logits = model(x)
    members, batch, classes = logits.shape
    targets = y.expand(members, batch).reshape(-1)
    cross_entropy = F.cross_entropy(logits.reshape(-1, classes), targets, reduction="none").view(members, batch)
    with torch.no_grad():
        penalty = sum(w.square().sum(dim=(1, 2)) for w in model.decayed_weights())
        assert isinstance(penalty, Tensor)
        # A member without regularisation gets no penalty term at all, as in ``train``:
        # 0 * inf would turn a merely large loss into NaN.
        penalty = torch.where(reg > 0, reg * penalty, torch.zeros_like(reg))
    return cross_entropy.mean(dim=1) + penalty


@torch.no_grad()
def add_penalty_gradients(model: FusedMLP, reg: Tensor) -> None:
    """Add the gradient of each member's penalty ``reg[k] * sum(w**2)``, ``2 * reg[k] * w``,
    to the ``.grad`` of its ``Linear`` weights: what :func:`member_losses` leaves out of the
    graph. The product is the one autograd would form, and adding it is how autograd
    accumulates a second path's gradient."""
    factor = (2 * reg).view(-1, 1, 1)
    for weight in model.decayed_weights():
        if weight.grad is not None:
            weight.grad.add_(weight * factor)


@torch.inference_mode()
def evaluate_members(model: FusedMLP, x: Tensor, y: Tensor) -> list[tuple[float, float]]:
    """Per member, mean cross-entropy (nats) and accuracy (fraction in [0, 1]) on
    ``(x, y)``, in eval mode: :func:`trainer.loop.evaluate` for every member at once."""
    model.eval()
    members = model.members
    loss_sum = torch.zeros(members, device=x.device)
    correct = torch.zeros(members, device=x.device)
    # Activations grow with the number of members; keep a chunk's size near EVAL_BATCH's.
    chunk = max(1, EVAL_BATCH // members)
    for start in range(0, len(y), chunk):
        logits = model(x[start : start + chunk])
        targets = y[start : start + chunk].expand(members, -1)
        classes = logits.shape[-1]
        losses = F.cross_entropy(logits.reshape(-1, classes), targets.reshape(-1), reduction="none")
        loss_sum += losses.view(members, -1).sum(dim=1)
        correct += (logits.argmax(dim=2) == targets).sum(dim=1)
    total_loss, total_correct = torch.stack([loss_sum, correct]).tolist()
    return [(loss / len(y), right / len(y)) for loss, right in zip(total_loss, total_correct, strict=True)]


class FusedOptimizer:
    """``torch.optim``'s update for the optimizer family ``family`` (one of
    ``trainer.config.OPTIMIZERS``) on stacked parameters, with one learning rate and one
    momentum per member (``lr`` and ``momentum``: 1-D tensors, one entry per row).

    Member ``k`` is updated as ``trainer.loop.make_optimizer(family, lr=lr[k],
    momentum=momentum[k])`` would update it alone: the same formulas, the same defaults
    (RMSprop alpha 0.99, Adam betas (0.9, 0.999), eps as in ``torch.optim``) and, where a
    per-member tensor allows, the same order of operations, so results agree up to
    rounding. Nesterov with momentum 0 is plain SGD in both. ``momentum`` is ignored by
    the families that do not use it. Every member steps together, so the step count that
    Adam's bias correction and Adagrad use is shared.

    State is kept per position in the parameter list passed to :meth:`step`, which must
    list the same tensors (or their :meth:`FusedMLP.select_` successors) every time.
    """

    def __init__(self, family: str, *, lr: Tensor, momentum: Tensor) -> None:
        if family not in _FAMILIES:
            raise ValueError(f"unknown optimizer {family!r}")
        if lr.dim() != 1 or momentum.shape != lr.shape:
            raise ValueError("lr and momentum must be 1-D tensors with one entry per member")
        self.family = family
        self.lr = lr
        self.momentum = momentum
        self.steps = 0
        self.state: list[dict[str, Tensor]] = []

    @torch.no_grad()
    def step(self, params: Sequence[Tensor]) -> None:
        """Apply one update to every parameter in ``params`` from its ``.grad``."""
        if not self.state:
            self.state = [{} for _ in params]
        self.steps += 1
        for param, state in zip(params, self.state, strict=True):
            if param.grad is not None:
                self._update(param, param.grad, state)

    def _update(self, param: Tensor, grad: Tensor, state: dict[str, Tensor]) -> None:
        # Per-member values as (members, 1, ..., 1), broadcasting over each member's row.
        shape = (-1, *([1] * (param.dim() - 1)))
        lr = self.lr.view(shape)
        step = self.steps
        match self.family:
            case "sgd":
                param.addcmul_(grad, lr, value=-1)
            case "momentum" | "nesterov":
                momentum = self.momentum.view(shape)
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = grad.detach().clone()
                else:
                    buf.mul_(momentum).add_(grad)
                direction = grad.addcmul(buf, momentum) if self.family == "nesterov" else buf
                param.addcmul_(direction, lr, value=-1)
            case "adagrad":
                total = state.setdefault("sum", torch.zeros_like(param))
                total.addcmul_(grad, grad, value=1)
                std = total.sqrt().add_(_ADAGRAD_EPS)
                param.addcmul_(grad / std, lr, value=-1)
            case "rmsprop":
                square_avg = state.setdefault("square_avg", torch.zeros_like(param))
                square_avg.mul_(_RMSPROP_ALPHA).addcmul_(grad, grad, value=1 - _RMSPROP_ALPHA)
                avg = square_avg.sqrt().add_(_RMSPROP_EPS)
                param.addcmul_(grad / avg, lr, value=-1)
            case "adam":
                beta1, beta2 = _ADAM_BETAS
                exp_avg = state.setdefault("exp_avg", torch.zeros_like(param))
                exp_avg_sq = state.setdefault("exp_avg_sq", torch.zeros_like(param))
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                bias_correction1 = 1 - beta1**step
                bias_correction2_sqrt = (1 - beta2**step) ** 0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(_ADAM_EPS)
                param.addcmul_(exp_avg / denom, lr / bias_correction1, value=-1)

    def select_(self, rows: Tensor) -> None:
        """Keep only the members at ``rows``, matching :meth:`FusedMLP.select_`."""
        self.lr = self.lr[rows]
        self.momentum = self.momentum[rows]
        self.state = [{name: value[rows] for name, value in state.items()} for state in self.state]


def train_fused(
    configs: Sequence[TrainerConfig],
    *,
    on_epoch: Sequence[EpochCallback | None] | None = None,
    on_result: ResultCallback | None = None,
    data_dir: Path | str | None = None,
    device: str | torch.device | None = None,
) -> list[TrainResult]:
    """Train every config in ``configs`` as one fused model; one result per config, in
    order, each as :func:`trainer.loop.train` would report it (module docstring).

    ``on_epoch[k]`` is member ``k``'s epoch callback, called as ``train`` calls it; False
    stops that member alone. ``on_result(k, result)`` is called once per member as soon as
    it has ended (diverged, stopped or completed), while the others may still train.
    ``seconds`` in a member's metrics runs from the start of this call to its end.

    Raises ``ValueError`` when the configs do not share a :func:`fusion_key`, for the
    configs ``train`` refuses, and for a data set that cannot be loaded; an exception from
    a callback propagates. Deterministic on the CPU for given configs and thread count.
    """
    training = FusedTraining(configs, on_epoch=on_epoch, on_result=on_result, data_dir=data_dir, device=device)
    return training.run()


@dataclass
class _Member:
    """What one member keeps of its own, as ``train`` keeps it for its single model; its
    settings and weights are rows of the stacked tensors."""

    #: Its position in ``configs``: the index ``on_result`` is called with.
    index: int
    config: TrainerConfig
    on_epoch: EpochCallback | None
    train_loss: TrainLoss
    curve: list[dict[str, float]] = field(default_factory=list)
    #: Validation loss and accuracy, as last evaluated.
    val: tuple[float, float] = (math.nan, math.nan)
    #: Accuracy on the training sample (``trainer.run.accuracy_sample``), as last evaluated.
    train_accuracy: float = math.nan
    result: TrainResult | None = None


class FusedTraining:
    """One :func:`train_fused` call: the group's stacked model, optimizer and ``reg``, and
    one :class:`_Member` per config. Row ``r`` of every stacked tensor belongs to
    ``alive[r]``; a member's row leaves the stacks when it ends."""

    def __init__(
        self,
        configs: Sequence[TrainerConfig],
        *,
        on_epoch: Sequence[EpochCallback | None] | None,
        on_result: ResultCallback | None,
        data_dir: Path | str | None,
        device: str | torch.device | None,
    ) -> None:
        self.started = time.perf_counter()
        _check_fusable(configs)
        callbacks = list(on_epoch) if on_epoch is not None else [None] * len(configs)
        if len(callbacks) != len(configs):
            raise ValueError(f"on_epoch has {len(callbacks)} callbacks for {len(configs)} configs")
        first = configs[0]
        # The template is built with the largest rate so that it has dropout layers if any
        # member needs them; each member drops units at its own rate.
        setup = set_up(first, data_dir=data_dir, device=device, dropout=max(config.dropout for config in configs))
        self.device = setup.device
        self.splits = setup.splits
        self.fit_sample = accuracy_sample(setup.splits)
        self.batches = setup.batches
        self.epochs = first.epochs
        self.epoch = 0
        self.on_result = on_result
        self.members = [
            _Member(index, config, callback, TrainLoss(config.divergence_factor))
            for index, (config, callback) in enumerate(zip(configs, callbacks, strict=True))
        ]
        self.alive = list(self.members)

        def per_member(name: str) -> Tensor:
            return torch.tensor([getattr(config, name) for config in configs], dtype=torch.float32, device=self.device)

        self.model = FusedMLP(setup.model, len(configs), dropout=per_member("dropout")).to(self.device)
        self.optimizer = FusedOptimizer(first.optimizer, lr=per_member("lr"), momentum=per_member("momentum"))
        self.reg = per_member("reg")

    def run(self) -> list[TrainResult]:
        """Train until every member has ended; their results, in the order of ``configs``."""
        for epoch in range(1, self.epochs + 1):
            self.epoch = epoch
            self.set_rates(epoch)
            self.model.train()
            for member in self.alive:
                member.train_loss.new_epoch()
            for batch in self.batches.epoch():
                self.step(batch)
                if not self.alive:
                    break
            if not self.alive:
                break
            self.end_epoch()
        if self.alive:
            self.end(dict.fromkeys(range(len(self.alive)), "completed"))
        results = [member.result for member in self.members if member.result is not None]
        assert len(results) == len(self.members)
        return results

    def set_rates(self, epoch: int) -> None:
        """Give each member still training the learning rate its schedule sets for ``epoch``."""
        rates = [epoch_lr(member.config, epoch) for member in self.alive]
        self.optimizer.lr = torch.tensor(rates, dtype=torch.float32, device=self.device)

    def step(self, batch: Tensor) -> None:
        """One mini-batch for every member still training: forward, the divergence check,
        backward and update."""
        losses = member_losses(self.model, self.splits.x_train[batch], self.splits.y_train[batch], self.reg)
        # The one host sync per step: each member's divergence is caught at its step.
        diverging: dict[int, StopReason] = {}
        for row, (member, value) in enumerate(zip(self.alive, losses.tolist(), strict=True)):
            reason = member.train_loss.add(value)
            if reason is not None:
                diverging[row] = reason

        objective = losses.sum()
        if diverging:
            # Ended with the weights they have now, before this step's update, as ``train``
            # ends a run; their rows leave the stacks after the update.
            self.validate()
            self.end(diverging)
            self.model.train()
            survivors = [row for row in range(len(self.alive)) if row not in diverging]
            if not survivors:
                self.drop(diverging)
                return
            # The survivors' objectives only: a diverged member's rows get no gradient
            # from its loss (only its penalty's, harmless: they leave after this step).
            objective = losses[torch.tensor(survivors, device=self.device)].sum()
        self.model.zero_grad(set_to_none=True)
        objective.backward()  # type: ignore[no-untyped-call]
        add_penalty_gradients(self.model, self.reg)
        self.optimizer.step(list(self.model.parameters()))
        if diverging:
            self.drop(diverging)

    def end_epoch(self) -> None:
        """Evaluate every member, add the point to its curve and call its ``on_epoch``;
        those whose callback says stop end here."""
        self.validate()
        stopping: dict[int, StopReason] = {}
        for row, member in enumerate(self.alive):
            val_loss, val_accuracy = member.val
            point = {
                "train_loss": member.train_loss.epoch_mean,
                "train_accuracy": member.train_accuracy,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
            }
            member.curve.append({"epoch": self.epoch, **point})
            if member.on_epoch is not None and member.on_epoch(self.epoch, point) is False:
                stopping[row] = "stopped"
        if stopping:
            self.end(stopping)
            self.drop(stopping)

    def validate(self) -> None:
        """Evaluate every member still training on the training sample and the validation
        split."""
        train = evaluate_members(self.model, *self.fit_sample)
        val = evaluate_members(self.model, self.splits.x_val, self.splits.y_val)
        for member, (_, train_accuracy), score in zip(self.alive, train, val, strict=True):
            member.train_accuracy = train_accuracy
            member.val = score

    def end(self, reasons: Mapping[int, StopReason]) -> None:
        """End the members at the rows ``reasons`` names, for the reason it gives, with
        their weights as they are now: evaluate them once on the test split and hand each
        result to ``on_result``. Their rows stay in the stacks until :meth:`drop`."""
        test = evaluate_members(self.model, self.splits.x_test, self.splits.y_test)
        for row, reason in reasons.items():
            member = self.alive[row]
            member.result = finish(
                reason,
                loss=member.train_loss,
                val=member.val,
                train_accuracy=member.train_accuracy,
                test_accuracy=test[row][1],
                epochs_run=self.epoch,
                started=self.started,
                curve=member.curve,
            )
            if self.on_result is not None:
                self.on_result(member.index, member.result)

    def drop(self, rows: Collection[int]) -> None:
        """Remove the members at ``rows`` from the model, the optimizer, ``reg`` and
        ``alive``."""
        keep = [row for row in range(len(self.alive)) if row not in rows]
        if keep:
            index = torch.tensor(keep, device=self.device)
            self.model.select_(index)
            self.optimizer.select_(index)
            self.reg = self.reg[index]
        self.alive = [self.alive[row] for row in keep]


def _check_fusable(configs: Sequence[TrainerConfig]) -> None:
    """Raise ``ValueError`` unless ``configs`` is a group that can be fused."""
    if not configs:
        raise ValueError("nothing to train: no configs")
    key = fusion_key(configs[0])
    for config in configs[1:]:
        if fusion_key(config) != key:
            other = dict(fusion_key(config))
            differ = sorted(name for name, value in key if other[name] != value)
            raise ValueError(f"configs cannot be fused: they differ in {', '.join(differ)}")
