"""NeuMF (GMF + MLP towers) recommender: its config, training pairs and the numpy serving path.

Used by training (plain loop, Ray Train workers, Tune trials) and by serving alike, so no I/O
here except `NCFWeights.save/load` of a model directory. Users and items are row/column indices
of the interaction matrix (`RecData.train`), not warehouse ids. No torch here: serving and
batch scoring load and score `NCFWeights` without importing it (a Ray Data worker's first
block used to pay ~2 s for that import); the torch network and its training steps are in
`training.models.ncf_torch`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Literal

import numpy as np
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field


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
