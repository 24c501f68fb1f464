"""Benchmark the review page with many flags: load time and each decision's round trip, in headless Chromium.

    python -m benchmarks.review_page --data-dir /tmp/data/cifar10-jpeg --flags 20,2000 --screenshots /tmp/shots

For each count, a review set of that many flags is drawn from the
car/truck/cat benchmark's training images (random flags, scores and
suggestions: the page's speed depends on their number, not on which they
are) in a temporary run directory; ``experiments.review`` serves it, and
Debian's Chromium (driven by Selenium, as the tests drive it) opens the page,
then makes 20 decisions by keyboard. Reported: the seconds until the page is
ready, the median and slowest round trip of a decision (key press to "saved"
on the page, the decisions file written in between), and a screenshot per
count with ``--screenshots``.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from experiments import _contract, _flags

KEYS = "akdak3akdakdak2akdka"  # 20 decisions: accept, keep, drop and classes, in a fixed order


def parse_args(argv=None):
    """The benchmark's command line."""
    p = _flags.ArgumentParser(prog="python -m benchmarks.review_page", description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="CIFAR-10 directory (image-folder tree or batches)")
    p.add_argument("--flags", type=counts, default=[20, 2000], help="flag counts, comma-separated")
    p.add_argument("--screenshots", default=None, help="a folder for one screenshot per count")
    return p.parse_args(argv)


def counts(text):
    """argparse type: comma-separated flag counts, each 1..5000 (the benchmark has 5,625 training images)."""
    values = text.split(",")
    if not all(v.isascii() and v.isdigit() and 1 <= int(v) <= 5000 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated counts in 1..5000, got {text!r}")
    return [int(v) for v in values]


def fake_run(directory, flags, data_dir):
    """A finished label_noise run directory holding a review set of ``flags`` random flags of the benchmark."""
    from keras_apml import benchmark, review

    bench = benchmark.load_benchmark(data_dir, 0)
    train = bench["train"]
    rng = np.random.default_rng(0)
    probabilities = rng.dirichlet(np.ones(len(bench.class_names)), len(train))
    scores = probabilities[np.arange(len(train)), train.y]
    flagged = rng.permutation(len(train))[:flags]
    flagged = flagged[np.argsort(scores[flagged])]
    reviewed = review.review_set(train.x, train.y, probabilities, flagged, scores, bench.class_names,
                                 truth=train.y_true)
    directory.mkdir(parents=True)
    review.save_review_set(directory / "review.npz", reviewed)
    (directory / "metrics.json").write_text(json.dumps({"experiment": "label_noise", "runs": {},
                                                        "finished": "benchmark"}))


def browser(window="1280,820"):
    """Headless Debian Chromium through its chromedriver, as tests/test_review.py starts it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", f"--window-size={window}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


def measure(run_dir, screenshot=None):
    """Seconds to the page's "ready", and each decision's round trip, on the review of ``run_dir``."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    server = subprocess.Popen([sys.executable, "-m", "experiments.review", str(run_dir), "--no-browser"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = server.stdout.readline().strip()
    chromium = browser()
    try:
        wait = WebDriverWait(chromium, 60)
        start = time.perf_counter()
        chromium.get(url)
        wait.until(lambda b: b.find_element(By.ID, "status").text == "ready")
        ready = time.perf_counter() - start
        body, trips = chromium.find_element(By.TAG_NAME, "body"), []
        for n, key in enumerate(KEYS, start=1):
            start = time.perf_counter()
            body.send_keys(key)
            wait.until(lambda b, n=n: b.find_element(By.ID, "tally").text and
                       sum(int(w) for w in b.find_element(By.ID, "tally").text.split() if w.isdigit()) == n)
            trips.append(time.perf_counter() - start)
        if screenshot:
            chromium.save_screenshot(str(screenshot))
    finally:
        chromium.quit()
        server.terminate()
        server.communicate(timeout=30)
    return ready, trips


def main(argv=None):
    args = parse_args(argv)
    shots = Path(args.screenshots) if args.screenshots else None
    if shots:
        shots.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for flags in args.flags:
            run_dir = Path(tmp) / f"run{flags}"
            fake_run(run_dir, flags, args.data_dir)
            ready, trips = measure(run_dir, shots / f"review_{flags}.png" if shots else None)
            print(f"{flags} flags: page ready in {ready:.2f} s; a decision saved and shown in "
                  f"{statistics.median(trips) * 1000:.0f} ms (median of {len(trips)}, slowest "
                  f"{max(trips) * 1000:.0f} ms)", flush=True)
    return 0


if __name__ == "__main__":
    _contract.run(main, tensorflow=False)
