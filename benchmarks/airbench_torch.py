"""airbench94 in PyTorch on the CPU, written from its published recipe: the peer our Keras port is measured against.

    python -m benchmarks.airbench_torch --data IMAGES.npz --epochs 2 --seed 0

Not part of the package: PyTorch is installed only to run this benchmark
(``pip install torch==2.13.0+cpu --index-url https://download.pytorch.org/whl/cpu``).
It follows airbench94 (Keller Jordan's ``lib_airbench94`` with its
``utils.train``, PyPI ``airbench``) in float32 on the CPU: every setting in
one ``HYP`` block, the same net, whitening, optimiser, schedule, lookahead,
alternating flip, translation and test-time augmentation; what differs from
the GPU original is only float32 for float16 and no CUDA. ``IMAGES.npz``
holds ``x_train, y_train, x_test, y_test`` (uint8 NHWC images, integer
labels), written by :mod:`benchmarks.airbench_side_by_side`. Prints one JSON
line: test accuracy at TTA levels 0, 1 and 2, training seconds and images
per second.
"""

import argparse
import json
import math
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

HYP = {
    "lr": 11.5,  # per 1024 examples, decoupled from the momentum (kilostep_scale below)
    "momentum": 0.85,
    "weight_decay": 0.0153,  # per 1024 examples, decoupled from the rate
    "bias_scaler": 64.0,  # BatchNorm biases learn this many times faster (their decay unchanged)
    "label_smoothing": 0.2,
    "whiten_bias_epochs": 3,
    "batch_size": 1024,
    "translate": 2,
    "widths": (64, 256, 256),
    "whitening_kernel": 2,
    "whitening_eps": 5e-4,
    "whitening_images": 5000,
    "batchnorm_momentum": 0.6,  # the share of the old running statistics (PyTorch's momentum is 1 - this)
    "batchnorm_eps": 1e-12,
    "scaling_factor": 1 / 9,
    "lookahead_every": 5,
    "lookahead_decay": 0.95,
    "lookahead_start_epoch": 3,
    "schedule": (0.2, 0.23, 0.07),  # the rate's multiple at step 0, the peak's place in the run, the end multiple
}
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


def make_net(num_classes=10):
    """airbench94's net: frozen 2x2 whitening conv (bias trainable), GELU, three conv groups, max pool, linear / 9."""

    class Conv(nn.Conv2d):
        """3x3 conv without bias, PyTorch's default init with its first in_channels filters the identity."""

        def __init__(self, channels_in, channels_out):
            super().__init__(channels_in, channels_out, kernel_size=3, padding="same", bias=False)
            with torch.no_grad():
                nn.init.dirac_(self.weight[:channels_in])

    def batchnorm(width):
        norm = nn.BatchNorm2d(width, eps=HYP["batchnorm_eps"], momentum=1 - HYP["batchnorm_momentum"])
        norm.weight.requires_grad = False  # scale fixed at 1: only the bias trains
        return norm

    def group(channels_in, channels_out):
        return nn.Sequential(Conv(channels_in, channels_out), nn.MaxPool2d(2), batchnorm(channels_out), nn.GELU(),
                             Conv(channels_out, channels_out), batchnorm(channels_out), nn.GELU())

    whiten_width = 2 * 3 * HYP["whitening_kernel"] ** 2
    widths = HYP["widths"]
    whiten = nn.Conv2d(3, whiten_width, kernel_size=HYP["whitening_kernel"], padding=0, bias=True)
    whiten.weight.requires_grad = False
    with torch.no_grad():
        whiten.bias.zero_()
    return nn.Sequential(whiten, nn.GELU(), group(whiten_width, widths[0]), group(widths[0], widths[1]),
                         group(widths[1], widths[2]), nn.MaxPool2d(3), nn.Flatten(),
                         nn.Linear(widths[2], num_classes, bias=False), _Scale(HYP["scaling_factor"]))


class _Scale(nn.Module):
    """Multiply by a constant (airbench's output scaling)."""

    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def fit_whitening(conv, images):
    """Set the whitening conv to the patches' second-moment eigenvectors, scaled by 1/sqrt(eigenvalue + eps)
    (and their negatives)."""

    k = HYP["whitening_kernel"]
    patches = images.unfold(2, k, 1).unfold(3, k, 1).transpose(1, 3).reshape(-1, 3 * k * k).double()
    eigenvalues, eigenvectors = torch.linalg.eigh(patches.T @ patches / len(patches))
    axes = (eigenvectors.T / torch.sqrt(eigenvalues + HYP["whitening_eps"])[:, None]).flip(0)
    axes = axes.reshape(-1, 3, k, k).float()
    with torch.no_grad():
        conv.weight.copy_(torch.cat([axes, -axes]))


def triangle(step, total):
    """The rate's multiple at ``step``: linear from start to 1 at int(peak * total), then to end at total."""
    start, peak_at, end = HYP["schedule"]
    peak = int(peak_at * total)
    if step < peak:
        return start + (1 - start) * step / peak
    return 1 + (end - 1) * (step - peak) / max(total - peak, 1)


