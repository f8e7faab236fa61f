#!/usr/bin/env python3
"""Generate `format/src/proto.rs` from the installed wandb SDK's protobuf descriptors.

This script reads the descriptors compiled into the installed SDK
(`wandb.proto.wandb_internal_pb2.Record.DESCRIPTOR`, which pulls in
`wandb_base.proto` and `wandb_telemetry.proto`), walks every message reachable
from `Record` except the `request` field (field 100, never written to files),
and emits prost structs with the same field numbers, types, labels, maps and
oneofs. No `.proto` source or `protoc` is needed.

Run it from the repository root with the SDK's virtualenv, then format:

    .venv/bin/pip install wandb==0.31.0
    .venv/bin/python format/proto/gen_proto.py
    rustfmt --edition 2024 format/src/proto.rs

The script refuses to run against any other SDK version, because the doc
comments below were written for 0.31.0. To move to a new version, bump
`SDK_VERSION`, rerun, and add docs for any message the script reports as new.
Regenerate the round-trip fixtures afterwards with `make_all_fields.py`.
"""

from __future__ import annotations

import re
import sys
import textwrap
from pathlib import Path

import wandb
from google.protobuf import descriptor_pb2
from wandb.proto import wandb_internal_pb2

SDK_VERSION = "0.31.0"
OUT_PATH = Path(__file__).resolve().parent.parent / "src" / "proto.rs"

FDP = descriptor_pb2.FieldDescriptorProto

# Record fields that are left out of the Rust schema; prost skips them as unknown fields.
EXCLUDED_FIELDS = {("wandb_internal.Record", "request")}

# Well-known types that prost maps to existing Rust types.
EXTERN_MESSAGES = {
    "google.protobuf.Timestamp": "prost_types::Timestamp",
    "google.protobuf.Empty": "()",
}
EXTERN_ENUMS = {
    "google.protobuf.NullValue": "prost_types::NullValue",
}

# One short description per message, keyed by the proto's short name.
MESSAGE_DOCS = {
    "Record": "One entry of the transaction log: exactly one record type plus delivery metadata.",
    "Control": "Delivery metadata the SDK attaches to a record; it is persisted as sent.",
    "_RecordInfo": "Tracing metadata attached to a record or sub-record.",
    "HistoryRecord": "One row of run history: the values logged for one step.",
    "HistoryItem": "One key and value in a history row.",
    "HistoryStep": "The step number of a history row.",
    "SummaryRecord": "Updates and removals applied to the run summary.",
    "SummaryItem": "One key and JSON value in a summary update or removal.",
    "OutputRecord": "A line of captured console output (the legacy, line-based form).",
    "OutputRawRecord": "A chunk of raw captured console output, terminal control characters included.",
    "OutputLoggerRecord": "A line of console output from the SDK's own logger.",
    "ConfigRecord": "Updates and removals applied to the run config.",
    "ConfigItem": "One key and JSON value in a config update or removal.",
    "FilesRecord": "Run files to upload, each with an upload policy.",
    "FilesItem": "One file or glob to upload, relative to the run's `files/` directory.",
    "StatsRecord": "One sample of system metrics.",
    "StatsItem": "One system metric in a stats sample.",
    "ArtifactRecord": "An artifact logged by the run, with its manifest.",
    "ArtifactManifest": "The manifest of an artifact: storage policy and entries.",
    "StoragePolicyConfigItem": "One key and JSON value of a manifest's storage policy configuration.",
    "ArtifactManifestEntry": "One file or reference in an artifact manifest.",
    "ExtraItem": "One extra key and JSON value attached to an artifact manifest entry.",
    "TBRecord": "A TensorBoard log directory whose event files are synced with the run.",
    "AlertRecord": "An alert raised by the run (`wandb.alert`).",
    "TelemetryRecord": "Usage telemetry: imported libraries, SDK features used and environment facts; it feeds the `_wandb.t` config key.",
    "Imports": "Which well-known libraries the process imported, one flag per library.",
    "Feature": "Which SDK features the run used, one flag per feature.",
    "Env": "Facts about the execution environment, one flag per fact.",
    "Labels": "Free-form labels reported through telemetry.",
    "Deprecated": "Which deprecated SDK features the run used, one flag per feature.",
    "MetricRecord": "A metric definition made with `define_metric`.",
    "MetricOptions": "Step and display options of a metric definition.",
    "MetricSummary": "Which summary aggregations a metric keeps.",
    "MetricControl": "Control flags of a metric definition.",
    "RunRecord": "Run metadata: identity, project, config, tags, start time, git state and telemetry.",
    "SettingsRecord": "A snapshot of SDK settings as key and JSON value pairs.",
    "SettingsItem": "One setting as a key and JSON value.",
    "GitRepoRecord": "Git remote URL and commit of the run's code.",
    "BranchPoint": "Where a forked or rewound run branches off its parent run.",
    "RunExitRecord": "The run finished: exit code and total runtime.",
    "FinalRecord": "Legacy end-of-run marker; no longer written.",
    "HeaderRecord": "First record of a file: version information about its writer.",
    "VersionInfo": "Which program wrote the file, and the oldest version that may read it.",
    "FooterRecord": "Legacy end-of-file marker; no longer written.",
    "RunPreemptingRecord": "The run is about to be preempted.",
    "UseArtifactRecord": "The run used (consumed) an artifact.",
    "PartialJobArtifact": "A partial job artifact declared through `use_artifact`.",
    "JobSource": "Where a job's code comes from, and which runtime it needs.",
    "Source": "The git repository, code artifact or container image a job runs from.",
    "GitSource": "A job source in a git repository.",
    "GitInfo": "A git remote URL and commit.",
    "ArtifactInfo": "A job source stored as a code artifact.",
    "ImageSource": "A job source given as a container image.",
    "EnvironmentRecord": "A snapshot of one writer's machine and process, made when the writer starts.",
    "DiskInfo": "Total and used bytes of one disk.",
    "MemoryInfo": "Total system memory.",
    "CpuInfo": "CPU counts and model name.",
    "AppleInfo": "Apple silicon chip details.",
    "GpuNvidiaInfo": "One NVIDIA GPU.",
    "GpuAmdInfo": "One AMD GPU.",
    "TrainiumInfo": "AWS Trainium (Neuron) accelerators.",
    "TPUInfo": "Google TPU accelerators.",
    "CoreWeaveInfo": "CoreWeave cluster details.",
}

