"""Shared helpers of the training scripts: fast BLAS, data, checkpoints, logs.

Debian's python3-torch links the reference BLAS (libblas3), whose matrix
product runs at about 1.6 GFLOP/s here; OpenBLAS (libopenblas0-openmp) is
about 15x faster. We do not switch the system-wide BLAS alternative (other
programs on the machine keep what they have); instead each training script
re-executes itself once with OpenBLAS first on LD_LIBRARY_PATH.
"""
import csv
import datetime
import json
import os
import random
import sys
import time

import numpy as np
import torch

OPENBLAS_DIR = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def use_fast_blas():
    if os.path.isdir(OPENBLAS_DIR) and OPENBLAS_DIR not in os.environ.get("LD_LIBRARY_PATH", ""):
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = OPENBLAS_DIR + ":" + env.get("LD_LIBRARY_PATH", "")
        env.setdefault("OMP_NUM_THREADS", "2")
        # Other jobs share the two cores: spinning OpenMP workers would steal
        # the time slices they wait for (measured: 3-10x slower under load).
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        os.execve(sys.executable, [sys.executable] + sys.argv, env)


def setup(seed, threads=2):
    sys.path.insert(0, ROOT)
    torch.set_num_threads(threads)
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)


def load_dataset(stem):
    """-> uint8 images (N, S, S, 3), records (list of dicts)."""
    images = np.load(stem + ".npz")["images"]
    with open(stem + ".json", encoding="utf-8") as f:
        meta = json.load(f)
    return images, meta["records"]


def to_tensor(images_u8):
    """(N, S, S, 3) uint8 -> (N, 3, S, S) float in [-1, 1]."""
    return torch.from_numpy(images_u8).permute(0, 3, 1, 2).float().div(127.5).sub(1.0).contiguous()


def save_ckpt(path, **state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


class CsvLog:
    def __init__(self, path, fields):
        new = not os.path.exists(path)
        self.f = open(path, "a", newline="")
        self.w = csv.writer(self.f)
        if new:
            self.w.writerow(fields)
        self.t0 = time.time()

    def row(self, *vals):
        self.w.writerow(vals)
        self.f.flush()


def parse_until(s):
    """'HH:MM' (UTC, today) -> a time.time() deadline; '' -> None."""
    if not s:
        return None
    now = datetime.datetime.utcnow()
    hh, mm = map(int, s.split(":"))
    t = now.replace(hour=hh, minute=mm, second=0, microsecond=0)
    return t.timestamp() - now.timestamp() + time.time()
