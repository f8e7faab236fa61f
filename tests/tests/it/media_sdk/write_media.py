"""Logs the media inputs of tests/tests/it/media.rs with the official SDK, offline.

Usage: python write_media.py DIR. Writes DIR/photo.jpg (a JPEG the Rust side logs too) and a run
under DIR/wandb/. The inputs here and in media.rs must stay the same.
"""

import sys

import numpy as np
import wandb
from PIL import Image as PILImage

out = sys.argv[1]
rgb = (np.arange(4 * 3 * 3, dtype=np.int64).reshape(4, 3, 3) * 7 % 256).astype(np.uint8)
grey = (np.arange(12, dtype=np.int64) * 20).reshape(3, 4).astype(np.uint8)
rgba = np.full((2, 2, 4), 100, dtype=np.uint8)
photo = f"{out}/photo.jpg"
PILImage.fromarray(rgb).resize((30, 40)).save(photo, format="JPEG")
spread = [((i * 37) % 101) / 7.0 - 3.0 for i in range(1000)]

run = wandb.init(project="media", id="mediasdk", dir=out, mode="offline")
run.log(
    {
        "img": wandb.Image(rgb, caption="cap"),
        "grey": wandb.Image(grey),
        "rgba": wandb.Image(rgba),
        "photo": wandb.Image(photo),
        "h": wandb.Histogram([1, 2, 3, 4, 5, 6, 7, 8, 9, 10.5], num_bins=4),
        "spread": wandb.Histogram(spread),
        "h2": wandb.Histogram(np_histogram=([1, 2, 3], [0, 1, 2, 3])),
        "tab": wandb.Table(columns=["a", "b", "c"], data=[[1, "x", 2.5], [2, "y", None]]),
    }
)
run.log({"nested": {"img": wandb.Image(grey)}})
run.finish()