# Docs for nested enums, keyed by full proto name; values map each enum value name to a doc.
ENUM_DOCS = {
    "wandb_internal.OutputRecord.OutputType": (
        "Which stream a console line came from.",
        {"STDERR": "Standard error.", "STDOUT": "Standard output."},
    ),
    "wandb_internal.OutputRawRecord.OutputType": (
        "Which stream a chunk of console output came from.",
        {"STDERR": "Standard error.", "STDOUT": "Standard output."},
    ),
    "wandb_internal.FilesItem.PolicyType": (
        "When a file is uploaded.",
        {
            "NOW": "Upload once, right away.",
            "END": "Upload once, when the run ends.",
            "LIVE": "Upload now and again whenever the file changes.",
        },
    ),
    "wandb_internal.FilesItem.FileType": (
        "What kind of file is uploaded; used to count uploads by kind.",
        {
            "OTHER": "Any other file.",
            "WANDB": "A file W&B itself writes, such as the config or summary.",
            "MEDIA": "A media file logged by the run.",
            "ARTIFACT": "A file belonging to an artifact.",
        },
    ),
    "wandb_internal.StatsRecord.StatsType": (
        "The kind of stats sample.",
        {"SYSTEM": "System metrics: CPU, memory, disk, network and accelerators."},
    ),
    "wandb_internal.MetricRecord.MetricGoal": (
        "Whether lower or higher values of a metric are better.",
        {
            "GOAL_UNSET": "No goal.",
            "GOAL_MINIMIZE": "Lower is better.",
            "GOAL_MAXIMIZE": "Higher is better.",
        },
    ),
}

# Docs for real (non-synthetic) oneofs, keyed by "<message full name>.<oneof name>".
ONEOF_DOCS = {
    "wandb_internal.Record.record_type": "The payload of a record: exactly one record type.",
    "wandb_internal.HistoryItem.value": (
        "The value as a typed scalar or JSON text. The SDK writes it only when the "
        "`x_history_value_encoding` setting includes `typed`; the default writes `value_json` only."
    ),
}

# Docs for oneof members, keyed by "<message short name>.<field name>".
ONEOF_VARIANT_DOCS = {
    "Record.history": "A history row.",
    "Record.summary": "A summary update.",
    "Record.output": "A line of console output (legacy form).",
    "Record.config": "A config update.",
    "Record.files": "Files to upload.",
    "Record.stats": "A system metrics sample.",
    "Record.artifact": "A logged artifact.",
    "Record.tbrecord": "A TensorBoard log directory to sync.",
    "Record.alert": "An alert.",
    "Record.telemetry": "Usage telemetry.",
    "Record.metric": "A metric definition.",
    "Record.output_raw": "Raw console output.",
    "Record.run": "Run metadata.",
    "Record.exit": "The run's exit status.",
    "Record.final": "Legacy end-of-run marker.",
    "Record.header": "File header with the writer's version.",
    "Record.footer": "Legacy end-of-file marker.",
    "Record.preempting": "The run is about to be preempted.",
    "Record.noop_link_artifact": "Removed link-artifact record, kept (as `google.protobuf.Empty`) so old files still parse.",
    "Record.use_artifact": "An artifact used by the run.",
    "Record.environment": "A snapshot of the writer's machine.",
    "Record.output_logger": "A line from the SDK's own logger.",
    "HistoryItem.none": "JSON `null` (the only `NullValue`).",
    "HistoryItem.boolean": "A boolean.",
    "HistoryItem.integer": "An integer that fits in 64 bits.",
    "HistoryItem.number": "A floating-point number; NaN and infinities are allowed.",
    "HistoryItem.text": "A string.",
    "HistoryItem.json": "Any other value as JSON text (objects, arrays, wide integers).",
}

