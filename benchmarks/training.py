"""Training: test accuracy, throughput, warm-up, time to target accuracy and MFU per case; one timed training epoch."""

from __future__ import annotations

from .common import CaseBenchmark, Records, TimedCase, tracked


class Training(CaseBenchmark):
    """Figures of one isolated training run per case."""

    track_test_accuracy = tracked("test_accuracy", "fraction", "Accuracy on the 10,000-image test split "
                                  "(T-shirt/Shirt test images for binary) after the last epoch.")
    track_train_samples_per_s = tracked("train_samples_per_s", "samples/s", "Steady-state training throughput: "
                                        "samples / median epoch time of epochs 2..N (validation excluded).")
    track_first_epoch_s = tracked("first_epoch_s", "seconds", "Epoch 1 training time, which includes tracing, "
                                  "compilation and warm-up.")
    track_time_to_target_s = tracked("time_to_target_s", "seconds", "Training seconds until validation accuracy "
                                     "first reaches the model's default target; n/a if never.")
    track_mfu_pct = tracked("mfu_pct", "%", "Model FLOP/s in steady-state training as a percentage of the device's "
                            "measured fp32 GEMM peak.")


class TrainEpoch(TimedCase):
    """One training epoch over the case's training samples, device synchronised, after one untimed warm-up epoch."""

    def setup(self, records: Records, framework: str, model: str, device: str) -> None:
        """Start the case and train its first epoch, which carries tracing and compilation."""
        super().setup(records, framework, model, device)
        self.case.train_epoch()

    def time_train_epoch(self, records: Records, framework: str, model: str, device: str) -> None:
        """One steady-state epoch."""
        self.case.train_epoch()
