//! `wandb_offline._native`: the Python face of `wandb-logger`.
//!
//! The pure-Python package `wandb_offline` wraps this module. Rows are converted here, from
//! the Python objects to the logger's values, without going through JSON text: floats, ints,
//! booleans, strings, `None`, dicts, lists and tuples directly; any other object is handed to
//! the Python converter the package registers (NumPy values, `__array__` objects, media), whose
//! result is converted again. `log` releases the GIL while the row is queued, so a full queue
//! never holds up the interpreter's other threads.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use pyo3::exceptions::{PyException, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyInt, PyList, PyString, PyTuple};
use wandb_logger::json;
use wandb_logger::media::{Channels, Histogram, Image, Table};
use wandb_logger::{
    Alert, AlertLevel, Goal, InitOptions, Key, LogOptions, Metric, Overrides, Row, Run, SavePolicy,
    SummaryStat, Value,
};

pyo3::create_exception!(
    _native,
    Error,
    PyException,
    "An error of the logger: a setting, a file of the run, or a finished run."
);

/// Nesting deeper than this is refused (a cycle or a value no one means to log).
const MAX_DEPTH: usize = 64;

fn py_err(error: wandb_logger::Error) -> PyErr {
    match error {
        wandb_logger::Error::InvalidArgument { .. } | wandb_logger::Error::NotAnObject { .. } => {
            PyValueError::new_err(error.to_string())
        }
        other => Error::new_err(other.to_string()),
    }
}

/// Conversion of Python values, with the converter for everything else.
struct Converter<'a, 'py> {
    fallback: Option<&'a Bound<'py, PyAny>>,
    run: &'a Bound<'py, PyAny>,
    step: Option<u64>,
}

impl<'py> Converter<'_, 'py> {
    /// A top-level value of a row.
    fn value(&self, key: &str, obj: &Bound<'py, PyAny>) -> PyResult<Value> {
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(Value::Float(f.value()));
        }
        if obj.is_instance_of::<PyBool>() {
            return Ok(Value::Bool(obj.is_truthy()?));
        }
        if obj.is_instance_of::<PyInt>() {
            return Ok(match obj.extract::<i64>() {
                Ok(i) => Value::Int(i),
                Err(_) => Value::from(self.json(key, obj, 0)?),
            });
        }
        Ok(Value::from(self.json(key, obj, 0)?))
    }

    /// Any value as JSON.
    fn json(&self, key: &str, obj: &Bound<'py, PyAny>, depth: usize) -> PyResult<json::Value> {
        if depth > MAX_DEPTH {
            return Err(PyValueError::new_err(format!(
                "value of {key:?} is nested more than {MAX_DEPTH} levels deep (a cycle?)"
            )));
        }
        if let Ok(f) = obj.cast::<PyFloat>() {
            return Ok(json::Value::Float(f.value()));
        }
        if obj.is_instance_of::<PyBool>() {
            return Ok(json::Value::Bool(obj.is_truthy()?));
        }
        if obj.is_instance_of::<PyInt>() {
            if let Ok(i) = obj.extract::<i64>() {
                return Ok(json::Value::Int(i));
            }
            if let Ok(u) = obj.extract::<u64>() {
                return Ok(json::Value::UInt(u));
            }
            return Ok(json::Value::Float(obj.extract::<f64>()?));
        }
        if let Ok(s) = obj.cast::<PyString>() {
            return Ok(json::Value::String(s.to_cow()?.into_owned()));
        }
        if obj.is_none() {
            return Ok(json::Value::Null);
        }
        if let Ok(dict) = obj.cast::<PyDict>() {
            let mut map = json::Map::with_capacity(dict.len());
            for (k, v) in dict.iter() {
                let name = dict_key(&k)?;
                let value = self.json(&name, &v, depth + 1)?;
                map.insert(name, value);
            }
            return Ok(json::Value::Object(map));
        }
        if let Ok(list) = obj.cast::<PyList>() {
            if let Some(converted) = self.sequence_fallback(key, obj, list.len())? {
                return self.json(key, &converted, depth + 1);
            }
            return list
                .iter()
                .map(|v| self.json(key, &v, depth + 1))
                .collect::<PyResult<Vec<_>>>()
                .map(json::Value::Array);
        }
        if let Ok(tuple) = obj.cast::<PyTuple>() {
            if let Some(converted) = self.sequence_fallback(key, obj, tuple.len())? {
                return self.json(key, &converted, depth + 1);
            }
            return tuple
                .iter()
                .map(|v| self.json(key, &v, depth + 1))
                .collect::<PyResult<Vec<_>>>()
                .map(json::Value::Array);
        }
        let Some(fallback) = self.fallback else {
            return Err(unsupported(key, obj));
        };
        let converted = fallback.call1((self.run, key, obj, self.step))?;
        if converted.is(obj) {
            return Err(unsupported(key, obj));
        }
        self.json(key, &converted, depth + 1)
    }
}