# Docs for fields whose meaning is not obvious from the name, keyed by "<message>.<field>".
FIELD_DOCS = {
    "Record.num": "Sequence number; wandb-core's writer sets 1, 2, 3, ... for the records it writes.",
    "Record.control": "Delivery metadata, outside the record-type oneof.",
    "Record.uuid": "Identifier of the record, if the sender set one.",
    "Control.req_resp": "The sender expects a response.",
    "Control.local": "The record must be neither persisted nor synced.",
    "Control.relay_id": "Identifies the transport stream to answer on.",
    "Control.mailbox_slot": "Mailbox slot the response is delivered to.",
    "Control.flow_control": "The record passes through flow control.",
    "Control.end_offset": "File offset just after this record, once written.",
    "Control.connection_id": "Identifies the client connection that sent the record.",
    "_RecordInfo.stream_id": "Stream the record belongs to; the Python client sets the run ID.",
    "_RecordInfo._tracelog_id": "Trace-log identifier (proto field `_tracelog_id`).",
    "HistoryRecord.step": "The step of this row; equals the row's `_step` value.",
    "HistoryItem.key": "Top-level key; mutually exclusive with `nested_key`.",
    "HistoryItem.nested_key": "Key path for nested keys; wandb-core always uses this form.",
    "HistoryItem.value_json": "The value as (extended) JSON text; `NaN` and `Infinity` tokens are allowed.",
    "SummaryItem.key": "Top-level key; mutually exclusive with `nested_key`.",
    "SummaryItem.nested_key": "Key path for nested keys.",
    "SummaryItem.value_json": "The value as (extended) JSON text.",
    "ConfigItem.key": "Top-level key; mutually exclusive with `nested_key`.",
    "ConfigItem.nested_key": "Key path for nested keys.",
    "ConfigItem.value_json": "The plain JSON of the value (not wrapped in `{\"value\": ...}`).",
    "SummaryRecord.update": "Keys to set.",
    "SummaryRecord.remove": "Keys to delete; only the keys are meaningful.",
    "ConfigRecord.update": "Keys to set.",
    "ConfigRecord.remove": "Keys to delete; only the keys are meaningful.",
    "OutputRecord.timestamp": "When the line was captured.",
    "OutputRawRecord.timestamp": "When the chunk was captured.",
    "FilesItem.path": "Path relative to the run's `files/` directory; may be a glob.",
    "StatsRecord.timestamp": "When the sample was taken.",
    "StatsItem.value_json": "The metric value as JSON text.",
    "ArtifactRecord.metadata": "User metadata as JSON text.",
    "ArtifactRecord.ttl_duration_seconds": "Time to live in seconds.",
    "ArtifactRecord.digest_algorithm": "Name of the digest algorithm used for the artifact.",
    "ArtifactManifestEntry.ref": "Reference URI, for reference entries.",
    "TBRecord.namespace": "Namespace prefix for the synced metrics (proto3 `optional`).",
    "AlertRecord.level": "Alert level such as `INFO`, `WARN` or `ERROR`.",
    "AlertRecord.wait_duration": "Minimum time between identical alerts, in seconds.",
    "TelemetryRecord.imports_init": "Libraries already imported when the run started.",
    "TelemetryRecord.imports_finish": "Libraries imported by the time the run finished.",
    "MetricRecord.name": "Metric name; exactly one of `name` and `glob_name` is set.",
    "MetricRecord.glob_name": "Glob pattern of metric names.",
    "MetricRecord.step_metric": "Name of the metric used as this metric's x axis.",
    "MetricRecord.step_metric_index": "One-based index of the step metric, used instead of `step_metric` in lists.",
    "MetricRecord.control": "Control flags (proto field `_control`).",
    "MetricRecord.expanded_from_glob": "The definition was produced by matching a glob definition.",
    "MetricOptions.defined": "The metric was defined explicitly, not through a glob or as a step metric.",
    "RunRecord.starting_step": "First step of a resumed run.",
    "RunRecord.storage_id": "Server-side ID of the run.",
    "RunRecord.runtime": "Runtime in seconds accumulated before this start (resumed runs).",
    "RunRecord.resume": "The run was started with a resume request.",
    "GitRepoRecord.remote_url": "Remote URL (JSON name `remote`).",
    "BranchPoint.run": "ID of the parent run.",
    "BranchPoint.value": "Value of the branch metric at the branch point.",
    "BranchPoint.metric": "Metric the branch point is measured in, usually `_step`.",
    "RunExitRecord.exit_code": "Process exit code; 0 means success.",
    "RunExitRecord.runtime": "Total runtime in seconds.",
    "RunExitRecord.not_complete": "Keep the run in the running state.",
    "HistoryRecord.item": "The logged values.",
    "HistoryStep.num": "Step number.",
    "OutputRecord.output_type": "Stream the line came from ([`output_record::OutputType`]).",
    "OutputRecord.line": "The line of text.",
    "OutputRawRecord.output_type": "Stream the chunk came from ([`output_raw_record::OutputType`]).",
    "OutputRawRecord.line": "The captured text, which may span several lines.",
    "OutputLoggerRecord.line": "The line of text.",
    "FilesRecord.files": "The files to upload.",
    "FilesItem.policy": "When to upload ([`files_item::PolicyType`]).",
    "FilesItem.type": "Kind of file ([`files_item::FileType`]).",
    "StatsRecord.stats_type": "Kind of sample ([`stats_record::StatsType`]).",
    "StatsRecord.item": "The metric values.",
    "StatsItem.key": "Metric name.",
    "StoragePolicyConfigItem.key": "Configuration key.",
    "StoragePolicyConfigItem.value_json": "Configuration value as JSON text.",
    "ExtraItem.key": "Attribute name.",
    "ExtraItem.value_json": "Attribute value as JSON text.",
    "AlertRecord.title": "Alert title.",
    "AlertRecord.text": "Alert body.",
    "TelemetryRecord.feature": "SDK features used.",
    "TelemetryRecord.python_version": "Python version of the process.",
    "TelemetryRecord.cli_version": "Version of the wandb SDK.",
    "TelemetryRecord.huggingface_version": "Version of Hugging Face `transformers`, if imported.",
    "TelemetryRecord.env": "Facts about the execution environment.",
    "TelemetryRecord.label": "Free-form labels.",
    "TelemetryRecord.deprecated": "Deprecated features used.",
    "TelemetryRecord.core_version": "Version of wandb-core.",
    "TelemetryRecord.platform": "Operating system and architecture, such as `linux-x86_64`.",
    "Labels.code_string": "Label for the code.",
    "Labels.repo_string": "Label for the repository.",
    "Labels.code_version": "Label for the code version.",
    "MetricRecord.options": "Step and display options.",
    "MetricRecord.summary": "Summary aggregations to keep.",
    "MetricRecord.goal": "Optimization goal ([`metric_record::MetricGoal`]).",
    "MetricOptions.step_sync": "Fill in the step metric's latest value in rows that lack it.",
    "MetricOptions.hidden": "Hide the metric in the UI.",
    "MetricSummary.min": "Keep the minimum.",
    "MetricSummary.max": "Keep the maximum.",
    "MetricSummary.mean": "Keep the mean.",
    "MetricSummary.best": "Keep the best value according to the goal.",
    "MetricSummary.last": "Keep the last value.",
    "MetricSummary.none": "Keep no summary.",
    "MetricSummary.copy": "Copy the value into the summary.",
    "MetricSummary.first": "Keep the first value.",
    "MetricControl.overwrite": "Replace any earlier definition instead of merging with it.",
    "SettingsRecord.item": "The settings.",
    "SettingsItem.key": "Setting name.",
    "SettingsItem.value_json": "Setting value as JSON text.",
    "GitRepoRecord.commit": "Commit hash.",
    "GitInfo.remote": "Remote URL.",
    "GitInfo.commit": "Commit hash.",
    "ImageSource.image": "Container image name.",
    "HeaderRecord.version_info": "Writer and minimum reader versions.",
    "CpuInfo.count": "Number of physical cores.",
    "CpuInfo.count_logical": "Number of logical cores.",
    "CpuInfo.model": "CPU model name.",
    "VersionInfo.producer": "Writer version; wandb-core writes `<version>+<git commit>`.",
    "VersionInfo.min_consumer": "Oldest reader version that can read the file.",
    "JobSource.version": "Job source format version (proto field `_version`).",
    "EnvironmentRecord.started_at": "When the writer started.",
    "EnvironmentRecord.code_path": "Path of the program relative to the repository root.",
    "EnvironmentRecord.code_path_local": "Path of the program relative to the working directory.",
    "EnvironmentRecord.gpu_type": "GPU model name (JSON name `gpu`).",
    "EnvironmentRecord.disk": "Disk usage by mount path.",
    "EnvironmentRecord.slurm": "SLURM job environment, by variable name.",
    "EnvironmentRecord.writer_id": "Identifies the writer process that made this snapshot.",
    "DiskInfo.total": "Total bytes.",
    "DiskInfo.used": "Used bytes.",
    "MemoryInfo.total": "Total bytes.",
    "GpuNvidiaInfo.memory_total": "Total memory in bytes.",
    "GpuNvidiaInfo.numa_node": "NUMA node of the GPU, if known (proto3 `optional`).",
}

