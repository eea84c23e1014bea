"""Inference: throughput at batch 1024 and p50 latency at batch 1 per case; one timed inference pass."""

from __future__ import annotations

from .common import CaseBenchmark, Records, TimedCase, figure, plans


class Inference(CaseBenchmark):
    """Forward-only figures measured by the isolated run after training (outputs copied to host)."""

    def track_samples_per_s(self, records: Records, framework: str, model: str, device: str) -> float:
        """Samples per second in eval mode at batch size 1024."""
        stats = self.record.inference_at(plans.THROUGHPUT_BATCH)
        return figure(stats.samples_per_s if stats else None)

    track_samples_per_s.unit = "samples/s"

    def track_latency_p50_ms(self, records: Records, framework: str, model: str, device: str) -> float:
        """Median latency of one single-image forward call."""
        stats = self.record.inference_at(plans.LATENCY_BATCH)
        return figure(stats.latency_ms_p50 if stats else None)

    track_latency_p50_ms.unit = "ms"


class InferencePass(TimedCase):
    """One eval-mode forward of 1,024 test images in one batch, outputs copied to host, after one untimed pass."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Start the case and run one pass, which traces the predict function."""
        super().setup(records, framework, model, device)
        self.case.inference_pass(plans.THROUGHPUT_BATCH)

    def time_inference_pass(self, records: Records, framework: str, model: str, device: str) -> None:
        """One pass at batch size 1024."""
        self.case.inference_pass(plans.THROUGHPUT_BATCH)
