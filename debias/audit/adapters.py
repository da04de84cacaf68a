"""Models to audit, behind one interface: images in, face scores out.

A spec string picks the adapter:

- ``run:RUN_DIR``: a model trained by ``debias train``;
- ``torchscript:FILE``: a scripted classifier, (B, 3, H, W) float in [0, 1] -> logit or probability;
- ``onnx:FILE``: the same through onnxruntime (``pip install -e '.[onnx]'``);
- ``python:module:function``: a callable from (B, H, W, 3) uint8 RGB arrays to (B,) scores;
- a box detector (:mod:`debias.detect`): ``opencv:haar-frontal-default`` (``-alt``, ``-alt2``,
  ``profile``), ``skimage:lbp-frontal``, ``dlib:hog``, ``mtcnn``, ``sliding:RUN_DIR``; run on each
  full-resolution crop with a context border, scoring the best box on the crop's centre.

Every adapter's ``score(images)`` takes a list of (H, W, 3) uint8 RGB arrays of any size.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import cv2
import numpy as np
import torch

from debias.data.manifest import host_batch, on_device
from debias.errors import DebiasError

from debias.detect.base import DETECTOR_KINDS
from debias.detect.classic import HAAR

UNKNOWN_SPEC = ("model spec {spec!r} is not understood. Use run:RUN_DIR, torchscript:FILE, onnx:FILE, "
                "python:module:function, or a detector: opencv:{haar}, skimage:lbp-frontal, dlib:hog, mtcnn, "
                "sliding:RUN_DIR.")
BAD_OUTPUT = ("model {spec} returned shape {shape} for a batch of {b} images; expected ({b},) or ({b}, 1): one face "
              "score per image, so that no image's score depends on the others in its batch.")
NO_ONNX = "onnx:{path} needs onnxruntime, which is not installed. Install it with: pip install -e '.[onnx]'"


def _resize_batch(images: Sequence[np.ndarray], size: int) -> np.ndarray:
    """List of (H, W, 3) uint8 -> (B, size, size, 3) uint8 (area interpolation when shrinking)."""
    if isinstance(images, np.ndarray) and images.shape[1:] == (size, size, 3):
        return images  # a packed batch already at the model's size
    out = np.empty((len(images), size, size, 3), np.uint8)
    for i, im in enumerate(images):
        interp = cv2.INTER_AREA if im.shape[0] > size else cv2.INTER_LINEAR
        out[i] = im if im.shape[:2] == (size, size) else cv2.resize(im, (size, size), interpolation=interp)
    return out


SCORES = ("auto", "prob", "logit")
NOT_PROB = ("{what} declared as probabilities (`scores` prob) holds values outside [0, 1] (for example {value!r}); "
            "use `scores` logit if these are logits.")


AMBIGUOUS = 0.95  # `auto` refuses outputs with at least this share in [0, 1] and the rest outside: which are they?
AMBIGUOUS_SCORES = ("{what}: {n} of its {total} scores lie outside [0, 1] (first {value:g}) and the others inside: "
                    "probabilities with stray values, or logits? Read as logits, every score would be at least "
                    "0.5. Fix the stray values, or say which they are with `scores` prob or logit (--scores).")


def to_probability(raw: np.ndarray, scores: str, what: str = "the model's output") -> tuple[np.ndarray, str]:
    """Map one model's raw outputs over a *whole* split to probabilities. Returns (probs, kind used).

    ``scores`` is ``prob`` (kept, must lie in [0, 1]), ``logit`` (sigmoid) or ``auto``: probabilities
    when every finite value lies in [0, 1], logits when fewer than :data:`AMBIGUOUS` of them do, and a
    DebiasError in between (a few stray values among probabilities). The decision is made once for all
    outputs, never per batch, so a score never depends on which images it was batched with.
    """
    if scores not in SCORES:
        raise DebiasError(f"scores={scores!r} is not one of {', '.join(SCORES)}.")
    raw = np.asarray(raw, dtype=np.float64)
    finite = raw[np.isfinite(raw)]
    if scores == "auto":
        inside = (finite >= 0) & (finite <= 1)
        if not inside.all() and inside.mean() >= AMBIGUOUS:
            raise DebiasError(AMBIGUOUS_SCORES.format(what=what, n=int((~inside).sum()), total=len(finite),
                                                      value=float(finite[~inside][0])))
        scores = "prob" if inside.all() else "logit"
    if scores == "prob":
        bad = (finite < 0) | (finite > 1)
        if bad.any():
            raise DebiasError(NOT_PROB.format(what=what, value=float(finite[bad][0])))
        return raw, "prob"
    return 1.0 / (1.0 + np.exp(-np.clip(raw, -60, 60))), "logit"


@dataclass
class Adapter:
    """A model to audit. ``score(images)`` returns (B,) scores, higher = more face-like."""

    spec: str
    name: str
    fn: Callable[[Sequence[np.ndarray]], np.ndarray]
    files: tuple[Path, ...] = ()
    native_threshold: float | None = None  # a detector's own decision point (Haar: 0.5 = detected)
    output: str = "auto"  # what ``fn`` returns: logit | prob | auto (decided over the whole split)

    def score(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Raw outputs (B,); :func:`to_probability` maps a whole split of them to probabilities.

        Raises DebiasError, naming the model, for an output of another shape than (B,) or (B, 1)."""
        out = np.asarray(self.fn(images))
        if out.shape not in ((len(images),), (len(images), 1)):
            raise DebiasError(BAD_OUTPUT.format(spec=self.spec, shape=tuple(out.shape), b=len(images)))
        try:
            return out.astype(np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DebiasError(f"model {self.spec} returned {out.dtype} values, not numbers; return one face score "
                              f"(a number) per image.") from None


BAD_NORM = ("`{name}` {value} must be three finite numbers, one per channel (R,G,B){extra}, for example "
            "{example}.")


def check_normalisation(mean: Sequence[float], std: Sequence[float]) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The (mean, std) that torchscript and onnx inputs are normalised with, checked: three finite values each,
    every std > 0 (a std of 0 divides by zero). Raises DebiasError naming the option."""
    out = []
    for name, v, example, positive in (("mean", mean, "0.485,0.456,0.406", False),
                                       ("std", std, "0.229,0.224,0.225", True)):
        v = tuple(float(x) for x in np.atleast_1d(np.asarray(v, dtype=np.float64)))
        ok = len(v) == 3 and all(np.isfinite(v)) and (not positive or min(v) > 0)
        if not ok:
            shown = ",".join(f"{x:g}" for x in v)
            raise DebiasError(BAD_NORM.format(name=name, value=shown, example=example,
                                              extra=", each greater than 0" if positive else ""))
        out.append(v)
    return out[0], out[1]


def _torch_fn(module: Callable, size: int, mean: Sequence[float], std: Sequence[float],
              device: torch.device) -> Callable:
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1).to(device)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1).to(device)
    identity = bool((m == 0).all() and (s == 1).all())  # skip two full-batch copies that change nothing

    @torch.no_grad()
    def fn(images):
        x = on_device(host_batch(_resize_batch(images, size), device), device)
        out = module(x if identity else (x - m) / s)
        if isinstance(out, (tuple, list)):
            out = out[0]
        return out.float().cpu().numpy()  # (B,) or (B, 1), as Adapter.score checks

    return fn


ONNX_SIZE = ("onnx model {path} takes inputs of shape {shape}, not {size} x {size} images; pass `size` {want} (and "
             "check that its input is (B, 3, H, W) RGB in [0, 1], normalised with `mean` and `std`).")


def _onnx_fn(sess, path: Path, size: int, mean: Sequence[float], std: Sequence[float]) -> Callable:
    """Scores from an onnxruntime session. A model exported with a fixed batch size (often 1) is run that many
    images at a time; a fixed image size other than ``size`` is refused before any image is scored."""
    info = sess.get_inputs()[0]
    shape = list(info.shape)  # a dimension is an int when fixed, a name (or None) when free
    fixed = [d if isinstance(d, int) and d > 0 else None for d in shape]
    if len(shape) != 4 or fixed[1] not in (None, 3) or any(d not in (None, size) for d in fixed[2:]):
        want = next((d for d in fixed[2:] if d is not None), size)
        raise DebiasError(ONNX_SIZE.format(path=path, shape=tuple(shape), size=size, want=want))
    step = fixed[0]
    m, s = np.asarray(mean, np.float32).reshape(1, 3, 1, 1), np.asarray(std, np.float32).reshape(1, 3, 1, 1)

    def run(x: np.ndarray) -> np.ndarray:
        try:
            return np.asarray(sess.run(None, {info.name: x})[0])
        except Exception as e:  # noqa: BLE001 - onnxruntime's errors have no common public base class
            raise DebiasError(f"onnx model {path} failed on a batch of shape {x.shape}: {str(e)[:300]}") from None

    def fn(images):
        x = (_resize_batch(images, size).transpose(0, 3, 1, 2).astype(np.float32) / 255.0 - m) / s  # (B, 3, S, S)
        if step is None:
            return run(x)  # (B,) or (B, 1), as Adapter.score checks
        n = len(x)
        x = np.concatenate([x, np.repeat(x[-1:], -n % step, axis=0)])  # the last chunk filled up to the fixed size
        outs = [run(x[i:i + step]) for i in range(0, len(x), step)]
        if any(o.shape[:1] != (step,) for o in outs):
            return outs[0]  # not one score per image: Adapter.score names the shape
        return np.concatenate(outs)[:n]

    return fn


def _detector_fn(det, pad: float) -> Callable:
    """Crop-level scores from a box detector: each crop gets a replicated context border of ``pad`` x its
    longer side (cascades need context around a tight crop), and scores the best box whose centre lies
    in the crop's central half (:func:`debias.detect.base.crop_score`), never any box anywhere."""
    from debias.data.pad import pad_image
    from debias.detect.base import crop_score

    def fn(images):
        out = np.zeros(len(images))
        for i, im in enumerate(images):
            big, (b, _, w, h) = pad_image(im, pad)
            out[i] = crop_score(det.detect(big).shifted(-b, -b), h, w)
        return out

    return fn


def _import_code(mod: str):
    """Import the module a ``python:`` spec names. This runs its code, as ``python -c`` would.

    A path ending in ``.py`` is loaded from that file, explicitly asked for. A dotted name is
    imported from the installed packages and PYTHONPATH only: the current folder is taken off the
    search path, so a stray file there is never run by accident.
    """
    import os
    import sys

    if mod.endswith(".py"):
        from importlib import util as importlib_util

        path = Path(mod)
        if not path.is_file():
            raise DebiasError(f"python model file {path} does not exist; give the path of the model file.")
        spec = importlib_util.spec_from_file_location(f"debias_user_model_{path.stem}", path)
        module = importlib_util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    cwd = {"", ".", os.getcwd()}
    saved = list(sys.path)
    sys.path[:] = [p for p in sys.path if p not in cwd]
    try:
        return importlib.import_module(mod)
    except ModuleNotFoundError as e:
        raise ImportError(f"python model module {mod!r} was not found on the installed packages or PYTHONPATH "
                          f"(the current folder is not searched); give a file as python:path/to/{mod}.py:FUNCTION.") from e
    finally:
        sys.path[:] = saved


def load_adapter(spec: str, *, size: int = 64, device: str | torch.device = "cpu", pad: float = 0.5,
                 mean: Sequence[float] = (0.0, 0.0, 0.0), std: Sequence[float] = (1.0, 1.0, 1.0),
                 scores: str = "auto") -> Adapter:
    """Build an :class:`Adapter` from a spec string (see the module docstring).

    ``scores`` says what a torchscript, onnx or python model outputs (logit, prob, or auto: decided
    over the whole split). A ``run:`` model always outputs logits; a cascade, its own confidence.
    """
    kind, _, rest = spec.partition(":")
    mean, std = check_normalisation(mean, std)
    device = torch.device(device)
    if kind == "run":
        from debias.models.run import load_run

        model, arch = load_run(rest, device)
        fn = _torch_fn(model, arch["size"], (0, 0, 0), (1, 1, 1), device)
        return Adapter(spec, Path(rest).name, fn, (Path(rest) / "model.pt",), output="logit")
    if kind == "torchscript":
        path = Path(rest)
        if not path.is_file():
            raise DebiasError(f"torchscript file {path} does not exist; give the path of the model file.")
        try:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated but still the format users have
                module = torch.jit.load(str(path), map_location=device).eval()
        except Exception as e:  # noqa: BLE001 - any load failure gets the same message
            raise DebiasError(f"torchscript file {path} could not be loaded: {e}") from e
        fn = _torch_fn(module, size, mean, std, device)
        return Adapter(spec, path.stem, fn, (path,), output=scores)
    if kind == "onnx":
        path = Path(rest)
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise ImportError(NO_ONNX.format(path=path)) from e
        if not path.is_file():
            raise DebiasError(f"onnx file {path} does not exist; give the path of the model file.")
        try:
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as e:  # noqa: BLE001
            raise DebiasError(f"onnx file {path} could not be loaded: {e}") from e
        return Adapter(spec, path.stem, _onnx_fn(sess, path, size, mean, std), (path,), output=scores)
    if kind == "python":
        mod, _, func = rest.rpartition(":")
        if not mod or not func:
            raise DebiasError(f"python spec {spec!r} must be python:module:function or python:file.py:function.")
        f = getattr(_import_code(mod), func, None)
        if f is None:
            raise DebiasError(f"python spec {spec!r}: {mod} has no function {func!r}.")
        return Adapter(spec, func, lambda images: np.asarray(f(_resize_batch(images, size))), output=scores)
    if kind in DETECTOR_KINDS:
        from debias.detect import load_detector

        det = load_detector(spec, device=str(device))
        return Adapter(spec, det.name, _detector_fn(det, pad), det.files, native_threshold=det.native_threshold,
                       output="prob")
    raise DebiasError(UNKNOWN_SPEC.format(spec=spec, haar="|".join(HAAR)))
