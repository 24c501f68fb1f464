import math

import keras
import numpy as np
import pytest
from conftest import synthetic_images

from keras_apml import pipeline
from keras_apml.augmentation import Augmentation
from keras_apml.errors import InputError


def imbalanced(counts=(90, 6, 4), seed=0):
    y = np.repeat(np.arange(len(counts)), counts)
    return synthetic_images(len(y), seed=seed, labels=y), y


def test_dataset_scales_to_unit_float_and_batches():
    x, y = imbalanced()
    batches = list(pipeline.make_dataset(x, y, batch_size=32))
    assert [len(b[0]) for b in batches] == [32, 32, 32, 4]
    images = np.concatenate([b[0].numpy() for b in batches])
    assert images.dtype == np.float32
    np.testing.assert_allclose(images, x / 255.0, atol=1e-7)
    np.testing.assert_array_equal(np.concatenate([b[1].numpy() for b in batches]), y)


def test_shuffle_is_seeded_and_keeps_every_image():
    ids = np.arange(100, dtype=np.uint8)[:, None]  # each "image" is its own index

    def order(seed):
        ds = pipeline.make_dataset(ids, np.zeros(100, int), batch_size=16, shuffle=True, seed=seed)
        return np.rint(np.concatenate([b[0].numpy().ravel() for b in ds]) * 255).astype(int).tolist()

    first = order(7)
    assert sorted(first) == list(range(100)) and first != list(range(100))
    assert order(7) == first and order(8) != first


def test_oversampling_gives_near_balanced_batches():
    x, y = imbalanced((900, 60, 40))
    ds, steps = pipeline.balanced_dataset(x, y, batch_size=64, seed=1)
    assert steps == math.ceil(1000 / 64)
    labels = np.concatenate([b[1].numpy() for b in ds.take(steps * 3)])
    fractions = np.bincount(labels, minlength=3) / len(labels)
    np.testing.assert_allclose(fractions, [1 / 3] * 3, atol=0.04)
    assert np.bincount(y)[0] / len(y) == 0.9  # the source stays imbalanced


def test_class_weights_are_sklearns_balanced_weights():
    assert pipeline.class_weights(np.array([0] * 8 + [1] * 2)) == {0: 0.625, 1: 2.5}


def test_class_weights_change_the_loss_by_exactly_the_weights():
    keras.utils.set_random_seed(0)
    x, y = imbalanced((20, 8, 4))
    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(keras.layers.Flatten()(inputs)))
    model.compile(keras.optimizers.SGD(learning_rate=0.0), "sparse_categorical_crossentropy")
    xf = x.astype(np.float32) / 255.0
    per_sample = keras.losses.sparse_categorical_crossentropy(y, model.predict(xf, verbose=0)).numpy()
    weights = pipeline.class_weights(y)
    plain = model.fit(xf, y, batch_size=len(y), epochs=1, verbose=0, shuffle=False).history["loss"][0]
    weighted = model.fit(xf, y, batch_size=len(y), epochs=1, verbose=0, shuffle=False,
                         class_weight=weights).history["loss"][0]
    w = np.array([weights[c] for c in y])
    assert plain == pytest.approx(per_sample.mean(), rel=1e-5)
    assert weighted == pytest.approx((w * per_sample).mean(), rel=1e-5)
    assert abs(weighted - plain) > 1e-3


@pytest.mark.parametrize("method, expected", [
    ("under", [4, 4, 4]), ("random_over", [90, 90, 90]), ("smote", [90, 90, 90]),
    ("over+under", [33, 33, 33]), ("smote+under", [33, 33, 33]),
])
def test_offline_resampling_gives_exact_counts(method, expected):
    x, y = imbalanced((90, 6, 4))
    xr, yr = pipeline.resample(x, y, method, seed=0)
    assert np.bincount(yr).tolist() == expected
    assert xr.dtype == np.uint8 and xr.shape == (sum(expected), 32, 32, 3)


def test_smote_makes_new_images_between_neighbours():
    x, y = imbalanced((30, 3, 3))
    xr, yr = pipeline.resample(x, y, "smote", seed=0)
    new = xr[len(x):]
    originals = {img.tobytes() for img in x}
    assert sum(img.tobytes() not in originals for img in new) == len(new) == 54


def test_unknown_resampling_method_is_refused():
    x, y = imbalanced()
    with pytest.raises(InputError, match="unknown resampling method 'bogus'"):
        pipeline.resample(x, y, "bogus")


