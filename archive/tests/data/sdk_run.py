"""Writes an offline run with the official SDK: a few rows, a file saved with wandb.save from
outside the run (a symlink in files/) and an artifact (staged outside the run).

Usage: python sdk_run.py ROOT  (HOME should point into ROOT so the staging folder is private)."""
import os
import sys

import wandb

os.environ["WANDB_MODE"] = "offline"
os.environ["WANDB_SILENT"] = "true"
root = sys.argv[1]
outside = os.path.join(root, "outside")
os.makedirs(outside, exist_ok=True)
saved = os.path.join(outside, "notes.txt")
with open(saved, "w") as f:
    f.write("saved outside the run\n")
run = wandb.init(
    project="archive",
    dir=root,
    settings=wandb.Settings(x_disable_stats=True, console="off"),
)
for i in range(100):
    run.log({"loss": 1.0 / (i + 1)})
wandb.save(saved, base_path=outside, policy="end")
artifact = wandb.Artifact("model", type="model")
model = os.path.join(outside, "model.bin")
with open(model, "wb") as f:
    f.write(bytes(range(256)) * 16)
artifact.add_file(model)
run.log_artifact(artifact)
run.finish()
