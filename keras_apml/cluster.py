"""A study's independent trainings, run in turn in this process or on a Dask cluster.

A study (``imbalance``, ``hyperparams``, label-noise detection) is mostly
trainings that do not depend on each other. :class:`Tasks` runs them: one
after another here (no flag: nothing changes), on a local cluster of
``local_workers`` worker processes that each run one task at a time
(``distributed.LocalCluster``), or on the cluster whose scheduler is at
``scheduler`` (``dask scheduler`` on one machine, ``dask worker ADDRESS
--nthreads 1`` on each of the others). Each task gets its data and settings
as arguments, no global state, and runs in a fresh process of its worker
(:func:`pickled_call`); large arrays are scattered to every worker once.
Results come back to this process, the only one that writes the run
directory. A task's InputError (a refusal, a diverged training) ends the
study as it would in turn; a task whose process crashes or whose worker dies
is tried once more (Dask's ``retries=1``), then ends the study with one
``error:`` line naming it (:class:`TaskFailed`).
"""

import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from keras_apml.errors import InputError

# TensorFlow's own thread counts are left alone: a task on a machine uses as many threads as a run in turn
# there does, and gives the same floats (with one thread per task, a sum can round otherwise in its 7th digit,
# and a one-epoch sweep's balanced accuracy changed with it).
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "2"}
CONNECT_SECONDS = 20  # how long a --scheduler address may take to answer as a Dask scheduler


class TaskFailed(InputError):
    """A study's task failed twice on the cluster: reported like bad input, one ``error:`` line."""


class TaskCrashed(RuntimeError):
    """A task's process ended without a result: the signal that killed it, or the last line it wrote to stderr."""


def pickled_call(fn, args, kwargs):
    """On a worker: ``fn(*args, **kwargs)`` in a child process of its own, its result pickled.

    Keras draws the seeds of unseeded initializers and layers from the
    process-global ``random`` module, which a Dask worker's own threads use
    too: run beside them, the same task gives different weights from one run
    to the next. A child process with nothing else in it reproduces the run
    in turn. (Keras 3 models pickle as their ``.keras`` archive; Dask's own
    Keras serializer, which it would choose for a model, predates Keras 3.)
    """
    import cloudpickle  # with Dask (optional); a function defined in a function (a fit-and-predict closure) pickles too

    with tempfile.TemporaryDirectory(prefix="keras_apml_task_") as tmp:
        task, result = Path(tmp) / "task.pkl", Path(tmp) / "result.pkl"
        task.write_bytes(cloudpickle.dumps((fn, args, kwargs)))
        child = subprocess.run([sys.executable, "-m", "keras_apml.cluster", str(task), str(result)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)})
        if child.returncode < 0:
            raise TaskCrashed(f"its process was killed by {signal.Signals(-child.returncode).name}")
        if child.returncode != 0 or not result.is_file():
            lines = [line for line in child.stderr.splitlines() if line.strip()]  # a traceback's last: the error
            raise TaskCrashed(lines[-1] if lines else f"its process ended with status {child.returncode}")
        return result.read_bytes()


def _child(task, result):
    """The child process of :func:`pickled_call`: one task read from a file, its result written to another."""
    fn, args, kwargs = unpickled(Path(task).read_bytes())
    try:
        outcome = ("result", fn(*args, **kwargs))
    except InputError as e:  # refused or diverged: the same every time, told as in turn, not retried
        outcome = ("refused", str(e))
    Path(result).write_bytes(pickle.dumps(outcome))


def unpickled(data):
    """A task or its result, unpickled with this project's layers and loss registered first."""
    # here, not at the top: the studies' --help imports this module without TensorFlow
    import keras_apml.custom_objects  # noqa: F401 - registers the layers and loss a pickled model names

    return pickle.loads(data)


