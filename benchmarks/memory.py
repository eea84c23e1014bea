"""Memory and GPU: peak host RSS per case; device memory, utilisation and energy for CUDA cases."""

from __future__ import annotations

from .common import MIB, CaseBenchmark, Records, tracked


class Memory(CaseBenchmark):
    """Host memory of the isolated run (not asv's peakmem_, which would count this process and its imports)."""

    # Bytes, as this benchmark has always reported (asv history would jump by 2**20 otherwise).
    track_host_rss_peak_bytes = tracked("rss_peak_mib", "bytes", "Peak resident set size of the worker process over "
                                        "the whole case.", per_unit=MIB)


class Gpu(CaseBenchmark):
    """Device figures of CUDA cases; CPU cases are n/a."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Only CUDA cases have device figures."""
        super().setup(records, framework, model, device)
        if device != "cuda":
            raise NotImplementedError("GPU figures exist only for cuda cases")

    track_device_alloc_peak_bytes = tracked("device_peak_mib", "bytes", "Framework allocator peak during training "
                                            "(torch max_memory_allocated, TensorFlow or JAX peak; else NVML used).",
                                            per_unit=MIB)
    track_nvml_used_peak_bytes = tracked("nvml_used_peak_mib", "bytes", "Peak device memory in use as NVML sees it "
                                         "(CUDA context and allocator cache included).", per_unit=MIB)
    track_util_pct = tracked("gpu_util_mean_pct", "%", "Mean GPU utilisation sampled by NVML during training.")
    track_energy_per_1k_samples_j = tracked("energy_per_1k_samples_j", "J", "GPU energy per 1,000 training samples "
                                            "(NVML energy counter, else power × time).")
