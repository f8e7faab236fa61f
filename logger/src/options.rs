//! Options for `setup`, `init` and the run's writer, and the small argument types of the run API
//! (metric definitions, alerts, save policies, log options).

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;
use wandb_format::json;
use wandb_format::proto;
use wandb_settings::{LoadContext, Overrides};

use crate::error::{Error, Result};
use crate::value::json_kind;

/// Default capacity of a run's queue, in commands (one `log` call is one command).
///
/// A full queue is what a run holds in memory beyond its fixed buffers (a queued row of 10
/// floats takes ~650 bytes, so ~1.3 MiB here), and a long run fills it whenever the writer
/// waits on the disk: the capacity is what keeps peak memory flat in rows. 2,048 rows are
/// still a few milliseconds of logging at full speed, more than a time slice of the writer.
pub const DEFAULT_QUEUE_CAPACITY: usize = 2_048;

/// Default longest time logged data waits in the writer before it is handed to the operating
/// system (after which it survives a crash of the process).
pub const DEFAULT_FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Default interval between `fdatasync`s of a running run's file (after which data survives a
/// power loss). The file is always synced when the run finishes.
pub const DEFAULT_FSYNC_INTERVAL: Duration = Duration::from_secs(30);

/// Environment variable that turns the SIGTERM handler off (`false`, `0`, `no`, `off`) or on.
pub const WANDB_X_HANDLE_SIGTERM: &str = "WANDB_X_HANDLE_SIGTERM";

/// What `log` does when the run's queue is full (the writer is behind, for example because the
/// disk is slow).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Backpressure {
    /// Wait until there is room (the default): nothing logged is ever dropped. A full queue
    /// makes `log` sleep until the writer has emptied half of it, rather than wait for one
    /// free slot at a time.
    #[default]
    Block,
    /// Wait at most this long, then drop the row and count it ([`crate::Run::dropped`]).
    BlockFor(Duration),
    /// Drop the row at once and count it.
    Drop,
}

/// How a run's writer thread queues, flushes and syncs.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WriterOptions {
    /// Capacity of the queue between the training thread and the writer, in commands.
    pub queue_capacity: usize,
    /// What `log` does when the queue is full. Only history rows are ever dropped; config,
    /// summary, files and console records always wait.
    pub backpressure: Backpressure,
    /// Longest time data waits before it is handed to the operating system (and the coalesced
    /// summary is written).
    pub flush_interval: Duration,
    /// Interval between `fdatasync`s while the run is live; `None` syncs only on `sync()` and at
    /// finish.
    pub fsync_interval: Option<Duration>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            backpressure: Backpressure::Block,
            flush_interval: DEFAULT_FLUSH_INTERVAL,
            fsync_interval: Some(DEFAULT_FSYNC_INTERVAL),
        }
    }
}

impl WriterOptions {
    /// Returns the options with another queue capacity (at least 1).
    #[must_use]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        self.queue_capacity = capacity.max(1);
        self
    }

    /// Returns the options with another backpressure policy.
    #[must_use]
    pub fn backpressure(mut self, backpressure: Backpressure) -> Self {
        self.backpressure = backpressure;
        self
    }

    /// Returns the options with another flush interval.
    #[must_use]
    pub fn flush_interval(mut self, interval: Duration) -> Self {
        self.flush_interval = interval;
        self
    }

    /// Returns the options with another fsync interval (`None`: only on `sync()` and finish).
    #[must_use]
    pub fn fsync_interval(mut self, interval: Option<Duration>) -> Self {
        self.fsync_interval = interval;
        self
    }
}

