"""NeuMF in torch: the network, its training steps and the export to the numpy serving form.

Training only (plain loop, Ray Train workers, Tune trials); serving uses
`training.models.recommender.NCFWeights`, which `export` produces.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from training.models.optim import adam
from training.models.recommender import NCFConfig, NCFWeights, TrainPairs, sample_negatives


class NeuMF(nn.Module):
    """GMF tower (u * i) and MLP tower ([u, i] -> ReLU layers), concatenated -> one logit."""

    def __init__(self, n_users: int, n_items: int, cfg: NCFConfig) -> None:
        super().__init__()
        self.gmf_user = nn.Embedding(n_users, cfg.gmf_dim)
        self.gmf_item = nn.Embedding(n_items, cfg.gmf_dim)
        self.mlp_user = nn.Embedding(n_users, cfg.mlp_dim)
        self.mlp_item = nn.Embedding(n_items, cfg.mlp_dim)
        layers: list[nn.Module] = []
        width = 2 * cfg.mlp_dim
        for out in cfg.mlp_layers:
            layers += [nn.Linear(width, out), nn.ReLU()]
            width = out
        self.mlp = nn.Sequential(*layers)
        self.out = nn.Linear(cfg.gmf_dim + width, 1)
        for emb in (self.gmf_user, self.gmf_item, self.mlp_user, self.mlp_item):
            nn.init.normal_(emb.weight, std=0.01)  # NeuMF paper init; default N(0,1) is too big

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """Logits of (users[n], items[n])."""
        gmf = self.gmf_user(users) * self.gmf_item(items)
        mlp = self.mlp(torch.cat([self.mlp_user(users), self.mlp_item(items)], dim=-1))
        return self.out(torch.cat([gmf, mlp], dim=-1)).squeeze(-1)


def make_model(cfg: NCFConfig, n_users: int, n_items: int) -> NeuMF:
    """A seeded NeuMF for an [n_users, n_items] interaction matrix."""
    torch.manual_seed(cfg.seed)
    return NeuMF(n_users, n_items, cfg)


def make_optimizer(model: nn.Module, cfg: NCFConfig) -> torch.optim.Optimizer:
    """Adam over the model's parameters (fused where supported, `cfg.fused_adam`)."""
    return adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=cfg.fused_adam)


def epoch_batches(
    pairs: TrainPairs, cfg: NCFConfig, rng: np.random.Generator
) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of shuffled (users, items, labels, weights) batches with fresh negatives."""
    neg = sample_negatives(pairs, pairs.users, cfg.n_neg, rng)
    users = np.concatenate([pairs.users, np.repeat(pairs.users, cfg.n_neg)])
    items = np.concatenate([pairs.items, neg.ravel()])
    labels = np.concatenate([np.ones(len(pairs.users)), np.zeros(neg.size)]).astype(np.float32)
    weights = np.concatenate([pairs.weights, np.ones(neg.size, np.float32)])
    order = rng.permutation(len(users))
    t = [torch.from_numpy(np.ascontiguousarray(a[order])) for a in (users, items, labels, weights)]
    for start in range(0, len(order), cfg.batch_size):
        yield tuple(x[start : start + cfg.batch_size] for x in t)


def train_epoch(
    model: nn.Module, optimizer: torch.optim.Optimizer, batches: Iterator[tuple[torch.Tensor, ...]]
) -> tuple[float, int]:
    """One pass of weighted BCE over `batches`; (mean loss, samples seen)."""
    model.train()
    total, n = 0.0, 0
    bce = nn.BCEWithLogitsLoss(reduction="none")
    for users, items, labels, weights in batches:
        optimizer.zero_grad(set_to_none=True)
        loss = (bce(model(users, items), labels) * weights).mean()
        loss.backward()
        optimizer.step()
        total += float(loss.detach()) * len(labels)
        n += len(labels)
    return total / max(n, 1), n


@torch.no_grad()
def sampled_hit_rate(
    model: nn.Module, users: np.ndarray, positives: np.ndarray, negatives: np.ndarray, k: int = 10
) -> float:
    """HR@k of each user's positive among its negatives ([E], [E], [E, N]); ties count against."""
    model.eval()
    items = np.concatenate([positives[:, None], negatives], axis=1)
    u = torch.from_numpy(np.repeat(users, items.shape[1]).astype(np.int64))
    s = model(u, torch.from_numpy(items.ravel().astype(np.int64))).reshape(items.shape).numpy()
    rank = (s[:, 1:] >= s[:, :1]).sum(axis=1)
    return float((rank < k).mean())


def export(model: nn.Module) -> NCFWeights:
    """The numpy serving form of a (possibly DDP-wrapped) NeuMF."""
    m: NeuMF = getattr(model, "module", model)
    f32 = {k: v.detach().cpu().numpy().astype(np.float32) for k, v in m.state_dict().items()}
    d = m.mlp_user.embedding_dim
    linears = [i for i, layer in enumerate(m.mlp) if isinstance(layer, nn.Linear)]
    w1, b1 = f32[f"mlp.{linears[0]}.weight"], f32[f"mlp.{linears[0]}.bias"]
    g = m.gmf_user.embedding_dim
    out_w = f32["out.weight"][0]
    return NCFWeights(
        user_gmf=f32["gmf_user.weight"],
        item_gmf=f32["gmf_item.weight"],
        user_mlp=f32["mlp_user.weight"] @ w1[:, :d].T + b1,
        item_mlp=f32["mlp_item.weight"] @ w1[:, d:].T,
        hidden_w=[f32[f"mlp.{i}.weight"] for i in linears[1:]],
        hidden_b=[f32[f"mlp.{i}.bias"] for i in linears[1:]],
        out_gmf=out_w[:g].copy(),
        out_mlp=out_w[g:].copy(),
        out_b=float(f32["out.bias"][0]),
    )
