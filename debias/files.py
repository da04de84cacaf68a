"""Writing outputs safely: atomic replacement, strict JSON, and refusing to clobber earlier work.

Every output is written to a temporary name beside its target and renamed over it, so a full disk
or a kill leaves the previous file (or none), never a truncated one.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator

from debias.errors import DebiasError

UNDEFINED = "not defined for this data (its denominator is empty, e.g. no non-faces in the audited split)"


def atomic_write(path: str | Path, write: Callable[[Path], Any]) -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it over ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text(path: str | Path, text: str) -> Path:
    return atomic_write(path, lambda t: t.write_text(text, encoding="utf-8"))


def write_csv(frame, path: str | Path, **kw) -> Path:
    return atomic_write(path, lambda t: frame.to_csv(t, **{"index": False, **kw}))


def strict(obj: Any) -> Any:
    """A copy of ``obj`` that strict JSON can hold: NaN and infinities become null, and a dict entry
    that became null gets a ``<key>_note`` beside it saying why."""
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out[k] = strict(v)
            if _nonfinite(v) and obj.get(f"{k}_note") is None:  # a note the caller wrote says it better
                out[f"{k}_note"] = UNDEFINED
        return out
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if _nonfinite(obj):
        return None
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):  # numpy scalars
        return strict(obj.item())
    if hasattr(obj, "tolist"):  # numpy arrays
        return strict(obj.tolist())
    return obj


def _nonfinite(v: Any) -> bool:
    if isinstance(v, float):
        return not math.isfinite(v)
    if hasattr(v, "dtype") and getattr(v, "ndim", 1) == 0 and v.dtype.kind == "f":
        return not math.isfinite(float(v))
    return False


def write_json(path: str | Path, obj: Any) -> Path:
    """Strict JSON (no NaN or Infinity tokens), written atomically."""
    text = json.dumps(strict(obj), indent=2, allow_nan=False, default=str) + "\n"
    return write_text(path, text)


def check_out_dir(out: str | Path, *, what: str, marker: str, overwrite: bool) -> Path:
    """Refuse to write a new ``what`` into a folder that already holds one (``marker`` present).

    Raises DebiasError when ``out`` is a file, or holds ``marker`` and ``overwrite`` is false.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DebiasError(f"`out` {out} is a file, not a folder; choose a folder for the {what}.")
    if (out / marker).exists() and not overwrite:
        raise DebiasError(f"{out} already holds a {what} ({marker}); choose a new `out`, or pass `overwrite` to "
                          f"replace it.")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DebiasError(f"cannot create the output folder {out}: {e.strerror}; choose a writable `out`.") from None
    if not os.access(out, os.W_OK):
        raise DebiasError(f"the output folder {out} is not writable; choose a writable `out`.")
    return out


DATASET_FILES = ("manifest.csv", "images.npy", "config.json", "import_report.csv")


def prepare_dataset_dir(out: str | Path, *, overwrite: bool) -> Path:
    """A folder ready for a new dataset: refused if it holds one, unless ``overwrite`` (then the old
    dataset's files go first, so a new manifest never sits beside an old images.npy)."""
    out = check_out_dir(out, what="dataset", marker="manifest.csv", overwrite=overwrite)
    for f in DATASET_FILES:
        (out / f).unlink(missing_ok=True)
    return out


@contextlib.contextmanager
def exclusive(out: str | Path, what: str) -> Iterator[None]:
    """Hold ``out/.lock`` for the duration; a second writer into the same folder gets a clear error.

    Only the process that holds the lock removes the file, while still holding it. A writer that opened the
    file just before the holder removed it finds that the file it locked is no longer ``out/.lock`` and
    tries again, so two writers never hold two different files at once.
    """
    import fcntl

    path = Path(out) / ".lock"
    while True:
        f = open(path, "a")  # "a": a refused writer must not truncate the holder's pid
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.close()
            raise DebiasError(f"another process is writing a {what} into {out} right now; wait for it or choose "
                              f"another `out`.") from None
        try:
            if os.fstat(f.fileno()).st_ino == os.stat(path).st_ino:
                break
        except FileNotFoundError:
            pass
        f.close()  # the holder removed the file we opened before we locked it: lock the one there now
    try:
        f.truncate(0)
        f.write(str(os.getpid()))
        f.flush()
        yield
    finally:
        path.unlink(missing_ok=True)
        f.close()


__all__ = ["atomic_write", "write_text", "write_csv", "write_json", "strict", "check_out_dir", "prepare_dataset_dir",
           "exclusive"]
