"""Read and write .safetensors files without the safetensors package.

Format: an 8-byte little-endian unsigned header length N, then N bytes of
JSON mapping each tensor name to {"dtype", "shape", "data_offsets": [begin,
end]} (offsets relative to the end of the header), plus an optional
"__metadata__" object of string -> string, then the raw little-endian,
row-major tensor bytes. Offsets must tile the data region exactly.
"""
import json
import struct
from collections import OrderedDict

import numpy as np
import torch

# name in the file -> (torch dtype, bytes per element)
_DTYPES = OrderedDict([
    ("F64", (torch.float64, 8)),
    ("F32", (torch.float32, 4)),
    ("F16", (torch.float16, 2)),
    ("BF16", (torch.bfloat16, 2)),
    ("I64", (torch.int64, 8)),
    ("I32", (torch.int32, 4)),
    ("I16", (torch.int16, 2)),
    ("I8", (torch.int8, 1)),
    ("U8", (torch.uint8, 1)),
    ("BOOL", (torch.bool, 1)),
])
_BY_TORCH = {v[0]: k for k, v in _DTYPES.items()}

MAX_HEADER = 100 * 1024 * 1024


def dtype_name(t):
    """The safetensors dtype string of a torch tensor."""
    if t.dtype not in _BY_TORCH:
        raise ValueError(f"dtype {t.dtype} cannot be stored in safetensors")
    return _BY_TORCH[t.dtype]


def _tensor_bytes(t):
    t = t.detach().cpu().contiguous()
    if t.dtype == torch.bfloat16:
        # numpy has no bfloat16: reinterpret the 16-bit patterns.
        return t.view(torch.int16).numpy().astype("<i2").tobytes()
    arr = t.numpy()
    return arr.astype(arr.dtype.newbyteorder("<")).tobytes()


def save_file(tensors, path, metadata=None):
    """Write a dict name -> torch.Tensor to path; each tensor keeps its dtype.

    Tensors are stored in sorted name order. metadata: optional dict of
    str -> str written as "__metadata__".
    """
    header = OrderedDict()
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs = []
    off = 0
    for name in sorted(tensors):
        t = tensors[name]
        b = _tensor_bytes(t)
        header[name] = {"dtype": dtype_name(t), "shape": list(t.shape),
                        "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((8 - len(hj) % 8) % 8)  # align the data region to 8 bytes
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for b in blobs:
            f.write(b)


def read_header(path):
    """(header dict without __metadata__, metadata dict, data start offset)."""
    with open(path, "rb") as f:
        raw = f.read(8)
        if len(raw) != 8:
            raise ValueError(f"{path}: shorter than a safetensors header")
        (n,) = struct.unpack("<Q", raw)
        if n > MAX_HEADER:
            raise ValueError(f"{path}: header of {n} bytes is implausibly large")
        hj = f.read(n)
        if len(hj) != n:
            raise ValueError(f"{path}: truncated header")
    header = json.loads(hj.decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    return header, meta, 8 + n


def load_file(path, with_metadata=False):
    """Read every tensor of a .safetensors file into an OrderedDict of tensors.

    Checks that offsets tile the data region and agree with dtype and shape.
    """
    header, meta, start = read_header(path)
    with open(path, "rb") as f:
        f.seek(start)
        data = f.read()
    spans = []
    out = OrderedDict()
    for name, info in header.items():
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has unsupported dtype {dt}")
        tdtype, size = _DTYPES[dt]
        shape = [int(s) for s in info["shape"]]
        b, e = info["data_offsets"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if e - b != count * size or e > len(data) or b < 0:
            raise ValueError(f"{path}: tensor {name} offsets {b}..{e} disagree with "
                             f"{dt}{shape} or the file size")
        spans.append((b, e))
        buf = bytearray(data[b:e])
        if tdtype == torch.bfloat16:
            t = torch.frombuffer(buf, dtype=torch.int16).view(torch.bfloat16) if count else \
                torch.empty(0, dtype=torch.bfloat16)
        elif count:
            t = torch.frombuffer(buf, dtype=tdtype)
        else:
            t = torch.empty(0, dtype=tdtype)
        out[name] = t.reshape(shape).clone()
    spans.sort()
    pos = 0
    for b, e in spans:
        if b != pos:
            raise ValueError(f"{path}: data region has a gap or overlap at byte {pos}")
        pos = e
    if pos != len(data):
        raise ValueError(f"{path}: {len(data) - pos} trailing bytes after the last tensor")
    if with_metadata:
        return out, meta
    return out