class Tasks:
    """Runs ``fn(*args)`` tasks in turn here, or on a Dask cluster; a context manager that closes the cluster."""

    def __init__(self, scheduler=None, local_workers=None):
        if scheduler is not None and local_workers is not None:
            raise InputError("give --scheduler or --local-workers, not both")
        self.scheduler, self.local_workers = scheduler, local_workers
        self.client = self.cluster = None
        self._shared = {}  # id(array): (array, its future on the cluster)

    @property
    def distributed(self):
        """Whether the tasks run on a Dask cluster."""
        return self.scheduler is not None or self.local_workers is not None

    def __enter__(self):
        return self

    def start(self):
        """Start the local cluster, or connect to the scheduler (once; in turn, nothing to start): call it once the
        input is checked, before anything is created."""
        if not self.distributed or self.client is not None:
            return self
        try:
            from distributed import Client, LocalCluster  # optional: pip install 'dask[distributed]'
        except ImportError:
            raise InputError("--scheduler and --local-workers need Dask: pip install 'dask[distributed]'") from None
        # Dask's own log lines (a task retried, a worker restarted) stay off the user's terminal: the study tells
        # the outcome, and a failure is its one error line.
        logging.getLogger("distributed").setLevel(logging.CRITICAL)
        if self.local_workers is not None:
            # No dashboard; the scheduler's own HTTP routes on a free port of 127.0.0.1, not Dask's default 8787
            # (taken by a second cluster, it warned on the user's stderr)
            self.cluster = LocalCluster(n_workers=self.local_workers, threads_per_worker=1, processes=True,
                                        dashboard_address=None, scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                        env=WORKER_ENV, silence_logs=logging.CRITICAL)
            self.client = Client(self.cluster)
        else:
            self.client = _connect(Client, self.scheduler, CONNECT_SECONDS)
        return self

    def describe(self):
        """Where the tasks run, in words: "in turn in this process", or the cluster and its workers."""
        if not self.distributed:
            return "in turn in this process"
        workers = len(self.client.scheduler_info()["workers"])
        where = "a local Dask cluster" if self.cluster is not None else f"the Dask cluster at {self.scheduler}"
        return f"on {where} of {workers} worker{'s' if workers != 1 else ''}, one training at a time on each"

    def __exit__(self, *exc):
        self._shared.clear()
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False

    def share(self, *arrays):
        """The arrays as every task will take them: on a cluster, each sent to every worker once and kept there
        until the cluster closes."""
        if not self.distributed:
            return arrays
        self.start()
        for a in arrays:
            if a is not None and id(a) not in self._shared:
                # hash=False: a key of its own. Under Dask's default content hash, equal arrays shared twice get one
                # key, and the release of the first copy's future can take the data from under the second's tasks
                # ("lost dependencies"; a test run hung on it).
                self._shared[id(a)] = a, self.client.scatter(a, broadcast=True, hash=False)
        return tuple(None if a is None else self._shared[id(a)][1] for a in arrays)

    def run(self, fn, jobs, announce=lambda name: None):
        """Yield ``(name, fn(*args, **kwargs))`` for each ``(name, args, kwargs)`` of ``jobs``: in order here, as
        they finish on a cluster.

        ``announce(name)`` is called as each task starts here, as each one
        finishes there. A task's InputError is raised as ``"<name>: <message>"``.
        """
        if not self.distributed:
            for name, args, kwargs in jobs:
                announce(name)
                try:
                    result = fn(*args, **kwargs)
                except InputError as e:
                    raise InputError(f"{name}: {e}") from None
                yield name, result
            return
        from distributed import as_completed  # optional, as in start()

        self.start()
        futures = {self.client.submit(pickled_call, fn, args, kwargs, pure=False, retries=1): name
                   for name, args, kwargs in jobs}
        for future in as_completed(futures):
            name = futures[future]
            try:
                kind, result = unpickled(future.result())
            except Exception as e:  # the task's process crashed twice, or its worker died
                for other in futures:
                    other.cancel()
                told = str(e).splitlines()[0][:300] if str(e) else ""
                raise TaskFailed(f"{name}: failed twice on the cluster: "
                                 f"{told if isinstance(e, TaskCrashed) else f'{type(e).__name__}: {told}'}") from None
            if kind == "refused":
                for other in futures:
                    other.cancel()
                raise InputError(f"{name}: {result}")
            announce(name)
            yield name, result


if __name__ == "__main__":
    _child(*sys.argv[1:3])


def _connect(client_class, address, seconds):
    """A Dask ``Client`` of the scheduler at ``address``, or one InputError when none answers within ``seconds``.

    Dask's own timeout covers opening the connection, not the handshake after it: a port that accepts and never
    speaks Dask (an HTTP server, the dashboard's 8787) would hold the study for ever. The client is made in a
    thread of its own, left behind (a daemon) when it does not return in time.
    """
    made = {}

    def connect():
        try:
            made["client"] = client_class(address, timeout=f"{seconds}s")
        except BaseException as e:  # noqa: BLE001 - said below, in the study's one line
            made["error"] = e

    thread = threading.Thread(target=connect, name="dask-connect", daemon=True)
    thread.start()
    thread.join(seconds + 5)
    if "client" in made:
        return made["client"]
    if thread.is_alive():
        raise InputError(f"the Dask scheduler at {address} did not answer within {seconds} s: is a Dask scheduler "
                         "listening there? (`dask scheduler` listens on 8786; 8787 is its dashboard)")
    error = made["error"]
    raise InputError(f"cannot reach the Dask scheduler at {address}: {type(error).__name__}: {error}")
