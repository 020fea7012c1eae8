"""Progress bars that stay readable in logs: tqdm, redrawn at most every 30 s when stderr is not a terminal."""
import sys

from tqdm import tqdm


def bar(**kw) -> tqdm:
    if not sys.stderr.isatty():
        kw.setdefault("mininterval", 30.0)
    kw.setdefault("dynamic_ncols", True)
    return tqdm(**kw)
