"""wandb_offline: W&B offline logging without a service process.

A script written for W&B's offline mode runs after ``import wandb_offline as wandb``: runs are
written in-process, by the Rust logger ``wandb-logger``, as the official SDK writes them
offline (``wandb/offline-run-<time>-<id>/run-<id>.wandb`` and ``files/``). Upload them later
with ``wandb sync`` or ``wandb-sync``.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # Only for annotations: importing typing's names costs start-up time.
    from typing import Any, Iterator, Optional, Sequence

from . import _native
from ._native import Error

__all__ = [
    "Error", "Run", "Config", "Summary", "Image", "Histogram", "Table",
    "init", "log", "finish", "teardown", "define_metric", "save", "alert",
    "run", "config", "summary",
]
__version__ = "0.1.0"

run: Optional["Run"] = None
"""The current run (``None`` before ``init`` and after ``finish``)."""

_lock = threading.RLock()
_open_runs: list = []


# ---------------------------------------------------------------------------------------------
# Media


class Histogram:
    """A histogram: ``Histogram(sequence, num_bins=64)`` computes NumPy's bins (as
    ``np.histogram``), ``Histogram(np_histogram=(values, bin_edges))`` takes precomputed ones.
    At most 512 bins."""

    MAX_LENGTH = 512

    def __init__(self, sequence: Optional[Sequence] = None, np_histogram: Optional[tuple] = None,
                 num_bins: int = 64) -> None:
        if np_histogram:
            if len(np_histogram) != 2:
                raise ValueError("Expected np_histogram to be a tuple of (values, bin_edges) "
                                 "or sequence to be specified")
            values, bins = np_histogram
            self.histogram = list(values.tolist() if hasattr(values, "tolist") else values)
            self.bins = list(bins.tolist() if hasattr(bins, "tolist") else bins)
        else:
            if sequence is None:
                raise ValueError("Histogram needs a sequence or np_histogram")
            arr = _narrow_float_array(sequence)
            if arr is not None:
                # NumPy bins float16/float32 data in that precision: let it, for the same edges.
                import numpy as np

                counts, edges = np.histogram(arr, bins=int(num_bins))
                self.histogram, self.bins = counts.tolist(), edges.tolist()
            else:
                counts, self.bins = _native.histogram(_flat_floats(sequence), int(num_bins))
                self.histogram = [int(c) for c in counts]
        if len(self.histogram) > self.MAX_LENGTH:
            raise ValueError(f"The maximum length of a histogram is {self.MAX_LENGTH}")
        if len(self.histogram) + 1 != len(self.bins):
            raise ValueError("len(bins) must be len(histogram) + 1")

    def to_json(self) -> dict:
        """The value logged: ``{"_type": "histogram", "values": [...], "bins": [...]}``."""
        return {"_type": "histogram", "values": self.histogram, "bins": self.bins}


def _narrow_float_array(sequence: Any) -> Any:
    """The data as a NumPy array if it is one of floats narrower than 64 bits, else None."""
    if not hasattr(sequence, "__array__") or isinstance(sequence, (list, tuple)):
        return None
    import numpy as np

    arr = np.asarray(sequence)
    return arr if arr.dtype.kind == "f" and arr.dtype.itemsize < 8 else None


def _flat_floats(sequence: Any) -> list:
    if hasattr(sequence, "__array__") and not isinstance(sequence, (list, tuple)):
        import numpy as np

        return np.asarray(sequence, dtype=np.float64).ravel().tolist()
    out = []
    for v in sequence:
        if isinstance(v, (list, tuple)):
            out.extend(_flat_floats(v))
        else:
            out.append(float(v.item() if hasattr(v, "item") else v))
    return out


class Image:
    """An image: a path to a PNG or JPEG file, or pixels (a NumPy array or any object with
    ``__array__``, ``(height, width)``, ``(height, width, 1|3|4)``, or a PyTorch-style
    ``(1|3|4, height, width)`` tensor), cast to 8 bits as the SDK does."""

    def __init__(self, data_or_path: Any, caption: Optional[str] = None, mode: Optional[str] = None) -> None:
        self._caption = None if caption is None else str(caption)
        self._path: Optional[str] = None
        if isinstance(data_or_path, Image):
            self.__dict__.update(data_or_path.__dict__)
            if caption is not None:
                self._caption = str(caption)
            return
        if isinstance(data_or_path, (str, os.PathLike)):
            self._path = os.fspath(data_or_path)
            if not os.path.isfile(self._path):
                raise ValueError(f"image file {self._path} does not exist")
            return
        try:
            import numpy as np
        except ImportError as e:  # pragma: no cover - numpy is needed for pixels, as in the SDK
            raise TypeError("wandb_offline.Image needs numpy for pixel data") from e
        if not (hasattr(data_or_path, "__array__") or hasattr(data_or_path, "__array_interface__")
                or isinstance(data_or_path, (list, tuple))):
            raise TypeError(f"cannot make an image of {type(data_or_path).__name__}")
        typename = type(data_or_path).__module__
        if hasattr(data_or_path, "detach"):
            data_or_path = data_or_path.detach()
        if hasattr(data_or_path, "cpu"):
            data_or_path = data_or_path.cpu()
        arr = np.asarray(data_or_path)
        if typename.startswith("torch") and arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[:, :, 0]
        if arr.ndim == 2:
            channels = 1
        elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
            channels = arr.shape[-1]
        else:
            raise ValueError(f"Un-supported shape for image conversion {list(arr.shape)}")
        if mode == "RGB" and channels == 4:
            arr, channels = arr[:, :, :3], 3
        arr = np.ascontiguousarray(arr.astype(np.uint8))
        self._pixels = (int(arr.shape[1]), int(arr.shape[0]), channels, arr.tobytes())

    def _bind(self, native: Any, key: str, step: int) -> dict:
        if self._path is not None:
            return native.image_file(key, step, self._path, self._caption)
        w, h, c, px = self._pixels
        return native.image_pixels(key, step, w, h, c, px, self._caption)


class Table:
    """A table: ``Table(columns=[...], data=[[...], ...])`` or ``Table(dataframe=df)``."""

    MAX_ROWS = 10000

    def __init__(self, columns: Optional[Sequence[str]] = None, data: Optional[Sequence] = None,
                 rows: Optional[Sequence] = None, dataframe: Any = None) -> None:
        if dataframe is not None:
            self.columns = [str(c) for c in dataframe.columns]
            self.data = [list(r) for r in dataframe.itertuples(index=False, name=None)]
            return
        self.columns = list(columns) if columns is not None else ["Input", "Output", "Expected"]
        source = data if data is not None else rows
        if source is None:
            self.data = []
        else:
            if hasattr(source, "tolist"):
                source = source.tolist()
            self.data = [list(r) for r in source]
        for i, r in enumerate(self.data):
            if len(r) != len(self.columns):
                raise ValueError(f"row {i} has {len(r)} cell(s), the table has {len(self.columns)} column(s)")

    def add_data(self, *data: Any) -> None:
        """Adds a row."""
        if len(data) != len(self.columns):
            raise ValueError(f"This table expects {len(self.columns)} columns: {self.columns}, "
                             f"found {len(data)}")
        self.data.append(list(data))

    def _bind(self, native: Any, key: str, step: int) -> dict:
        rows = [[_plain(v) for v in r] for r in self.data]
        return native.table(key, step, [str(c) for c in self.columns], rows)


def _image_list(native: Any, key: str, step: Optional[int], images: list) -> dict:
    """A list of images as the SDK logs it: each image's file, and one `images/separated`
    value naming them (at most 108 images, as the SDK keeps)."""
    if len(images) > 108:
        sys.stderr.write(f"wandb: WARNING Only 108 Image will be uploaded.\n")
        images = images[:108]
    step = native.step() if step is None else step
    jsons = [img._bind(native, key, step) for img in images]
    meta = {"_type": "images/separated", "width": jsons[0]["width"], "height": jsons[0]["height"],
            "format": jsons[0]["format"], "count": len(images),
            "filenames": [j["path"] for j in jsons]}
    if images[0]._caption is not None:
        meta["captions"] = [img._caption for img in images]
    return meta


def _plain(v: Any) -> Any:
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    if hasattr(v, "tolist"):
        return v.tolist()
    if hasattr(v, "item"):
        return v.item()
    return v


def _convert(owner: "Run", key: str, value: Any, step: Optional[int]) -> Any:
    """What the native side calls for values it does not know; returns a plain value."""
    if isinstance(value, Histogram):
        return value.to_json()
    if isinstance(value, (Image, Table)):
        native = owner._native
        return value._bind(native, key, native.step() if step is None else step)
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, Image) for v in value):
        return _image_list(owner._native, key, step, list(value))
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (set, frozenset)):
        raise TypeError(f"value of {key!r} is a set, which cannot be logged (use a list)")
    if hasattr(value, "__array__") or type(value).__module__.startswith(("numpy", "torch")):
        obj = value
        if hasattr(obj, "detach"):
            obj = obj.detach()
        if hasattr(obj, "cpu"):
            obj = obj.cpu()
        if hasattr(obj, "__array__"):
            import numpy as np

            arr = np.asarray(obj)
            if arr.ndim == 0:
                return arr.item()
            if arr.size > 32:
                return Histogram(arr, num_bins=32).to_json()
            return arr.tolist()
    if hasattr(value, "item") and callable(value.item):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        raise TypeError(f"value of {key!r} is bytes, which cannot be logged")
    return value


# ---------------------------------------------------------------------------------------------
# Config and summary


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, Mapping):
        return dict(obj)
    if type(obj).__name__ == "Namespace" and hasattr(obj, "_get_kwargs"):  # argparse.Namespace
        return dict(vars(obj))
    if hasattr(obj, "__dataclass_fields__") and not isinstance(obj, type):
        import dataclasses  # Imported when needed: it is slow to import.

        return dataclasses.asdict(obj)
    raise TypeError(f"config must be a dict, an argparse.Namespace or a dataclass, not {type(obj).__name__}")


class Config:
    """The run's config: a mapping with item and attribute access, ``update``, ``keys``,
    ``in``. Changes are recorded in the run."""

    def __init__(self, owner: Optional["Run"] = None, data: Optional[dict] = None) -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_data", dict(data or {}))

    def _push(self, update: dict) -> None:
        owner = self._owner
        if owner is not None and owner._live():
            owner._native.config_update(update)

    def update(self, d: Any = None, allow_val_change: bool = False, **kwargs: Any) -> None:
        """Updates several values (from a dict, an argparse.Namespace or a dataclass)."""
        update = _as_dict(d)
        update.update(kwargs)
        self._data.update(update)
        self._push(update)

    def setdefaults(self, d: Any) -> None:
        """Sets the values not already set."""
        self.update({k: v for k, v in _as_dict(d).items() if k not in self._data})

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        owner = self._owner
        if owner is not None and owner._live():
            owner._native.config_remove(key)

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(key) from None

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._data.get(key, default)

    def keys(self):
        """The keys."""
        return self._data.keys()

    def items(self):
        """The items."""
        return self._data.items()

    def values(self):
        """The values."""
        return self._data.values()

    def as_dict(self) -> dict:
        """A copy as a dict."""
        return dict(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return repr(self._data)


class Summary:
    """The run's summary: the latest value of each logged key, or what was set explicitly."""

    def __init__(self, owner: Optional["Run"] = None) -> None:
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_local", {})

    def _all(self) -> dict:
        owner = self._owner
        if owner is not None and owner._live() and not owner._native.disabled:
            return owner._native.summary()
        return dict(self._local)

    def update(self, d: Any = None, **kwargs: Any) -> None:
        """Sets several values."""
        update = _as_dict(d)
        update.update(kwargs)
        update = {k: _convert_plain(k, v) for k, v in update.items()}
        self._local.update(update)
        owner = self._owner
        if owner is not None and owner._live():
            owner._native.summary_update(update)

    def __setitem__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __setattr__(self, key: str, value: Any) -> None:
        self.update({key: value})

    def __getitem__(self, key: str) -> Any:
        return self._all()[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._all()[key]
        except KeyError:
            raise AttributeError(key) from None

    def __delitem__(self, key: str) -> None:
        self._local.pop(key, None)
        owner = self._owner
        if owner is not None and owner._live():
            owner._native.summary_remove(key)

    def get(self, key: str, default: Any = None) -> Any:
        """The value of ``key``, or ``default``."""
        return self._all().get(key, default)

    def keys(self):
        """The keys."""
        return self._all().keys()

    def items(self):
        """The items."""
        return self._all().items()

    def __contains__(self, key: object) -> bool:
        return key in self._all()

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


def _convert_plain(key: str, value: Any) -> Any:
    if isinstance(value, (int, float, str, bool)) or value is None:
        return value
    if isinstance(value, dict):
        return {k: _convert_plain(k, v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_convert_plain(key, v) for v in value]
    if isinstance(value, Histogram):
        return value.to_json()
    return _convert(None, key, value, None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------
# Runs


class Run:
    """A run: log rows, change its config and summary, save files, finish it. A context
    manager: leaving the ``with`` block finishes it (exit code 1 on an exception)."""

    def __init__(self, native: Any, config: Optional[dict]) -> None:
        self._native = native
        self._pid = os.getpid()
        self._forked = False
        self._forked_warned = False
        self.config = Config(self, config)
        self.summary = Summary(self)
        native.set_converter(_convert)

    def _live(self) -> bool:
        return os.getpid() == self._pid and not self._native.finished

    def _in_child(self) -> bool:
        if os.getpid() == self._pid:
            return False
        if not self._forked_warned:
            self._forked_warned = True
            sys.stderr.write("wandb: WARNING this run belongs to the parent process; "
                             "calls from a forked child are ignored\n")
        return True

    @property
    def id(self) -> str:
        """The run id."""
        return self._native.id

    @property
    def dir(self) -> Optional[str]:
        """The run's ``files`` folder, as the SDK's ``run.dir``."""
        d = self._native.dir
        return None if d is None else os.path.join(d, "files")

    @property
    def step(self) -> int:
        """The current step."""
        return self._native.step()

    @property
    def disabled(self) -> bool:
        """Whether the run is disabled (every call a no-op)."""
        return self._native.disabled

    def log(self, data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None) -> None:
        """Logs a row: at the current step, then the step advances (unless ``commit=False``);
        with ``step=``, at that step, committed when a later call moves past it."""
        if self._forked:
            self._in_child()
            return
        if step is None and commit is None and type(data) is dict:
            self._native.log(data, None, None, self)
            return
        if not isinstance(data, dict):
            if not isinstance(data, Mapping):
                raise TypeError("wandb.log must be passed a dictionary")
            data = dict(data)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int)):
            if hasattr(step, "item"):
                step = step.item()
            else:
                raise TypeError(f"step must be an int, not {type(step).__name__}")
        if step is not None and step < 0:
            raise ValueError(f"step must be non-negative, not {step}")
        self._native.log(data, step, commit, self)

    def define_metric(self, name: str, step_metric: Optional[str] = None, step_sync: Optional[bool] = None,
                      hidden: Optional[bool] = None, summary: Optional[str] = None,
                      goal: Optional[str] = None, overwrite: Optional[bool] = None) -> None:
        """Defines a metric: its x-axis (``step_metric``), summary (``"min"``, ``"max"``,
        ``"mean"``, ``"last"``, ``"first"``, ``"none"``, comma-separated), goal
        (``"minimize"``/``"maximize"``) and visibility."""
        if self._in_child():
            return
        self._native.define_metric(name, step_metric, summary, goal, hidden, step_sync)

    def save(self, glob_str: str, base_path: Optional[str] = None, policy: str = "live") -> list:
        """Saves files matching ``glob_str`` with the run (``policy``: ``"live"``, ``"now"``,
        ``"end"``); returns the paths of the copies."""
        if self._in_child():
            return []
        if policy not in ("live", "now", "end"):
            raise ValueError('Only "live", "end" and "now" policies are currently supported.')
        glob_str = os.fspath(glob_str)
        import glob

        paths = sorted(p for p in glob.glob(glob_str, recursive=True) if os.path.isfile(p))
        if base_path is None and not os.path.isabs(glob_str):
            base_path = "."
        return [self._native.save(p, base_path, policy) if base_path is not None
                else self._native.save(p, None, policy) for p in paths]

    def alert(self, title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
        """Records an alert (``level``: ``"INFO"``, ``"WARN"``, ``"ERROR"``)."""
        if self._in_child():
            return
        level = "INFO" if level is None else getattr(level, "value", level)
        if hasattr(wait_duration, "total_seconds"):
            wait_duration = wait_duration.total_seconds()
        self._native.alert(str(title), str(text), str(level), None if wait_duration is None else float(wait_duration))

    def finish(self, exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
        """Finishes the run (exit code 0 unless given)."""
        global run, config, summary
        if self._in_child():
            return
        self._native.finish(int(exit_code or 0))
        with _lock:
            if self in _open_runs:
                _open_runs.remove(self)
            if run is self:
                run = None
                config = Config()
                summary = Summary()

    def __enter__(self) -> "Run":
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            code = 0
        elif issubclass(exc_type, KeyboardInterrupt):
            code = 255
        else:
            code = 1
        self.finish(exit_code=code)
        return False

    def __repr__(self) -> str:
        return f"<wandb_offline.Run {self.id}>"


config: Config = Config()
"""The current run's config."""
summary: Summary = Summary()
"""The current run's summary."""


def init(project: Optional[str] = None, entity: Optional[str] = None, name: Optional[str] = None,
         config: Any = None, tags: Optional[Sequence[str]] = None, notes: Optional[str] = None,
         group: Optional[str] = None, job_type: Optional[str] = None, dir: Any = None,
         id: Optional[str] = None, mode: Optional[str] = None, settings: Any = None,
         reinit: Any = None, resume: Any = None, **kwargs: Any) -> Run:
    """Starts a run (W&B's ``wandb.init``); settings and ``WANDB_*`` variables as the SDK
    reads them. A run still open is finished first unless ``reinit="create_new"``."""
    global run
    _install_hooks()
    if reinit not in (None, False, True, "default", "return_previous", "finish_previous", "create_new"):
        raise ValueError(f"invalid reinit {reinit!r}")
    with _lock:
        if run is not None and run._live():
            if reinit == "return_previous":
                return run
            if reinit != "create_new":
                run.finish()
    cfg = _as_dict(config)
    if settings is not None and not isinstance(settings, Mapping):
        settings = {k: v for k, v in vars(settings).items() if v is not None and not k.startswith("_")}
    if resume is True:
        resume = "auto"
    elif resume is False:
        resume = None
    native = _native.init(
        project=project, entity=entity, name=name, notes=notes,
        tags=None if tags is None else [str(t) for t in tags],
        group=group, job_type=job_type, dir=None if dir is None else os.fspath(dir),
        id=id, mode=mode, resume=resume, config=_convert_plain("config", cfg),
        settings=None if settings is None else dict(settings),
    )
    new = Run(native, cfg)
    with _lock:
        _open_runs.append(new)
        if reinit != "create_new" or run is None:
            _set_current(new)
    return new


def _set_current(new: Run) -> None:
    global run, config, summary
    run, config, summary = new, new.config, new.summary


def teardown(exit_code: Optional[int] = None) -> None:
    """Finishes every open run and forgets the process setup (settings and environment are
    read again by the next ``init``), as the SDK's ``wandb.teardown``."""
    _finish_all(int(exit_code or 0))
    _native.teardown()


def _current() -> Run:
    if run is None:
        raise Error("You must call wandb_offline.init() before this call")
    return run


def log(data: Mapping[str, Any], step: Optional[int] = None, commit: Optional[bool] = None) -> None:
    """``run.log`` of the current run."""
    _current().log(data, step=step, commit=commit)


def finish(exit_code: Optional[int] = None, quiet: Optional[bool] = None) -> None:
    """Finishes the current run, if any."""
    if run is not None:
        run.finish(exit_code=exit_code)


def define_metric(name: str, **kwargs: Any) -> None:
    """``run.define_metric`` of the current run."""
    _current().define_metric(name, **kwargs)


def save(glob_str: str, base_path: Optional[str] = None, policy: str = "live") -> list:
    """``run.save`` of the current run."""
    return _current().save(glob_str, base_path=base_path, policy=policy)


def alert(title: str, text: str, level: Any = None, wait_duration: Any = None) -> None:
    """``run.alert`` of the current run."""
    _current().alert(title, text, level=level, wait_duration=wait_duration)


# ---------------------------------------------------------------------------------------------
# Process behaviour

_hooks_installed = False
_exit_code = 0


def _excepthook(exc_type: Any, exc: Any, tb: Any) -> None:
    global _exit_code
    _exit_code = 255 if issubclass(exc_type, KeyboardInterrupt) else 1
    try:
        _finish_all(_exit_code)
    finally:
        _previous_excepthook(exc_type, exc, tb)


_previous_excepthook = sys.excepthook


def _finish_all(code: int) -> None:
    for r in list(_open_runs):
        if os.getpid() == r._pid:
            try:
                r.finish(exit_code=code)
            except Exception as e:  # noqa: BLE001 - reported, the interpreter is exiting
                sys.stderr.write(f"wandb: ERROR finishing run {r.id}: {e}\n")


def _atexit() -> None:
    _finish_all(_exit_code)


def _after_fork_in_child() -> None:
    # The parent's runs stay the parent's: the child never writes to or finishes them.
    global run, config, summary
    for r in _open_runs:
        r._forked = True
    _open_runs.clear()
    run, config, summary = None, Config(), Summary()


def _install_hooks() -> None:
    global _hooks_installed, _previous_excepthook
    if _hooks_installed:
        return
    _hooks_installed = True
    _previous_excepthook = sys.excepthook
    sys.excepthook = _excepthook
    atexit.register(_atexit)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
