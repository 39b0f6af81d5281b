"""Two sibling steps, one with a GPU and one without, each recording the GPUs it sees:
CUDA_VISIBLE_DEVICES, and where PyTorch and a GPU are there, the devices CUDA counts
and a small product computed on one."""

import os

from ledgerflow import FlowSpec, resources, step


def gpus_seen() -> dict:
    seen: dict = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES")}
    if "NVIDIA_VISIBLE_DEVICES" in os.environ:  # a container engine's GPU hand-out
        seen["NVIDIA_VISIBLE_DEVICES"] = os.environ["NVIDIA_VISIBLE_DEVICES"]
    try:
        import torch
    except ImportError:
        return seen
    seen["device_count"] = torch.cuda.device_count()
    if seen["device_count"]:
        ones = torch.ones(256, 256, device="cuda")
        seen["product_sum"] = float((ones @ ones).sum())
        seen["device_name"] = torch.cuda.get_device_name(0)
    return seen


class GpuVisibility(FlowSpec):
    @step
    def start(self):
        self.next(self.with_gpu, self.without_gpu)

    @resources(gpu=1, memory=1024)
    @step
    def with_gpu(self):
        self.seen = gpus_seen()
        self.next(self.join)

    @resources(memory=1024)
    @step
    def without_gpu(self):
        self.seen = gpus_seen()
        self.next(self.join)

    @step
    def join(self, inputs):
        self.seen = {
            "with_gpu": inputs.with_gpu.seen,
            "without_gpu": inputs.without_gpu.seen,
        }
        self.next(self.end)

    @step
    def end(self):
        pass


if __name__ == "__main__":
    GpuVisibility()
