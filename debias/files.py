"""Writing outputs safely: atomic replacement, strict JSON, and refusing to clobber earlier work.

Every output is written to a temporary name beside its target and renamed over it, so a full disk
or a kill leaves the previous file (or none), never a truncated one.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

from debias.errors import DebiasError

UNDEFINED = "not defined for this data (its denominator is empty, e.g. no non-faces in the audited split)"


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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


@contextlib.contextmanager
def removed_on_failure(out: str | Path) -> Iterator[None]:
    """On an exception, remove the folders on the way to ``out`` that did not exist before and are still empty:
    a failed command leaves no empty output folder behind."""
    out = Path(out).absolute()
    made = [p for p in (out, *out.parents) if not p.exists()]  # deepest first
    try:
        yield
    except BaseException:
        for p in made:
            try:
                p.rmdir()
            except OSError:  # not empty (something was written), or already gone
                break
        raise


DATASET_FILES = ("manifest.csv", "images.npy", "config.json", "import_report.csv", "covariates.npz", "quality.json",
                 "gallery.png")  # every file a dataset writer (synth, import, generate) or the audit cache leaves
DATASET_CACHE = ".debias"  # the folder of what is computed from a dataset and kept beside it (a fitted latent)


def prepare_dataset_dir(out: str | Path, *, overwrite: bool) -> Path:
    """A folder ready for a new dataset: refused if it holds one, unless ``overwrite`` (then the old
    dataset's files go first, so a new manifest never sits beside an old images.npy)."""
    out = check_out_dir(out, what="dataset", marker="manifest.csv", overwrite=overwrite)
    for f in DATASET_FILES:
        (out / f).unlink(missing_ok=True)
    if (out / DATASET_CACHE).is_dir():  # computed from the old images: never to be read beside new ones
        shutil.rmtree(out / DATASET_CACHE)
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
            article = "an" if what[:1] in "aeiou" else "a"
            raise DebiasError(f"another process is writing {article} {what} into {out} right now; wait for it or "
                              f"choose another `out`.") from None
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


STAGING = ".staging-"


@contextlib.contextmanager
def output_set(out: str | Path, *, seal: str, known: Iterable[str]) -> Iterator[Path]:
    """Replace the set of outputs in ``out`` by a new one, as one set.

    Yields a staging folder inside ``out``: write every file of the new set there, the ``seal`` among them (the
    file that describes the others: summary.json, shard.json). Nothing in ``out`` changes until the block ends
    without an error. Then the old seal goes first, the new files move in, the files of the old set that the new
    one lacks are removed, and the new seal moves in last: a folder with a seal holds the set it describes, and a
    kill part-way leaves no seal, never an old seal beside new files. Only names in ``known`` that the old
    seal's ``outputs`` list are ever removed, so no other file in ``out`` (nor outside it) is touched. The
    caller holds :func:`exclusive` on ``out``.
    """
    out = Path(out)
    for old in out.glob(STAGING + "*"):  # left by a writer that was killed: the lock we hold says none is running
        shutil.rmtree(old, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING, dir=out))
    try:
        yield staging
        names = {p.name for p in staging.iterdir()}
        stale = (set(listed_outputs(out / seal)) & set(known)) - names
        (out / seal).unlink(missing_ok=True)
        for name in sorted(names - {seal}):
            os.replace(staging / name, out / name)
        for name in stale:
            if (out / name).is_file():
                (out / name).unlink()
        os.replace(staging / seal, out / seal)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def listed_outputs(seal: Path) -> list[str]:
    """The ``outputs`` a seal (summary.json, shard.json) lists; [] when there is none or it cannot be read."""
    try:
        listed = json.loads(seal.read_text()).get("outputs", [])
    except (ValueError, OSError, AttributeError):
        return []
    return [n for n in listed if isinstance(n, str) and "/" not in n and "\\" not in n and n not in ("", ".", "..")]


def check_set(folder: str | Path, seal: str, names: Iterable[str]) -> dict:
    """The seal of ``folder`` (its JSON), after checking that each of ``names`` there is the file the seal
    recorded (``outputs_sha256``). Raises DebiasError for a file that is not: an interrupted write, or an edit.
    A folder without a seal gives {}; a seal from before hashes were recorded is taken as it is."""
    folder = Path(folder)
    if not (folder / seal).exists():
        return {}
    try:
        meta = json.loads((folder / seal).read_text())
    except ValueError:
        raise DebiasError(f"{folder / seal} is not valid JSON; re-run the audit that wrote {folder}.") from None
    recorded = meta.get("outputs_sha256", {})
    for name in names:
        if name in recorded and (folder / name).exists() and sha256_file(folder / name) != recorded[name]:
            raise DebiasError(NOT_THE_SET.format(file=folder / name, seal=folder / seal))
    return meta


NOT_THE_SET = ("{file} is not the file that {seal} describes: an audit into that folder was interrupted, or the file "
               "was edited afterwards. Re-run the audit into it (or into a new folder).")


__all__ = ["sha256_file", "atomic_write", "write_text", "write_csv", "write_json", "strict", "check_out_dir",
           "prepare_dataset_dir", "exclusive", "output_set", "listed_outputs", "check_set"]