/// Options for [`crate::setup_with`] and [`crate::Setup::new`].
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct SetupOptions {
    /// Settings given to `setup` (above the environment, below `init`).
    pub settings: Overrides,
    /// Where settings are loaded from; `None` uses this process (its environment, working
    /// directory and home). Tests pass their own to avoid touching the process environment.
    pub context: Option<LoadContext>,
    /// Replaces the system settings file location.
    pub settings_system: Option<PathBuf>,
    /// Whether SIGTERM writes a preempting record and flushes every run before the previous
    /// disposition takes over; `None` reads [`WANDB_X_HANDLE_SIGTERM`] (default on).
    pub handle_sigterm: Option<bool>,
}

impl SetupOptions {
    /// Returns the options with `setup` settings.
    #[must_use]
    pub fn settings(mut self, settings: Overrides) -> Self {
        self.settings = settings;
        self
    }

    /// Returns the options with a load context (environment, working directory, home).
    #[must_use]
    pub fn context(mut self, context: LoadContext) -> Self {
        self.context = Some(context);
        self
    }

    /// Returns the options with another system settings file.
    #[must_use]
    pub fn settings_system(mut self, path: impl Into<PathBuf>) -> Self {
        self.settings_system = Some(path.into());
        self
    }

    /// Returns the options with the SIGTERM handler turned on or off.
    #[must_use]
    pub fn handle_sigterm(mut self, on: bool) -> Self {
        self.handle_sigterm = Some(on);
        self
    }
}

/// Arguments of [`crate::init`]: explicit settings (highest precedence), `init` settings, the
/// initial config and writer options.
///
/// ```
/// use wandb_logger::InitOptions;
/// let options = InitOptions::new()
///     .project("demo")
///     .name("baseline")
///     .tags(["small", "cpu"])
///     .config(&[("lr", 0.001)].into_iter().collect::<std::collections::BTreeMap<_, _>>());
/// ```
#[derive(Clone, Debug, Default)]
pub struct InitOptions {
    pub(crate) args: Overrides,
    pub(crate) settings: Overrides,
    pub(crate) config: Option<std::result::Result<json::Map, Error>>,
    pub(crate) writer: WriterOptions,
    pub(crate) handle_sigterm: Option<bool>,
}

impl InitOptions {
    /// Options with nothing set.
    pub fn new() -> Self {
        InitOptions::default()
    }

    /// Mode: `offline`, `disabled` (every call is a no-op), or `online` (written offline here).
    #[must_use]
    pub fn mode(mut self, mode: impl Into<String>) -> Self {
        self.args.mode = Some(mode.into());
        self
    }

