"""Where a task ran, as the task sees it: the node, its cores, its GPUs, and when. A
module beside the flows, so it travels in their code package."""

import os
import time


def placement(seconds: float) -> dict:
    began = time.time()
    time.sleep(seconds)
    return {
        "node": os.environ.get("SLURMD_NODENAME", ""),
        "job": os.environ.get("SLURM_JOB_ID", ""),
        "cores": sorted(os.sched_getaffinity(0)),
        "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"),
        "began": began,
        "ended": time.time(),
    }
