"""`training.trainers.torch_trainer`: on the private local Ray `start_local` starts, a Train run
starts only its controller, synchronization actor and workers (no DatasetManager, autoscaling
coordinator, placement-group cleaner or preemption watcher), its workers still get the malloc
env (inherited, no runtime_env) and DDP still forms for 2 workers, while 1 worker forms no
process group and its controller never imports torch; on a Ray started another way
(as a cluster stands in for) Ray's own controller and cleaner run, only the DatasetManager of a
run without Datasets is gone.

Runs in a subprocess: the test session already has its own Ray (`ray_session`).
"""

from __future__ import annotations

import pytest

from tests.integration.ray_probe import run_probe

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PROBE = """
import json, os, shutil, sys, tempfile
import ray
from ray._private.state import actors
from core.ray_runtime import MALLOC_ENV, start_local
from ray.train import UserCallback
from training.trainers.torch_trainer import torch_trainer

def loop(config):
    import shutil, ray.train, torch.distributed as dist
    ctx = ray.train.get_context()
    ckpt_dir = tempfile.mkdtemp()  # Train V2 keeps metrics only with a checkpoint
    open(os.path.join(ckpt_dir, "done"), "w").close()
    ray.train.report({
        "world": ctx.get_world_size(),
        "dist": dist.is_initialized() and dist.get_world_size(),
        "malloc": os.environ.get("MALLOC_ARENA_MAX"),
        "worker_runtime_env": dict(ray.get_runtime_context().runtime_env or {}),
    }, checkpoint=ray.train.Checkpoint.from_directory(ckpt_dir)
        if ctx.get_world_rank() == 0 else None)
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # persisted when report returns

class ControllerModules(UserCallback):  # runs in the controller process
    def __init__(self, path):
        self.path = path

    def after_report(self, run_context, metrics, checkpoint):
        with open(self.path, "w") as fh:
            fh.write(json.dumps("torch" in sys.modules))

def run(tag, num_workers):
    before = set(actors())
    seen = os.path.join(tmp, tag + ".json")
    result = torch_trainer(loop, {}, num_workers=num_workers, name=tag,
                           storage_path=os.path.join(tmp, "store"),
                           callbacks=[ControllerModules(seen)]).fit()
    started = sorted({a["ActorClassName"] for k, a in actors().items() if k not in before})
    return {"metrics": {k: result.metrics[k] for k in ("world", "dist", "malloc",
            "worker_runtime_env")}, "actors": started,
            "controller_torch": json.load(open(seen))}

tmp = tempfile.mkdtemp(prefix="rp-lean-", dir="/tmp")
options = dict(include_dashboard=False, _temp_dir=tmp, logging_level="ERROR", log_to_driver=False)
start_local(MALLOC_ENV, num_cpus=2, **options)
out = {"local": run("local", 2), "single": run("single", 1)}
ray.shutdown()
ray.init(address="local", num_cpus=2, runtime_env={"env_vars": MALLOC_ENV}, **options)
out["other"] = run("other", 1)
ray.shutdown()
shutil.rmtree(tmp, ignore_errors=True)
print("PROBE " + json.dumps(out))
"""

CLUSTER_ONLY = {
    "DatasetManager",
    "_AutoscalingCoordinatorActor",
    "PlacementGroupCleaner",
    "PreemptionWatcher",
}


def test_local_run_starts_only_the_actors_it_uses_and_a_cluster_run_keeps_rays() -> None:
    out = run_probe(PROBE, drop_env=("RAY_TRAIN_",), timeout=600)

    local = out["local"]
    assert local["metrics"]["world"] == 2 and local["metrics"]["dist"] == 2  # DDP formed
    assert local["metrics"]["malloc"] == "1"
    assert local["metrics"]["worker_runtime_env"] == {}  # inherited: pre-startable workers
    assert set(local["actors"]) == {
        "LocalTrainController",
        "SynchronizationActor",
        "RayTrainWorker",
    }

    # one worker on the local Ray: no process group to form, so no torch in the controller
    single = out["single"]
    assert single["metrics"]["world"] == 1 and single["metrics"]["dist"] is False
    assert single["controller_torch"] is False and local["controller_torch"] is True

    other = out["other"]
    assert other["metrics"]["world"] == 1 and other["metrics"]["malloc"] == "1"
    assert "TrainController" in other["actors"]
    assert {"PlacementGroupCleaner", "PreemptionWatcher"} <= set(other["actors"])
    assert "DatasetManager" not in other["actors"]  # no Dataset: never needed
    assert not CLUSTER_ONLY & set(local["actors"])
