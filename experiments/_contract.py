"""The error contract every command runs under: bad input is one ``error:`` line and exit status 2.

:func:`run` calls an experiment's ``main``; a refusal anywhere (an
InputError, a full disk), Ctrl-C and ``kill`` each end in one line, and the
run directories it holds are released.
"""

import signal
import sys

from experiments._rundir import AlreadyFinished, RunDir
from keras_apml.errors import InputError


def one_line(message):
    """``message`` on one line: a library's text may carry newlines (HDF5's does), the contract's line may not."""
    return " ".join(str(message).split())


class Terminated(Exception):
    """SIGTERM (``kill``) arrived: stop as Ctrl-C does, with one line."""


def _terminate(signum, frame):
    raise Terminated


def run(main, argv=None, tensorflow=True):
    """Call ``main(argv)``: bad input, a full disk or any other I/O failure is one ``error:`` line and status 2.

    A finished run asked for again prints that it is finished (status 0);
    Ctrl-C prints one line (status 130), ``kill`` too (status 143). Run
    directories are released. A command that trains nothing passes
    ``tensorflow=False`` and starts without TensorFlow's import.
    """
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        if tensorflow and not any(flag in (argv if argv is not None else sys.argv) for flag in ("-h", "--help")):
            from keras_apml import backend  # noqa: F401 - TensorFlow imported, quietly: the error line is the only line
        status = main(argv)
    except InputError as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        status = 2
    except AlreadyFinished as e:
        print(e, flush=True)
        status = 0
    except OSError as e:
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {one_line(e.strerror or e)}{where}; files written before are intact", file=sys.stderr)
        status = 2
    except KeyboardInterrupt:
        print("error: interrupted; run the same command again to resume", file=sys.stderr)
        status = 130
    except Terminated:
        print("error: stopped by a signal (SIGTERM); run the same command again to resume", file=sys.stderr)
        status = 143
    finally:
        signal.signal(signal.SIGTERM, previous)
        RunDir.close_all()
    sys.exit(status or 0)
