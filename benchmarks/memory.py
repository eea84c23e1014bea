"""Memory and GPU: peak host RSS per case; device memory, utilisation and energy for CUDA cases."""

from __future__ import annotations

from .common import CaseBenchmark, Records, tracked


class Memory(CaseBenchmark):
    """Host memory of the isolated run (not asv's peakmem_, which would count this process and its imports)."""

    track_host_rss_peak_bytes = tracked("rss_peak_mib")


class Gpu(CaseBenchmark):
    """Device figures of CUDA cases; CPU cases are n/a."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Only CUDA cases have device figures."""
        super().setup(records, framework, model, device)
        if device != "cuda":
            raise NotImplementedError("GPU figures exist only for cuda cases")

    track_device_alloc_peak_bytes = tracked("device_peak_mib")
    track_nvml_used_peak_bytes = tracked("nvml_used_peak_mib")
    track_util_pct = tracked("gpu_util_mean_pct")
    track_energy_per_1k_samples_j = tracked("energy_per_1k_samples_j")