def epochs_of_batches(images, labels, epochs, generator):
    """airbench's alternating flip and translation: the set pre-flipped at random once, mirrored as a whole every
    other epoch, each image shifted by up to ``translate`` pixels (reflect padding); shuffled, full batches."""

    pad, size, batch = HYP["translate"], images.shape[-1], HYP["batch_size"]
    flip = torch.rand(len(images), generator=generator) < 0.5
    padded = F.pad(torch.where(flip.view(-1, 1, 1, 1), images.flip(-1), images), (pad,) * 4, mode="reflect")
    for epoch in range(epochs):
        shifts = torch.randint(0, 2 * pad + 1, (len(images), 2), generator=generator)
        crops = torch.empty_like(images)
        for dy in range(2 * pad + 1):
            for dx in range(2 * pad + 1):
                chosen = (shifts[:, 0] == dy) & (shifts[:, 1] == dx)
                crops[chosen] = padded[chosen, :, dy:dy + size, dx:dx + size]
        if epoch % 2 == 1:
            crops = crops.flip(-1)
        order = torch.randperm(len(images), generator=generator)
        yield epoch, [(crops[order[i:i + batch]], labels[order[i:i + batch]])
                      for i in range(0, len(images) - batch + 1, batch)]


def train(images, labels, epochs, seed):
    """Train airbench94 for ``epochs`` on normalised NCHW float32 ``images``; returns the net and its seconds."""

    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    net = make_net().to(memory_format=torch.channels_last)
    batch, momentum = HYP["batch_size"], HYP["momentum"]
    kilostep_scale = 1024 * (1 + 1 / (1 - momentum))  # Nesterov's step is this much larger than the gradient
    lr = HYP["lr"] / kilostep_scale  # for the summed loss
    decay = HYP["weight_decay"] * batch / kilostep_scale
    lr_biases = lr * HYP["bias_scaler"]
    norm_biases = [p for n, p in net.named_parameters() if p.requires_grad and _is_norm(net, n)]
    others = [p for n, p in net.named_parameters() if p.requires_grad and not _is_norm(net, n)]
    optimizer = torch.optim.SGD([{"params": norm_biases, "lr": lr_biases, "weight_decay": decay / lr_biases},
                                 {"params": others, "lr": lr, "weight_decay": decay / lr}],
                                momentum=momentum, nesterov=True)
    total = math.ceil(len(images) // batch * epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: triangle(step, total))
    loss_fn = nn.CrossEntropyLoss(label_smoothing=HYP["label_smoothing"], reduction="sum")
    start = time.perf_counter()
    fit_whitening(net[0], images[:HYP["whitening_images"]])
    step, average = 0, None
    for epoch, batches in epochs_of_batches(images, labels, epochs, generator):
        net[0].bias.requires_grad = epoch < HYP["whiten_bias_epochs"]
        net.train()
        for inputs, targets in batches:
            loss = loss_fn(net(inputs.contiguous(memory_format=torch.channels_last)), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if epoch >= HYP["lookahead_start_epoch"] and step % HYP["lookahead_every"] == 0:
                if average is None:
                    average = {k: v.detach().clone() for k, v in net.state_dict().items()}
                else:
                    _lookahead(net, average, HYP["lookahead_decay"] ** 5 * (step / total) ** 3)
        if average is not None:
            _lookahead(net, average, 1.0)  # each epoch ends on the average
    return net, time.perf_counter() - start, step * batch


def _is_norm(net, name):

    return isinstance(net.get_submodule(name.rsplit(".", 1)[0]), nn.BatchNorm2d)


def _lookahead(net, average, rate):
    """average = rate * average + (1 - rate) * weights (floats, BatchNorm statistics too); the net takes it."""

    with torch.no_grad():
        for key, value in net.state_dict().items():
            if value.dtype.is_floating_point:
                average[key].lerp_(value, 1 - rate)
                value.copy_(average[key])


def predict_logits(net, images, level):
    """airbench's test-time augmentation: 0 none, 1 mirror (mean of two), 2 mirror and 1-pixel translations."""

    def mirror(x):
        return 0.5 * net(x) + 0.5 * net(x.flip(-1))

    def level2(x):
        padded = F.pad(x, (1,) * 4, mode="reflect")
        shifted = [padded[:, :, 0:32, 0:32], padded[:, :, 2:34, 2:34]]
        return 0.5 * mirror(x) + 0.5 * torch.stack([mirror(s) for s in shifted]).mean(0)

    view = [net, mirror, level2][level]
    net.eval()
    with torch.no_grad():
        return torch.cat([view(chunk.contiguous(memory_format=torch.channels_last)) for chunk in images.split(2000)])


def normalise(x):
    """uint8 NHWC images as airbench feeds them: float32 NCHW, minus CIFAR-10's mean, over its std."""

    images = torch.from_numpy(np.asarray(x)).float().div(255).permute(0, 3, 1, 2)
    mean, std = torch.tensor(CIFAR_MEAN).view(1, 3, 1, 1), torch.tensor(CIFAR_STD).view(1, 3, 1, 1)
    return ((images - mean) / std).contiguous()


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.airbench_torch", description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="npz with x_train, y_train, x_test, y_test")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    with np.load(args.data) as data:
        train_x, test_x = normalise(data["x_train"]), normalise(data["x_test"])
        train_y, test_y = torch.from_numpy(data["y_train"].astype(np.int64)), torch.from_numpy(data["y_test"])
    net, seconds, images = train(train_x, train_y, args.epochs, args.seed)
    scores = {f"tta{level}": float((predict_logits(net, test_x, level).argmax(1).numpy() == test_y.numpy()).mean())
              for level in (0, 1, 2)}
    print(json.dumps({"side": "pytorch", "epochs": args.epochs, "seed": args.seed, **scores,
                      "train_seconds": round(seconds, 1), "images_per_second": round(images / seconds, 1),
                      "torch": torch.__version__, "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
