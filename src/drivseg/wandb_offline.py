"""Read a W&B offline run back without an account: ``RUN/wandb/offline-run-*/run-<id>.wandb``.

The file is W&B's transaction log: a LevelDB-style log (32 KiB blocks of records with a 7-byte
header: CRC32, length, type FULL/FIRST/MIDDLE/LAST) of ``wandb.proto.wandb_internal_pb2.Record``
messages, behind a 7-byte file header (``:W&B``, magic 0xBEE1, version 0). ``read_offline_run``
turns it into plain values: the run record, config, history rows, the last summary, the metric
definitions, artifacts. Used by the tests (a run's dashboard is checked from what W&B will upload)
and by anyone who wants an offline run's numbers in a notebook.
"""

from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

BLOCK = 32768
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
FILE_IDENT = b":W&B"


@dataclass
class OfflineRun:
    """What an offline run file holds, as plain Python values."""

    path: Path
    run_id: str = ""
    project: str = ""
    group: str = ""
    job_type: str = ""
    sweep_id: str = ""
    resumed: bool = False
    config: dict = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    metrics: dict[str, dict] = field(default_factory=dict)  # name -> {"step_metric", "summary": [...]}
    artifacts: list[dict] = field(default_factory=list)  # {"name", "type", "aliases", "metadata"}

    def values(self, key: str) -> list:
        """Every value logged under ``key`` (history rows that hold it, in order)."""
        return [row[key] for row in self.history if key in row]


def raw_records(path: Path) -> Iterator[bytes]:
    """The serialized records of a ``.wandb`` file, in order."""
    data = Path(path).read_bytes()
    if data[:4] != FILE_IDENT:
        raise ValueError(f"{path} is not a W&B run file (header {data[:4]!r})")
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        left = BLOCK - pos % BLOCK
        if left < HEADER:  # a block's tail too short for a header is zero padding
            pos += left
            continue
        checksum, length, kind = struct.unpack("<IHB", data[pos:pos + HEADER])
        pos += HEADER
        chunk = data[pos:pos + length]
        pos += length
        if kind == 0 and length == 0:  # preallocated, never written
            break
        if len(chunk) < length or zlib.crc32(chunk, zlib.crc32(bytes([kind]))) & 0xFFFFFFFF != checksum:
            break  # a process killed while writing leaves a partial last record: what came before is whole
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk
            pending = b""


def _key(item) -> tuple[str, ...]:
    return tuple(item.nested_key) if len(item.nested_key) else (item.key,)


def _set(target: dict, key: tuple[str, ...], value: Any) -> None:
    for part in key[:-1]:
        target = target.setdefault(part, {})
    old = target.get(key[-1])
    if isinstance(old, dict) and isinstance(value, dict):  # W&B updates nested config keys piecewise
        for k, v in value.items():
            _set(old, (k,), v)
    else:
        target[key[-1]] = value


def read_offline_run(path: Path) -> OfflineRun:
    """Parse one ``run-<id>.wandb`` file (or the ``offline-run-*`` folder holding it)."""
    from wandb.proto import wandb_internal_pb2 as pb

    path = Path(path)
    if path.is_dir():
        path = next(path.glob("run-*.wandb"))
    run = OfflineRun(path)
    for raw in raw_records(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.group, run.job_type = r.run_id, r.project, r.run_group, r.job_type
            run.sweep_id, run.resumed = r.sweep_id, bool(r.resumed)
            for item in r.config.update:
                _set(run.config, _key(item), json.loads(item.value_json))
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, _key(item), json.loads(item.value_json))
        elif kind == "history":
            row: dict = {}
            for item in record.history.item:
                key = _key(item)
                # top-level metric names may contain "/" (val/mIoU): keep them whole
                _set(row, ("/".join(key),) if len(key) == 1 else key, json.loads(item.value_json))
            run.history.append(row)
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, _key(item), json.loads(item.value_json))
        elif kind == "metric":
            m = record.metric
            summary = [name for name in ("min", "max", "mean", "last", "best", "first") if getattr(m.summary, name, False)]
            run.metrics[m.name or m.glob_name] = {"step_metric": m.step_metric, "summary": summary}
        elif kind == "artifact":
            a = record.artifact
            run.artifacts.append({"name": a.name, "type": a.type, "aliases": list(a.aliases),
                                  "metadata": json.loads(a.metadata) if a.metadata else {},
                                  "files": [e.path for e in a.manifest.contents]})
    return run


def offline_runs(run_dir: Path) -> list[OfflineRun]:
    """Every offline run under ``RUN/wandb/``, oldest first (a resumed run has one piece per part)."""
    return [read_offline_run(p) for p in sorted(Path(run_dir).glob("wandb/offline-run-*/run-*.wandb"))]
