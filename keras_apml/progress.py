"""What a long run prints as it goes: the progress of one long step, and a study's line per training.

:class:`StepProgress` shows one long step (decoding images, computing a
model's outputs) as Keras shows a fit: ``verbose`` 0 silent, 1 Keras's
progress bar (for a terminal), 2 a plain line at every tenth of the way (for
a log file). :class:`StudyProgress` prints a line as each training of a
study starts. Both give the time so far and an estimate of the time left.
"""

import time

LINES = 10  # plain lines per step with verbose=2


def clock(seconds):
    """``1:02:03`` or ``2:03``."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class StepProgress:
    """Report ``done`` of ``total`` units of the step ``what`` as they complete."""

    def __init__(self, what, total, verbose=0, unit="images", clock_fn=time.monotonic):
        self.what, self.total, self.verbose, self.unit, self.clock = what, total, verbose, unit, clock_fn
        self.start = clock_fn()
        self.next_line = 1
        self.bar = None
        if verbose == 1 and total:
            from keras_apml import backend  # noqa: F401 - here, not at the top: a progress line needs no TensorFlow
            import keras

            print(f"{what}:", flush=True)
            self.bar = keras.utils.Progbar(total, unit_name=unit.rstrip("s"))

    def update(self, done):
        """``done`` units are complete."""
        if self.bar is not None:
            self.bar.update(done)
        elif self.verbose == 2 and self.total and (done * LINES >= self.next_line * self.total):
            self.next_line = done * LINES // self.total + 1
            elapsed = self.clock() - self.start
            left = elapsed / done * (self.total - done) if done else 0.0
            timing = "done" if done >= self.total else f"about {clock(left)} left"
            print(f"{self.what}: {done}/{self.total} {self.unit} ({clock(elapsed)} so far, {timing})", flush=True)


class StudyProgress:
    """The line a multi-run study prints as each of its ``total`` steps starts: its position, the time so far
    and, from the steps already trained, an estimate of the time left: ``[3/8] lr=0.01 (2:05 so far, about
    6:40 left)``. Steps kept from an earlier call take no time and do not count towards the estimate.

    A study that knows each step's ``epochs`` (0 for a step kept from an earlier call) also calls :meth:`epoch` as
    each epoch ends: a line per epoch, and an estimate of the whole study from its first epoch on, at the pace of
    the epochs trained so far: ``[1/4] 1_raw: epoch 3/140 (0:45 so far, about 2:59:00 left)``.
    """

    def __init__(self, total, quiet=False, clock=time.monotonic, epochs=None):
        self.total, self.quiet, self.clock, self.epochs = total, quiet, clock, epochs
        self.start = clock()
        self.index, self.trained, self.trained_seconds = 0, 0, 0.0
        self.previous = None  # (start, kept) of the step before
        self.description, self.epoch_start, self.epochs_timed, self.epoch_seconds = "", None, 0, 0.0

    def __call__(self, description, kept=False, name=None):
        """Step ``description`` starts (``kept``: recorded by an earlier call); ``name``: how its epoch lines call
        it (default: its description)."""
        now = self.clock()
        if self.previous is not None and not self.previous[1]:
            self.trained += 1
            self.trained_seconds += now - self.previous[0]
        self.previous = (now, kept)
        self.index += 1
        self.description, self.epoch_start = name or description, now
        timing = ""
        if self.epochs_timed:
            timing = self._timing(now, sum(self.epochs[self.index - 1:]))
        elif self.trained:
            left = self.trained_seconds / self.trained * (self.total - self.index + 1)
            timing = f" ({clock(now - self.start)} so far, about {clock(left)} left)"
        if kept:
            description += ": recorded in an earlier call, kept"
        if not self.quiet:
            print(f"[{self.index}/{self.total}] {description}{timing}", flush=True)

    def epoch(self, done, of):
        """Epoch ``done`` of the current step's ``of`` has ended: its line, with the time left of the whole
        study."""
        now = self.clock()
        self.epochs_timed += 1
        self.epoch_seconds += now - self.epoch_start
        self.epoch_start = now
        later = sum(self.epochs[self.index:]) if self.epochs else 0
        if not self.quiet:
            print(f"[{self.index}/{self.total}] {self.description}: epoch {done}/{of}"
                  f"{self._timing(now, of - done + later)}", flush=True)

    def _timing(self, now, epochs_left):
        """`` (so far, about left)`` with ``epochs_left`` epochs to train at the pace of those timed."""
        left = self.epoch_seconds / self.epochs_timed * epochs_left
        return f" ({clock(now - self.start)} so far, about {clock(left)} left)"
