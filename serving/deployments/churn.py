"""The churn deployment: calibrated LightGBM probabilities and SHAP drivers, numpy in and out.

Missing features (a NaN in the online row) go to LightGBM as missing values, which its trees
route down the branch learnt for missing data; no row is refused for one gap.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from serving.deployments.base import ModelDeployment
from training.churn_run import RISK_BANDS, risk_band
from training.specs import CHURN

BANDS = {name: f"{lo:.1f} <= p < {min(hi, 1.0):.1f}" for name, lo, hi in RISK_BANDS}
BANDS["high"] = "0.5 <= p <= 1.0"


class Churn(ModelDeployment):
    """One replica of the churn model (all tenants; per-tenant registry versions)."""

    spec = CHURN

    def analyze(
        self, tenant: str, customer_ids: list[int], rows: list[dict[str, Any]]
    ) -> dict[str, Any] | None:
        """Probability, risk band and top-3 drivers per customer; None without a model."""
        loaded = self._get(tenant)
        if loaded is None:
            return None
        bundle = loaded.model
        names = bundle.model.feature_names
        X = np.array(
            [[_number(row.get(n)) for n in names] for row in rows], dtype=np.float64
        ).reshape(len(rows), len(names))
        customers = []
        stamps = [row.get("_event_timestamp") for row in rows if row.get("_event_timestamp")]
        if len(rows):
            probabilities, drivers = bundle.analyze(X)
            for cid, p, top in zip(customer_ids, probabilities, drivers, strict=True):
                customers.append(
                    {
                        "customerId": int(cid),
                        "probability": round(float(p), 4),
                        "riskBand": risk_band(float(p)),
                        "drivers": [
                            {
                                "feature": d["feature"],
                                "value": round(d["value"], 4),
                                "contribution": round(d["contribution"], 4),
                                "description": bundle.docs.get(d["feature"]),
                            }
                            for d in top
                        ],
                    }
                )
        return {
            "model": loaded.name,
            "modelVersion": loaded.version,
            "riskBands": BANDS,
            "featureTimestamp": (
                datetime.fromtimestamp(max(stamps), UTC).isoformat() if stamps else None
            ),
            "customers": customers,
        }


def _number(value: Any) -> float:
    return float("nan") if value is None else float(value)
