"""Training: test accuracy, throughput, warm-up, time to target accuracy and MFU per case; one timed training epoch."""

from __future__ import annotations

from .common import CaseBenchmark, Records, TimedCase, figure


class Training(CaseBenchmark):
    """Figures of one isolated training run per case."""

    def track_test_accuracy(self, records: Records, framework: str, model: str, device: str) -> float:
        """Accuracy on the 10,000-image test split (T-shirt/Shirt test images for binary) after the last epoch."""
        return figure(self.record.test_accuracy)

    track_test_accuracy.unit = "fraction"

    def track_train_samples_per_s(self, records: Records, framework: str, model: str, device: str) -> float:
        """Steady-state training throughput: samples / median epoch time of epochs 2..N (validation excluded)."""
        return figure(self.record.train_steady_samples_per_s)

    track_train_samples_per_s.unit = "samples/s"

    def track_first_epoch_s(self, records: Records, framework: str, model: str, device: str) -> float:
        """Epoch 1 training time, which includes tracing, compilation and warm-up."""
        return figure(self.record.first_epoch_s)

    track_first_epoch_s.unit = "seconds"

    def track_time_to_target_s(self, records: Records, framework: str, model: str, device: str) -> float:
        """Training seconds until validation accuracy first reaches the model's default target; n/a if never."""
        return figure(next(iter(self.record.time_to_accuracy_s.values()), None))

    track_time_to_target_s.unit = "seconds"

    def track_mfu_pct(self, records: Records, framework: str, model: str, device: str) -> float:
        """Model FLOP/s in steady-state training as a percentage of the device's measured fp32 GEMM peak."""
        return figure(self.record.mfu_pct)

    track_mfu_pct.unit = "%"


class TrainEpoch(TimedCase):
    """One training epoch over the case's training samples, device synchronised, after one untimed warm-up epoch."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Start the case and train its first epoch, which carries tracing and compilation."""
        super().setup(records, framework, model, device)
        self.case.train_epoch()

    def time_train_epoch(self, records: Records, framework: str, model: str, device: str) -> None:
        """One steady-state epoch."""
        self.case.train_epoch()
