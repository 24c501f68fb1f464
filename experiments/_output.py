"""What a run shows and keeps: its progress lines, its run directory, its cluster of trainings."""

import sys
from pathlib import Path

from experiments._rundir import RunDir
from keras_apml.cluster import Tasks
from keras_apml.errors import InputError


def cluster_tasks(args):
    """The study's :class:`keras_apml.cluster.Tasks` (a context manager): in turn here, or on the cluster asked for,
    started by :func:`start_tasks`."""
    return Tasks(args.scheduler, args.local_workers)


def start_tasks(args, tasks):
    """Start the study's cluster, if it asked for one, once its input is checked and before its run directory is
    opened; say where the trainings run."""
    tasks.start()
    if tasks.distributed:
        say(args, f"trainings {tasks.describe()}: a line as each one finishes")


def open_run(name, args, **config):
    """The run directory, opened only once every input is checked; says when it resumes an earlier call."""
    run = RunDir.open(name, args.out, vars(args), fresh=args.fresh, config=config)
    if run.resumed:
        say(args, f"resuming the run in {run.path}")
    return run


def finish(run, args, line=None):
    """Mark the run finished and print where it is (with --quiet too)."""
    run.finish()
    print(f"{line + '; ' if line else ''}run directory: {run.path}", flush=True)
    return 0


def verbosity(args):
    """Keras's ``verbose``: nothing with --quiet, progress bars on a terminal, else one plain line per epoch."""
    if args.quiet:
        return 0
    return 1 if sys.stdout.isatty() else 2


def say(args, line):
    """One line of progress, unless --quiet."""
    if not args.quiet:
        print(line, flush=True)


def newest(patterns, makes):
    """The newest file under runs/ of the first of ``patterns`` that matches any; ``makes`` says what makes one."""
    for pattern in patterns:
        found = sorted(Path("runs").glob(pattern), key=lambda p: p.stat().st_mtime)
        if found:
            return found[-1]
    where = " or ".join(f"runs/{p}" for p in patterns)
    raise InputError(f"no trained model at {where}; make one with {makes}, or pass --model PATH")
