"""Fused trials: many trials of one architecture trained together as one batched model.

Trials in a sweep are small models that differ in a few numbers. Trained one at a time,
a CPU or GPU spends most of its time on per-operation overhead rather than arithmetic;
trained as one model whose parameters are the trials' parameters stacked along a new
leading dimension, every operation does the work of all of them at once (the idea of
HFTA, Wang et al., MLSys 2021).

A *group* is a list of :class:`TrainerConfig` that agree on everything except
:data:`FUSED_SETTINGS` (``lr``, ``reg``, ``momentum``, ``dropout``): :func:`fusion_key`
says what must agree. :func:`train_fused` trains a group so that member ``k`` follows the
run ``train(configs[k])`` would make:

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
  learning rate and momentum (:class:`FusedOptimizer`);
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
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from hypersweep.trainer.config import SETTINGS, TrainerConfig
from hypersweep.trainer.data import load_dataset
from hypersweep.trainer.loop import (
    EVAL_BATCH,
    EpochCallback,
    FinalMetrics,
    StopReason,
    TrainResult,
    check_trainable,
    default_device,
)
from hypersweep.trainer.model import MLP

__all__ = [
    "FUSED_SETTINGS",
    "FusedMLP",
    "FusedOptimizer",
    "ResultCallback",
    "add_penalty_gradients",
    "evaluate_members",
    "fusion_key",
    "member_losses",
    "train_fused",
]

#: The settings that may differ between the members of one group: each member keeps its
#: own value. Every other setting must be the same (see :func:`fusion_key`).
FUSED_SETTINGS: tuple[str, ...] = ("lr", "reg", "momentum", "dropout")

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
            else:
                blocks.append(module)  # an activation: elementwise, so it serves every member as is
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
    the penalty's gradient after ``backward``. Through autograd the penalty would cost a
    saved square, a sum and their backward passes over every weight at every step, about
    a sixth of a fused step at 128 hidden units on a CPU."""
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
    started = time.perf_counter()
    if not configs:
        raise ValueError("nothing to train: no configs")
    first = configs[0]
    key = fusion_key(first)
    for config in configs[1:]:
        if fusion_key(config) != key:
            other = dict(fusion_key(config))
            differ = sorted(name for name, value in key if other[name] != value)
            raise ValueError(f"configs cannot be fused: they differ in {', '.join(differ)}")
    check_trainable(first)
    callbacks = list(on_epoch) if on_epoch is not None else [None] * len(configs)
    if len(callbacks) != len(configs):
        raise ValueError(f"on_epoch has {len(callbacks)} callbacks for {len(configs)} configs")
    device = torch.device(device) if device is not None else default_device()

    # The same draws, in the same order, as each member's own run: seed, split, build.
    torch.manual_seed(first.seed)
    splits = load_dataset(first.dataset, data_dir=data_dir, seed=first.seed).to(device)
    template = MLP(
        splits.num_features,
        splits.num_classes,
        hidden=first.hidden,
        layers=first.layers,
        activation=first.activation,
        dropout=max(config.dropout for config in configs),
        batchnorm=first.batchnorm,
        init=first.init,
    )

    def per_member(name: str) -> Tensor:
        return torch.tensor([getattr(config, name) for config in configs], dtype=torch.float32, device=device)

    model = FusedMLP(template, len(configs), dropout=per_member("dropout")).to(device)
    optimizer = FusedOptimizer(first.optimizer, lr=per_member("lr"), momentum=per_member("momentum"))
    reg = per_member("reg")
    shuffle = torch.Generator().manual_seed(first.seed)

    n_train = len(splits.y_train)
    batch_size = first.batch_size
    # BatchNorm cannot normalise a batch of one sample: skip such a trailing batch.
    n_used = n_train - 1 if first.batchnorm and n_train % batch_size == 1 else n_train

    # Row r of every stacked tensor belongs to member alive[r]; rows go as members end.
    alive = list(range(len(configs)))
    results: list[TrainResult | None] = [None] * len(configs)
    curves: list[list[dict[str, float]]] = [[] for _ in configs]
    initial_loss = [math.nan] * len(configs)
    loss_limit = [math.inf] * len(configs)
    loss_sums = [0.0] * len(configs)
    val = [(math.nan, math.nan)] * len(configs)
    step = 0
    epoch = 0

    def conclude(ending: dict[int, StopReason], epoch_steps: int) -> None:
        """End the members at rows ``ending`` (row -> reason) with their weights as they
        are now; their rows stay in the stacks until :func:`drop` removes them."""
        test = evaluate_members(model, splits.x_test, splits.y_test)
        for row, reason in ending.items():
            member = alive[row]
            val_loss, val_accuracy = val[member]
            metrics: FinalMetrics = {
                "train_loss": loss_sums[member] / epoch_steps,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
                "test_accuracy": test[row][1],
                "initial_loss": initial_loss[member],
                "epochs_run": epoch,
                "steps": step,
                "stop_reason": reason,
                "seconds": time.perf_counter() - started,
            }
            diverged = reason in ("diverged", "nan")
            if diverged:
                metrics["stopped_at_step"] = step
            result = TrainResult(status="diverged" if diverged else "completed", metrics=metrics, curve=curves[member])
            results[member] = result
            if on_result is not None:
                on_result(member, result)

    def drop(ended: Sequence[int]) -> None:
        """Remove the rows ``ended`` from the model, the optimizer and ``alive``."""
        nonlocal alive, reg
        keep = [row for row in range(len(alive)) if row not in ended]
        if keep:
            rows = torch.tensor(keep, device=device)
            model.select_(rows)
            optimizer.select_(rows)
            reg = reg[rows]
        alive = [alive[row] for row in keep]

    epoch_steps = 0
    for epoch in range(1, first.epochs + 1):
        model.train()
        order = torch.randperm(n_train, generator=shuffle).to(device)
        for member in alive:
            loss_sums[member] = 0.0
        epoch_steps = 0
        for start in range(0, n_used, batch_size):
            batch = order[start : start + batch_size]
            losses = member_losses(model, splits.x_train[batch], splits.y_train[batch], reg)

            # The one host sync per step: each member's divergence is caught at its step.
            values = losses.tolist()
            step += 1
            epoch_steps += 1
            diverging: dict[int, StopReason] = {}
            for row, (member, value) in enumerate(zip(alive, values, strict=True)):
                loss_sums[member] += value
                if step == 1:
                    initial_loss[member] = value
                    loss_limit[member] = configs[member].divergence_factor * value
                if not math.isfinite(value):
                    diverging[row] = "nan"
                elif value > loss_limit[member]:
                    diverging[row] = "diverged"

            objective = losses.sum()
            if diverging:
                # Ended with the weights they have now, before this step's update, as
                # ``train`` ends a run; their rows leave the stacks after the update.
                scores = evaluate_members(model, splits.x_val, splits.y_val)
                for row in diverging:
                    val[alive[row]] = scores[row]
                conclude(diverging, epoch_steps)
                model.train()
                survivors = [row for row in range(len(alive)) if row not in diverging]
                if not survivors:
                    drop(list(diverging))
                    break
                # The survivors' objectives only: a diverged member's rows get no gradient
                # from its loss (only its penalty's, harmless: they leave after this step).
                objective = losses[torch.tensor(survivors, device=device)].sum()
            model.zero_grad(set_to_none=True)
            objective.backward()  # type: ignore[no-untyped-call]
            add_penalty_gradients(model, reg)
            optimizer.step(list(model.parameters()))
            if diverging:
                drop(list(diverging))
        if not alive:
            break

        scores = evaluate_members(model, splits.x_val, splits.y_val)
        stopping: dict[int, StopReason] = {}
        for row, member in enumerate(alive):
            val[member] = scores[row]
            train_loss = loss_sums[member] / epoch_steps
            point = {"train_loss": train_loss, "val_loss": scores[row][0], "val_accuracy": scores[row][1]}
            curves[member].append({"epoch": epoch, **point})
            callback = callbacks[member]
            if callback is not None and callback(epoch, point) is False:
                stopping[row] = "stopped"
        if stopping:
            conclude(stopping, epoch_steps)
            drop(list(stopping))
        if not alive:
            break

    if alive:
        conclude(dict.fromkeys(range(len(alive)), "completed"), epoch_steps)
    finished = [result for result in results if result is not None]
    assert len(finished) == len(configs)
    return finished