def test_augmentation_changes_pixels_not_shape_or_range():
    x = synthetic_images(16, seed=2).astype(np.float32) / 255.0
    spec = Augmentation(rotation_range=20, width_shift_range=0.2, height_shift_range=0.2, shear_range=10,
                        zoom_range=0.2, horizontal_flip=True, brightness_range=(0.7, 1.3), contrast_range=0.3,
                        saturation_range=0.3, hue_range=0.1, fill_mode="reflect", seed=0)
    out = keras.ops.convert_to_numpy(spec.layers()(x, training=True))
    assert out.shape == x.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.abs(out - x).mean() > 0.05


def test_flip_only_gives_the_image_or_its_mirror():
    x = synthetic_images(32, seed=3).astype(np.float32) / 255.0
    out = keras.ops.convert_to_numpy(Augmentation(horizontal_flip=True, seed=1).layers()(x, training=True))
    same = np.all(out == x, axis=(1, 2, 3))
    mirrored = np.all(out == x[:, :, ::-1], axis=(1, 2, 3))
    assert np.all(same | mirrored) and same.any() and mirrored.any()


def test_constant_fill_shift_fills_with_cval():
    x = np.ones((8, 32, 32, 3), np.float32)
    spec = Augmentation(width_shift_range=0.125, height_shift_range=0.125, fill_mode="constant", cval=0.0,
                        interpolation_order=0, seed=0)
    out = keras.ops.convert_to_numpy(spec.layers()(x, training=True))
    assert set(np.unique(out)) == {0.0, 1.0}  # whole-pixel shifts: an image pixel or the fill, nothing between
    shifted = 0
    for image in out[..., 0]:
        rows, cols = (image == 0).all(axis=1), (image == 0).all(axis=0)
        # the fill is exactly the rows and columns shifted in (at most 4 = 0.125 * 32 of each), at one edge each
        np.testing.assert_array_equal(image == 0, rows[:, None] | cols[None, :])
        for band in (rows, cols):
            k = int(band.sum())
            assert k <= 4 and (band[:k].all() or band[32 - k:].all())
        shifted += bool(rows.any() or cols.any())
    assert shifted >= 4  # most of the 8 images moved (a draw of 0 pixels either way leaves one as it was)


def test_nearest_shifts_move_whole_pixels_where_bilinear_blends_them():
    x = synthetic_images(16, seed=4).astype(np.float32) / 255.0
    values = set(np.unique(x)) | {0.0}

    def shifted(order):
        spec = Augmentation(width_shift_range=0.125, height_shift_range=0.125, fill_mode="constant", cval=0.0,
                            interpolation_order=order, seed=0)
        return keras.ops.convert_to_numpy(spec.layers()(x, training=True))

    assert set(np.unique(shifted(0))) <= values  # every pixel is an original one or the fill
    assert len(set(np.unique(shifted(1))) - values) > 100  # bilinear makes new, blended values
    with pytest.raises(InputError, match="interpolation_order must be 0 \\(nearest\\) or 1"):
        Augmentation(interpolation_order=3)


def test_augmentation_runs_inside_the_tf_data_map():
    x, y = imbalanced((8, 8, 8))
    spec = Augmentation(horizontal_flip=True, width_shift_range=0.125, height_shift_range=0.125,
                        fill_mode="constant", cval=0.0, seed=0)
    images, labels = next(iter(pipeline.make_dataset(x, y, batch_size=24, augmentation=spec)))
    assert images.shape == (24, 32, 32, 3) and float(images.numpy().max()) <= 1.0
    assert not np.allclose(images.numpy(), x / 255.0)
    np.testing.assert_array_equal(labels.numpy(), y)


def test_the_same_seed_gives_the_same_augmented_epoch():
    # 16 batches: with parallel map calls the layers' shared seed state was drawn in a racy order.
    x, y = imbalanced((200, 156, 156))

    def epoch():
        spec = Augmentation(horizontal_flip=True, width_shift_range=0.125, height_shift_range=0.125,
                            rotation_range=10, fill_mode="constant", cval=0.0, seed=3)
        ds = pipeline.make_dataset(x, y, batch_size=32, shuffle=True, seed=1, augmentation=spec)
        return np.concatenate([images.numpy() for images, _ in ds])

    np.testing.assert_array_equal(epoch(), epoch())


def test_brightness_range_is_multiplicative():
    x = np.full((64, 32, 32, 3), 0.5, np.float32)
    out = keras.ops.convert_to_numpy(Augmentation(brightness_range=(0.5, 0.9), seed=0).layers()(x, training=True))
    factors = out[:, 0, 0, 0] / 0.5
    assert factors.min() >= 0.5 and factors.max() <= 0.9
    np.testing.assert_allclose(out, np.broadcast_to(factors[:, None, None, None] * 0.5, out.shape), rtol=1e-6)


