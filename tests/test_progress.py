"""Progress of long steps: plain lines with the time left in a log, nothing when quiet, the same results."""

import numpy as np

from keras_apml import evaluation, models
from keras_apml.progress import StepProgress


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_a_log_gets_one_line_per_tenth_with_the_time_left(capsys):
    clock = Clock()
    progress = StepProgress("decoding train", 50_000, verbose=2, clock_fn=clock)
    for done in range(1000, 50_001, 1000):
        clock.now = done / 1000 * 6  # 6 s per 1,000 images
        progress.update(done)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 10
    assert lines[0] == "decoding train: 5000/50000 images (0:30 so far, about 4:30 left)"
    assert lines[-1] == "decoding train: 50000/50000 images (5:00 so far, done)"
    assert all("\r" not in line and "\x1b" not in line for line in lines)


def test_quiet_prints_nothing(capsys):
    progress = StepProgress("x", 10, verbose=0)
    for done in range(1, 11):
        progress.update(done)
    assert capsys.readouterr().out == ""


def test_predicting_in_steps_gives_what_one_predict_gives(capsys):
    import keras
    from conftest import synthetic_images

    x = synthetic_images(70, seed=3)
    model = models.small_cnn()
    extractor = keras.Model(model.inputs, {"features": model.layers[-2].output, "probabilities": model.output})
    whole = evaluation.predict(extractor, x, batch_size=2)
    stepped = evaluation.predict(extractor, x, batch_size=2, verbose=2, what="train")  # chunks of 32
    assert set(stepped) == {"features", "probabilities"}
    for k in whole:
        np.testing.assert_allclose(stepped[k], whole[k], rtol=1e-6, atol=1e-7)
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" (")[0] for line in lines] == ["train: 32/70 images", "train: 64/70 images",
                                                       "train: 70/70 images"]


def test_a_study_of_known_epochs_estimates_its_whole_time_from_its_first_epoch(capsys):
    from keras_apml.progress import StudyProgress

    clock = Clock()
    study = StudyProgress(3, clock=clock, epochs=[0, 4, 2])  # the first step kept from an earlier call
    study("1_raw", kept=True)
    study("2_standardized")
    for done in (1, 2, 3, 4):
        clock.now += 10.0  # 10 s an epoch
        study.epoch(done, 4)
    study("vgg19 (head 2 epochs)", name="vgg19")
    clock.now += 4.0
    study.epoch(1, 2)
    assert capsys.readouterr().out.splitlines() == [
        "[1/3] 1_raw: recorded in an earlier call, kept",
        "[2/3] 2_standardized",
        "[2/3] 2_standardized: epoch 1/4 (0:10 so far, about 0:50 left)",  # 3 + 2 epochs at 10 s
        "[2/3] 2_standardized: epoch 2/4 (0:20 so far, about 0:40 left)",
        "[2/3] 2_standardized: epoch 3/4 (0:30 so far, about 0:30 left)",
        "[2/3] 2_standardized: epoch 4/4 (0:40 so far, about 0:20 left)",
        "[3/3] vgg19 (head 2 epochs) (0:40 so far, about 0:20 left)",
        "[3/3] vgg19: epoch 1/2 (0:44 so far, about 0:09 left)"]  # 44 s over 5 epochs, 1 left


def test_a_quiet_study_prints_no_epoch_line(capsys):
    from keras_apml.progress import StudyProgress

    study = StudyProgress(1, quiet=True, clock=Clock(), epochs=[2])
    study("x")
    study.epoch(1, 2)
    assert capsys.readouterr().out == ""
