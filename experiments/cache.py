"""List or clear the cache of decoded images and model outputs the studies keep between runs.

    python -m experiments.cache                   # what is there, how big, what each entry holds
    python -m experiments.cache --clear           # delete every entry
    python -m experiments.cache --clear features  # only model outputs (VGG19's, feature_extraction's)

The cache lives in $KERAS_APML_CACHE, else $XDG_CACHE_HOME/keras_apml or
~/.cache/keras_apml. Each distinct CIFAR-10 image folder adds its decoded
arrays (about 185 MB), each VGG19 base its outputs on every image (about
125 MB). Every entry is rebuilt when next needed, so clearing only costs
time; only files the studies wrote are touched. --no-cache on any study
runs without the cache.
"""

import argparse

from experiments import _contract, _flags
from keras_apml import cache


def parse_args(argv=None):
    """The command line of this command."""
    p = _flags.ArgumentParser(prog="python -m experiments.cache", description=__doc__.splitlines()[0],
                              formatter_class=argparse.RawDescriptionHelpFormatter, allow_abbrev=False,
                              epilog="\n".join(__doc__.splitlines()[6:]))
    p.add_argument("--clear", nargs="?", const="all", choices=("all", *cache.KINDS), default=None,
                   help="delete the entries of one kind, or all of them (no kind given)")
    return p.parse_args(argv)


def size(n):
    """``184.3 MB``."""
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000


def main(argv=None):
    args = parse_args(argv)
    directory = cache.cache_dir()
    if args.clear:
        removed = cache.clear(tuple(cache.KINDS) if args.clear == "all" else (args.clear,))
        print(f"removed {len(removed)} entr{'y' if len(removed) == 1 else 'ies'} "
              f"({size(sum(e['bytes'] for e in removed))}) from {directory}")
        return 0
    found = cache.entries()
    print(f"cache directory: {directory} (set {cache.CACHE_ENV} to move it)")
    for e in found:
        print(f"{size(e['bytes']):>10}  {e['modified']:%Y-%m-%d %H:%M}  {e['kind']:<8}  {e['path'].name}  {e['about']}")
    total = sum(e["bytes"] for e in found)
    print(f"{len(found)} entr{'y' if len(found) == 1 else 'ies'}, {size(total)}"
          + ("; clear with: python -m experiments.cache --clear" if found else ""))
    return 0


if __name__ == "__main__":
    _contract.run(main, tensorflow=False)
