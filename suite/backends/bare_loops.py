"""Hand-written reference training loops (no suite code in the timed path), for the harness-overhead calibration.

Each returns per-epoch training seconds; the caller turns them into steady-state samples/s like the suite does.
"""

from __future__ import annotations

import os
import time

import numpy as np


def torch_loop(model_name: str, x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int, threads: int) -> list[float]:
    """The textbook PyTorch loop on in-memory tensors: randperm, slice, forward, backward, step."""
    import torch
    from torch import nn

    torch.set_num_threads(threads)
    torch.set_num_interop_threads(1)
    torch.manual_seed(0)
    if model_name == "cnn":
        model = nn.Sequential(nn.Conv2d(1, 32, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(32, 64, 3), nn.ReLU(),
                              nn.MaxPool2d(2), nn.Flatten(), nn.Linear(1600, 128), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(128, 10))
    else:
        model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 10))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    images = torch.from_numpy(x).unsqueeze(1)
    labels = torch.from_numpy(y).long()
    model.train()
    epoch_s = []
    for _ in range(epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(len(images))
        for start in range(0, len(images), batch_size):
            idx = perm[start:start + batch_size]
            loss = criterion(model(images[idx]), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        epoch_s.append(time.perf_counter() - t0)
    return epoch_s


def keras_fit(model_name: str, x: np.ndarray, y: np.ndarray, batch_size: int, epochs: int, threads: int) -> list[float]:
    """A plain `model.fit` on numpy arrays, shuffle on, timed per epoch by a callback."""
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import keras
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    tf.config.set_visible_devices([], "GPU")
    layers = keras.layers
    if model_name == "cnn":
        body = [layers.Conv2D(32, 3, activation="relu"), layers.MaxPooling2D(2), layers.Conv2D(64, 3, activation="relu"),
                layers.MaxPooling2D(2), layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.5)]
    else:
        body = [layers.Flatten(), layers.Dense(128, activation="relu")]
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)), *body, layers.Dense(10)])
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.epoch_s: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: object = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: object = None) -> None:
            self.epoch_s.append(time.perf_counter() - self._t0)

    timer = EpochTimer()
    model.fit(x[..., None], y, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0, callbacks=[timer])
    return timer.epoch_s


LOOPS = {"torch": torch_loop, "keras": keras_fit}