impl<'py> Converter<'_, 'py> {
    /// A list or tuple whose first item is not a plain value goes to the converter whole
    /// first (a list of images is one value in W&B); `None` when it hands the list back.
    fn sequence_fallback(
        &self,
        key: &str,
        obj: &Bound<'py, PyAny>,
        len: usize,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        let Some(fallback) = self.fallback else {
            return Ok(None);
        };
        if len == 0 {
            return Ok(None);
        }
        let first = obj.get_item(0)?;
        let plain = first.is_instance_of::<PyFloat>()
            || first.is_instance_of::<PyInt>()
            || first.is_instance_of::<PyString>()
            || first.is_none()
            || first.is_instance_of::<PyDict>()
            || first.is_instance_of::<PyList>()
            || first.is_instance_of::<PyTuple>();
        if plain {
            return Ok(None);
        }
        let converted = fallback.call1((self.run, key, obj, self.step))?;
        Ok((!converted.is(obj)).then_some(converted))
    }
}

fn unsupported(key: &str, obj: &Bound<'_, PyAny>) -> PyErr {
    let type_name = obj
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".to_owned());
    PyTypeError::new_err(format!(
        "value of {key:?} has type {type_name}, which cannot be logged (use numbers, strings, \
         booleans, None, dicts, lists, NumPy values, objects with __array__ or .item(), or \
         wandb_offline media)"
    ))
}

fn dict_key(k: &Bound<'_, PyAny>) -> PyResult<String> {
    match k.cast::<PyString>() {
        Ok(s) => Ok(s.to_cow()?.into_owned()),
        Err(_) => Err(PyTypeError::new_err(format!(
            "keys must be strings, found {}",
            k.repr().map(|r| r.to_string()).unwrap_or_default()
        ))),
    }
}

/// JSON to Python.
fn to_py<'py>(py: Python<'py>, value: &json::Value) -> PyResult<Bound<'py, PyAny>> {
    Ok(match value {
        json::Value::Null => py.None().into_bound(py),
        json::Value::Bool(b) => PyBool::new(py, *b).to_owned().into_any(),
        json::Value::Int(i) => i.into_pyobject(py)?.into_any(),
        json::Value::UInt(u) => u.into_pyobject(py)?.into_any(),
        json::Value::Float(f) => PyFloat::new(py, *f).into_any(),
        json::Value::String(s) => PyString::new(py, s).into_any(),
        json::Value::Array(items) => {
            let list = PyList::empty(py);
            for item in items {
                list.append(to_py(py, item)?)?;
            }
            list.into_any()
        }
        json::Value::Object(map) => {
            let dict = PyDict::new(py);
            for (k, v) in map.iter() {
                dict.set_item(k, to_py(py, v)?)?;
            }
            dict.into_any()
        }
    })
}

/// A run of the logger.
#[pyclass(module = "wandb_offline._native", frozen)]
struct NativeRun {
    run: Mutex<Option<Arc<Run>>>,
    id: String,
    dir: Option<String>,
    disabled: bool,
    /// The Python converter for values this module does not know.
    fallback: OnceLock<Py<PyAny>>,
    /// Keys made from Python strings seen before, by object identity (the strings are kept
    /// alive here, so an address is never reused while cached): rows usually repeat the keys
    /// of their dict literal, and a key is then one lookup instead of an allocation.
    keys: Mutex<HashMap<usize, (Py<PyString>, Key)>>,
}

/// Most keys cached per run.
const KEY_CACHE: usize = 4096;

impl NativeRun {
    fn handle(&self) -> PyResult<Arc<Run>> {
        self.run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| Error::new_err(format!("run {} is already finished", self.id)))
    }

    /// The key for a Python string, from the cache when it was seen before. No Python code
    /// runs while the cache is locked (it could switch to another thread that then waits for
    /// the lock while holding the GIL).
    fn key(&self, k: &Bound<'_, PyAny>) -> PyResult<Key> {
        let addr = k.as_ptr() as usize;
        if let Some((_, key)) = self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&addr)
        {
            return Ok(key.clone());
        }
        let Ok(s) = k.cast::<PyString>() else {
            return Err(dict_key(k)
                .err()
                .unwrap_or_else(|| PyTypeError::new_err("keys must be strings")));
        };
        let key = Key::new(s.to_cow()?);
        let mut cache = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() < KEY_CACHE {
            cache.insert(addr, (s.clone().unbind(), key.clone()));
        }
        Ok(key)
    }
}

