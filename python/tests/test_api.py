"""The API of wandb_offline: what each call writes into the run."""

from __future__ import annotations

import argparse
import dataclasses
import math
import os

import pytest

import wandb_offline as wandb
from conftest import exit_code, history, of_type, records, run_dirs, run_script


def test_log_steps_and_commit(env):
    run = wandb.init(project="p", id="steps001")
    run.log({"a": 1})
    run.log({"b": 2}, commit=False)
    run.log({"c": 3})
    run.log({"d": 4}, step=5)
    run.log({"e": 5}, step=5)
    run.log({"f": 6}, step=7, commit=True)
    assert run.step == 8
    run.finish()
    rows = history(run_dirs(env)[0])
    assert [(r["_step"], sorted(k for k in r if not k.startswith("_"))) for r in rows] == [
        (0, ["a"]), (1, ["b", "c"]), (5, ["d", "e"]), (7, ["f"])]


def test_values_are_converted_as_the_sdk_does(env):
    np = pytest.importorskip("numpy")

    class Tensorish:
        def __init__(self, a):
            self.a = a

        def __array__(self, dtype=None, copy=None):
            return np.asarray(self.a, dtype=dtype)

    class Scalarish:
        def item(self):
            return 2.5

    wandb.init(id="values01")
    wandb.log({
        "int": 3, "float": 0.5, "bool": True, "str": "text", "none": None,
        "nested": {"x": {"y": 1}}, "list": [1, "a", None],
        "np_float": np.float32(1.5), "np_int": np.int64(7), "small": np.arange(3),
        "big": np.arange(100.0), "tensor": Tensorish([[1.0, 2.0]]), "scalar": Scalarish(),
        "nan": float("nan"), "inf": float("inf"), "ninf": -math.inf, "huge": "x" * 1_000_000,
        "bigint": 2**70,
    })
    wandb.finish()
    (row,) = history(run_dirs(env)[0])
    assert row["int"] == 3 and row["float"] == 0.5 and row["bool"] is True and row["str"] == "text"
    assert row["none"] is None and row["nested.x.y"] == 1 and row["list"] == [1, "a", None]
    assert row["np_float"] == 1.5 and row["np_int"] == 7 and row["small"] == [0, 1, 2]
    assert row["big._type"] == "histogram" and len(row["big.values"]) == 32
    assert row["tensor"] == [[1.0, 2.0]] and row["scalar"] == 2.5
    assert math.isnan(row["nan"]) and row["inf"] == math.inf and row["ninf"] == -math.inf
    assert len(row["huge"]) == 1_000_000 and row["bigint"] == 2**70


def test_bad_values_are_clear_errors(env):
    run = wandb.init(id="badvals1")
    with pytest.raises(TypeError, match="is a set"):
        run.log({"s": {1, 2}})
    with pytest.raises(TypeError, match="has type object"):
        run.log({"o": object()})
    with pytest.raises(TypeError, match="keys must be strings"):
        run.log({1: 2})
    with pytest.raises(TypeError, match="dictionary"):
        run.log([1, 2])
    cycle: dict = {}
    cycle["self"] = cycle
    with pytest.raises(ValueError, match="nested more than"):
        run.log({"c": cycle})
    run.log({"ok": 1})
    run.finish()
    rows = history(run_dirs(env)[0])
    assert [sorted(k for k in r if not k.startswith("_")) for r in rows] == [["ok"]]


def test_config_is_a_mapping(env):
    @dataclasses.dataclass
    class Hp:
        layers: int = 4

    run = wandb.init(id="config01", config=argparse.Namespace(lr=0.1, name="x"))
    assert wandb.config is run.config
    run.config.update(Hp())
    run.config["batch"] = 32
    run.config.dropout = 0.5
    assert run.config.lr == 0.1 and run.config["layers"] == 4 and "batch" in run.config
    assert set(run.config.keys()) == {"lr", "name", "layers", "batch", "dropout"}
    run.finish()
    recs = records(run_dirs(env)[0])
    final = {item.key: item.value_json for item in of_type(recs, "run")[0].config.update}
    for c in of_type(recs, "config"):
        for item in c.update:
            final[item.key] = item.value_json
    assert {k: final[k] for k in ("lr", "layers", "batch", "dropout")} == {
        "lr": "0.1", "layers": "4", "batch": "32", "dropout": "0.5"}