    /// Root directory; the run goes under `<dir>/wandb/`.
    #[must_use]
    pub fn dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.args.root_dir = Some(dir.into());
        self
    }

    /// Project name.
    #[must_use]
    pub fn project(mut self, project: impl Into<String>) -> Self {
        self.args.project = Some(project.into());
        self
    }

    /// Entity (user or team).
    #[must_use]
    pub fn entity(mut self, entity: impl Into<String>) -> Self {
        self.args.entity = Some(entity.into());
        self
    }

    /// Run id (default: 8 random characters of `[a-z0-9]`).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.args.run_id = Some(id.into());
        self
    }

    /// Display name.
    #[must_use]
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.args.run_name = Some(name.into());
        self
    }

    /// Notes.
    #[must_use]
    pub fn notes(mut self, notes: impl Into<String>) -> Self {
        self.args.run_notes = Some(notes.into());
        self
    }

    /// Tags.
    #[must_use]
    pub fn tags<I, S>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.run_tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Group.
    #[must_use]
    pub fn group(mut self, group: impl Into<String>) -> Self {
        self.args.run_group = Some(group.into());
        self
    }

    /// Job type.
    #[must_use]
    pub fn job_type(mut self, job_type: impl Into<String>) -> Self {
        self.args.run_job_type = Some(job_type.into());
        self
    }

    /// Resume behaviour: `allow` (continue the run with this id if its fragments are in the
    /// wandb folder, else start it), `must` (continue it, or fail), `never` (fail if it
    /// exists) or `auto` (take the id from `wandb/wandb-resume.json` when none is given, and
    /// continue that run if it did not finish cleanly). See the crate docs.
    #[must_use]
    pub fn resume(mut self, resume: impl Into<String>) -> Self {
        self.args.resume = Some(resume.into());
        self
    }

    /// Console capture: `auto`, `off`, `wrap`, `redirect`, `wrap_raw` or `wrap_emu`.
    #[must_use]
    pub fn console(mut self, console: impl Into<String>) -> Self {
        self.args.console = Some(console.into());
        self
    }

    /// System metrics sampling interval in seconds (default 15, at least 0.1).
    #[must_use]
    pub fn stats_sampling_interval(mut self, seconds: f64) -> Self {
        self.args.x_stats_sampling_interval = Some(seconds.to_string());
        self
    }

    /// Settings given as W&B's `init(settings=...)` (below the explicit arguments above).
    #[must_use]
    pub fn settings(mut self, settings: Overrides) -> Self {
        self.settings = settings;
        self
    }

    /// Explicit arguments as an [`Overrides`] layer (the same layer the builder methods set).
    #[must_use]
    pub fn args(mut self, args: Overrides) -> Self {
        self.args = args;
        self
    }

    /// The initial config, from any value that serializes as a map or struct. A conversion
    /// error is reported by `init`.
    #[must_use]
    pub fn config<T: Serialize + ?Sized>(mut self, config: &T) -> Self {
        self.config = Some(config_map(config));
        self
    }

    /// Writer options (queue, backpressure, flush and fsync intervals).
    #[must_use]
    pub fn writer(mut self, writer: WriterOptions) -> Self {
        self.writer = writer;
        self
    }

    /// Turns this run's SIGTERM handling on or off (above [`SetupOptions::handle_sigterm`]).
    #[must_use]
    pub fn handle_sigterm(mut self, on: bool) -> Self {
        self.handle_sigterm = Some(on);
        self
    }
}

/// A `Serialize` value as a JSON object (config and summary updates).
pub(crate) fn config_map<T: Serialize + ?Sized>(value: &T) -> Result<json::Map> {
    match json::to_value(value)
        .map_err(|source| Error::Serialize { source })?
        .into_object()
    {
        Ok(map) => Ok(map),
        Err(other) => Err(Error::NotAnObject {
            found: json_kind(&other),
        }),
    }
}

/// How `log` treats the step and whether the row is committed (W&B's `step=` and `commit=`).
///
/// | step | commit | effect |
/// |---|---|---|
/// | none | none or `true` | merge into the pending row, write it at the current step, advance |
/// | none | `false` | merge into the pending row |
/// | `s` > current | any | write the pending row, move to `s`, merge; write it if commit is `true` |
/// | `s` = current | any | merge; write it if commit is `true` |
/// | `s` < current | any | dropped with a warning (steps must increase) |
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// The step the values belong to.
    pub step: Option<u64>,
    /// Whether to write the row now.
    pub commit: Option<bool>,
}

impl LogOptions {
    /// No step, commit unset: the plain `log` behaviour.
    pub fn new() -> Self {
        LogOptions::default()
    }

    /// Returns the options with a step.
    #[must_use]
    pub fn step(mut self, step: u64) -> Self {
        self.step = Some(step);
        self
    }

    /// Returns the options with commit set.
    #[must_use]
    pub fn commit(mut self, commit: bool) -> Self {
        self.commit = Some(commit);
        self
    }
}

/// A statistic a metric's summary keeps (W&B's `define_metric(summary=...)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SummaryStat {
    /// The latest value.
    Last,
    /// The first value.
    First,
    /// The smallest number.
    Min,
    /// The largest number.
    Max,
    /// The mean of the numbers.
    Mean,
    /// No summary at all for this metric.
    None,
}

/// Whether lower or higher is better for a metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Goal {
    /// Lower is better.
    Minimize,
    /// Higher is better.
    Maximize,
}

