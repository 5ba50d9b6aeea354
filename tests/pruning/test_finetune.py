"""Frozen-mask fine-tuning and distillation (ALGORITHMS.md 9.3)."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pruning.errors import PruningParameterError
from pruning.finetune import FinetuneConfig, distillation_loss, finetune, lr_factor
from pruning.magnitude import magnitude


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 4))


def data(seed: int = 0, n: int = 96):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    return x, (x[:, 0] > 0).long() + 2 * (x[:, 1] > 0).long()


def masked_entries(model, mask):
    modules = dict(model.named_modules())
    return torch.cat([modules[n].weight.detach()[~k] for n, k in mask.keep.items()])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_masked_weights_exactly_zero_after_every_step(optimizer):
    model, (x, y) = mlp(), data()
    mask = magnitude(model, 0.6)
    config = FinetuneConfig(optimizer=optimizer, lr=0.05, weight_decay=0.1, batch_size=16, epochs=2, seed=1)
    seen = []

    def check(step, net):
        assert torch.count_nonzero(masked_entries(net, mask)) == 0
        seen.append(step)

    result = finetune(model, mask, (x, y), config, on_step=check, progress=False)
    assert seen == list(range(1, 13)) and result.steps == 12
    assert len(result.losses) == 12
    assert not torch.equal(result.model[0].weight, mask.apply(model)[0].weight)  # the kept weights did train
    kept = torch.cat([dict(result.model.named_modules())[n].weight.detach()[k] for n, k in mask.keep.items()])
    assert torch.count_nonzero(kept) == kept.numel()


def test_known_bad_plain_training_regrows_pruned_weights():
    model, (x, y) = mlp(), data()
    mask = magnitude(model, 0.6)
    net = mask.apply(model)
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(net(x), y).backward()
        opt.step()
    assert torch.count_nonzero(masked_entries(net, mask)) > 0


def test_user_model_untouched_unless_inplace():
    model, (x, y) = mlp(), data()
    before = copy.deepcopy(model.state_dict())
    mask = magnitude(model, 0.5)
    result = finetune(model, mask, (x, y), FinetuneConfig(batch_size=32, lr=0.01), progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert result.model is not model
    result = finetune(model, mask, (x, y), FinetuneConfig(batch_size=32, lr=0.01), inplace=True, progress=False)
    assert result.model is model and torch.count_nonzero(masked_entries(model, mask)) == 0


def test_teacher_gets_no_gradients_and_is_not_updated():
    model, (x, y) = mlp(), data()
    teacher = mlp(5)
    before = copy.deepcopy(teacher.state_dict())
    finetune(model, magnitude(model, 0.5), (x, y), FinetuneConfig(batch_size=32, lr=0.05), teacher=teacher,
             progress=False)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())


def test_kl_uses_teacher_as_target_distribution():
    g = torch.Generator().manual_seed(0)
    student, teacher = torch.randn(8, 5, generator=g), torch.randn(8, 5, generator=g)
    labels = torch.randint(0, 5, (8,), generator=g)
    config = FinetuneConfig(kd_alpha=0.5, kd_tau=2.0, label_smoothing=0.1)
    p_t, log_p_t, log_p_s = F.softmax(teacher / 2, -1), F.log_softmax(teacher / 2, -1), F.log_softmax(student / 2, -1)
    kl_teacher_target = (p_t * (log_p_t - log_p_s)).sum(-1).mean()
    ce = F.cross_entropy(student, labels, label_smoothing=0.1)
    expected = 0.5 * ce + 0.5 * 4.0 * kl_teacher_target
    got = distillation_loss(student, teacher, labels, config)
    assert torch.allclose(got, expected, atol=1e-6)
    # known-bad: KL with the student as target is a different number
    p_s = F.softmax(student / 2, -1)
    reversed_kl = (p_s * (log_p_s - log_p_t)).sum(-1).mean()
    assert not torch.allclose(got, 0.5 * ce + 0.5 * 4.0 * reversed_kl, atol=1e-4)
    assert torch.equal(distillation_loss(student, None, labels, config), ce)


def test_lr_schedule_warmup_and_cosine_floor():
    assert lr_factor(0, 100, 25, 0.01, 0.01) == pytest.approx(0.01)
    assert lr_factor(25, 100, 25, 0.01, 0.01) == pytest.approx(1.0)
    assert lr_factor(100, 100, 25, 0.01, 0.25) == pytest.approx(0.25)
    values = [lr_factor(k, 100, 25, 0.01, 0.01) for k in range(25, 101)]
    assert all(b <= a + 1e-15 for a, b in zip(values, values[1:]))


def test_max_steps_and_batch_iterables():
    model, (x, y) = mlp(), data()
    mask = magnitude(model, 0.3)
    batches = [(x[i:i + 32], y[i:i + 32]) for i in range(0, 96, 32)]
    assert finetune(model, mask, batches, FinetuneConfig(epochs=3, max_steps=5), progress=False).steps == 5
    a = finetune(model, mask, (x, y), FinetuneConfig(batch_size=32, lr=0.1, seed=3), progress=False).model
    b = finetune(model, mask, (x, y), FinetuneConfig(batch_size=32, lr=0.1, seed=3), progress=False).model
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_bad_config_and_data_typed_errors():
    with pytest.raises(PruningParameterError, match="optimizer"):
        FinetuneConfig(optimizer="lion")
    with pytest.raises(PruningParameterError, match="epochs"):
        FinetuneConfig(epochs=0)
    with pytest.raises(PruningParameterError, match="kd_alpha"):
        FinetuneConfig(kd_alpha=2.0)
    model, (x, y) = mlp(), data()
    with pytest.raises(PruningParameterError, match="data"):
        finetune(model, magnitude(model, 0.3), (x, y[:5]), progress=False)
    with pytest.raises(PruningParameterError, match="loss"):
        finetune(model, magnitude(model, 0.3), (x * float("nan"), y), FinetuneConfig(batch_size=32), progress=False)
