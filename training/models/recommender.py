"""NeuMF (GMF + MLP towers) recommender: pure torch training steps and a numpy serving path.

Used by training (plain loop, Ray Train workers, Tune trials) and by serving alike, so no I/O
here except `NCFWeights.save/load` of a model directory. Users and items are row/column indices
of the interaction matrix (`RecData.train`), not warehouse ids.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from training.models.optim import adam


class NCFConfig(BaseModel):
    """NeuMF architecture and training budget (configs/recommender.yaml `ncf`)."""

    model_config = ConfigDict(extra="forbid")

    gmf_dim: int = Field(64, ge=1, description="GMF user/item embedding size")
    mlp_dim: int = Field(64, ge=1, description="MLP tower user/item embedding size")
    mlp_layers: list[int] = Field([128, 64], min_length=1, description="ReLU layer widths")
    lr: float = Field(2e-3, gt=0, description="Adam learning rate")
    weight_decay: float = Field(0.0, ge=0)
    epochs: int = Field(8, ge=1)
    batch_size: int = Field(2048, ge=8)
    n_neg: int = Field(4, ge=1, description="sampled negatives per positive")
    pos_weight: Literal["none", "log"] = Field(
        "log", description="positive weight: 1, or 1 + log(baskets with the item)"
    )
    seed: int = 42
    num_threads: int = Field(1, ge=1, description="torch intra-op threads")
    fused_adam: bool = Field(True, description="Adam(fused=True) where the build supports it")


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


@dataclass
class TrainPairs:
    """Positive (user, item, weight) triples of a train matrix, and its sorted pair keys."""

    users: np.ndarray  # [P] int64
    items: np.ndarray  # [P] int64
    weights: np.ndarray  # [P] float32
    keys: np.ndarray  # [P] sorted user * n_items + item, for membership tests
    n_items: int

    def shard(self, rank: int, world: int) -> TrainPairs:
        """This DDP rank's share of the positives (negatives still avoid all of a user's items)."""
        sel = slice(rank, None, world)
        return TrainPairs(
            self.users[sel], self.items[sel], self.weights[sel], self.keys, self.n_items
        )


def train_pairs(train: sp.csr_matrix, pos_weight: str = "log") -> TrainPairs:
    """Positives of `train` ([U, I] baskets-with-item counts); weight 1 or 1 + log(count)."""
    coo = sp.coo_matrix(train)
    keep = coo.data > 0
    users = coo.row[keep].astype(np.int64)
    items = coo.col[keep].astype(np.int64)
    counts = coo.data[keep].astype(np.float32)
    weights = 1.0 + np.log(counts) if pos_weight == "log" else np.ones_like(counts)
    keys = np.sort(users * train.shape[1] + items)
    return TrainPairs(users, items, weights.astype(np.float32), keys, int(train.shape[1]))


def sample_negatives(
    pairs: TrainPairs, users: np.ndarray, n_neg: int, rng: np.random.Generator, tries: int = 10
) -> np.ndarray:
    """[len(users), n_neg] items drawn uniformly among those each user never bought in train.

    Rejection sampling: a user who bought most of the catalog could keep a bought item after
    `tries` redraws; with catalogs of thousands of items that never happens in practice.
    """
    u = np.repeat(users, n_neg)
    items = rng.integers(0, pairs.n_items, size=u.size)
    for _ in range(tries):
        keys = u * pairs.n_items + items
        pos = np.searchsorted(pairs.keys, keys).clip(max=len(pairs.keys) - 1)
        bad = pairs.keys[pos] == keys
        if not bad.any():
            break
        items[bad] = rng.integers(0, pairs.n_items, size=int(bad.sum()))
    return items.reshape(len(users), n_neg)


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


@dataclass
class NCFWeights:
    """A trained NeuMF as numpy arrays, with the item side precomputed for serving.

    `item_mlp` is the item embedding already pushed through the item half of the first MLP
    layer and `user_mlp` the user half plus its bias, so a score costs one add, the remaining
    layers and two dot products.
    """

    user_gmf: np.ndarray  # [U, G]
    item_gmf: np.ndarray  # [I, G] (the "product embeddings")
    user_mlp: np.ndarray  # [U, H1] = W1[:, :D] @ mlp_user + b1
    item_mlp: np.ndarray  # [I, H1] = W1[:, D:] @ mlp_item
    hidden_w: list[np.ndarray]  # MLP layers 2.. weights, [out, in]
    hidden_b: list[np.ndarray]
    out_gmf: np.ndarray  # [G]
    out_mlp: np.ndarray  # [H_last]
    out_b: float

    def save(self, path: str | Path) -> None:
        """Write the arrays to `path`/ncf.npz (directory created)."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        arrays = {f.name: getattr(self, f.name) for f in fields(self)}
        hw, hb = arrays.pop("hidden_w"), arrays.pop("hidden_b")
        arrays |= {f"hidden_w{i}": w for i, w in enumerate(hw)}
        arrays |= {f"hidden_b{i}": b for i, b in enumerate(hb)}
        arrays["out_b"] = np.float32(self.out_b)
        np.savez(path / "ncf.npz", **arrays)
        (path / "ncf.json").write_text(json.dumps({"hidden_layers": len(hw)}))

    @classmethod
    def load(cls, path: str | Path) -> NCFWeights:
        """Read what `save` wrote."""
        path = Path(path)
        n = json.loads((path / "ncf.json").read_text())["hidden_layers"]
        with np.load(path / "ncf.npz") as z:
            a = {k: z[k] for k in z.files}
        return cls(
            user_gmf=a["user_gmf"],
            item_gmf=a["item_gmf"],
            user_mlp=a["user_mlp"],
            item_mlp=a["item_mlp"],
            hidden_w=[a[f"hidden_w{i}"] for i in range(n)],
            hidden_b=[a[f"hidden_b{i}"] for i in range(n)],
            out_gmf=a["out_gmf"],
            out_mlp=a["out_mlp"],
            out_b=float(a["out_b"]),
        )


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


def ncf_scores(w: NCFWeights, user_idx: np.ndarray, item_idx: np.ndarray) -> np.ndarray:
    """Logits for users [E] x items [E, K] (or [E] pairs): the torch forward in numpy."""
    user_idx = np.asarray(user_idx, dtype=np.int64)
    item_idx = np.asarray(item_idx, dtype=np.int64)
    pairs = item_idx.ndim == 1
    if pairs:
        item_idx = item_idx[:, None]
    h = np.maximum(w.user_mlp[user_idx][:, None, :] + w.item_mlp[item_idx], 0.0)
    for wt, b in zip(w.hidden_w, w.hidden_b, strict=True):
        h = np.maximum(h @ wt.T + b, 0.0)
    gmf = (w.user_gmf[user_idx] * w.out_gmf)[:, None, :] * w.item_gmf[item_idx]
    s = gmf.sum(-1) + h @ w.out_mlp + w.out_b
    return s[:, 0] if pairs else s


def ncf_scores_all(w: NCFWeights, user_idx: np.ndarray, chunk: int = 64) -> np.ndarray:
    """Logits of users [E] against every item, [E, I] float32 (users in chunks to bound memory)."""
    user_idx = np.asarray(user_idx, dtype=np.int64)
    n_items = w.item_gmf.shape[0]
    out = np.empty((len(user_idx), n_items), np.float32)
    all_items = np.arange(n_items)
    for s in range(0, len(user_idx), chunk):
        u = user_idx[s : s + chunk]
        out[s : s + chunk] = ncf_scores(w, u, np.broadcast_to(all_items, (len(u), n_items)))
    return out
