"""Memory and GPU: peak host RSS per case; device memory, utilisation and energy for CUDA cases."""

from __future__ import annotations

from .common import CaseBenchmark, Records, figure


class Memory(CaseBenchmark):
    """Host memory of the isolated run (not asv's peakmem_, which would count this process and its imports)."""

    def track_host_rss_peak_bytes(self, records: Records, framework: str, model: str, device: str) -> float:
        """Peak resident set size of the worker process over the whole case."""
        return figure(self.record.host_rss_peak_bytes)

    track_host_rss_peak_bytes.unit = "bytes"


class Gpu(CaseBenchmark):
    """Device figures of CUDA cases; CPU cases are n/a."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Only CUDA cases have device figures."""
        super().setup(records, framework, model, device)
        if device != "cuda":
            raise NotImplementedError("GPU figures exist only for cuda cases")

    def track_device_alloc_peak_bytes(self, records: Records, framework: str, model: str, device: str) -> float:
        """Framework allocator peak during training (torch max_memory_allocated, TensorFlow peak)."""
        record = self.record
        return figure(record.torch_peak_allocated_bytes if framework == "torch" else record.tf_peak_bytes)

    track_device_alloc_peak_bytes.unit = "bytes"

    def track_nvml_used_peak_bytes(self, records: Records, framework: str, model: str, device: str) -> float:
        """Peak device memory in use as NVML sees it (CUDA context and allocator cache included)."""
        return figure(self.record.nvml_used_peak_bytes)

    track_nvml_used_peak_bytes.unit = "bytes"

    def track_util_pct(self, records: Records, framework: str, model: str, device: str) -> float:
        """Mean GPU utilisation sampled by NVML during training."""
        stats = self.record.gpu_train
        return figure(stats.util_mean_pct if stats else None)

    track_util_pct.unit = "%"

    def track_energy_per_1k_samples_j(self, records: Records, framework: str, model: str, device: str) -> float:
        """GPU energy per 1,000 training samples (NVML energy counter, else power × time)."""
        return figure(self.record.energy_per_1k_train_samples_j)

    track_energy_per_1k_samples_j.unit = "J"