# Flag messages of the telemetry schema: every field gets a doc made from this template.
FLAG_DOCS = {
    "Imports": "The `{}` library was imported.",
    "Feature": "The `{}` feature was used.",
    "Env": "Environment fact `{}` holds.",
    "Deprecated": "The deprecated `{}` feature was used.",
}

INFO_DOC = "Tracing metadata (proto field `_info`)."

RUST_KEYWORDS = {
    "as", "break", "const", "continue", "crate", "else", "enum", "extern", "false", "fn", "for",
    "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut", "pub", "ref", "return",
    "self", "Self", "static", "struct", "super", "trait", "true", "type", "unsafe", "use", "where",
    "while", "async", "await", "dyn", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try", "gen",
}

# Proto scalar type -> (prost attribute type, Rust type).
SCALARS = {
    FDP.TYPE_DOUBLE: ("double", "f64"),
    FDP.TYPE_FLOAT: ("float", "f32"),
    FDP.TYPE_INT64: ("int64", "i64"),
    FDP.TYPE_UINT64: ("uint64", "u64"),
    FDP.TYPE_INT32: ("int32", "i32"),
    FDP.TYPE_FIXED64: ("fixed64", "u64"),
    FDP.TYPE_FIXED32: ("fixed32", "u32"),
    FDP.TYPE_BOOL: ("bool", "bool"),
    FDP.TYPE_STRING: ("string", "String"),
    FDP.TYPE_BYTES: ("bytes", "Vec<u8>"),
    FDP.TYPE_UINT32: ("uint32", "u32"),
    FDP.TYPE_SFIXED32: ("sfixed32", "i32"),
    FDP.TYPE_SFIXED64: ("sfixed64", "i64"),
    FDP.TYPE_SINT32: ("sint32", "i32"),
    FDP.TYPE_SINT64: ("sint64", "i64"),
}

PROTO_TYPE_NAMES = {v: k[len("TYPE_"):].lower() for k, v in FDP.Type.items()}


def struct_name(proto_name: str) -> str:
    """Rust name of a message: the proto name without leading underscores."""
    return proto_name.lstrip("_")


def snake_case(name: str) -> str:
    """`TBRecord` -> `tb_record`, `GpuNvidiaInfo` -> `gpu_nvidia_info` (as prost-build does)."""
    name = name.lstrip("_")
    name = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    name = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", name)
    return name.lower()


