"""The protobuf wire format, by hand: enough for tf.train.Example and TF checkpoint entries.

Writing TFRecords and reading or writing TF checkpoints needs only a few
messages; encoding them here spares generated classes (and TensorFlow).
Proto3 leaves fields at their default value out, and so does `field`'s caller.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5  # wire types


def encode_varint(value: int) -> bytes:
    """Base-128, least significant group first; a negative int64 as its 64-bit two's complement."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def field(number: int, value: int | bytes, wire_type: int | None = None) -> bytes:
    """One field: an int as a varint (or FIXED32 when asked), bytes length-delimited."""
    if isinstance(value, bytes):
        return encode_varint(number << 3 | LENGTH_DELIMITED) + encode_varint(len(value)) + value
    if wire_type == FIXED32:
        return encode_varint(number << 3 | FIXED32) + value.to_bytes(4, "little")
    return encode_varint(number << 3 | VARINT) + encode_varint(value)


def read_varint(data: bytes, position: int) -> tuple[int, int]:
    """(value, position after it)."""
    value = shift = 0
    while True:
        if position >= len(data):
            raise IndexError("varint runs past the end")
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, position
        shift += 7


def fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    """(field number, value) of each field: ints for varint and fixed fields, bytes for the rest."""
    position = 0
    while position < len(message):
        tag, position = read_varint(message, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == VARINT:
            value, position = read_varint(message, position)
        elif wire_type == FIXED64:
            value, position = int.from_bytes(message[position:position + 8], "little"), position + 8
        elif wire_type == LENGTH_DELIMITED:
            length, position = read_varint(message, position)
            value, position = message[position:position + length], position + length
        elif wire_type == FIXED32:
            value, position = int.from_bytes(message[position:position + 4], "little"), position + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire_type}")
        if position > len(message):
            raise IndexError("field runs past the end")
        yield number, value
