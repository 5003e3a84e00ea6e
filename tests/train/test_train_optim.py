"""AdamW grouping, the warmup + cosine schedule and the flat optimizer state."""

import itertools
import math

import pytest
import torch
from torch import nn

from masklab.train import TrainConfig, build_optimizer, lr_at, param_groups
from masklab.train.optim import load_optimizer_state, optimizer_state_tensors, uses_weight_decay


def test_lr_warmup_then_cosine_to_min_lr():
    cfg = TrainConfig(steps=110, lr=1e-3, min_lr=1e-5, warmup_steps=10)
    assert lr_at(0, cfg) == 0.0
    assert lr_at(5, cfg) == pytest.approx(0.5e-3)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx((1e-3 + 1e-5) / 2)  # half-way through the cosine
    assert lr_at(110, cfg) == pytest.approx(1e-5)
    assert lr_at(500, cfg) == pytest.approx(1e-5)  # clamped past the end
    after_warmup = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in itertools.pairwise(after_warmup))


def test_lr_edge_cases():
    assert lr_at(1, TrainConfig(steps=10, lr=2.0, warmup_steps=0)) == pytest.approx(1.0 + math.cos(math.pi / 10))
    only_warmup = TrainConfig(steps=4, lr=1.0, warmup_steps=4)
    assert [lr_at(s, only_warmup) for s in range(5)] == [0.0, 0.25, 0.5, 0.75, 1.0]


class _Net(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos_embed = nn.Parameter(torch.zeros(1, 4, 8))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, 8))
        self.embeddings = nn.Module()
        self.embeddings.position_embeddings = nn.Embedding(4, 8)
        self.tok = nn.Embedding(10, 8)
        self.proj = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)
        self.frozen = nn.Linear(8, 8)
        self.frozen.requires_grad_(False)


def test_no_decay_groups():
    net = _Net()
    decay, no_decay = param_groups(net, weight_decay=0.1)
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert {id(p) for p in decay["params"]} == {id(net.tok.weight), id(net.proj.weight)}
    expected = [net.pos_embed, net.cls_token, net.mask_token, net.embeddings.position_embeddings.weight,
                net.proj.bias, net.norm.weight, net.norm.bias]  # fmt: skip
    assert {id(p) for p in no_decay["params"]} == {id(p) for p in expected}
    assert not uses_weight_decay("blocks.0.attn.qkv.bias", torch.zeros(3))
    assert uses_weight_decay("blocks.0.attn.qkv.weight", torch.zeros(3, 3))


def test_build_optimizer_and_flat_state_roundtrip():
    torch.manual_seed(0)
    net = _Net()
    cfg = TrainConfig(lr=1e-2, weight_decay=0.2, betas=(0.8, 0.9))
    opt = build_optimizer(net, cfg)
    assert isinstance(opt, torch.optim.AdamW)
    assert not opt.defaults["fused"] and opt.defaults["betas"] == (0.8, 0.9)
    for _ in range(3):
        (net.proj(net.tok.weight).square().mean() + net.pos_embed.sum()).backward()
        opt.step()
        opt.zero_grad()
    tensors, groups_json = optimizer_state_tensors(opt)
    assert {k.rsplit(".", 1)[1] for k in tensors} == {"exp_avg", "exp_avg_sq", "step"}

    fresh = build_optimizer(net, cfg)
    load_optimizer_state(fresh, tensors, groups_json)
    for index, state in opt.state_dict()["state"].items():
        for name, value in state.items():
            assert torch.equal(fresh.state_dict()["state"][index][name], value)
    assert fresh.param_groups[0]["betas"] == (0.8, 0.9)
    with pytest.raises(ValueError, match="does not fit"):
        load_optimizer_state(build_optimizer(nn.Linear(2, 2), cfg), tensors, groups_json)


def test_build_optimizer_rejects_frozen_model():
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(nn.Linear(2, 2).requires_grad_(False), TrainConfig())


def test_cpu_optimizer_is_foreach_and_matches_the_per_tensor_loop_bit_for_bit():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8), nn.LayerNorm(8))
    twin = nn.Sequential(nn.Linear(8, 32), nn.GELU(), nn.Linear(32, 8), nn.LayerNorm(8))
    twin.load_state_dict(model.state_dict())
    cfg = TrainConfig(steps=30, lr=3e-3, weight_decay=0.05)
    fast = build_optimizer(model, cfg)
    assert fast.defaults["foreach"] is True
    slow = torch.optim.AdamW(param_groups(twin, cfg.weight_decay), lr=cfg.lr, betas=cfg.betas,
                             weight_decay=cfg.weight_decay, foreach=False)  # fmt: skip
    for step in range(1, 31):
        x = torch.randn(16, 8)
        for net, opt in ((model, fast), (twin, slow)):
            opt.zero_grad()
            net(x).pow(2).mean().backward()
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            opt.step()
    for a, b in zip(model.parameters(), twin.parameters(), strict=True):
        assert torch.equal(a, b)
