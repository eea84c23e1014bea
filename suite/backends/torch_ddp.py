"""PyTorch DistributedDataParallel: one process per rank (started by torchrun), each stepping its share of every global batch.

Every rank runs the whole case (same data, same seeded order, same evaluation); only the training step differs from the
one-device backend: rank r takes its slice of each global batch of --devices x --batch-size samples and DDP all-reduces
the gradients (gloo on CPU, NCCL on CUDA).
"""

from __future__ import annotations

import atexit
import os
import time
from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from suite.backends import DeviceUnavailable, StepHook
from suite.backends.torch_backend import TorchBackend, compiled
from suite.core.spec import RunSpec


def comm_share_pct(logging_data: dict[str, Any]) -> float | None:
    """All-reduce time not overlapped with backward, as a share of forward + backward + that time, from DDP's own
    sampled timings (DistributedDataParallel._get_ddp_logging_data, ns); None before DDP has sampled a step."""
    comm = logging_data.get("avg_backward_comm_time", 0) - logging_data.get("avg_backward_compute_comm_overlap_time", 0)
    compute = logging_data.get("avg_forward_compute_time", 0) + logging_data.get("avg_backward_compute_time", 0)
    if compute <= 0:
        return None
    return 100.0 * max(comm, 0) / (compute + max(comm, 0))


class TorchDDPBackend(TorchBackend):
    """The Backend protocol for one rank of a torchrun launch."""

    def __init__(self) -> None:
        super().__init__()
        self.rank, self.world = 0, 1
        self.ddp: DistributedDataParallel | None = None
        self.train_model: nn.Module | None = None
        self.sum_loss: nn.Module | None = None

    def setup(self, spec: RunSpec) -> dict[str, Any]:
        """Join the process group torchrun describes (RANK, WORLD_SIZE, MASTER_ADDR/PORT), on this rank's device."""
        self.rank, self.world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        local_rank = int(os.environ["LOCAL_RANK"])
        if spec.device == "cuda" and torch.cuda.device_count() < self.world:
            raise DeviceUnavailable(f"--devices {self.world} needs {self.world} GPUs; torch sees {torch.cuda.device_count()}")
        info = super().setup(replace(spec, threads=spec.threads_per_rank))
        backend = "gloo"
        if spec.device == "cuda":
            self.device = torch.device("cuda", local_rank)
            torch.cuda.set_device(self.device)
            info["device_name"] = torch.cuda.get_device_name(self.device)
            backend = "nccl"
        dist.init_process_group(backend, device_id=self.device if backend == "nccl" else None)
        atexit.register(dist.destroy_process_group)
        return {**info, "dist_backend": backend, "rank": self.rank, "world_size": self.world,
                "master_addr": os.environ.get("MASTER_ADDR"), "gloo_socket_ifname": os.environ.get("GLOO_SOCKET_IFNAME"),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}

    def build(self, spec: RunSpec, weights: list[list[np.ndarray]] | None) -> None:
        """The one-device build, wrapped in DDP (which broadcasts rank 0's initial weights to every rank)."""
        super().build(spec, weights)
        device_ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = DistributedDataParallel(self.model, device_ids=device_ids)
        self.train_model = compiled(self.ddp, spec)
        self.sum_loss = type(self.loss_fn)(reduction="sum")
        # Identical initial weights came from the seed (and the broadcast); dropout masks should differ per replica.
        torch.manual_seed(spec.seed + self.rank)

    def _shard_step(self, xb: torch.Tensor, yb: torch.Tensor, global_count: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.optimizer.zero_grad(set_to_none=True)
        with self._autocast():
            out = self.train_model(xb)
        # DDP averages gradients over ranks: weighting each rank's summed loss by world / global count makes that
        # average the gradient of the mean loss over the whole global batch, however unevenly it was split.
        loss = self.sum_loss(out.float(), yb) * (self.world / global_count)
        self._backward(loss)
        return loss.detach() * (global_count / self.world), out.detach()

    def train_epoch(self, order: np.ndarray, train_images: np.ndarray | None = None,
                    on_step: StepHook | None = None) -> tuple[float, float]:
        """Global batches of world x batch samples in `order`; this rank steps its contiguous slice of each. Loss and
        accuracy are summed over ranks once per epoch. `on_step(i)` is called as global step i begins."""
        x, y = self.tensors["train"]
        if train_images is not None:
            x = self._images(train_images)
        index = torch.from_numpy(order).to(self.device)
        step = self.batch_size * self.world
        self.run_model.train()
        loss_sums, correct = [], []
        for i, start in enumerate(range(0, len(order), step)):
            if on_step is not None:
                on_step(i)
            shard = torch.tensor_split(index[start:start + step], self.world)[self.rank]
            loss_sum, out = self._shard_step(x[shard], y[shard], min(step, len(order) - start))
            loss_sums.append(loss_sum)
            correct.append((self._predicted(out) == y[shard].view(-1).long()).sum().float())
        totals = torch.stack([torch.stack(loss_sums).sum(), torch.stack(correct).sum()])
        dist.all_reduce(totals)
        loss_total, correct_total = totals.tolist()
        return loss_total / len(order), correct_total / len(order)

    def step_times_s(self, steps: int) -> tuple[list[float], list[float]]:
        """Single global steps (this rank's slice), each ended by a device sync after the gradient all-reduce, and the
        time until each step returned before that sync (as in the one-device backend)."""
        x, y = self.tensors["train"]
        step = self.batch_size * self.world
        self.run_model.train()
        times, launches = [], []
        for i in range(steps):
            start = (i * step) % max(1, len(x) - step + 1) + self.rank * self.batch_size
            xb, yb = x[start:start + self.batch_size], y[start:start + self.batch_size]
            self.sync()
            t0 = time.perf_counter()
            self._shard_step(xb, yb, step)
            launches.append(time.perf_counter() - t0)
            self.sync()
            times.append(time.perf_counter() - t0)
        return times, launches

    def distribution(self) -> dict[str, Any]:
        """World size, collective backend, threads per rank and DDP's communication share."""
        return {"world_size": self.world, "dist_backend": dist.get_backend(), "threads_per_rank": torch.get_num_threads(),
                "comm_share_pct": comm_share_pct(self.ddp._get_ddp_logging_data())}


def make_backend() -> TorchDDPBackend:
    """Entry point used by suite.backends.get_backend."""
    return TorchDDPBackend()
