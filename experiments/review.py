"""Review the flagged labels of a label_noise run in your browser: keep, accept, relabel or drop each with one key.

    python -m experiments.review runs/label_noise/<stamp>
    python -m experiments.train --relabel runs/label_noise/<stamp>/reviewed_relabel.csv

It prints the page's address, a random token in it, on its first line and
opens it in your browser (--no-browser: only prints it). Every flagged image
is shown scaled up without blurring, least likely label first, with its
label, the suggested one and its label-quality score; keys: K keep the label,
A accept the suggestion, 1-9 and 0 choose a class, D drop the image from
training, U undo, arrows move, N/P page, T the true labels (where the
benchmark or --true-labels knows them, hidden until asked for: judge
first), C unflagged images of each class to compare with. Each decision is
written to the run directory before the page shows it saved:
review_decisions.json (every decision and undo, with the time) and
reviewed_relabel.csv (what ``train --relabel`` takes: the labels the
decisions change, ``drop`` for the images left out); the study's own files
are never changed. The same command later, or a reload, resumes the review.

The server is the standard library's (http.server): the page is one file of
plain HTML and JavaScript, so the review needs nothing beyond the toolkit's
own packages. It listens on 127.0.0.1 unless --host says otherwise, answers
only requests with its token, and serves the run's images by their number in
the review, never a path. Ctrl-C stops it.
"""

import argparse
import sys
import webbrowser
from pathlib import Path

from experiments import _contract, _flags, _rundir
from experiments.label_noise import REVIEW_SET
from keras_apml import review
from keras_apml.errors import InputError

DECISIONS, EXPORT = "review_decisions.json", "reviewed_relabel.csv"


def parse_args(argv=None):
    """The command line of this command."""
    p = _flags.ArgumentParser(prog="python -m experiments.review", description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
                              epilog="\n".join(__doc__.splitlines()[2:]))
    p.add_argument("run_dir", help="a finished experiments.label_noise run directory")
    p.add_argument("--host", default="127.0.0.1",
                   help="the address to listen on (default: 127.0.0.1, this machine only; the token is needed "
                        "whatever the host)")
    p.add_argument("--port", type=port, default=0, help="the port (default: 0, any free one)")
    p.add_argument("--no-browser", action="store_true", help="print the address only, do not open a browser")
    return p.parse_args(argv)


def port(text):
    """argparse type: a TCP port, 0..65535 (0: any free one)."""
    if not (text.isascii() and text.isdigit() and len(text) < 6 and int(text) <= 65535):
        raise argparse.ArgumentTypeError(f"expected a port in 0..65535, got {text!r}")
    return int(text)


def review_set(run_dir):
    """The review set of a finished label_noise run, or an InputError saying what ``run_dir`` is instead."""
    path = Path(run_dir)
    if not path.is_dir():
        raise InputError(f"{run_dir} is not a directory: give a label_noise run directory")
    metrics = _rundir.read_metrics(path)
    if metrics.get("experiment") != "label_noise":
        raise InputError(f"{run_dir} is not a label_noise run (experiment {metrics.get('experiment')!r}): only "
                         "label_noise flags labels to review")
    if not metrics.get("finished"):
        raise InputError(f"{run_dir} holds a label_noise run that has not finished: run its command again to "
                         "finish it, then review")
    if not (path / REVIEW_SET).is_file():
        raise InputError(f"{run_dir} has no {REVIEW_SET}: it was made before reviews were saved; run label_noise "
                         "again (with --fresh) to review its flags")
    reviewed = review.load_review_set(path / REVIEW_SET)
    if reviewed.paths is None and reviewed.made_from is None:
        raise InputError(f"{run_dir} was made before a review's export said which images its positions are in; run "
                         "label_noise again (with --fresh) to review its flags")
    return reviewed


def main(argv=None):
    args = parse_args(argv)
    from keras_apml.review_server import ReviewServer

    run = Path(args.run_dir)
    reviewed = review_set(run)
    held = _rundir.lock(run, "one review of a run at a time: use the page that review printed, or stop it first")
    try:
        decisions = review.Decisions(run / DECISIONS, reviewed, run / EXPORT)
        server = ReviewServer(decisions, args.host, args.port, title=str(run))
        print(server.url, flush=True)
        print(f"reviewing {reviewed.flagged} flags of {run} ({decisions.summary()['decided']} decided before); "
              f"decisions go to {run / DECISIONS} and {run / EXPORT}; Ctrl-C stops", flush=True)
        if not args.no_browser:
            webbrowser.open(server.url)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            done = decisions.summary()
            print(f"review stopped: {done['decided']} of {done['flags']} flags decided, every one saved in "
                  f"{run / DECISIONS}", file=sys.stderr)
        finally:
            server.server_close()
    finally:
        held.release()
    return 0


if __name__ == "__main__":
    _contract.run(main, tensorflow=False)