/// A metric definition (W&B's `run.define_metric`).
///
/// ```
/// use wandb_logger::{Goal, Metric, SummaryStat};
/// let m = Metric::new("loss").step_metric("epoch").summary(SummaryStat::Min).goal(Goal::Minimize);
/// let all_val = Metric::new("val/*").summary(SummaryStat::Mean);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Metric {
    pub(crate) name: String,
    pub(crate) step_metric: Option<String>,
    pub(crate) step_sync: Option<bool>,
    pub(crate) hidden: bool,
    pub(crate) summary: Vec<SummaryStat>,
    pub(crate) goal: Option<Goal>,
}

impl Metric {
    /// A metric named `name`; a trailing `*` makes it a glob over every key with that prefix
    /// (keys starting with `_` excepted). Dots separate nested keys; `\.` is a literal dot.
    pub fn new(name: impl Into<String>) -> Self {
        Metric {
            name: name.into(),
            step_metric: None,
            step_sync: None,
            hidden: false,
            summary: Vec::new(),
            goal: None,
        }
    }

    /// The metric to use as this one's x axis.
    #[must_use]
    pub fn step_metric(mut self, step_metric: impl Into<String>) -> Self {
        self.step_metric = Some(step_metric.into());
        self
    }

    /// Whether rows that lack the step metric get its latest value (default: on when a step
    /// metric is set).
    #[must_use]
    pub fn step_sync(mut self, on: bool) -> Self {
        self.step_sync = Some(on);
        self
    }

    /// Hides the metric in the UI.
    #[must_use]
    pub fn hidden(mut self, hidden: bool) -> Self {
        self.hidden = hidden;
        self
    }

    /// Adds a summary statistic (several may be combined; [`SummaryStat::None`] turns the
    /// summary off).
    #[must_use]
    pub fn summary(mut self, stat: SummaryStat) -> Self {
        if !self.summary.contains(&stat) {
            self.summary.push(stat);
        }
        self
    }

    /// Sets the goal.
    #[must_use]
    pub fn goal(mut self, goal: Goal) -> Self {
        self.goal = Some(goal);
        self
    }

    pub(crate) fn validate(&self) -> Result<()> {
        if self.name.is_empty() {
            return Err(Error::InvalidArgument {
                what: "metric name",
                reason: "must not be empty".into(),
            });
        }
        if self.name.starts_with('*') {
            return Err(Error::InvalidArgument {
                what: "metric name",
                reason: format!("{:?}: a glob needs a prefix before '*'", self.name),
            });
        }
        if let Some(step) = &self.step_metric
            && (step.is_empty() || step.ends_with('*'))
        {
            return Err(Error::InvalidArgument {
                what: "step metric",
                reason: format!("{step:?} must be a plain metric name"),
            });
        }
        Ok(())
    }

    /// The definition a metric record holds (for a resumed run's earlier fragments); `None`
    /// for a record that defines nothing this type can (no name, or one `validate` refuses).
    pub(crate) fn from_record(record: &proto::MetricRecord) -> Option<Metric> {
        let name = if record.glob_name.is_empty() {
            record.name.clone()
        } else {
            record.glob_name.clone()
        };
        let mut metric = Metric::new(name);
        if !record.step_metric.is_empty() {
            metric.step_metric = Some(record.step_metric.clone());
        }
        if let Some(options) = &record.options {
            metric.step_sync = Some(options.step_sync);
            metric.hidden = options.hidden;
        }
        if let Some(summary) = &record.summary {
            for (on, stat) in [
                (summary.min, SummaryStat::Min),
                (summary.max, SummaryStat::Max),
                (summary.mean, SummaryStat::Mean),
                (summary.first, SummaryStat::First),
                (summary.last, SummaryStat::Last),
                (summary.none, SummaryStat::None),
            ] {
                if on {
                    metric = metric.summary(stat);
                }
            }
        }
        metric.goal = match record.goal {
            g if g == proto::metric_record::MetricGoal::GoalMinimize as i32 => Some(Goal::Minimize),
            g if g == proto::metric_record::MetricGoal::GoalMaximize as i32 => Some(Goal::Maximize),
            _ => None,
        };
        metric.validate().ok().map(|()| metric)
    }

