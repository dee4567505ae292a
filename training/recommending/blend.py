"""The hybrid recommender's blend: how its per-(household, item) FEATURES become one score.

Two learners over the same features, both fitted on the inner-validation split only
(`fit_blend`: penultimate basket held out, trained on the baskets before it):
- `logistic`: one L2 logistic regression (standardisation folded into the coefficients);
- `lightgbm`: a gradient-boosted ranker (lambdarank with query = household, or binary logloss),
  monotone non-decreasing in the features where more evidence can only mean "more likely"
  (purchase counts, co-purchase, peers, content affinity, NCF, popularity).

A blend scores `f @ coef + intercept (+ booster raw margin)`; `coef[0]` (the "bought" feature)
carries the rank-only bought offset chosen by `select_offset`, reported apart as
`bought_offset` so serving can take it out of the displayed score. Scoring needs numpy and, for
the boosted blend, lightgbm (imported on first use: serving never imports torch or sklearn).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

# Popularity windows (days before the split): RecData.window_buyers / first_buyers count, per
# window, the households that bought the item in it / bought it there for the first time.
POPULARITY_WINDOWS = (14, 28, 56, 91, 182)
# log1p of those counts as new-item features, (count, days) each (28 days of buyers is already
# n_log_recent), named n_log_{count}_{days}d
WINDOW_COUNTS = (
    *(("buyers", d) for d in (14, 56, 91, 182)),
    *(("first", d) for d in POPULARITY_WINDOWS),
)
WINDOW_FEATURES = tuple(f"n_log_{count}_{days}d" for count, days in WINDOW_COUNTS)
FEATURES = (
    "bought",
    "b_log_count",
    "b_share",
    "b_log_recency",
    "b_log_due",
    "b_abs_log_due",
    "b_ncf",
    "b_log_knn",
    "b_log_pop",
    "b_log_uknn",
    "n_ncf",
    "n_log_knn",
    "n_log_cat",
    "n_log_dept",
    "n_log_brand",
    "n_log_pop",
    "n_log_uknn",
    # household-level and item-level context (the boosted blend can interact them)
    "log_user_gap",  # log1p(days from the household's last train basket to the split)
    "log_n_baskets",  # log1p(train baskets of the household)
    "b_dept_share",  # bought: the item's share of the household's purchases in its department
    "item_repeat_rate",  # share of the item's buyers who bought it in >= 2 baskets
    # recent popularity: log1p(distinct buyers in the last RECENT_DAYS of train), bought / new
    "b_log_recent",
    "n_log_recent",
    # implicit ALS (household x item factors fitted on the same train matrix): new items
    "n_als",
    # bought: time-decayed purchase frequency (RecData.decayed; the newest baskets weigh most)
    "b_decay",
    # new: popularity over several windows before the split (POPULARITY_WINDOWS)
    *WINDOW_FEATURES,
)
# Features the boosted blend may only reward (+1); the others are unconstrained.
INCREASING = frozenset(
    {"b_log_count", "b_share", "b_ncf", "b_log_knn", "b_log_uknn", "b_dept_share"}
    | {"n_ncf", "n_log_knn", "n_log_cat", "n_log_dept", "n_log_brand", "n_log_pop", "n_log_uknn"}
    | {"n_log_recent", "n_als", "b_decay"}
)


class LightGBMBlend(BaseModel):
    """The boosted blend's few hyperparameters (configs/recommender.yaml `hybrid.lightgbm`)."""

    model_config = ConfigDict(extra="forbid")

    objective: Literal["lambdarank", "binary"] = "binary"
    query: Literal["household", "household_bought"] = Field(
        "household",
        description="lambdarank queries: a household's rows, or its bought and new rows apart",
    )
    n_rounds: int = Field(150, ge=1)
    learning_rate: float = Field(0.1, gt=0)
    num_leaves: int = Field(31, ge=2)
    min_data_in_leaf: int = Field(100, ge=1)
    feature_fraction: float = Field(0.8, gt=0, le=1)
    monotone: bool = Field(True, description="constrain INCREASING features to +1")
    num_threads: int = Field(1, ge=1, description="threads when fitting and scoring")


