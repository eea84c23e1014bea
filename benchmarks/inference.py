"""Inference: throughput at batch 1024 and p50 latency at batch 1 per case; one timed inference pass."""

from __future__ import annotations

from .common import CaseBenchmark, Records, TimedCase, plans, tracked


class Inference(CaseBenchmark):
    """Forward-only figures measured by the isolated run after training (outputs copied to host)."""

    # The grid measures at LATENCY_BATCH and THROUGHPUT_BATCH only: the registry's smallest/largest batch figures.
    track_samples_per_s = tracked("infer_samples_per_s")
    track_latency_p50_ms = tracked("latency_p50_ms")


class InferencePass(TimedCase):
    """One eval-mode forward of 1,024 test images in one batch, outputs copied to host, after one untimed pass."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Start the case and run one pass, which traces the predict function."""
        super().setup(records, framework, model, device)
        self.case.inference_pass(plans.THROUGHPUT_BATCH)

    def time_inference_pass(self, records: Records, framework: str, model: str, device: str) -> None:
        """One pass at batch size 1024."""
        self.case.inference_pass(plans.THROUGHPUT_BATCH)
