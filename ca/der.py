"""The little DER (X.690) the prototype minting needs: encode a TLV, split a SEQUENCE."""

from __future__ import annotations

SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
BIT_STRING = 0x03
OCTET_STRING = 0x04
OID = 0x06
UTF8_STRING = 0x0C
PRINTABLE_STRING = 0x13


def length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(body),)) + body


def tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:  # the common cases inline: this runs ten times per minted device
        return bytes((tag, n)) + value
    if n < 0x100:
        return bytes((tag, 0x81, n)) + value
    if n < 0x10000:
        return bytes((tag, 0x82, n >> 8, n & 0xFF)) + value
    return bytes((tag,)) + length(n) + value


def integer(n: int) -> bytes:
    """A non-negative INTEGER in minimal two's complement."""
    body = n.to_bytes(n.bit_length() // 8 + 1, "big")  # one spare bit keeps it positive
    if len(body) > 1 and body[0] == 0 and body[1] < 0x80:
        body = body[1:]
    return tlv(INTEGER, body)


def read_tlv(data: bytes, offset: int = 0) -> tuple[int, int, int]:
    """``(tag, value_start, value_end)`` of the element at ``offset``."""
    tag = data[offset]
    first = data[offset + 1]
    if first < 0x80:
        return tag, offset + 2, offset + 2 + first
    count = first & 0x7F
    size = int.from_bytes(data[offset + 2 : offset + 2 + count], "big")
    start = offset + 2 + count
    return tag, start, start + size


def children(data: bytes) -> list[bytes]:
    """The encoded elements inside the constructed element ``data`` (tag and length included)."""
    _tag, start, end = read_tlv(data)
    items = []
    offset = start
    while offset < end:
        _t, _s, item_end = read_tlv(data, offset)
        items.append(data[offset:item_end])
        offset = item_end
    return items
