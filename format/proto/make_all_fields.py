#!/usr/bin/env python3
"""Write one `Record` per record type, with every field set, as round-trip fixtures.

Uses the installed SDK's own protobuf classes (`wandb.proto.wandb_internal_pb2`), so
the bytes are exactly what the SDK would write. `tests/proto_all_fields.rs` decodes
each file with `wandb_format::proto::Record`, re-encodes it, and expects the same
bytes: a field with a wrong number or wire type would be dropped as unknown or fail
to decode, and the bytes would differ.

Run from the repository root with the SDK's virtualenv:

    .venv/bin/python format/proto/make_all_fields.py

Output: `format/tests/fixtures/all_fields/<record type>.bin` for every member of the
`record_type` oneof except `request` (never written to files), plus two extra
fixtures, `tbrecord_optional_zero.bin` and `environment_optional_zero.bin`, in which
the proto3 `optional` fields hold zero values (present, but default).

How fields are filled (the Rust test relies on some of these values):

- Every field is set to a non-default value, recursively; the record-level `control`,
  `uuid` and `_info` fields are set too.
- Strings are `"<field>-<index>"`, plus a non-ASCII suffix on the first element.
- Integers are chosen so that a wrong integer type changes the bytes on re-encoding:
  64-bit fields hold values above 2^32 (negative for signed types), `int32`/`sint32`
  fields hold negative values (10-byte varints), and `uint32` fields hold values
  above 2^31. See `scalar_value`.
- Enums take their highest value (non-zero whenever the enum has one).
- Repeated fields get two elements, or one element per oneof member when the element
  type has a oneof, so that every oneof member appears at least once.
- Maps get one entry (one entry keeps the bytes independent of map ordering).
- In every other message with a oneof, the first member is set.
"""

from __future__ import annotations

import sys
from pathlib import Path

import wandb
from google.protobuf import descriptor_pb2
from wandb.proto import wandb_internal_pb2

SDK_VERSION = "0.31.0"
OUT_DIR = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "all_fields"

FDP = descriptor_pb2.FieldDescriptorProto
EXCLUDED_FIELDS = {("wandb_internal.Record", "request")}


def proto3_optional_names(message_descriptor) -> set[str]:
    proto = descriptor_pb2.DescriptorProto()
    message_descriptor.CopyToProto(proto)
    return {f.name for f in proto.field if f.proto3_optional}


def real_oneofs(message_descriptor):
    """Oneofs that are not the synthetic ones proto3 `optional` creates."""
    optional = proto3_optional_names(message_descriptor)
    return [
        o for o in message_descriptor.oneofs
        if not (len(o.fields) == 1 and o.fields[0].name in optional)
    ]


def oneof_members(message_descriptor, oneof):
    return [f for f in oneof.fields if (message_descriptor.full_name, f.name) not in EXCLUDED_FIELDS]


def scalar_value(field, index: int, zero: bool = False):
    """A non-default value for a scalar field; `index` varies repeated elements."""
    number = field.number + index
    t = field.type
    if zero:
        return {FDP.TYPE_STRING: "", FDP.TYPE_BYTES: b"", FDP.TYPE_BOOL: False,
                FDP.TYPE_DOUBLE: 0.0, FDP.TYPE_FLOAT: 0.0}.get(t, 0)
    if t == FDP.TYPE_STRING:
        return f"{field.name}-{index}" + (" \u00e9\u2603" if index == 0 else "")
    if t == FDP.TYPE_BYTES:
        return f"{field.name}-{index}".encode() + b"\x00\xff"
    if t == FDP.TYPE_BOOL:
        return True
    if t in (FDP.TYPE_DOUBLE, FDP.TYPE_FLOAT):
        return 0.5 + number  # exact in float32 too
    if t in (FDP.TYPE_INT64, FDP.TYPE_SINT64, FDP.TYPE_SFIXED64):
        return -(2**40 + number)
    if t in (FDP.TYPE_UINT64, FDP.TYPE_FIXED64):
        return 2**40 + number
    if t in (FDP.TYPE_INT32, FDP.TYPE_SINT32, FDP.TYPE_SFIXED32):
        return -(1000 + number)
    if t in (FDP.TYPE_UINT32, FDP.TYPE_FIXED32):
        return 2**31 + number
    if t == FDP.TYPE_ENUM:
        return max(v.number for v in field.enum_type.values)
    raise SystemExit(f"unhandled type {t} for {field.full_name}")


