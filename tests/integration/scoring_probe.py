"""A probe model and scorer for run_batches: each output row says which worker process and
task scored it and how often that process has unpickled a probe model so far.

They live in an importable module (not in the test) so Ray pickles them by reference: the
counter is then a module global of the worker process, kept across tasks and runs (a class
shipped by value would have its attributes reset each time it is unpickled).
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

UNPICKLED = 0  # probe models unpickled in this process


class ProbeModel:
    def __init__(self, tag: str) -> None:
        self.tag = tag

    def __setstate__(self, state: dict[str, Any]) -> None:
        global UNPICKLED
        UNPICKLED += 1
        self.__dict__.update(state)


class ProbeScorer:
    """customer_id → payload {pid, task, unpickled (this process's count), tag (the model's)}."""

    def __init__(self, model: ProbeModel) -> None:
        self.model = model

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        payload = json.dumps(
            {
                "pid": os.getpid(),
                "task": ray.get_runtime_context().get_task_id(),
                "unpickled": UNPICKLED,
                "tag": self.model.tag,
            }
        )
        ids = [str(int(c)) for c in batch["customer_id"]]
        return {"entity": np.asarray(ids, object), "payload": np.asarray([payload] * len(ids))}