def test_summary_is_a_mapping(env):
    run = wandb.init(id="summary1")
    run.log({"loss": 2.0})
    run.log({"loss": 1.0})
    run.summary["best"] = 0.9
    run.summary.update({"other": "x"})
    assert run.summary["loss"] == 1.0 and run.summary.best == 0.9
    assert "other" in run.summary and {"loss", "best", "other"} <= set(run.summary.keys())
    del run.summary["other"]
    assert "other" not in run.summary
    run.finish()


def test_define_metric(env):
    run = wandb.init(id="metric01")
    run.define_metric("loss", summary="min", goal="minimize")
    run.define_metric("val/*", step_metric="epoch")
    for v in (3.0, 1.0, 2.0):
        run.log({"loss": v})
    assert run.summary["loss"] == {"min": 1.0}
    with pytest.raises(ValueError, match="invalid summary"):
        run.define_metric("x", summary="median")
    run.finish()
    metrics = of_type(records(run_dirs(env)[0]), "metric")
    assert {m.name or m.glob_name for m in metrics} == {"loss", "val/*"}


def test_save_and_alert(env):
    (env / "out").mkdir()
    (env / "out" / "a.txt").write_text("hello")
    run = wandb.init(id="saveal01")
    saved = run.save("out/*.txt", policy="now")
    assert len(saved) == 1 and open(saved[0]).read() == "hello"
    with pytest.raises(ValueError, match="policies"):
        run.save("out/*.txt", policy="sometimes")
    wandb.alert("title", "text", level="WARN")
    run.finish()
    recs = records(run_dirs(env)[0])
    assert any(f.path == "out/a.txt" for fr in of_type(recs, "files") for f in fr.files)
    (alert,) = of_type(recs, "alert")
    assert (alert.title, alert.text, alert.level) == ("title", "text", "WARN")


def test_media(env):
    np = pytest.importorskip("numpy")
    run = wandb.init(id="media001")
    pixels = np.arange(4 * 3 * 3).reshape(4, 3, 3) * 7
    run.log({"img": wandb.Image(pixels, caption="c"), "grey": wandb.Image(np.zeros((2, 5))),
             "h": wandb.Histogram([1, 2, 3, 4], num_bins=2),
             "h2": wandb.Histogram(np_histogram=(np.array([1, 2]), np.array([0.0, 1.0, 2.0]))),
             "t": wandb.Table(columns=["a", "b"], data=[[1, np.float64(2.5)], [2, None]])})
    t = wandb.Table(columns=["x"])
    t.add_data("y")
    run.log({"t2": t})
    run.finish()
    run_dir = run_dirs(env)[0]
    rows = history(run_dir)
    assert rows[0]["img._type"] == "image-file" and rows[0]["img.caption"] == "c"
    assert (rows[0]["img.width"], rows[0]["img.height"]) == (3, 4)
    assert rows[0]["h.values"] == [2, 2] and rows[0]["h.bins"] == [1, 2.5, 4]
    assert rows[0]["h2.values"] == [1, 2] and rows[0]["t._type"] == "table-file"
    assert rows[1]["t2.path"].startswith("media/table/t2_1_")
    for key in ("img", "grey", "t"):
        assert os.path.isfile(os.path.join(run_dir, "files", rows[0][f"{key}.path"]))
    with pytest.raises(ValueError, match="maximum length"):
        wandb.Histogram([1.0], num_bins=513)
    with pytest.raises(ValueError, match="not finite"):
        wandb.Histogram([1.0, float("nan")])
    with pytest.raises(ValueError, match="shape"):
        wandb.Image(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="does not exist"):
        wandb.Image("missing.png")


def test_image_from_file_must_be_png_or_jpeg(env):
    (env / "x.png").write_bytes(b"not a png")
    run = wandb.init(id="imgfile1")
    with pytest.raises(ValueError, match="not a PNG or JPEG"):
        run.log({"x": wandb.Image(str(env / "x.png"))})
    run.finish()


def test_disabled_mode_is_a_no_op(env):
    run = wandb.init(mode="disabled", config={"a": 1})
    run.log({"a": 1})
    run.config["b"] = 2
    run.summary["c"] = 3
    run.define_metric("a", summary="min")
    run.alert("t", "x")
    assert run.disabled and run_dirs(env) == []
    run.finish()
    assert not (env / "wandb").exists()