def test_offline_augmentation_appends_copies():
    x, y = imbalanced((5, 3, 2))
    xa, ya = Augmentation(horizontal_flip=True, rotation_range=15, seed=0).apply_offline(x, y, copies=2)
    assert xa.shape == (30, 32, 32, 3) and xa.dtype == np.uint8
    np.testing.assert_array_equal(xa[:10], x)
    np.testing.assert_array_equal(ya, np.tile(y, 3))
    assert not np.array_equal(xa[10:20], x)


@pytest.mark.parametrize("spec, message", [
    ("zca_whitening", "'zca_whitening' is an ImageDataGenerator argument this spec does not support"),
    ("rotaton_range=10", "'rotaton_range' is unknown; supported: rotation_range, width_shift_range"),
])
def test_arguments_a_spec_does_not_take_are_refused_by_name(spec, message):
    with pytest.raises(InputError, match=message):
        Augmentation.from_string(spec)
    with pytest.raises(TypeError, match="unexpected keyword argument"):  # from Python: as any dataclass
        Augmentation(**{spec.split("=")[0]: True})


@pytest.mark.parametrize("kwargs, message", [
    (dict(fill_mode="mirror"), "fill_mode must be one of"),
    (dict(width_shift_range=4), "width_shift_range must lie in \\[0, 1\\), got 4"),
    (dict(rotation_range="ten"), "rotation_range must be a finite number, got 'ten'"),
    (dict(shear_range=90), "shear_range must lie in \\[0, 90\\), got 90"),  # degrees, as ImageDataGenerator
    (dict(zoom_range=(1.2, 0.8)), "zoom_range: lower 1.2 above upper 0.8"),
    (dict(horizontal_flip="yes"), "horizontal_flip is true or false"),
    (dict(vertical_flip=False), "augments nothing"),
])
def test_unsupported_augmentation_arguments_are_refused_by_name(kwargs, message):
    with pytest.raises(InputError, match=message):
        Augmentation(**kwargs)


def test_augmentation_spec_parses_from_the_command_line():
    spec = Augmentation.from_string("horizontal_flip,width_shift_range=0.125,fill_mode=constant,zoom_range=0.9:1.2")
    assert spec.horizontal_flip is True and spec.width_shift_range == 0.125
    assert spec.fill_mode == "constant" and spec.zoom_range == (0.9, 1.2)
    assert spec == Augmentation(horizontal_flip=True, width_shift_range=0.125, fill_mode="constant",
                                zoom_range=(0.9, 1.2))  # a frozen dataclass: equal specs compare equal
    assert Augmentation(zoom_range=0.1).zoom_range == (0.9, 1.1)  # ImageDataGenerator's z, stored as its factors
    with pytest.raises(InputError, match="cannot parse augmentation argument 'zoom_range=a:b'"):
        Augmentation.from_string("zoom_range=a:b")


def test_the_alternating_flip_mirrors_the_same_images_every_other_epoch():
    n = 40
    x = synthetic_images(n, seed=6)
    x[:, :, 0] = 255  # a white left column: an image shows which way round it is
    augmentation = Augmentation(alternating_flip=True, seed=3)
    ds, _, _, _ = pipeline.training_dataset(x, np.arange(n), "none", batch_size=8, seed=0, augmentation=augmentation)
    epoch = augmentation.epoch_callback()
    mirrored = []
    for e in range(4):
        epoch.on_epoch_begin(e)
        seen = {}
        for images, index in ds:  # a new pass each epoch, in a new order, as Keras makes one
            for image, i in zip(images.numpy(), index.numpy()):
                seen[int(i)] = bool(image[:, -1].min() == 1.0)  # the white column on the right: mirrored
        assert sorted(seen) == list(range(n))
        mirrored.append(np.array([seen[i] for i in range(n)]))
    assert 10 < mirrored[0].sum() < 30  # about half mirrored at random once
    np.testing.assert_array_equal(mirrored[1], ~mirrored[0])  # then all of them together, every other epoch
    np.testing.assert_array_equal(mirrored[2], mirrored[0])
    np.testing.assert_array_equal(mirrored[3], mirrored[1])
    preflipped = augmentation.preflip(x)
    np.testing.assert_array_equal(mirrored[0], preflipped[:, :, -1].min(axis=(1, 2)) == 255)
    with pytest.raises(InputError, match="give it or horizontal_flip, not both"):
        Augmentation(alternating_flip=True, horizontal_flip=True)
    with pytest.raises(InputError, match="not with --balance oversample"):
        pipeline.training_dataset(x, np.arange(n) % 2, "oversample", 8, seed=0, augmentation=augmentation)
