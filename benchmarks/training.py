"""Training: test accuracy, throughput, warm-up, time to target accuracy and MFU per case; one timed training epoch."""

from __future__ import annotations

from .common import CaseBenchmark, Records, TimedCase, tracked


class Training(CaseBenchmark):
    """Figures of one isolated training run per case."""

    track_test_accuracy = tracked("test_accuracy")
    track_train_samples_per_s = tracked("train_samples_per_s")
    track_first_epoch_s = tracked("first_epoch_s")
    track_time_to_target_s = tracked("time_to_target_s")
    track_mfu_pct = tracked("mfu_pct")


class TrainEpoch(TimedCase):
    """One training epoch over the case's training samples, device synchronised, after one untimed warm-up epoch."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Start the case and train its first epoch, which carries tracing and compilation."""
        super().setup(records, framework, model, device)
        self.case.train_epoch()

    def time_train_epoch(self, records: Records, framework: str, model: str, device: str) -> None:
        """One steady-state epoch."""
        self.case.train_epoch()
