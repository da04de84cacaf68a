"""MTCNN (Zhang et al. 2016): a three-stage cascade of small CNNs, ported to plain PyTorch.

The trained weights are the three state dicts ``pnet.pt``, ``rnet.pt`` and ``onet.pt`` inside the
facenet-pytorch 2.6.0 wheel (MIT licence). That package pins torch<2.3 and numpy<2, so it is
installed with ``--no-deps`` (``make detectors``) and never imported: this module finds its data
folder and loads the tensors with ``torch.load(weights_only=True)`` into the networks below.

The pipeline follows the published one: an image pyramid (smallest face 20 px, factor 0.709), P-Net
proposals per scale (threshold 0.6, NMS 0.5 within a scale, 0.7 across), box regression and
squaring, R-Net on 24 px crops (0.7, NMS 0.7), O-Net on 48 px crops, regression, and a final NMS
that divides the overlap by the smaller box ("Min"). The published last-stage threshold is 0.7; it is
the detector's native threshold here, and boxes down to 0.01 are kept so an audit can sweep below it
(the final NMS visits boxes best-first, so the boxes above 0.7 are the same either way).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torchvision.ops import box_convert, nms

from debias.detect.base import Detections, Detector, DetectorUnavailable, INSTALL

MIN_FACE = 20
FACTOR = 0.709
THRESHOLDS = (0.6, 0.7, 0.7)
KEEP_FROM = 0.01


class PNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 10, 3), nn.PReLU(10)
        self.conv2, self.prelu2 = nn.Conv2d(10, 16, 3), nn.PReLU(16)
        self.conv3, self.prelu3 = nn.Conv2d(16, 32, 3), nn.PReLU(32)
        self.conv4_1, self.conv4_2 = nn.Conv2d(32, 2, 1), nn.Conv2d(32, 4, 1)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 2, 2, ceil_mode=True)
        x = self.prelu3(self.conv3(self.prelu2(self.conv2(x))))
        return self.conv4_2(x), F.softmax(self.conv4_1(x), dim=1)


def _flatten_caffe(x: torch.Tensor) -> torch.Tensor:
    # the weights were converted from Caffe, whose dense layers read (W, H, C) order
    return x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)


class RNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 28, 3), nn.PReLU(28)
        self.conv2, self.prelu2 = nn.Conv2d(28, 48, 3), nn.PReLU(48)
        self.conv3, self.prelu3 = nn.Conv2d(48, 64, 2), nn.PReLU(64)
        self.dense4, self.prelu4 = nn.Linear(576, 128), nn.PReLU(128)
        self.dense5_1, self.dense5_2 = nn.Linear(128, 2), nn.Linear(128, 4)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = self.prelu4(self.dense4(_flatten_caffe(self.prelu3(self.conv3(x)))))
        return self.dense5_2(x), F.softmax(self.dense5_1(x), dim=1)


class ONet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1, self.dense6_2, self.dense6_3 = nn.Linear(256, 2), nn.Linear(256, 4), nn.Linear(256, 10)

    def forward(self, x):
        x = F.max_pool2d(self.prelu1(self.conv1(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu2(self.conv2(x)), 3, 2, ceil_mode=True)
        x = F.max_pool2d(self.prelu3(self.conv3(x)), 2, 2, ceil_mode=True)
        x = self.prelu5(self.dense5(_flatten_caffe(self.prelu4(self.conv4(x)))))
        return self.dense6_2(x), self.dense6_3(x), F.softmax(self.dense6_1(x), dim=1)


NETS = (("pnet", PNet), ("rnet", RNet), ("onet", ONet))


def weights_folder() -> Path:
    """The facenet-pytorch wheel's data folder, found without importing the package."""
    spec = importlib.util.find_spec("facenet_pytorch")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" if spec else None
    if folder is None or not all((folder / f"{n}.pt").is_file() for n, _ in NETS):
        raise DetectorUnavailable(f"detector mtcnn needs the weights inside the facenet-pytorch wheel, which is not "
                                  f"installed. Install it with: {INSTALL['mtcnn']}")
    return folder


def load_nets(device: torch.device, folder: Path | None = None) -> tuple[PNet, RNet, ONet]:
    folder = folder or weights_folder()
    nets = []
    for name, cls in NETS:
        net = cls()
        net.load_state_dict(torch.load(folder / f"{name}.pt", map_location="cpu", weights_only=True))
        nets.append(net.to(device).eval())
    return tuple(nets)


def _normalise(x: torch.Tensor) -> torch.Tensor:
    return (x - 127.5) * 0.0078125


def _square(b: torch.Tensor) -> torch.Tensor:
    """Grow each (x1, y1, x2, y2) box to a square about its centre."""
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    side = torch.maximum(w, h)
    x1, y1 = b[:, 0] + (w - side) / 2, b[:, 1] + (h - side) / 2
    return torch.stack([x1, y1, x1 + side, y1 + side], 1)


def _regress(b: torch.Tensor, reg: torch.Tensor, plus_one: bool) -> torch.Tensor:
    w = b[:, 2] - b[:, 0] + (1 if plus_one else 0)
    h = b[:, 3] - b[:, 1] + (1 if plus_one else 0)
    return b + reg * torch.stack([w, h, w, h], 1)


