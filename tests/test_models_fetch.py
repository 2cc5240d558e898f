"""`ward models fetch|verify|list` against a real local HTTP server (the official files cannot be
downloaded here, so the expected-hash table is pointed at files generated in tmp_path)."""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ward.vision import official_weights as ow
from ward.vision.models_cli import register


def blob_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class Server:
    """Serves ``files`` (url path -> bytes); paths in ``truncate`` get a Content-Length larger than
    the body and the connection is closed half way."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.truncate: set[str] = set()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server API)
                body = outer.files.get(self.path)
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                if self.path in outer.truncate:
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/repo/raw/main"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def put(self, name: str, data: bytes) -> None:
        self.files[f"/repo/raw/main/{name}"] = data

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


@pytest.fixture
def official(monkeypatch) -> dict[str, bytes]:
    """Generated stand-ins for the three official files; the hash table now expects them."""
    contents = {name: os.urandom(size) for name, size in
                (("pose.pth", 300_000), ("VSViG-base.pth", 2_500_000), ("dy_point_order.pt", 38_140))}
    table = {name: ow.OfficialFile(name, blob_sha1(data), len(data), name, "test")
             for name, data in contents.items()}
    monkeypatch.setattr(ow, "OFFICIAL_FILES", table)
    monkeypatch.delenv("WARD_OFFICIAL_BASE_URL", raising=False)
    return contents


def leftovers(dest: Path) -> list[str]:
    return sorted(p.name for p in dest.iterdir() if p.name.startswith("."))


def test_git_blob_sha1_matches_official_file_and_git(fixtures_dir: Path, tmp_path: Path) -> None:
    real = fixtures_dir / "dy_point_order.pt"
    assert ow.git_blob_sha1(real) == ow.OFFICIAL_FILES["dy_point_order.pt"].blob_sha1
    assert ow.git_blob_sha1(real, chunk_size=997) == ow.OFFICIAL_FILES["dy_point_order.pt"].blob_sha1
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert ow.git_blob_sha1(empty) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
    if shutil.which("git"):
        out = subprocess.run(["git", "hash-object", str(real)], capture_output=True, text=True, check=True)
        assert out.stdout.strip() == ow.git_blob_sha1(real)


def test_verify_real_official_entry(fixtures_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "official"
    dest.mkdir()
    (dest / "dy_point_order.pt").symlink_to(fixtures_dir / "dy_point_order.pt")
    (res,) = ow.verify(dest, names=["dy_point_order.pt"])
    assert res.ok and res.size == 38140
    missing = {r.name: r for r in ow.verify(dest)}
    assert not missing["pose.pth"].present and not missing["pose.pth"].ok


def test_fetch_right_files(server: Server, official: dict[str, bytes], tmp_path: Path) -> None:
    for name, data in official.items():
        server.put(name, data)
    dest = tmp_path / "models" / "official"
    seen: list[tuple[str, int]] = []
    results = ow.fetch(dest, server.url, timeout=10, progress=lambda n, got, total: seen.append((n, got)))
    assert all(r.ok for r in results) and len(results) == 3
    for name, data in official.items():
        assert (dest / name).read_bytes() == data
    assert leftovers(dest) == []
    assert {n for n, _ in seen} == set(official)
    assert all(r.ok for r in ow.verify(dest))
    # Second run keeps the verified files without downloading.
    server.files.clear()
    again = ow.fetch(dest, server.url, timeout=10)
    assert all(r.ok and "already present" in r.message for r in again)


def test_fetch_wrong_file_rejected(server: Server, official: dict[str, bytes], tmp_path: Path) -> None:
    for name, data in official.items():
        server.put(name, data)
    bad = os.urandom(len(official["pose.pth"]))
    server.put("pose.pth", bad)
    dest = tmp_path / "official"
    with pytest.raises(ow.OfficialWeightsError) as info:
        ow.fetch(dest, server.url, timeout=10)
    msg = str(info.value)
    assert ow.OFFICIAL_FILES["pose.pth"].blob_sha1 in msg and blob_sha1(bad) in msg
    assert not (dest / "pose.pth").exists()
    assert leftovers(dest) == []
    # The other files were still placed and verified.
    by_name = {r.name: r for r in info.value.results}
    assert not by_name["pose.pth"].ok and by_name["VSViG-base.pth"].ok
    assert (dest / "VSViG-base.pth").read_bytes() == official["VSViG-base.pth"]


def test_fetch_lfs_pointer_is_named(server: Server, official: dict[str, bytes], tmp_path: Path) -> None:
    server.put("pose.pth", b"version https://git-lfs.github.com/spec/v1\noid sha256:00\nsize 49360687\n")
    with pytest.raises(ow.OfficialWeightsError, match="Git LFS pointer"):
        ow.fetch(tmp_path, server.url, timeout=10, names=["pose.pth"])
    assert not (tmp_path / "pose.pth").exists()


def test_fetch_truncated_download_rejected(server: Server, official: dict[str, bytes], tmp_path: Path) -> None:
    server.put("VSViG-base.pth", official["VSViG-base.pth"])
    server.truncate.add("/repo/raw/main/VSViG-base.pth")
    dest = tmp_path / "official"
    with pytest.raises(ow.OfficialWeightsError) as info:
        ow.fetch(dest, server.url, timeout=10, names=["VSViG-base.pth"])
    msg = str(info.value)
    assert "truncated" in msg
    body = official["VSViG-base.pth"]
    # Both hashes: the expected one and the one of what actually arrived (the first half).
    assert ow.OFFICIAL_FILES["VSViG-base.pth"].blob_sha1 in msg
    assert blob_sha1(body[: len(body) // 2]) in msg
    assert not (dest / "VSViG-base.pth").exists()
    assert leftovers(dest) == []


def test_fetch_no_server_explains_manual_install(official: dict[str, bytes], tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dest = tmp_path / "official"
    with pytest.raises(ow.OfficialWeightsError) as info:
        ow.fetch(dest, f"http://127.0.0.1:{port}/raw/main", timeout=5)
    msg = str(info.value)
    assert "cannot reach" in msg and "by hand" in msg
    assert str(dest.resolve()) in msg
    for name, f in ow.OFFICIAL_FILES.items():
        assert name in msg and f.blob_sha1 in msg
    assert "ward models verify" in msg and "git hash-object" in msg
    assert [p for p in dest.iterdir()] == []


def test_base_url_from_environment(monkeypatch) -> None:
    monkeypatch.setenv("WARD_OFFICIAL_BASE_URL", "http://mirror.local/vsvig/")
    assert ow.OFFICIAL_FILES["pose.pth"].url() == "http://mirror.local/vsvig/pose.pth"
    assert ow.OFFICIAL_FILES["pose.pth"].url("http://x/y") == "http://x/y/pose.pth"
    monkeypatch.delenv("WARD_OFFICIAL_BASE_URL")
    assert ow.OFFICIAL_FILES["pose.pth"].url() == "https://github.com/xuyankun/VSViG/raw/main/pose.pth"


# -- CLI --------------------------------------------------------------------------------------------

def cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """test root"""

    register(app)
    return app


def place(dest: Path, official: dict[str, bytes]) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name, data in official.items():
        (dest / name).write_bytes(data)


def test_cli_verify(official: dict[str, bytes], tmp_path: Path) -> None:
    dest = tmp_path / "official"
    place(dest, official)
    runner = CliRunner()
    ok = runner.invoke(cli(), ["models", "verify", "--dest", str(dest)])
    assert ok.exit_code == 0, ok.output
    assert ok.output.count("yes") >= 6  # present + sha1 ok for three files
    (dest / "dy_point_order.pt").write_bytes(b"corrupt")
    bad = runner.invoke(cli(), ["models", "verify", "--dest", str(dest)])
    assert bad.exit_code == 1
    assert "NO" in bad.output and "by hand" in bad.output
    (dest / "pose.pth").unlink()
    missing = runner.invoke(cli(), ["models", "verify", "--dest", str(dest)])
    assert missing.exit_code == 1 and "missing" in missing.output


def test_cli_list_shows_configs(official: dict[str, bytes], tmp_path: Path) -> None:
    dest = tmp_path / "models" / "official"
    place(dest, {"pose.pth": official["pose.pth"]})
    (dest / "notes.txt").write_text("mine")
    configs = tmp_path / "serve_configs"
    configs.mkdir()
    (configs / "ward.yaml").write_text("pose:\n  weights: models/official/pose.pth\n")
    (configs / "other.yaml").write_text("pose:\n  weights: models/official/my_pose.pth\n")
    rows = {r.name: r for r in ow.list_installed(dest, configs)}
    assert rows["pose.pth"].ok and rows["pose.pth"].used_by == [str(configs / "ward.yaml")]
    assert not rows["VSViG-base.pth"].present and rows["VSViG-base.pth"].used_by == []
    assert rows["notes.txt"].expected_sha1 == "" and rows["notes.txt"].present
    res = CliRunner().invoke(cli(), ["models", "list", "--dest", str(dest), "--configs", str(configs)])
    assert res.exit_code == 0, res.output
    pose_line = next(line for line in res.output.splitlines() if "pose.pth" in line and "VSViG" not in line)
    assert "serve_configs/ward.yaml" in pose_line and "yes" in pose_line
    assert "other.yaml" not in res.output


def test_cli_fetch_failure_exit_code(official: dict[str, bytes], tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = CliRunner().invoke(cli(), ["models", "fetch", "--dest", str(tmp_path / "o"),
                                     "--base-url", f"http://127.0.0.1:{port}", "--timeout", "5"])
    assert res.exit_code == 1
    assert "by hand" in res.output


def test_lfs_object_hash_is_an_accepted_identity(server: Server, official: dict[str, bytes], tmp_path: Path,
                                                  monkeypatch) -> None:
    """If GitHub serves the LFS object named by the repository's pointer, it verifies by its sha256."""
    data = official["pose.pth"]
    entry = ow.OFFICIAL_FILES["pose.pth"]
    table = dict(ow.OFFICIAL_FILES)
    table["pose.pth"] = ow.OfficialFile("pose.pth", "0" * 40, entry.size, "pose.pth", "test",
                                        hashlib.sha256(data).hexdigest())
    monkeypatch.setattr(ow, "OFFICIAL_FILES", table)
    server.put("pose.pth", data)
    (res,) = ow.fetch(tmp_path, server.url, timeout=10, names=["pose.pth"])
    assert res.ok and "LFS object" in res.message
    assert (tmp_path / "pose.pth").read_bytes() == data
    (tmp_path / "pose.pth").write_bytes(data[:-1])
    (bad,) = ow.verify(tmp_path, names=["pose.pth"])
    assert not bad.ok and "0" * 40 in bad.message