class ALSFeature(BaseModel):
    """Implicit ALS factors behind the `n_als` feature (configs/recommender.yaml `hybrid.als`)."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(True, description="fit ALS factors for the n_als feature")
    factors: int = Field(64, ge=1)
    regularization: float = Field(1.0, ge=0)
    alpha: float = Field(10.0, gt=0, description="confidence = 1 + alpha x baskets with the item")
    iterations: int = Field(15, ge=1)
    num_threads: int = Field(2, ge=1)
    seed: int = 42


class HybridConfig(BaseModel):
    """Hybrid scorer settings (configs/recommender.yaml `hybrid`)."""

    model_config = ConfigDict(extra="forbid")

    n_neighbours: int = Field(20, ge=1, description="co-purchase neighbours kept per item")
    n_user_neighbours: int = Field(50, ge=1, description="similar households per household")
    n_candidates: int = Field(200, ge=1, description="candidate set size per household")
    pool: int = Field(
        400,
        ge=0,
        description="full-catalog ranking scores a pool per household: its bought items and the"
        " top `pool` by co-purchase, by similar households, by popularity and by recent"
        " popularity; the rest rank last (0 = score the whole catalog)",
    )
    neg_bought: int = Field(60, ge=0, description="blend negatives per user among bought items")
    neg_random: int = Field(99, ge=1, description="blend negatives per user over the catalog")
    blend: Literal["logistic", "lightgbm"] = Field("logistic", description="the blend's learner")
    C: float = Field(1.0, gt=0, description="inverse L2 strength of the logistic blend")
    lightgbm: LightGBMBlend = LightGBMBlend()
    als: ALSFeature = ALSFeature()
    bought_offsets: list[float] = Field(
        [0.0, 1.0, 2.0, 4.0, 8.0, 1000.0], min_length=1, description="grid for select_offset"
    )
    seed: int = 42


@dataclass
class Blend:
    """Score = f @ coef + intercept, plus the booster's raw margin when there is one."""

    coef: np.ndarray  # [F]; coef[0] includes bought_offset
    intercept: float = 0.0
    bought_offset: float = 0.0  # already in coef[0]; kept to report what was selected
    booster: Any = None  # lightgbm.Booster over FEATURES, or None (linear blend)
    num_threads: int = 1

    @property
    def kind(self) -> str:
        return "linear" if self.booster is None else "lightgbm"

    @classmethod
    def ncf_only(cls) -> Blend:
        """The blend that ranks by NCF alone (for reporting NCF through the same scorer)."""
        coef = np.zeros(len(FEATURES), np.float32)
        coef[FEATURES.index("b_ncf")] = coef[FEATURES.index("n_ncf")] = 1.0
        return cls(coef)

    @property
    def is_ncf_only(self) -> bool:
        """True for `ncf_only()`'s blend: the score is the NCF logit itself."""
        return (self.booster is None and self.intercept == 0.0
                and np.array_equal(self.coef, Blend.ncf_only().coef))  # fmt: skip

    def __call__(self, f: np.ndarray) -> np.ndarray:
        """Scores of feature rows f [..., F] -> [...]."""
        out = f @ self.coef + np.float32(self.intercept)
        if self.booster is not None:
            # a booster saved before features were appended reads its own leading columns
            x = f.reshape(-1, f.shape[-1])[:, : self.booster.num_feature()]
            raw = self.booster.predict(x, raw_score=True, num_threads=self.num_threads)
            out = out + raw.reshape(f.shape[:-1]).astype(np.float32)
        return out

    def model_string(self) -> str | None:
        """The booster as LightGBM's text model (None for a linear blend)."""
        return None if self.booster is None else self.booster.model_to_string()

    @staticmethod
    def load_booster(text: str) -> Any:
        import lightgbm as lgb

        return lgb.Booster(model_str=text)


