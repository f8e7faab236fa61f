"""Shared helpers: reading a run's records back (the framing parsed here, each record decoded
with the official SDK's protobuf classes), running scripts in a child interpreter, and the test
backend (`wandb-test-backend`) that the official `wandb sync` uploads to.

A test that cannot run here (no SDK, no NumPy, no backend binary) is skipped with its reason;
under CI=true a skip is a failure (see `pytest_runtest_makereport`).
"""

from __future__ import annotations

import glob
import json
import os
import struct
import subprocess
import sys
import urllib.request
import zlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Under CI=true every skip fails: CI installs everything the tests need."""
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("CI") == "true":
        report.outcome = "failed"
        report.longrepr = f"CI=true, so this test may not skip: {report.longrepr}"


def records(run_dir: str | Path) -> list:
    """Every record of the run's `.wandb` file, as `wandb_internal_pb2.Record` messages."""
    pb = pytest.importorskip("wandb.proto.wandb_internal_pb2", reason="needs the official SDK's protobuf classes")
    (path,) = glob.glob(os.path.join(run_dir, "*.wandb"))
    data = Path(path).read_bytes()
    assert data[:4] == b":W&B", path
    out, buf, pos = [], b"", 7
    while pos + 7 <= len(data):
        room = 32768 - pos % 32768
        if room < 7:
            pos += room
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:
            pos += room
            continue
        payload = data[pos + 7:pos + 7 + length]
        assert zlib.crc32(bytes([kind]) + payload) & 0xFFFFFFFF == crc, f"bad CRC at {pos}"
        pos += 7 + length
        buf += payload
        if kind in (1, 4):
            r = pb.Record()
            r.ParseFromString(buf)
            out.append(r)
            buf = b""
        elif kind == 2:
            buf = payload
    return out


def of_type(recs: list, kind: str) -> list:
    return [getattr(r, kind) for r in recs if r.WhichOneof("record_type") == kind]


def history(run_dir) -> list:
    """History rows as dicts of dotted key path to value."""
    rows = []
    for h in of_type(records(run_dir), "history"):
        row = {}
        for item in h.item:
            key = item.key or ".".join(item.nested_key)
            row[key] = json.loads(item.value_json)
        rows.append(row)
    return rows


def exit_code(run_dir) -> int:
    (rec,) = of_type(records(run_dir), "exit")
    return rec.exit_code


def run_dirs(base) -> list:
    return sorted(glob.glob(os.path.join(base, "wandb", "offline-run-*")))


@pytest.fixture
def env(tmp_path, monkeypatch):
    """A hermetic environment: offline, console capture off, no system metrics."""
    for name in list(os.environ):
        if name.startswith("WANDB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.setenv("WANDB_X_DISABLE_STATS", "true")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.chdir(tmp_path)
    import wandb_offline

    wandb_offline.teardown()
    yield tmp_path
    wandb_offline.teardown()


def run_script(code: str, cwd, python: str = sys.executable, extra_env: dict | None = None, timeout=60):
    """Runs `code` in a child interpreter in `cwd`; returns the CompletedProcess."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update({"WANDB_MODE": "offline", "WANDB_CONSOLE": "off", "WANDB_X_DISABLE_STATS": "true",
                "HOME": str(cwd), "WANDB_CONFIG_DIR": str(Path(cwd) / "config"), "WANDB_SILENT": "true"})
    env.update(extra_env or {})
    return subprocess.run([python, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def sdk_python() -> str:
    """The Python with the official SDK 0.31 (WANDB_SDK_PYTHON, else this one if it has wandb)."""
    python = os.environ.get("WANDB_SDK_PYTHON") or sys.executable
    check = subprocess.run([python, "-c", "import wandb, numpy, PIL; assert wandb.__version__ == '0.31.0'"],
                           capture_output=True)
    if check.returncode != 0:
        pytest.skip(f"{python} has no wandb 0.31.0 with numpy and pillow")
    return python


class Backend:
    """`wandb-test-backend --any-key` on a free port."""

    def __init__(self) -> None:
        exe = os.environ.get("WANDB_TEST_BACKEND")
        candidates = [exe] if exe else [str(ROOT / "target" / d / "wandb-test-backend") for d in ("debug", "release")]
        found = [c for c in candidates if c and os.access(c, os.X_OK)]
        if not found:
            pytest.skip("wandb-test-backend not built (cargo build -p wandb-testkit)")
        self.proc = subprocess.Popen([found[0], "--any-key"], stdout=subprocess.PIPE, text=True)
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def state(self) -> dict:
        with urllib.request.urlopen(self.url + "/_state", timeout=10) as r:
            return json.load(r)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture
def backend():
    b = Backend()
    yield b
    b.stop()


def official_sync(python: str, run_dir, url: str, scratch) -> subprocess.CompletedProcess:
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(scratch), "WANDB_CONFIG_DIR": str(Path(scratch) / "sync-config"),
           "WANDB_BASE_URL": url, "WANDB_API_KEY": "x" * 40, "WANDB_SILENT": "true"}
    return subprocess.run([python, "-m", "wandb", "sync", "--include-synced", str(run_dir)], cwd=scratch, env=env,
                          capture_output=True, text=True, timeout=120)