#[pymethods]
impl NativeRun {
    /// The run id.
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// The run folder (`None` when disabled).
    #[getter]
    fn dir(&self) -> Option<&str> {
        self.dir.as_deref()
    }

    /// Whether the run is disabled.
    #[getter]
    fn disabled(&self) -> bool {
        self.disabled
    }

    /// Whether the run is finished.
    #[getter]
    fn finished(&self) -> bool {
        self.run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Sets the converter called as `converter(run, key, value, step)` for other values.
    fn set_converter(&self, converter: Py<PyAny>) {
        let _ = self.fallback.set(converter);
    }

    /// Logs a row (W&B's `run.log(data, step=None, commit=None)`).
    #[pyo3(signature = (data, step=None, commit=None, owner=None))]
    fn log(
        slf: &Bound<'_, Self>,
        data: &Bound<'_, PyDict>,
        step: Option<u64>,
        commit: Option<bool>,
        owner: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let this = slf.get();
        let run = this.handle()?;
        let py = slf.py();
        let fallback = this.fallback.get().map(|f| f.bind(py));
        let owner = owner.cloned().unwrap_or_else(|| slf.clone().into_any());
        let converter = Converter {
            fallback,
            run: &owner,
            step,
        };
        let mut row = Row::with_capacity(data.len());
        for (k, v) in data.iter() {
            let key = this.key(&k)?;
            let value = converter.value(key.as_str(), &v)?;
            row.push(key, value);
        }
        let mut options = LogOptions::new();
        if let Some(step) = step {
            options = options.step(step);
        }
        if let Some(commit) = commit {
            options = options.commit(commit);
        }
        py.detach(|| run.log_with(row, options)).map_err(py_err)
    }

    /// The current step.
    fn step(&self, py: Python<'_>) -> PyResult<u64> {
        let run = self.handle()?;
        py.detach(|| run.step()).map_err(py_err)
    }

    /// Updates the config.
    fn config_update(&self, data: &Bound<'_, PyDict>) -> PyResult<()> {
        let map = plain_map(data)?;
        self.handle()?.config_update(&map).map_err(py_err)
    }

    /// Removes a config key.
    fn config_remove(&self, key: &str) -> PyResult<()> {
        self.handle()?.config_remove(key).map_err(py_err)
    }

    /// Sets summary values.
    fn summary_update(&self, data: &Bound<'_, PyDict>) -> PyResult<()> {
        let map = plain_map(data)?;
        self.handle()?.summary_update(&map).map_err(py_err)
    }

    /// Removes a summary key.
    fn summary_remove(&self, key: &str) -> PyResult<()> {
        self.handle()?.summary_remove(key).map_err(py_err)
    }

    /// The whole summary as a dict.
    fn summary<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let run = self.handle()?;
        let map = py.detach(|| run.summary()).map_err(py_err)?;
        to_py(py, &json::Value::Object(map))
    }

