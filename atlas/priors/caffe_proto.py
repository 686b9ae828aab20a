"""Just enough of Caffe's protobuf format to read (and write) a `.caffemodel`'s weights.

Reads NetParameter.layer (field 100: LayerParameter name=1, type=2, blobs=7) and the
legacy NetParameter.layers (field 2: V1LayerParameter name=4, type=5 enum, blobs=6);
BlobProto shape=7 (BlobShape dim=1), data=5 (packed or not), double_data=8, and the
legacy num/channels/height/width=1..4. No dependency on Caffe or on protobuf.
`write_caffemodel` writes the same layout (the tests use it to make a release-shaped file).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

V1_TYPES = {4: "Convolution", 39: "Deconvolution", 14: "InnerProduct"}
V1_CODES = {v: k for k, v in V1_TYPES.items()}


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    """Yield (field_number, wire_type, value) of one message; value is int or bytes."""
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {wire} (field {field})")
        if pos > len(buf):
            raise ValueError("truncated protobuf message")
        yield field, wire, value


def _blob(buf: bytes) -> np.ndarray:
    shape: list[int] = []
    legacy = {1: 0, 2: 0, 3: 0, 4: 0}
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    for field, wire, value in _fields(buf):
        if field == 7 and wire == 2:
            for f, w, v in _fields(value):
                if f == 1 and w == 2:  # packed int64
                    p = 0
                    while p < len(v):
                        d, p = _varint(v, p)
                        shape.append(d)
                elif f == 1 and w == 0:
                    shape.append(v)
        elif field == 5:
            floats.append(np.frombuffer(value, dtype="<f4"))
        elif field == 8:
            doubles.append(np.frombuffer(value, dtype="<f8"))
        elif field in legacy and wire == 0:
            legacy[field] = value
    data = np.concatenate(floats) if floats else (np.concatenate(doubles) if doubles else np.zeros(0))
    if not shape:
        shape = [d for d in (legacy[1], legacy[2], legacy[3], legacy[4])]
        while len(shape) > 1 and shape[0] == 1 and int(np.prod(shape[1:])) == data.size:
            shape = shape[1:]  # legacy blobs pad with leading 1s (e.g. 1x1xOUTxIN for fc weights)
    if int(np.prod(shape)) != data.size:
        raise ValueError(f"blob shape {shape} does not match its {data.size} values")
    return data.astype(np.float32).reshape(shape)


def read_caffemodel(path: str | Path) -> dict[str, tuple[str, list[np.ndarray]]]:
    """{layer name: (layer type, [blobs])} for every layer that has weights."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"caffemodel not found: {path}")
    buf = path.read_bytes()
    layers: dict[str, tuple[str, list[np.ndarray]]] = {}
    try:
        for field, wire, value in _fields(buf):
            if wire != 2 or field not in (100, 2):
                continue
            name, kind, blobs = "", "", []
            for f, w, v in _fields(value):
                if field == 100:
                    if f == 1:
                        name = v.decode()
                    elif f == 2:
                        kind = v.decode()
                    elif f == 7:
                        blobs.append(_blob(v))
                else:
                    if f == 4:
                        name = v.decode()
                    elif f == 5 and w == 0:
                        kind = V1_TYPES.get(v, str(v))
                    elif f == 6:
                        blobs.append(_blob(v))
            if blobs:
                layers[name] = (kind, blobs)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path} is not a readable caffemodel: {exc}") from exc
    if not layers:
        raise ValueError(f"{path} holds no layer with weights (is it a caffemodel?)")
    return layers


def _key(field: int, wire: int) -> bytes:
    return _enc_varint((field << 3) | wire)


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _ld(field: int, payload: bytes) -> bytes:
    return _key(field, 2) + _enc_varint(len(payload)) + payload


def write_caffemodel(path: str | Path, layers: dict[str, tuple[str, list[np.ndarray]]],
                     legacy: bool = False, name: str = "net") -> None:
    """Write layers in the caffemodel layout (new `layer` format, or V1 `layers`)."""
    out = bytearray(_ld(1, name.encode()))
    for lname, (kind, blobs) in layers.items():
        blob_msgs = []
        for b in blobs:
            b = np.asarray(b, dtype="<f4")
            shape = b"".join(_enc_varint(d) for d in b.shape)
            blob_msgs.append(_ld(7, _ld(1, shape)) + _ld(5, b.tobytes()))
        if legacy:
            msg = _ld(4, lname.encode()) + _key(5, 0) + _enc_varint(V1_CODES[kind])
            msg += b"".join(_ld(6, m) for m in blob_msgs)
            out += _ld(2, msg)
        else:
            msg = _ld(1, lname.encode()) + _ld(2, kind.encode()) + b"".join(_ld(7, m) for m in blob_msgs)
            out += _ld(100, msg)
    Path(path).write_bytes(bytes(out))