def n_elements(field) -> int:
    """Two elements, or one per oneof member of the element type."""
    n = 2
    if field.message_type is not None:
        for oneof in real_oneofs(field.message_type):
            n = max(n, len(oneof_members(field.message_type, oneof)))
    return n


def fill(message, variant: int = 0, zero_optionals: bool = False) -> None:
    """Set every field of `message`; in each real oneof, set member `variant` (mod count).

    `variant` also varies the scalar values, so repeated elements differ.
    """
    descriptor = message.DESCRIPTOR
    if descriptor.full_name == "google.protobuf.Timestamp":
        message.seconds = 1_700_000_000 + variant
        message.nanos = 123_456_789
        return
    if descriptor.full_name == "google.protobuf.Empty":
        return
    optional = proto3_optional_names(descriptor)
    chosen = set()
    for oneof in real_oneofs(descriptor):
        members = oneof_members(descriptor, oneof)
        chosen.add(members[variant % len(members)].name)
    oneof_fields = {f.name for o in real_oneofs(descriptor) for f in o.fields}

    for field in descriptor.fields:
        if (descriptor.full_name, field.name) in EXCLUDED_FIELDS:
            continue
        if field.name in oneof_fields and field.name not in chosen:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            fill_map_entry(message, field)
        elif field.is_repeated and field.type == FDP.TYPE_MESSAGE:
            container = getattr(message, field.name)
            for index in range(n_elements(field)):
                fill(container.add(), index, zero_optionals)
        elif field.is_repeated:
            getattr(message, field.name).extend(scalar_value(field, variant + i) for i in range(2))
        elif field.type == FDP.TYPE_MESSAGE:
            child = getattr(message, field.name)
            child.SetInParent()  # marks presence even when the child stays empty
            fill(child, variant, zero_optionals)
        else:
            zero = zero_optionals and field.name in optional
            setattr(message, field.name, scalar_value(field, variant, zero=zero))


def fill_map_entry(message, field) -> None:
    entry = field.message_type
    key = scalar_value(entry.fields_by_name["key"], 0)
    value_field = entry.fields_by_name["value"]
    container = getattr(message, field.name)
    if value_field.type == FDP.TYPE_MESSAGE:
        fill(container[key])
    else:
        container[key] = scalar_value(value_field, 0)


def make_record(record_type: str, zero_optionals: bool = False):
    record = wandb_internal_pb2.Record()
    fill(record, zero_optionals=zero_optionals)  # num, control, uuid, _info, and member 0 of the oneof
    record.ClearField("record_type")
    getattr(record, record_type).SetInParent()
    fill(getattr(record, record_type), zero_optionals=zero_optionals)
    assert record.WhichOneof("record_type") == record_type
    return record


def main() -> int:
    if wandb.__version__ != SDK_VERSION:
        print(f"installed wandb is {wandb.__version__}, expected {SDK_VERSION}", file=sys.stderr)
        return 1
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    descriptor = wandb_internal_pb2.Record.DESCRIPTOR
    fixtures = {}
    for field in oneof_members(descriptor, descriptor.oneofs_by_name["record_type"]):
        fixtures[field.name] = make_record(field.name)
    fixtures["tbrecord_optional_zero"] = make_record("tbrecord", zero_optionals=True)
    fixtures["environment_optional_zero"] = make_record("environment", zero_optionals=True)

    for old in OUT_DIR.glob("*.bin"):
        old.unlink()
    for name, record in fixtures.items():
        data = record.SerializeToString()
        (OUT_DIR / f"{name}.bin").write_bytes(data)
        print(f"{name}.bin: {len(data)} bytes", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