def test_context_manager_and_module_run(env):
    with pytest.raises(RuntimeError):
        with wandb.init(id="ctx00001") as run:
            assert wandb.run is run
            run.log({"a": 1})
            raise RuntimeError("boom")
    assert wandb.run is None
    assert exit_code(run_dirs(env)[0]) == 1
    with pytest.raises(wandb.Error, match="init"):
        wandb.log({"a": 1})


def test_errors_name_the_setting(env, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "sideways")
    with pytest.raises(wandb.Error, match="WANDB_MODE"):
        wandb.init()
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(ValueError, match="unknown setting"):
        wandb.init(settings={"no_such_setting": 1})
    run = wandb.init(id="finish01")
    run.finish()
    with pytest.raises(wandb.Error, match="already finished"):
        run.log({"a": 1})


def test_reinit_finishes_the_previous_run(env):
    first = wandb.init(id="reinit01")
    second = wandb.init(id="reinit02")
    assert wandb.run is second and first._native.finished
    second.finish()


@pytest.mark.parametrize("ending, code", [("raise ValueError('x')", 1), ("raise KeyboardInterrupt", 255), ("pass", 0)])
def test_process_exit_finishes_the_run(tmp_path, ending, code):
    out = run_script(f"import wandb_offline as wandb\nwandb.init(id='exit0000')\nwandb.log({{'a': 1}})\n{ending}\n", tmp_path)
    assert out.returncode == (1 if code else 0) or (code == 255 and out.returncode in (1, 130, -2)), out.stderr
    assert exit_code(run_dirs(tmp_path)[0]) == code
    assert len(history(run_dirs(tmp_path)[0])) == 1


def test_forked_child_never_writes_to_the_parent_run(tmp_path):
    code = """
import os, wandb_offline as wandb
run = wandb.init(id='fork0000')
run.log({'parent': 1})
pid = os.fork()
if pid == 0:
    run.log({'child': 1})
    run.finish()
    assert wandb.run is None
    os._exit(0)
_, status = os.waitpid(pid, 0)
assert status == 0, status
run.log({'parent': 2})
run.finish()
"""
    out = run_script(code, tmp_path)
    assert out.returncode == 0, out.stderr
    rows = history(run_dirs(tmp_path)[0])
    assert [r.get("parent") for r in rows] == [1, 2] and all("child" not in r for r in rows)
    assert exit_code(run_dirs(tmp_path)[0]) == 0


def test_log_releases_the_gil(env):
    import threading

    run = wandb.init(id="threads1")
    done = []

    def worker(n):
        for i in range(2000):
            run.log({f"w{n}": i}, commit=False)
        done.append(n)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(done) == [0, 1, 2, 3]
    run.finish()


def test_histograms_match_numpy(env):
    np = pytest.importorskip("numpy")
    data = [((i * 37) % 101) / 7.0 - 3.0 for i in range(1000)] + [1e-9, 2.5]
    for values in (data, np.array(data), np.array(data, dtype=np.float32), list(range(17)), [4.0]):
        for bins in (1, 7, 64, 512):
            ours = wandb.Histogram(values, num_bins=bins)
            counts, edges = np.histogram(values, bins=bins)
            assert ours.histogram == counts.tolist() and ours.bins == edges.tolist(), (bins, type(values))


def test_image_from_a_pil_image(env):
    pil = pytest.importorskip("PIL.Image")
    np = pytest.importorskip("numpy")
    img = pil.fromarray(np.full((3, 2, 3), 9, dtype=np.uint8))
    run = wandb.init(id="pilimage")
    run.log({"p": wandb.Image(img)})
    run.finish()
    (row,) = history(run_dirs(env)[0])
    assert (row["p.width"], row["p.height"]) == (2, 3)


def test_multiprocessing_children_never_write_to_the_parent_run(tmp_path):
    code = """
import multiprocessing as mp, wandb_offline as wandb
run = wandb.init(id='mproc000')
run.log({'parent': 1})
def work():
    run.log({'child': 1})
    run.summary['child'] = 1
if __name__ == '__main__':
    p = mp.get_context('fork').Process(target=work)
    p.start(); p.join(30)
    assert p.exitcode == 0, p.exitcode
    run.log({'parent': 2})
    run.finish()
"""
    out = run_script(code, tmp_path)
    assert out.returncode == 0, out.stderr
    rows = history(run_dirs(tmp_path)[0])
    assert [r.get("parent") for r in rows] == [1, 2] and all("child" not in r for r in rows)
    assert "belongs to the parent process" in out.stderr