def _crops(img: torch.Tensor, boxes: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each box from ``img`` (1, 3, H, W), clipped to it (1-based box convention of the original
    MATLAB code), resized to ``size`` by area averaging. Returns (crops, which boxes were cut)."""
    H, W = img.shape[2:]
    b = boxes.trunc().int().tolist()
    out, ok = [], []
    for i, (x, y, ex, ey) in enumerate(b):
        x, y, ex, ey = max(x, 1), max(y, 1), min(ex, W), min(ey, H)
        if ey > y - 1 and ex > x - 1:
            out.append(F.interpolate(img[:, :, y - 1:ey, x - 1:ex], size=(size, size), mode="area"))
            ok.append(i)
    if not out:
        return torch.zeros(0, 3, size, size, device=img.device), torch.zeros(0, dtype=torch.long)
    return torch.cat(out), torch.tensor(ok, dtype=torch.long)


def _nms_min(boxes: torch.Tensor, scores: torch.Tensor, threshold: float) -> torch.Tensor:
    """Greedy NMS with overlap = intersection / the smaller box's area (MTCNN's last stage).

    torchvision.ops.nms has only IoU, so this is written here; it runs on the few boxes O-Net keeps.
    """
    b, s = boxes.cpu().numpy().astype(np.float64), scores.cpu().numpy()
    area = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    order, keep = np.argsort(s)[::-1], []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        iw = np.maximum(0, np.minimum(b[i, 2], b[rest, 2]) - np.maximum(b[i, 0], b[rest, 0]) + 1)
        ih = np.maximum(0, np.minimum(b[i, 3], b[rest, 3]) - np.maximum(b[i, 1], b[rest, 1]) + 1)
        order = rest[iw * ih / np.minimum(area[i], area[rest]) <= threshold]
    return torch.as_tensor(keep, dtype=torch.long)


@torch.no_grad()
def detect_boxes(image: np.ndarray, nets, *, min_face: int = MIN_FACE, factor: float = FACTOR,
                 thresholds=THRESHOLDS, keep_from: float = KEEP_FROM) -> tuple[np.ndarray, np.ndarray]:
    """MTCNN on one (H, W, 3) uint8 RGB image. Returns boxes (N, 4) x1, y1, x2, y2 and O-Net scores (N,)."""
    pnet, rnet, onet = nets
    device = next(pnet.parameters()).device
    img = torch.as_tensor(image, device=device).permute(2, 0, 1)[None].float()
    H, W = img.shape[2:]
    empty = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32))
    # stage 1: P-Net over a pyramid whose smallest scale still has a 12 px window
    scales, scale, side = [], 12.0 / min_face, min(H, W) * 12.0 / min_face
    while side >= 12:
        scales.append(scale)
        scale, side = scale * factor, side * factor
    cand = []
    for s in scales:
        reg, prob = pnet(_normalise(F.interpolate(img, size=(int(H * s + 1), int(W * s + 1)), mode="area")))
        p = prob[0, 1]
        ys, xs = torch.nonzero(p >= thresholds[0], as_tuple=True)
        if not len(ys):
            continue
        xy = torch.stack([xs, ys], 1).float()
        b = torch.cat([((2 * xy + 1) / s).floor(), ((2 * xy + 12) / s).floor()], 1)
        sc, r = p[ys, xs], reg[0][:, ys, xs].T
        keep = nms(b, sc, 0.5)
        cand.append(torch.cat([b[keep], sc[keep, None], r[keep]], 1))
    if not cand:
        return empty
    c = torch.cat(cand)
    c = c[nms(c[:, :4], c[:, 4], 0.7)]
    boxes = _square(_regress(c[:, :4], c[:, 5:9], plus_one=False))
    # stage 2: R-Net on 24 px crops
    x, ok = _crops(img, boxes, 24)
    if not len(ok):
        return empty
    reg, prob = rnet(_normalise(x))
    boxes, sc = boxes[ok], prob[:, 1]
    keep = sc > thresholds[1]
    boxes, sc, reg = boxes[keep], sc[keep], reg[keep]
    keep = nms(boxes, sc, 0.7)
    boxes = _square(_regress(boxes[keep], reg[keep], plus_one=True))
    # stage 3: O-Net on 48 px crops
    x, ok = _crops(img, boxes, 48)
    if not len(ok):
        return empty
    reg, _, prob = onet(_normalise(x))
    boxes, sc = boxes[ok], prob[:, 1]
    keep = sc > keep_from
    boxes = _regress(boxes[keep], reg[keep], plus_one=True)
    sc = sc[keep]
    if not len(sc):
        return empty
    keep = _nms_min(boxes, sc, 0.7)
    return boxes[keep].cpu().numpy().astype(np.float32), sc[keep].cpu().numpy().astype(np.float32)


def mtcnn(spec: str, *, device: str = "cpu") -> Detector:
    from debias.models.run import resolve_device

    folder = weights_folder()
    nets = load_nets(resolve_device(device), folder)

    def fn(image: np.ndarray) -> Detections:
        b, s = detect_boxes(image, nets)
        return Detections(box_convert(torch.from_numpy(b), "xyxy", "xywh").numpy(), s)

    files = tuple(folder / f"{n}.pt" for n, _ in NETS)
    return Detector(spec, "mtcnn", fn, native_threshold=THRESHOLDS[2], files=files)


__all__ = ["PNet", "RNet", "ONet", "detect_boxes", "load_nets", "mtcnn"]
