"""The README's "From Python" block runs as written, on a small folder of images, and prints what it says."""

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

README = Path(__file__).parents[1] / "README.md"


def snippet():
    """The one python block of the README's "From Python" section."""
    section = README.read_text().split("## From Python", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    return code


@pytest.mark.slow
def test_the_from_python_snippet_runs_as_written(tmp_path):
    rng = np.random.default_rng(0)
    classes = ("daisy", "rose", "tulip")
    for c, name in enumerate(classes):  # a learnable tint per class, 40 images each
        (tmp_path / "photos" / name).mkdir(parents=True)
        for i in range(40):
            pixels = np.clip(rng.normal(70 * c + 50, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(tmp_path / "photos" / name / f"{i:04d}.jpg", quality=95)
    wrong = [f"daisy/{i:04d}.jpg" for i in range(40, 44)]  # four tulips filed as daisies
    for path in wrong:
        pixels = np.clip(rng.normal(190, 25, (32, 32, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(tmp_path / "photos" / path, quality=95)
    # as a user runs it: a script of its own, in a new process, its output the results and nothing else
    done = subprocess.run([sys.executable, "-c", snippet()], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr[-3000:]  # no TensorFlow start-up or retracing
    lines = done.stdout.splitlines()
    # scikit-learn's report of the test images (a fifth of each class, stratified), then the balanced accuracy
    report = "\n".join(lines)
    supports = [int(re.search(rf"^ +{name} +[0-9.]+ +[0-9.]+ +[0-9.]+ +(\d+)$", report, flags=re.M)[1])
                for name in classes]
    assert supports == [9, 8, 8]  # 44, 40 and 40 images, a fifth of each held out
    [balanced] = re.findall(r"balanced accuracy (\d\.\d{3})$", report, flags=re.M)
    assert 0.0 <= float(balanced) <= 1.0
    # then at most ten flagged images: "path observed -> suggested", each a file of the tree under its label
    flagged = [line.split() for line in lines[lines.index(next(x for x in lines if "balanced accuracy" in x)) + 1:]]
    assert len(flagged) <= 10
    for path, observed, arrow, suggested in flagged:
        assert arrow == "->" and path.split("/")[0] == observed and suggested in classes and suggested != observed
        assert (tmp_path / "photos" / path).is_file()
    # the planted errors found among the training images (those the split left for training), as tulips
    trained = {path for path, *_ in flagged}
    assert [p for p in wrong if p in trained] and all(s == "tulip" for p, _, _, s in flagged if p in wrong)
