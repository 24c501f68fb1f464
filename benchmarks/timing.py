"""Timing helpers shared by the benchmarks."""

import statistics
import time


def median_epoch_seconds(model, dataset, epochs):
    """Median wall time of a compiled model's training epochs after the first (which traces)."""
    import keras

    times = []

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            times.append(time.perf_counter() - self.start)

    model.fit(dataset, epochs=epochs, verbose=0, callbacks=[EpochTimer()], shuffle=False)
    return statistics.median(times[1:])


def report(figures, out=None):
    """Add the machine to the figures, print them one per line, and write them as JSON to ``out``."""
    import os

    from keras_apml import atomic, machine

    figures = {**figures, "device": machine.device_description(), "cpu_count": os.cpu_count()}
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    if out:
        atomic.write_json(out, figures)