def blend_sample(data, cfg: HybridConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(users, items, labels): each evaluated user's held-out basket items as positives, plus
    negatives among its bought items and uniform over the catalog (both outside the basket).
    Rows are grouped by user, users ascending (LightGBM's query groups)."""
    rng = np.random.default_rng(cfg.seed)
    train = data.train.tocsr()
    us, its, ys = [], [], []
    for u, t in zip(data.eval_users, data.targets, strict=True):
        seen = train.indices[train.indptr[u] : train.indptr[u + 1]]
        bought = np.setdiff1d(seen, t)
        neg_b = rng.choice(bought, min(cfg.neg_bought, len(bought)), replace=False)
        neg_r = rng.integers(0, data.train.shape[1], cfg.neg_random)
        neg_r = neg_r[~np.isin(neg_r, t)]
        items = np.concatenate([t, neg_b, neg_r])
        us.append(np.full(len(items), u))
        its.append(items)
        ys.append(np.r_[np.ones(len(t)), np.zeros(len(neg_b) + len(neg_r))])
    return np.concatenate(us), np.concatenate(its), np.concatenate(ys)


def sample_features(scorer, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """[N, F] features of (users[N], items[N]), in blocks of 256 users (features densify one
    catalog-wide row per distinct user)."""
    cuts = np.searchsorted(users, np.unique(users)[::256][1:])
    return np.concatenate(
        [
            scorer.features(u, i[:, None])[:, 0, :]
            for u, i in zip(np.split(users, cuts), np.split(items, cuts), strict=True)
        ]
    )


def fit_logistic(x: np.ndarray, labels: np.ndarray, C: float) -> Blend:
    """L2 logistic regression on standardised x, folded back to raw-feature coefficients."""
    from sklearn.linear_model import LogisticRegression

    mean, scale = x.mean(axis=0), x.std(axis=0) + 1e-6
    lr = LogisticRegression(C=C, max_iter=2000).fit((x - mean) / scale, labels)
    coef = (lr.coef_[0] / scale).astype(np.float32)
    return Blend(coef, float(lr.intercept_[0] - (coef * mean).sum()))


def fit_lightgbm(x: np.ndarray, labels: np.ndarray, users: np.ndarray, p: LightGBMBlend) -> Blend:
    """LightGBM over x (rows grouped by `users`); lambdarank queries are households."""
    import lightgbm as lgb

    params: dict[str, Any] = {
        "objective": p.objective,
        "learning_rate": p.learning_rate,
        "num_leaves": p.num_leaves,
        "min_data_in_leaf": p.min_data_in_leaf,
        "feature_fraction": p.feature_fraction,
        "bagging_seed": 42,
        "feature_fraction_seed": 42,
        "seed": 42,
        "deterministic": True,
        "num_threads": p.num_threads,
        "verbosity": -1,
    }
    if p.monotone:
        params["monotone_constraints"] = [int(n in INCREASING) for n in FEATURES]
        params["monotone_constraints_method"] = "advanced"
    group = None
    if p.objective == "lambdarank":
        key = users * 2 + (x[:, 0] > 0) if p.query == "household_bought" else users
        order = np.argsort(key, kind="stable")
        x, labels = x[order], labels[order]
        _, group = np.unique(key, return_counts=True)
        params["eval_at"] = [10]
    ds = lgb.Dataset(x, labels, group=group, feature_name=list(FEATURES), free_raw_data=True)
    booster = lgb.train(params, ds, num_boost_round=p.n_rounds)
    return Blend(np.zeros(len(FEATURES), np.float32), 0.0, booster=booster,
                 num_threads=p.num_threads)  # fmt: skip


def fit_blend(scorer, cfg: HybridConfig, data=None) -> Blend:
    """The configured blend fitted on `data` (default `scorer.data`), which must be the
    inner-validation split, then its bought offset chosen on the same split."""
    data = scorer.data if data is None else data
    users, items, labels = blend_sample(data, cfg)
    x = sample_features(scorer, users, items)
    if cfg.blend == "lightgbm":
        blend = fit_lightgbm(x, labels, users, cfg.lightgbm)
    else:
        blend = fit_logistic(x, labels, cfg.C)
    return select_offset(scorer, blend, cfg.bought_offsets, data)


def select_offset(scorer, blend: Blend, offsets: list[float], data=None) -> Blend:
    """`blend` with its "bought" weight raised by the offset that maximises sampled HR@10 (then
    NDCG@10) on `data` (default `scorer.data`; inner validation).

    The learned blend ranks by P(in next basket), where an item bought once long ago loses to a
    popular new one; the protocol's sampled metric instead rewards ranking any bought item above
    never-bought ones. The offset trades between the two and is chosen on inner validation.
    """
    from training.recommending.metrics import hit_rate, ndcg, positive_ranks

    data = scorer.data if data is None else data
    f = scorer.features(data.eval_users, data.candidates())
    base = blend(f)
    best, best_key = blend, (-1.0, -1.0)
    for off in offsets:
        ranks = positive_ranks(base + off * f[..., 0], data.tiebreak)
        key = (hit_rate(ranks), ndcg(ranks))
        if key >= best_key:  # ties: the larger offset (closer to "bought first")
            coef = blend.coef.copy()
            coef[0] += off
            best, best_key = replace(blend, coef=coef, bought_offset=off), key
    return best