def field_ident(proto_name: str) -> str:
    """Rust field name: lowercase, no leading or doubled underscores, raw if a keyword."""
    ident = re.sub(r"_+", "_", proto_name.lstrip("_")).lower()
    if ident in RUST_KEYWORDS:
        ident = "r#" + ident
    return ident


def camel_case(screaming: str) -> str:
    """`GOAL_UNSET` -> `GoalUnset`."""
    return "".join(part.capitalize() for part in screaming.lower().split("_"))


def as_proto(descriptor):
    """The descriptor as a `DescriptorProto`/`EnumDescriptorProto` (exposes labels and proto3_optional)."""
    proto = descriptor_pb2.DescriptorProto()
    descriptor.CopyToProto(proto)
    return proto


def reachable_messages():
    """Messages reachable from `Record`, in discovery order, with `Control` and `_RecordInfo` first."""
    record = wandb_internal_pb2.Record.DESCRIPTOR
    seen: dict[str, object] = {}

    def visit(message):
        if message.full_name in seen:
            return
        seen[message.full_name] = message
        fields = list(message.fields)
        if message is record:
            # Record's delivery metadata first, then the record types.
            fields.sort(key=lambda f: f.containing_oneof is not None)
        for field in fields:
            if (message.full_name, field.name) in EXCLUDED_FIELDS:
                continue
            if field.message_type is not None:
                visit(field.message_type)

    visit(record)
    return [m for m in seen.values() if m.full_name not in EXTERN_MESSAGES and not m.GetOptions().map_entry]


def is_map(field) -> bool:
    return field.message_type is not None and field.message_type.GetOptions().map_entry


def doc_lines(text: str, indent: str) -> list[str]:
    """`///` lines for `text`, wrapped to stay within 96 columns."""
    width = 96 - len(indent) - len("/// ")
    return [f"{indent}/// {line}" for line in textwrap.wrap(text, width, break_on_hyphens=False)]


