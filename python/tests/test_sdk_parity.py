"""The same training script run with the official SDK 0.31 (offline) and with wandb_offline,
each synced by the official `wandb sync` to the test backend: the same history, summary,
config, media files and exit state. The SDK's run is the reference."""

from __future__ import annotations

import os
import re
import struct
import zlib

import pytest

from conftest import Backend, official_sync, run_dirs, run_script, sdk_python

SCRIPT = """
import sys
import numpy as np
wandb = __import__(sys.argv[1] if len(sys.argv) > 1 else "wandb")
run = wandb.init(project="parity", id="parity01", config={"lr": 0.01, "layers": [1, 2], "opt": {"name": "adam"}})
run.define_metric("loss", summary="min")
for i in range(20):
    run.log({"loss": 1 / (i + 1), "acc": i / 20, "nested": {"x": i}, "flag": i % 2 == 0})
run.log({"grad": np.float32(0.25), "vec": np.arange(5), "big": np.linspace(0, 1, 100)})
run.log({
    "img": wandb.Image((np.arange(48).reshape(4, 4, 3) * 5).astype(np.uint8), caption="c"),
    "grey": wandb.Image(np.arange(6, dtype=np.uint8).reshape(2, 3)),
    "h": wandb.Histogram([((i * 37) % 101) / 7.0 for i in range(500)], num_bins=16),
    "t": wandb.Table(columns=["a", "b"], data=[[1, "x"], [2, None]]),
    "gallery": [wandb.Image(np.full((2, 2), v, dtype=np.uint8), caption=str(v)) for v in (10, 20)],
}, commit=False)
run.log({"late": 1}, step=25)
run.summary["best"] = 0.5
run.config.update({"extra": True})
run.finish(exit_code=EXIT)
"""

VOLATILE = {"_runtime", "_timestamp", "_wandb"}


def png_pixels(data: bytes) -> tuple:
    """(width, height, colour type, raw scanlines after unfiltering) of an 8-bit PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = header[0], header[1], header[2], header[3]
    assert depth == 8
    bpp = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(idat)
    stride = width * bpp
    out, prev = [], bytearray(stride)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for x in range(stride):
            a = line[x - bpp] if x >= bpp else 0
            b, c = prev[x], (prev[x - bpp] if x >= bpp else 0)
            if f == 1:
                line[x] = (line[x] + a) & 255
            elif f == 2:
                line[x] = (line[x] + b) & 255
            elif f == 3:
                line[x] = (line[x] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        out.append(bytes(line))
        prev = line
    return width, height, colour, b"".join(out)


def normalise(value):
    """Hash-dependent parts of media values made comparable."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if k in ("sha256", "size", "artifact_path", "_latest_artifact_path"):
                continue
            if k == "path" and isinstance(v, str):
                v = re.sub(r"_[0-9a-f]{20}\.", "_<hash>.", v)
            out[k] = normalise(v)
        return out
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str) and value.startswith("media/"):
        return re.sub(r"_[0-9a-f]{20}\.", "_<hash>.", value)
    return value


def without_local_paths(manifest):
    """An uploaded manifest without the `local_path` of its entries (where each client staged
    the file; the official sync uploads it, so the manifest file's own digest differs too)."""
    if manifest is None:
        return None
    contents = {p: {k: v for k, v in e.items() if k != "local_path"} for p, e in manifest["contents"].items()}
    return {**manifest, "contents": contents}


def run_tables(state: dict) -> dict:
    """Each `run_table` artifact the backend holds, by name, with what must not depend on the
    client that logged the table or the sync that uploaded it (not the random client ids, not
    where the file was staged)."""
    out = {}
    for a in state["artifacts"]:
        if a["artifact_type"] != "run_table":
            continue
        files = {p: (f["digest"], f["size"], f["stored"], f["digest_matches"], f["sha256"]) for p, f in a["files"].items()}
        out[a["name"]] = {"digest": a["digest"], "aliases": a["aliases"], "committed": a["committed"],
                          "version": a["version"], "created_by": a["created_by"], "errors": a["errors"],
                          "files": files, "manifest": without_local_paths(a["manifest"])}
    return out


def synced(python, module, tmp_path, backend, exit_code):
    work = tmp_path / module
    work.mkdir()
    code = SCRIPT.replace("EXIT", str(exit_code))
    out = run_script(code.replace("sys.argv[1] if len(sys.argv) > 1 else \"wandb\"", repr(module)), work, python=python)
    assert out.returncode == 0, out.stderr
    (run_dir,) = run_dirs(work)
    sync = official_sync(python, run_dir, backend.url, tmp_path)
    assert sync.returncode == 0, sync.stderr
    state = backend.state()
    (run,) = [r for r in state["runs"] if r["run_id"] == "parity01"]
    return run, run_tables(state)


