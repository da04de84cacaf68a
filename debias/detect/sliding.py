"""``sliding:RUN_DIR``: a face/non-face classifier trained by ``debias train``, slid over a full image.

The image is resized so that a window of each size in a geometric series (from ``min_window`` pixels
to the image's short side, x1.25 per step) becomes the classifier's input size, and every window at a
stride of a quarter window is scored in batches (``Tensor.unfold``). A window's box is the face
region a training crop has: the central 44% of its width and 19-75% of its height (the synthetic
renderer's head ellipse at scale 1). Windows scoring >= 0.05 go through NMS (IoU 0.3, torchvision).
The classifier's own threshold (probability 0.5) is the native one.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.ops import box_convert, nms

from debias.detect.base import Detections, Detector

FACE_IN_WINDOW = (0.28, 0.19, 0.44, 0.56)  # x, y, w, h of the face box as shares of a window
KEEP_FROM = 0.05
MAX_BOXES = 100


def sliding(spec: str, run_dir: str, *, device: str = "cpu", min_window: int = 32, step: float = 1.25,
            stride: float = 0.25, batch: int = 512) -> Detector:
    from debias.models.run import load_run, resolve_device

    dev = resolve_device(device)
    model, arch = load_run(run_dir, dev)
    size = int(arch["size"])
    fx, fy, fw, fh = FACE_IN_WINDOW

    @torch.no_grad()
    def fn(image: np.ndarray) -> Detections:
        img = torch.as_tensor(image, device=dev).permute(2, 0, 1)[None].float() / 255.0
        H, W = image.shape[:2]
        boxes, scores = [], []
        win = float(min_window)
        while win <= min(H, W):
            s = size / win
            x = F.interpolate(img, size=(max(size, round(H * s)), max(size, round(W * s))), mode="bilinear",
                              antialias=True, align_corners=False)
            st = max(1, round(size * stride))
            p = x.unfold(2, size, st).unfold(3, size, st)  # (1, 3, ny, nx, size, size)
            nx = p.shape[3]
            p = p.permute(0, 2, 3, 1, 4, 5).reshape(-1, 3, size, size)
            logit = torch.cat([model(p[i:i + batch]).reshape(-1) for i in range(0, len(p), batch)])
            prob = torch.sigmoid(logit.double())  # float64: a float32 sigmoid ties every confident window at 1.0
            keep = torch.nonzero(prob >= KEEP_FROM).reshape(-1)
            if len(keep):
                iy, ix = keep // nx, keep % nx
                x0, y0 = ix.float() * st / s, iy.float() * st / s
                w = size / s
                boxes.append(torch.stack([x0 + fx * w, y0 + fy * w, torch.full_like(x0, fw * w),
                                          torch.full_like(x0, fh * w)], 1))
                scores.append(prob[keep])
            win *= step
        if not boxes:
            return Detections.empty()
        b, sc = torch.cat(boxes), torch.cat(scores)
        keep = nms(box_convert(b, "xywh", "xyxy").double(), sc, 0.3)[:MAX_BOXES]
        return Detections(b[keep].cpu().numpy().astype(np.float32), sc[keep].cpu().numpy())

    return Detector(spec, f"sliding-{Path(run_dir).name}", fn, native_threshold=0.5, files=(Path(run_dir) / "model.pt",))