class Generator:
    def __init__(self):
        self.messages = reachable_messages()
        self.names = {m.full_name: struct_name(m.name) for m in self.messages}
        self.enums = {}
        self.out: list[str] = []
        self.n_structs = 0
        self.n_enums = 0
        self.n_oneofs = 0
        self.undocumented: list[str] = []

    def emit(self, line: str = "") -> None:
        self.out.append(line)

    # --- type paths -------------------------------------------------------------------

    def message_path(self, full_name: str, in_module: bool) -> str:
        if full_name in EXTERN_MESSAGES:
            return EXTERN_MESSAGES[full_name]
        name = self.names[full_name]
        return f"super::{name}" if in_module else name

    def enum_path(self, enum, in_module: bool) -> str:
        if enum.full_name in EXTERN_ENUMS:
            return EXTERN_ENUMS[enum.full_name]
        parent = enum.containing_type
        assert parent is not None, f"top-level enum {enum.full_name} not supported"
        path = f"{snake_case(parent.name)}::{enum.name}"
        return f"super::{path}" if in_module else path

    def scalar_attr(self, field, in_module: bool) -> tuple[str, str]:
        """(prost attribute type, Rust type) of a singular value of `field`."""
        if field.type == FDP.TYPE_ENUM:
            return f'enumeration = "{self.enum_path(field.enum_type, in_module)}"', "i32"
        if field.type == FDP.TYPE_MESSAGE:
            return "message", self.message_path(field.message_type.full_name, in_module)
        if field.type == FDP.TYPE_GROUP:
            raise SystemExit(f"groups are not supported: {field.full_name}")
        return SCALARS[field.type]

    def map_key_value(self, field) -> tuple[str, str, str]:
        """(prost map spec, Rust key type, Rust value type) of a map field."""
        entry = field.message_type
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        key_attr, key_ty = SCALARS[key.type]
        if value.type == FDP.TYPE_MESSAGE:
            value_ty = self.message_path(value.message_type.full_name, False)
            value_attr = "message"
        elif value.type == FDP.TYPE_ENUM:
            value_attr = f"enumeration({self.enum_path(value.enum_type, False)})"
            value_ty = "i32"
        else:
            value_attr, value_ty = SCALARS[value.type]
        return f"{key_attr}, {value_attr}", key_ty, value_ty

    # --- docs ---------------------------------------------------------------------------

    def field_doc(self, message, field) -> str | None:
        ident = field_ident(field.name)
        if field.name == "_info":
            return INFO_DOC
        if message.name in FLAG_DOCS:
            return FLAG_DOCS[message.name].format(field.name)
        for key in (f"{message.name}.{field.name}", f"{message.name}.{ident}"):
            if key in FIELD_DOCS:
                return FIELD_DOCS[key]
        return None

    # --- emission -----------------------------------------------------------------------

    def real_oneofs(self, message, proto):
        """Oneofs that are not the synthetic ones proto3 `optional` creates."""
        synthetic = {f.oneof_index for f in proto.field if f.proto3_optional}
        return [o for i, o in enumerate(message.oneofs) if i not in synthetic]

    def emit_message(self, message) -> None:
        proto = as_proto(message)
        optional = {f.name for f in proto.field if f.proto3_optional}
        oneofs = self.real_oneofs(message, proto)
        name = self.names[message.full_name]
        module = snake_case(message.name)
        if message.name not in MESSAGE_DOCS:
            raise SystemExit(f"no doc for new message {message.full_name}; add it to MESSAGE_DOCS")

        lines: list[str] = []
        documented_all = True
        emitted_oneofs = set()
        seen_idents = set()
        for field in message.fields:
            if (message.full_name, field.name) in EXCLUDED_FIELDS:
                continue
            oneof = field.containing_oneof
            if oneof is not None and oneof in oneofs:
                if oneof.name in emitted_oneofs:
                    continue
                emitted_oneofs.add(oneof.name)
                members = [f for f in oneof.fields if (message.full_name, f.name) not in EXCLUDED_FIELDS]
                tags = ", ".join(str(f.number) for f in members)
                enum_name = camel_case(oneof.name)
                lines.extend(doc_lines(f"Oneof `{oneof.name}`; see [`{module}::{enum_name}`].", "    "))
                lines.append(f'    #[prost(oneof = "{module}::{enum_name}", tags = "{tags}")]')
                lines.append(f"    pub {field_ident(oneof.name)}: Option<{module}::{enum_name}>,")
                continue

            ident = field_ident(field.name)
            assert ident not in seen_idents, f"field name clash in {message.full_name}: {ident}"
            seen_idents.add(ident)
            doc = self.field_doc(message, field)
            if doc is None:
                documented_all = False
            else:
                lines.extend(doc_lines(doc, "    "))

            if is_map(field):
                spec, key_ty, value_ty = self.map_key_value(field)
                lines.append(f'    #[prost(btree_map = "{spec}", tag = "{field.number}")]')
                lines.append(f"    pub {ident}: BTreeMap<{key_ty}, {value_ty}>,")
                continue

            attr, ty = self.scalar_attr(field, False)
            if field.is_repeated:
                packed = ""
                if field.type not in (FDP.TYPE_STRING, FDP.TYPE_BYTES, FDP.TYPE_MESSAGE) and not field.is_packed:
                    packed = ', packed = "false"'
                lines.append(f'    #[prost({attr}, repeated{packed}, tag = "{field.number}")]')
                lines.append(f"    pub {ident}: Vec<{ty}>,")
            elif field.type == FDP.TYPE_MESSAGE:
                lines.append(f'    #[prost({attr}, optional, tag = "{field.number}")]')
                lines.append(f"    pub {ident}: Option<{ty}>,")
            elif field.name in optional:
                lines.append(f'    #[prost({attr}, optional, tag = "{field.number}")]')
                lines.append(f"    pub {ident}: Option<{ty}>,")
            else:
                lines.append(f'    #[prost({attr}, tag = "{field.number}")]')
                lines.append(f"    pub {ident}: {ty},")

        if message.name == "Record":
            # Record implements prost::Message by hand, so its fields carry no prost attributes.
            lines = [line for line in lines if not line.lstrip().startswith("#[prost(")]
        self.emit_struct_header(message, name, documented_all)
        self.out.extend(lines)
        self.emit("}")
        self.emit()
        self.n_structs += 1

        if message.enum_types or oneofs:
            self.emit_module(message, module, oneofs)

    def emit_struct_header(self, message, name: str, documented_all: bool) -> None:
        self.out.extend(doc_lines(MESSAGE_DOCS[message.name], ""))
        self.emit("///")
        self.emit(f"/// Proto: `{message.full_name}`.")
        if message.name == "Record":
            self.emit("///")
            self.emit("/// [`prost::Message`] is implemented by hand (below) so that encoding follows")
            self.emit("/// field-number order, as the official SDK does, even though `control` (16) and")
            self.emit("/// `uuid` (19) sit between record-type field numbers.")
            self.emit("#[derive(Clone, PartialEq, Debug, Default)]")
        else:
            self.emit("#[derive(Clone, PartialEq, prost::Message)]")
        if not documented_all:
            self.undocumented.append(name)
            self.emit("#[allow(missing_docs)] // Fields mean what their proto names say.")
        self.emit(f"pub struct {name} {{")

    def emit_module(self, message, module: str, oneofs) -> None:
        name = self.names[message.full_name]
        self.emit(f"/// Nested enums and oneofs of [`{name}`].")
        self.emit(f"pub mod {module} {{")
        for enum in message.enum_types:
            self.emit_enum(enum)
        for oneof in oneofs:
            self.emit_oneof(message, oneof)
        self.emit("}")
        self.emit()

    def emit_enum(self, enum) -> None:
        if enum.full_name not in ENUM_DOCS:
            raise SystemExit(f"no doc for new enum {enum.full_name}; add it to ENUM_DOCS")
        doc, value_docs = ENUM_DOCS[enum.full_name]
        prefix = re.sub(r"(?<!^)([A-Z])", r"_\1", enum.name).upper() + "_"
        self.out.extend(doc_lines(doc, "    "))
        self.emit("    ///")
        self.emit(f"    /// Proto: `{enum.full_name}`.")
        self.emit("    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]")
        self.emit("    #[repr(i32)]")
        self.emit(f"    pub enum {enum.name} {{")
        variants = []
        for value in enum.values:
            assert not value.name.startswith(prefix), f"prefix stripping not implemented: {value.name}"
            variant = camel_case(value.name)
            variants.append((variant, value.name))
            self.out.extend(doc_lines(value_docs[value.name], "        "))
            self.emit(f"        {variant} = {value.number},")
        self.emit("    }")
        self.emit()
        self.emit(f"    impl {enum.name} {{")
        self.emit("        /// The value's name in the proto definition.")
        self.emit("        #[must_use]")
        self.emit("        pub fn as_str_name(self) -> &'static str {")
        self.emit("            match self {")
        for variant, proto_name in variants:
            self.emit(f'                Self::{variant} => "{proto_name}",')
        self.emit("            }")
        self.emit("        }")
        self.emit()
        self.emit("        /// Looks a value up by its name in the proto definition.")
        self.emit("        #[must_use]")
        self.emit("        pub fn from_str_name(name: &str) -> Option<Self> {")
        self.emit("            match name {")
        for variant, proto_name in variants:
            self.emit(f'                "{proto_name}" => Some(Self::{variant}),')
        self.emit("                _ => None,")
        self.emit("            }")
        self.emit("        }")
        self.emit("    }")
        self.emit()
        self.n_enums += 1

    def emit_oneof(self, message, oneof) -> None:
        key = f"{message.full_name}.{oneof.name}"
        enum_name = camel_case(oneof.name)
        self.out.extend(doc_lines(ONEOF_DOCS[key], "    "))
        self.emit("    ///")
        self.emit(f"    /// Proto: oneof `{oneof.name}` of `{message.full_name}`.")
        members = [f for f in oneof.fields if (message.full_name, f.name) not in EXCLUDED_FIELDS]
        if message.name == "Record":
            self.emit("    #[allow(clippy::large_enum_variant)] // Boxing would only add an allocation per record.")
        self.emit("    #[derive(Clone, PartialEq, prost::Oneof)]")
        self.emit(f"    pub enum {enum_name} {{")
        for field in members:
            self.out.extend(doc_lines(ONEOF_VARIANT_DOCS[f"{message.name}.{field.name}"], "        "))
            attr, ty = self.scalar_attr(field, True)
            self.emit(f'        #[prost({attr}, tag = "{field.number}")]')
            self.emit(f"        {camel_case(field.name)}({ty}),")
        self.emit("    }")
        self.emit()
        if message.name == "Record":
            self.emit_record_type_impl(members)
        self.n_oneofs += 1

    def emit_record_type_impl(self, members) -> None:
        self.emit("    impl RecordType {")
        self.emit("        /// Proto field name of this record type, e.g. `\"output_raw\"`.")
        self.emit("        #[must_use]")
        self.emit("        pub fn name(&self) -> &'static str {")
        self.emit("            match self {")
        for field in members:
            self.emit(f'                Self::{camel_case(field.name)}(..) => "{field.name}",')
        self.emit("            }")
        self.emit("        }")
        self.emit()
        self.emit("        /// Proto field number of this record type.")
        self.emit("        #[must_use]")
        self.emit("        pub fn tag(&self) -> u32 {")
        self.emit("            match self {")
        for field in members:
            self.emit(f"                Self::{camel_case(field.name)}(..) => {field.number},")
        self.emit("            }")
        self.emit("        }")
        self.emit("    }")
        self.emit()

    def emit_record_impls(self) -> None:
        record = wandb_internal_pb2.Record.DESCRIPTOR
        outside = sorted(
            (f.number, f.name, f.type) for f in record.fields if f.containing_oneof is None
        )
        # The hand-written encoder below assumes exactly this layout; fail loudly if it changes.
        expected = [
            (1, "num", FDP.TYPE_INT64),
            (16, "control", FDP.TYPE_MESSAGE),
            (19, "uuid", FDP.TYPE_STRING),
            (200, "_info", FDP.TYPE_MESSAGE),
        ]
        if outside != expected:
            raise SystemExit(f"Record's non-oneof fields changed: {outside}; update emit_record_impls")
        members = [
            f for f in record.oneofs_by_name["record_type"].fields
            if (record.full_name, f.name) not in EXCLUDED_FIELDS
        ]
        assert all(1 < f.number < 200 for f in members)
        tags = " | ".join(str(f.number) for f in sorted(members, key=lambda f: f.number))
        names = "\n".join(f'    "{f.name}",' for f in members)
        self.out.append(RECORD_IMPLS.replace("@TAGS@", tags).replace("@NAMES@", names))

    def generate(self) -> str:
        self.emit(HEADER.replace("@VERSION@", SDK_VERSION).rstrip("\n"))
        self.emit()
        for message in self.messages:
            self.emit_message(message)
            if message.name == "Record":
                self.emit_record_impls()
        text = "\n".join(self.out).rstrip("\n") + "\n"
        return text.replace("@COUNTS@", f"{self.n_structs} messages, {self.n_enums} enums, {self.n_oneofs} oneofs")