@pytest.mark.parametrize("exit_code", [0, 3])
def test_same_run_as_the_sdk_after_official_sync(tmp_path, exit_code):
    python = sdk_python()
    # wandb_offline must be importable by the SDK's Python for the same script to run on both.
    if run_script("import wandb_offline", tmp_path, python=python).returncode != 0:
        pytest.skip(f"wandb_offline is not installed in {python}")
    theirs_backend, ours_backend = Backend(), Backend()
    try:
        theirs, their_tables = synced(python, "wandb", tmp_path, theirs_backend, exit_code)
        ours, our_tables = synced(python, "wandb_offline", tmp_path, ours_backend, exit_code)
    finally:
        theirs_backend.stop()
        ours_backend.stop()

    strip = lambda row: normalise({k: v for k, v in row.items() if k not in VOLATILE})  # noqa: E731
    assert [strip(r) for r in ours["history"]] == [strip(r) for r in theirs["history"]]
    assert strip(ours["summary"]) == strip(theirs["summary"])
    assert strip(ours["config"]) == strip(theirs["config"])
    assert (ours["exit_code"], ours["complete"]) == (theirs["exit_code"], theirs["complete"]) == (exit_code, True)

    def media(run):
        """(name without its hash, content: PNG pixels or table JSON) of each media file."""
        import base64
        import json

        out = []
        for path, f in run["files"].items():
            if not path.startswith("media/"):
                continue
            name = re.sub(r"_[0-9a-f]{20}\.", "_<hash>.", path)
            if name.endswith(".png"):
                content = repr(png_pixels(base64.b64decode(f["bytes"][len("base64:"):])))
            else:
                content = json.dumps(json.loads(f["bytes"]), sort_keys=True)
            out.append((name, content))
        return sorted(out)

    their_media = media(theirs)
    assert media(ours) == their_media
    assert len(their_media) == 5, [n for n, _ in their_media]
    assert len(theirs["history"]) == 23 and theirs["history"][21]["img"]["_type"] == "image-file"
    assert theirs["history"][21]["gallery"]["_type"] == "images/separated"
    assert theirs["summary"]["loss"] == {"min": 0.05} and theirs["config"]["extra"]["value"] is True
    # The Table is also the SDK's `run_table` artifact: the same manifest, digests and content.
    assert our_tables == their_tables
    (table,) = their_tables.values()
    assert list(their_tables) == ["run-parity01-t"] and table["committed"] and not table["errors"]
    assert list(table["files"]) == ["t.table.json"] and table["files"]["t.table.json"][2:4] == (True, True)


def test_our_sync_uploads_what_the_official_sync_does(tmp_path):
    """A wandb_offline run with scalars and media, uploaded by the official `wandb sync` and by
    our `wandb-sync`: the same reconstructed run on both backends."""
    import shutil
    import subprocess
    import sys

    from conftest import ROOT

    python = sdk_python()
    exe = os.environ.get("WANDB_SYNC_BIN") or str(ROOT / "target" / "debug" / "wandb-sync")
    if not os.access(exe, os.X_OK):
        pytest.skip("wandb-sync not built (cargo build -p wandb-sync)")
    work = tmp_path / "run"
    work.mkdir()
    code = SCRIPT.replace("EXIT", "0").replace('sys.argv[1] if len(sys.argv) > 1 else "wandb"', '"wandb_offline"')
    out = run_script(code, work, python=sys.executable)
    assert out.returncode == 0, out.stderr
    (run_dir,) = run_dirs(work)
    copy = tmp_path / "copy" / os.path.basename(run_dir)
    shutil.copytree(run_dir, copy)
    official, ours = Backend(), Backend()
    try:
        sync = official_sync(python, copy, official.url, tmp_path)
        assert sync.returncode == 0, sync.stderr
        env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "WANDB_API_KEY": "x" * 40}
        mine = subprocess.run([exe, "--base-url", ours.url, str(run_dir)], env=env, capture_output=True, text=True,
                              timeout=120)
        assert mine.returncode == 0, mine.stderr
        official_state, our_state = official.state(), ours.state()
        (a,) = [r for r in official_state["runs"] if r["run_id"] == "parity01"]
        (b,) = [r for r in our_state["runs"] if r["run_id"] == "parity01"]
    finally:
        official.stop()
        ours.stop()
    assert a["history"] == b["history"]
    # `_wandb` in the config is what each sync adds of its own (telemetry, environment).
    for field in ("summary", "config"):
        assert {k: v for k, v in a[field].items() if k != "_wandb"} == {k: v for k, v in b[field].items() if k != "_wandb"}, field
    assert (a["exit_code"], a["complete"]) == (b["exit_code"], b["complete"]) == (0, True)
    media = lambda r: {p: f["sha256"] for p, f in r["files"].items() if p.startswith("media/")}  # noqa: E731
    assert media(a) == media(b) and len(media(a)) == 5
    # The Table's `run_table` artifact, committed with its one file by both syncs.
    tables = run_tables(official_state)
    assert run_tables(our_state) == tables and list(tables) == ["run-parity01-t"]
    assert tables["run-parity01-t"]["committed"] and not tables["run-parity01-t"]["errors"]