    /// Defines a metric.
    #[pyo3(signature = (name, step_metric=None, summary=None, goal=None, hidden=None, step_sync=None))]
    fn define_metric(
        &self,
        name: &str,
        step_metric: Option<&str>,
        summary: Option<&str>,
        goal: Option<&str>,
        hidden: Option<bool>,
        step_sync: Option<bool>,
    ) -> PyResult<()> {
        let mut metric = Metric::new(name);
        if let Some(step_metric) = step_metric {
            metric = metric.step_metric(step_metric);
        }
        for stat in summary.into_iter().flat_map(|s| s.split(',')) {
            let stat = match stat.trim() {
                "min" => SummaryStat::Min,
                "max" => SummaryStat::Max,
                "mean" => SummaryStat::Mean,
                "last" => SummaryStat::Last,
                "first" => SummaryStat::First,
                "none" => SummaryStat::None,
                "" => continue,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "invalid summary {other:?}: use min, max, mean, last, first or none"
                    )));
                }
            };
            metric = metric.summary(stat);
        }
        if let Some(goal) = goal {
            metric = metric.goal(match goal {
                "minimize" | "min" => Goal::Minimize,
                "maximize" | "max" => Goal::Maximize,
                other => {
                    return Err(PyValueError::new_err(format!(
                        "invalid goal {other:?}: use minimize or maximize"
                    )));
                }
            });
        }
        if let Some(hidden) = hidden {
            metric = metric.hidden(hidden);
        }
        if let Some(step_sync) = step_sync {
            metric = metric.step_sync(step_sync);
        }
        self.handle()?.define_metric(metric).map_err(py_err)
    }

    /// Saves a file with the run; returns the copy's path.
    #[pyo3(signature = (path, base=None, policy="live"))]
    fn save(
        &self,
        py: Python<'_>,
        path: &str,
        base: Option<&str>,
        policy: &str,
    ) -> PyResult<String> {
        let policy = match policy {
            "live" => SavePolicy::Live,
            "now" => SavePolicy::Now,
            "end" => SavePolicy::End,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid policy {other:?}: use live, now or end"
                )));
            }
        };
        let run = self.handle()?;
        let saved = py
            .detach(|| match base {
                Some(base) => run.save_relative(path, base, policy),
                None => run.save(path, policy),
            })
            .map_err(py_err)?;
        Ok(saved.to_string_lossy().into_owned())
    }

    /// Records an alert.
    #[pyo3(signature = (title, text, level="INFO", wait_seconds=None))]
    fn alert(
        &self,
        title: &str,
        text: &str,
        level: &str,
        wait_seconds: Option<f64>,
    ) -> PyResult<()> {
        let level = match level.to_ascii_uppercase().as_str() {
            "INFO" => AlertLevel::Info,
            "WARN" | "WARNING" => AlertLevel::Warn,
            "ERROR" => AlertLevel::Error,
            other => {
                return Err(PyValueError::new_err(format!(
                    "invalid alert level {other:?}: use INFO, WARN or ERROR"
                )));
            }
        };
        let mut alert = Alert::new(title, text).level(level);
        if let Some(wait) = wait_seconds.filter(|w| w.is_finite() && *w >= 0.0) {
            alert = alert.wait_duration(std::time::Duration::from_secs_f64(wait));
        }
        self.handle()?.alert(alert).map_err(py_err)
    }

    /// Waits until everything logged is handed to the operating system.
    fn flush(&self, py: Python<'_>) -> PyResult<()> {
        let run = self.handle()?;
        py.detach(|| run.flush()).map_err(py_err)
    }

    /// Finishes the run; a second call does nothing. Returns the number of rows written.
    #[pyo3(signature = (exit_code=0))]
    fn finish(&self, py: Python<'_>, exit_code: i32) -> PyResult<u64> {
        let Some(mut run) = self
            .run
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return Ok(0);
        };
        // Another thread may be inside a call with its own handle: wait for it to return.
        let run = loop {
            match Arc::try_unwrap(run) {
                Ok(run) => break run,
                Err(shared) => {
                    run = shared;
                    py.detach(|| std::thread::sleep(std::time::Duration::from_millis(1)));
                }
            }
        };
        let summary = py
            .detach(|| run.finish_with_code(exit_code))
            .map_err(|e| py_err(e.error))?;
        Ok(summary.rows)
    }

    /// An image from 8-bit pixels, stored for `key` at `step`; returns the value to log.
    #[pyo3(signature = (key, step, width, height, channels, pixels, caption=None))]
    #[allow(clippy::too_many_arguments)] // The image's fields, as the Python side has them.
    fn image_pixels<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        step: u64,
        width: u32,
        height: u32,
        channels: usize,
        pixels: &[u8],
        caption: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let channels = match channels {
            1 => Channels::Grey,
            3 => Channels::Rgb,
            4 => Channels::Rgba,
            other => {
                return Err(PyValueError::new_err(format!(
                    "images have 1, 3 or 4 channels, not {other}"
                )));
            }
        };
        let mut image = py
            .detach(|| Image::from_pixels(width, height, channels, pixels))
            .map_err(py_err)?;
        if let Some(caption) = caption {
            image = image.with_caption(caption);
        }
        let value = self.handle()?.media_at(key, step, &image).map_err(py_err)?;
        to_py(py, &value.to_json())
    }

    /// An image from a PNG or JPEG file, stored for `key` at `step`; returns the value to log.
    #[pyo3(signature = (key, step, path, caption=None))]
    fn image_file<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        step: u64,
        path: &str,
        caption: Option<String>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut image = Image::from_file(path).map_err(py_err)?;
        if let Some(caption) = caption {
            image = image.with_caption(caption);
        }
        let value = self.handle()?.media_at(key, step, &image).map_err(py_err)?;
        to_py(py, &value.to_json())
    }

    /// A table, stored for `key` at `step`; returns the value to log.
    fn table<'py>(
        &self,
        py: Python<'py>,
        key: &str,
        step: u64,
        columns: Vec<String>,
        rows: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let converter = Converter {
            fallback: None,
            run: rows,
            step: Some(step),
        };
        let mut table = Table::new(columns);
        for row in rows.try_iter()? {
            let row = row?;
            let cells = row
                .try_iter()?
                .map(|cell| converter.json(key, &cell?, 1))
                .collect::<PyResult<Vec<_>>>()?;
            table.add_row(cells).map_err(py_err)?;
        }
        let value = self.handle()?.media_at(key, step, &table).map_err(py_err)?;
        to_py(py, &value.to_json())
    }
}

