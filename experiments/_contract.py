"""The error contract every command runs under: bad input is one ``error:`` line and exit status 2.

:func:`run` calls an experiment's ``main``; a refusal anywhere (an
InputError, a full disk), Ctrl-C and ``kill`` each end in one line, and the
run directories it holds are released.
"""

import os
import signal
import sys
import warnings

from experiments._rundir import AlreadyFinished, RunDir
from keras_apml.errors import InputError


def one_line(message):
    """``message`` on one line: a library's text may carry newlines (HDF5's does), the contract's line may not."""
    return " ".join(str(message).split())


def _warning_line(message, category, filename, lineno, file=None, line=None):
    """A library's warning (cleanlab's: a class too small to flag every issue in) as one line, not its source."""
    print(f"warning: {one_line(message)}", file=sys.stderr, flush=True)


class Terminated(Exception):
    """SIGTERM (``kill``) arrived: stop as Ctrl-C does, with one line."""


def _terminate(signum, frame):
    raise Terminated


def run(main, argv=None, tensorflow=True):
    """Call ``main(argv)``: bad input, a full disk or any other I/O failure is one ``error:`` line and status 2.

    A finished run asked for again prints that it is finished (status 0);
    Ctrl-C prints one line (status 130), ``kill`` too (status 143); a warning is one ``warning:`` line. Run
    directories are released. A command that trains nothing passes
    ``tensorflow=False`` and starts without TensorFlow's import.
    """
    previous = signal.signal(signal.SIGTERM, _terminate)
    shown = warnings.showwarning
    warnings.showwarning = _warning_line
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
        warnings.showwarning = shown
        RunDir.close_all()
    if argv is None and status in (130, 143):  # the command itself, stopped: its line said it, and nothing is left
        sys.stdout.flush()  # to write; TensorFlow's teardown would hold the terminal for seconds more
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status or 0)