    /// The metric record W&B writes for this definition.
    pub(crate) fn to_record(&self) -> proto::MetricRecord {
        let mut summary = proto::MetricSummary::default();
        for stat in &self.summary {
            match stat {
                SummaryStat::Last => summary.last = true,
                SummaryStat::First => summary.first = true,
                SummaryStat::Min => summary.min = true,
                SummaryStat::Max => summary.max = true,
                SummaryStat::Mean => summary.mean = true,
                SummaryStat::None => summary.none = true,
            }
        }
        let (name, glob_name) = match self.name.strip_suffix('*') {
            Some(_) => (String::new(), self.name.clone()),
            None => (self.name.clone(), String::new()),
        };
        proto::MetricRecord {
            name,
            glob_name,
            step_metric: self.step_metric.clone().unwrap_or_default(),
            options: Some(proto::MetricOptions {
                step_sync: self.step_sync.unwrap_or(self.step_metric.is_some()),
                hidden: self.hidden,
                defined: true,
            }),
            summary: (!self.summary.is_empty()).then_some(summary),
            goal: match self.goal {
                None => 0,
                Some(Goal::Minimize) => proto::metric_record::MetricGoal::GoalMinimize as i32,
                Some(Goal::Maximize) => proto::metric_record::MetricGoal::GoalMaximize as i32,
            },
            ..Default::default()
        }
    }
}

/// When a saved file is uploaded (W&B's `policy=`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum SavePolicy {
    /// Upload now (the file is copied into `files/` at once).
    #[default]
    Now,
    /// Upload at the end of the run (copied now and again when the run finishes).
    End,
    /// Upload as it changes (copied now and again when the run finishes).
    Live,
}

impl SavePolicy {
    pub(crate) fn to_proto(self) -> i32 {
        use proto::files_item::PolicyType;
        match self {
            SavePolicy::Now => PolicyType::Now as i32,
            SavePolicy::End => PolicyType::End as i32,
            SavePolicy::Live => PolicyType::Live as i32,
        }
    }
}

/// The severity of an alert.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum AlertLevel {
    /// `INFO` (the default).
    #[default]
    Info,
    /// `WARN`.
    Warn,
    /// `ERROR`.
    Error,
}

impl AlertLevel {
    fn as_str(self) -> &'static str {
        match self {
            AlertLevel::Info => "INFO",
            AlertLevel::Warn => "WARN",
            AlertLevel::Error => "ERROR",
        }
    }
}

/// An alert (W&B's `run.alert`); sent when the run is synced.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    title: String,
    text: String,
    level: AlertLevel,
    wait_duration: Duration,
}

impl Alert {
    /// An alert with a title and text, level `INFO`, and W&B's default wait of one minute.
    pub fn new(title: impl Into<String>, text: impl Into<String>) -> Self {
        Alert {
            title: title.into(),
            text: text.into(),
            level: AlertLevel::Info,
            wait_duration: Duration::from_secs(60),
        }
    }

    /// Returns the alert with another level.
    #[must_use]
    pub fn level(mut self, level: AlertLevel) -> Self {
        self.level = level;
        self
    }

    /// Returns the alert with another minimum time between alerts of the same title.
    #[must_use]
    pub fn wait_duration(mut self, wait: Duration) -> Self {
        self.wait_duration = wait;
        self
    }

    pub(crate) fn to_record(&self) -> proto::AlertRecord {
        proto::AlertRecord {
            title: self.title.clone(),
            text: self.text.clone(),
            level: self.level.as_str().to_owned(),
            wait_duration: i64::try_from(self.wait_duration.as_millis()).unwrap_or(i64::MAX),
            ..Default::default()
        }
    }
}