/// A dict of plain values (config, summary) as JSON.
fn plain_map(data: &Bound<'_, PyDict>) -> PyResult<json::Map> {
    let converter = Converter {
        fallback: None,
        run: data.as_any(),
        step: None,
    };
    converter
        .json("config", data.as_any(), 0)?
        .into_object()
        .map_err(|_| PyTypeError::new_err("expected a dict"))
}

/// Starts a run (`wandb_offline.init` does the Python side).
#[pyfunction]
#[pyo3(signature = (project=None, entity=None, name=None, notes=None, tags=None, group=None,
    job_type=None, dir=None, id=None, mode=None, resume=None, config=None, settings=None))]
#[allow(clippy::too_many_arguments)] // W&B's init arguments.
fn init(
    py: Python<'_>,
    project: Option<String>,
    entity: Option<String>,
    name: Option<String>,
    notes: Option<String>,
    tags: Option<Vec<String>>,
    group: Option<String>,
    job_type: Option<String>,
    dir: Option<String>,
    id: Option<String>,
    mode: Option<String>,
    resume: Option<String>,
    config: Option<&Bound<'_, PyDict>>,
    settings: Option<&Bound<'_, PyDict>>,
) -> PyResult<NativeRun> {
    let mut options = InitOptions::new();
    macro_rules! set {
        ($($field:ident),*) => { $(if let Some(v) = $field { options = options.$field(v); })* };
    }
    set!(
        project, entity, name, notes, group, job_type, dir, id, mode, resume
    );
    if let Some(tags) = tags {
        options = options.tags(tags);
    }
    if let Some(config) = config {
        options = options.config(&plain_map(config)?);
    }
    if let Some(settings) = settings {
        let mut overrides = Overrides::default();
        for (k, v) in settings.iter() {
            let name = dict_key(&k)?;
            let key = wandb_settings::Key::from_name(&name)
                .ok_or_else(|| PyValueError::new_err(format!("unknown setting {name:?}")))?;
            let text = match v.cast::<PyString>() {
                Ok(s) => s.to_cow()?.into_owned(),
                Err(_) if v.is_instance_of::<PyBool>() => {
                    if v.is_truthy()? { "true" } else { "false" }.to_owned()
                }
                Err(_) => v.str()?.to_cow()?.into_owned(),
            };
            overrides.set(key, &text);
        }
        options = options.settings(overrides);
    }
    let run = py.detach(|| wandb_logger::init(options)).map_err(py_err)?;
    Ok(NativeRun {
        id: run.id().to_owned(),
        dir: run.dir().map(|d| d.to_string_lossy().into_owned()),
        disabled: run.is_disabled(),
        run: Mutex::new(Some(Arc::new(run))),
        fallback: OnceLock::new(),
        keys: Mutex::new(HashMap::new()),
    })
}

/// NumPy's `np.histogram(values, bins=num_bins)`: `(counts, edges)`.
#[pyfunction]
fn histogram(values: Vec<f64>, num_bins: usize) -> PyResult<(Vec<f64>, Vec<f64>)> {
    let h = Histogram::from_values(&values, num_bins).map_err(py_err)?;
    Ok((h.values().to_vec(), h.bins().to_vec()))
}

/// Finishes every run of this process (for `atexit`).
#[pyfunction]
fn teardown(py: Python<'_>) -> PyResult<()> {
    py.detach(wandb_logger::teardown)
        .map(|_| ())
        .map_err(|e| py_err(e.error))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<NativeRun>()?;
    m.add_function(wrap_pyfunction!(init, m)?)?;
    m.add_function(wrap_pyfunction!(histogram, m)?)?;
    m.add_function(wrap_pyfunction!(teardown, m)?)?;
    m.add("Error", m.py().get_type::<Error>())?;
    Ok(())
}