HEADER = """\
//! Prost message types for W&B's `.wandb` records (`wandb_internal.Record` and
//! everything reachable from it), matching the official SDK version @VERSION@.
//!
//! Generated by `format/proto/gen_proto.py` from the descriptors compiled into the
//! installed SDK (`wandb.proto.wandb_internal_pb2`, which includes `wandb_base.proto`
//! and `wandb_telemetry.proto`); edit the generator, not this file.
//! It holds @COUNTS@.
//! Field numbers, scalar types, labels, maps and oneofs are exactly the SDK's;
//! `tests/proto_all_fields.rs` checks them by decoding and re-encoding a record of
//! every type with every field set.
//!
//! Naming follows prost-build: structs keep the proto message names (a leading
//! underscore is dropped, so `_RecordInfo` is [`RecordInfo`]); fields are snake
//! case without leading underscores (`_info` is `info`); nested enums and oneofs live
//! in a module named after their message (`record::RecordType`). Enum-typed fields are
//! stored as `i32`, with getters generated by prost. `google.protobuf.Timestamp` is
//! [`prost_types::Timestamp`], `google.protobuf.Empty` is `()` and
//! `google.protobuf.NullValue` is [`prost_types::NullValue`].
//!
//! Left out on purpose: `Record.request` (field 100) and the whole `Request` tree.
//! The SDK never writes requests to a file, and prost skips the field as unknown, so
//! a record holding one decodes with no record type set.
//!
//! Encoding matches the SDK (Python upb and Go) byte for byte, with two known
//! exceptions, both in maps (only [`EnvironmentRecord`] has maps): the SDK writes a
//! map entry's key and value even when they are empty or zero, while prost omits
//! them; and map entries are written sorted by key ([`BTreeMap`]), where Go writes
//! them in random order. Both decode to the same value. [`Record`]'s encoder is
//! written by hand so that its fields come out in field-number order, which the
//! derived encoder would not do (see [`Record`]).
//!
//! Struct fields carry a doc comment where their meaning is not plain from the
//! name; structs with self-explanatory fields are marked `#[allow(missing_docs)]`.

use std::collections::BTreeMap;
"""

