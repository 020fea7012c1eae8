"""Draw a contact sheet of scenes with their boxes, so a person can check that the world looks like scenes."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

__all__ = ["contact_sheet"]

_LABELLED = (255, 40, 40)  # boxes of the class the image was collected for
_OTHER = (40, 200, 255)  # boxes of every other object


def contact_sheet(images: Sequence[np.ndarray], boxes: Sequence[Sequence[tuple]], labels: Sequence[int],
                  out: Path, columns: int = 10, zoom: int = 3) -> Path:
    """Save a grid of ``images`` enlarged ``zoom`` times; ``boxes[i]`` holds (cls, x1, y1, x2, y2, visible)
    tuples, drawn red for the labelled class and blue otherwise, each tagged with its class digit."""
    if not images:
        raise ValueError("contact_sheet needs at least one image.")
    h = max(im.shape[0] for im in images) * zoom
    w = max(im.shape[1] for im in images) * zoom
    pad = 4
    rows = (len(images) + columns - 1) // columns
    sheet = Image.new("RGB", (columns * (w + pad) + pad, rows * (h + pad + 12) + pad), (255, 255, 255))
    draw = ImageDraw.Draw(sheet)
    for i, (im, bxs, label) in enumerate(zip(images, boxes, labels)):
        x0 = pad + (i % columns) * (w + pad)
        y0 = pad + (i // columns) * (h + pad + 12)
        big = Image.fromarray(im).resize((im.shape[1] * zoom, im.shape[0] * zoom), Image.Resampling.NEAREST)
        sheet.paste(big, (x0, y0))
        for cls, x1, y1, x2, y2, visible in bxs:
            colour = _LABELLED if cls == label else _OTHER
            draw.rectangle([x0 + x1 * zoom, y0 + y1 * zoom, x0 + x2 * zoom - 1, y0 + y2 * zoom - 1], outline=colour)
            draw.text((x0 + x1 * zoom + 2, y0 + y1 * zoom + 1), str(cls), fill=colour)
        draw.text((x0, y0 + h + 1), f"label {label}", fill=(0, 0, 0))
    out = Path(out)
    sheet.save(out, format="PNG", compress_level=6)
    return out
