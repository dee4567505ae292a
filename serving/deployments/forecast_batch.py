"""Forecasts answered from the batch scores (`retailpulse score forecasts`) instead of the model.

Batch scoring writes one Redis key per scored store x product pair (`pred:{tenant}:forecaster:
{store}:{product}`, core/predictions.py) and a meta key naming the version, its MLflow run, the
time of scoring, the origin week, the horizon and the state of the inputs it read
(`features.watermarks.forecast_state`). The ingress reads the meta key and the request's pair
keys in the same Redis round trip as the online features; a pair is answered from its score
only when all of these hold, so the answer is the one the served model would compute now:

- the meta key names the served version and run, and the scores were all written by the run
  the meta key describes (a re-score in progress is not mixed with the one before);
- the inputs' state is the one the replica reads now (the feature tables' watermark and the
  newest ingest: the covariates and the promotion plan the scorer read are still the
  warehouse's);
- the same origin week, and a scored horizon at least the one asked for;
- the pair's online inputs (the weeks of units history the model reads, whether it has
  enough sales weeks for the model, its static values) digest to what was scored, so new
  sales written to the online store since make it run live again.

Anything else (no score, another version, moved data) is answered live, as before.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from core.predictions import forecast_digest

BATCH, LIVE = "batch", "live"


class ScoredMeta:
    """The decoded meta key, kept while its raw value does not change."""

    def __init__(self) -> None:
        self._kept: tuple[bytes | str | None, dict[str, Any] | None] = (None, None)

    def decode(self, raw: bytes | str | None) -> dict[str, Any] | None:
        if raw is None:
            return None
        kept_raw, meta = self._kept  # one tuple: a request in a worker thread sees a whole pair
        if raw != kept_raw:
            meta = json.loads(raw)
            self._kept = (raw, meta)
        return meta


def usable_meta(
    meta: dict[str, Any] | None, loaded: Any, state: str | None, origin: int, horizon: int
) -> bool:
    """Whether the scores the meta key describes are the served version's, on the inputs'
    current state, from the same origin and long enough."""
    return (
        meta is not None
        and state is not None
        and meta.get("inputsState") == state
        and meta.get("version") == str(loaded.version)
        and meta.get("runId") == loaded.run_id
        and meta.get("originWeek") == origin
        and int(meta.get("horizon") or 0) >= horizon
    )


def batch_answers(
    meta: dict[str, Any],
    raws: list[bytes | str | None],
    histories: np.ndarray,
    labels: list[list[str]],
    active: np.ndarray,
    lookback: int,
) -> list[dict[str, Any] | None]:
    """Per item: its decoded score when written by the meta key's run on the same online
    inputs (the history weeks the model reads, whether it answers, static values), else
    None."""
    out: list[dict[str, Any] | None] = []
    for raw, history, names, on in zip(raws, histories, labels, active, strict=True):
        entry = None if raw is None else json.loads(raw)
        if (
            entry is not None
            and entry.get("scoredAt") == meta.get("scoredAt")
            and entry.get("version") == meta.get("version")
            and entry.get("inputs")
            == forecast_digest(history, names, lookback=lookback, active=bool(on))
        ):
            out.append(entry)
        else:
            out.append(None)
    return out