RECORD_IMPLS = """\
/// Proto name of every record type, in field-number order, as returned by
/// [`Record::type_name`]. `request` is not included (see the module docs).
pub const RECORD_TYPE_NAMES: &[&str] = &[
@NAMES@
];

/// What [`Record::type_name`] returns when no known record type is set.
pub const UNKNOWN_RECORD_TYPE: &str = "unknown";

impl Record {
    /// Proto field name of the record type, e.g. `"history"` or `"output_raw"`
    /// (one of [`RECORD_TYPE_NAMES`]).
    ///
    /// Returns [`UNKNOWN_RECORD_TYPE`] (`"unknown"`) when no known record type is
    /// set: the record was empty, held a `request`, or holds a record type newer than
    /// this schema.
    #[must_use]
    pub fn type_name(&self) -> &'static str {
        self.record_type
            .as_ref()
            .map_or(UNKNOWN_RECORD_TYPE, record::RecordType::name)
    }

    /// Encodes the record type if its field number is in `tags`.
    fn encode_record_type_in(
        &self,
        tags: std::ops::Range<u32>,
        buf: &mut impl prost::bytes::BufMut,
    ) {
        if let Some(record_type) = &self.record_type
            && tags.contains(&record_type.tag())
        {
            record_type.encode(buf);
        }
    }
}

/// Like the derived implementation, except that fields are encoded in field-number
/// order. prost's derive writes a oneof where its lowest field number would go, so a
/// `run` (17) would precede `control` (16); the SDK writes `control` first.
impl prost::Message for Record {
    fn encode_raw(&self, buf: &mut impl prost::bytes::BufMut) {
        use prost::encoding;

        if self.num != 0 {
            encoding::int64::encode(1, &self.num, buf);
        }
        self.encode_record_type_in(2..16, buf);
        if let Some(control) = &self.control {
            encoding::message::encode(16, control, buf);
        }
        self.encode_record_type_in(17..19, buf);
        if !self.uuid.is_empty() {
            encoding::string::encode(19, &self.uuid, buf);
        }
        self.encode_record_type_in(20..200, buf);
        if let Some(info) = &self.info {
            encoding::message::encode(200, info, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: prost::encoding::WireType,
        buf: &mut impl prost::bytes::Buf,
        ctx: prost::encoding::DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        use prost::encoding;

        let (result, field) = match tag {
            1 => (
                encoding::int64::merge(wire_type, &mut self.num, buf, ctx),
                "num",
            ),
            16 => (
                encoding::message::merge(
                    wire_type,
                    self.control.get_or_insert_with(Default::default),
                    buf,
                    ctx,
                ),
                "control",
            ),
            19 => (
                encoding::string::merge(wire_type, &mut self.uuid, buf, ctx),
                "uuid",
            ),
            200 => (
                encoding::message::merge(
                    wire_type,
                    self.info.get_or_insert_with(Default::default),
                    buf,
                    ctx,
                ),
                "info",
            ),
            @TAGS@ => (
                record::RecordType::merge(&mut self.record_type, tag, wire_type, buf, ctx),
                "record_type",
            ),
            _ => return encoding::skip_field(wire_type, tag, buf, ctx),
        };
        result.map_err(|mut error| {
            error.push("Record", field);
            error
        })
    }

    fn encoded_len(&self) -> usize {
        use prost::encoding;

        let num = if self.num == 0 {
            0
        } else {
            encoding::int64::encoded_len(1, &self.num)
        };
        let uuid = if self.uuid.is_empty() {
            0
        } else {
            encoding::string::encoded_len(19, &self.uuid)
        };
        num + uuid
            + self
                .record_type
                .as_ref()
                .map_or(0, record::RecordType::encoded_len)
            + self
                .control
                .as_ref()
                .map_or(0, |control| encoding::message::encoded_len(16, control))
            + self
                .info
                .as_ref()
                .map_or(0, |info| encoding::message::encoded_len(200, info))
    }

    fn clear(&mut self) {
        self.num = 0;
        self.record_type = None;
        self.control = None;
        self.uuid.clear();
        self.info = None;
    }
}
"""


def main() -> int:
    if wandb.__version__ != SDK_VERSION:
        print(f"installed wandb is {wandb.__version__}, expected {SDK_VERSION}", file=sys.stderr)
        return 1
    generator = Generator()
    text = generator.generate()
    OUT_PATH.write_text(text)
    print(
        f"wrote {OUT_PATH}: {generator.n_structs} messages, {generator.n_enums} enums, "
        f"{generator.n_oneofs} oneofs; structs with #[allow(missing_docs)]: {len(generator.undocumented)}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
