"""The official VSViG release files: where they come from, how to fetch them, how to check them.

The authors publish three files at the root of github.com/xuyankun/VSViG (branch main):
``pose.pth`` (Lightweight OpenPose fine-tuned on patients), ``VSViG-base.pth`` and
``dy_point_order.pt`` (the dynamic partition orders). ward never ships them: the user fetches them
into ``models/official/`` and every file is checked against its **git blob SHA-1**
(``sha1(b"blob <size>\\0" + content)``, what ``git hash-object FILE`` prints), so a copy obtained
any other way can be verified the same way.

The repository stores the two ``.pth`` files with Git LFS; GitHub's ``/raw/`` URL redirects to the
LFS content, which :func:`fetch` follows. A downloaded LFS *pointer* (a ~130-byte text file) is
recognised and reported as such.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import httpx

REPO_URL = "https://github.com/xuyankun/VSViG"
DEFAULT_BASE_URL = f"{REPO_URL}/raw/main"
"""Base of the download URLs (override with ``--base-url`` or ``WARD_OFFICIAL_BASE_URL``, e.g. a mirror)."""


def resolve_base_url(base_url: str | None = None) -> str:
    """``base_url`` if given, else ``$WARD_OFFICIAL_BASE_URL``, else the repository's raw URL."""
    return base_url or os.environ.get("WARD_OFFICIAL_BASE_URL") or DEFAULT_BASE_URL
DEFAULT_DEST = Path("models/official")
DEFAULT_CONFIGS = Path("serve_configs")
_CHUNK = 1 << 20


@dataclass(frozen=True)
class OfficialFile:
    """One release file: its name under ``dest``, its path in the repository and its identity."""

    name: str
    blob_sha1: str
    size: int
    """Expected size in bytes (from the repository's LFS pointer for the .pth files); informative."""
    repo_path: str
    purpose: str
    lfs_sha256: str | None = None
    """SHA-256 of the Git LFS object the repository's pointer names (commit 58feea0); accepted as an
    alternative identity in case GitHub serves that object rather than the blob above."""

    def url(self, base_url: str | None = None) -> str:
        return f"{resolve_base_url(base_url).rstrip('/')}/{self.repo_path}"


OFFICIAL_FILES: dict[str, OfficialFile] = {
    f.name: f
    for f in (
        OfficialFile("pose.pth", "a94b095f525955aca0d300369134f915bfe436c4", 49_360_687, "pose.pth",
                     "Lightweight OpenPose fine-tuned on patients (pose stage)",
                     "7c61f38c17d4b54d7f429717544be1de0905f901aa6f7913f7868ae5c5b83827"),
        OfficialFile("VSViG-base.pth", "31a45f5655d1a24adb9ac012fb41b13a271f6000", 28_067_637, "VSViG-base.pth",
                     "VSViG-base classifier weights",
                     "0a95e3e0093730dc535e21a84f04943c73549a2b6a19a85e33aebc7c64f965a9"),
        OfficialFile("dy_point_order.pt", "5c312f92cb8c73426bde308c4b9882554e103152", 38_140, "dy_point_order.pt",
                     "dynamic partition orders (1000 permutations of 15 joints)"),
    )
}
"""name -> file. Paths checked against the repository tree: all three live at its root."""


class OfficialWeightsError(RuntimeError):
    """Fetching or verifying the official files failed; the message says what to do."""

    def __init__(self, message: str, results: list["FileResult"] | None = None) -> None:
        super().__init__(message)
        self.results = results or []


@dataclass
class FileResult:
    """Outcome for one file of :func:`fetch` / :func:`verify` / :func:`list_installed`."""

    name: str
    path: Path
    present: bool
    ok: bool
    expected_sha1: str
    sha1: str | None = None
    size: int | None = None
    message: str = ""
    used_by: list[str] = field(default_factory=list)


def _hashes(path: str | os.PathLike[str], chunk_size: int = _CHUNK) -> tuple[str, str]:
    """(git blob SHA-1, plain SHA-256) of a file in one streamed pass."""
    p = Path(path)
    size = p.stat().st_size
    h1 = hashlib.sha1(f"blob {size}\0".encode())
    h256 = hashlib.sha256()
    with p.open("rb") as fh:
        while block := fh.read(chunk_size):
            h1.update(block)
            h256.update(block)
    return h1.hexdigest(), h256.hexdigest()


def git_blob_sha1(path: str | os.PathLike[str], chunk_size: int = _CHUNK) -> str:
    """Git blob SHA-1 of a file, streamed: equal to ``git hash-object path``."""
    return _hashes(path, chunk_size)[0]


def _is_lfs_pointer(path: Path) -> bool:
    if path.stat().st_size > 1024:
        return False
    return path.read_bytes().startswith(b"version https://git-lfs")


def _select(names: Iterable[str] | None) -> list[OfficialFile]:
    if names is None:
        return list(OFFICIAL_FILES.values())
    unknown = [n for n in names if n not in OFFICIAL_FILES]
    if unknown:
        raise ValueError(f"unknown official file(s) {unknown}; known: {sorted(OFFICIAL_FILES)}")
    return [OFFICIAL_FILES[n] for n in names]


def manual_instructions(dest: str | os.PathLike[str] = DEFAULT_DEST, base_url: str | None = None) -> str:
    """How to install the files by hand (offline machines, blocked networks)."""
    dest_abs = Path(dest).resolve()
    lines = [
        "To install the official files by hand:",
        f"  1. On a machine with internet access, download from {REPO_URL} (branch main):",
        *(f"       {f.url(base_url)}" for f in OFFICIAL_FILES.values()),
        "     (or `git lfs clone` the repository: the .pth files are stored with Git LFS).",
        f"  2. Copy them into {dest_abs}/ under exactly these names: "
        + ", ".join(OFFICIAL_FILES) + ".",
        f"  3. Check them with `ward models verify --dest {dest}`; each file's git blob SHA-1",
        "     (`git hash-object FILE`) must be:",
        *(f"       {f.name}: {f.blob_sha1}" for f in OFFICIAL_FILES.values()),
    ]
    return "\n".join(lines)


def _check(f: OfficialFile, path: Path) -> FileResult:
    """Verify one file on disk."""
    if not path.is_file():
        return FileResult(f.name, path, False, False, f.blob_sha1, message="missing")
    size = path.stat().st_size
    sha, sha256 = _hashes(path)
    if sha == f.blob_sha1:
        return FileResult(f.name, path, True, True, f.blob_sha1, sha, size, "ok")
    if f.lfs_sha256 and sha256 == f.lfs_sha256:
        return FileResult(f.name, path, True, True, f.blob_sha1, sha, size,
                          f"ok: matches the repository's Git LFS object sha256:{sha256[:12]}... "
                          f"(blob SHA-1 {sha} differs from {f.blob_sha1})")
    if _is_lfs_pointer(path):
        msg = "is a Git LFS pointer, not the file: download the LFS content (the /raw/ URL or `git lfs pull`)"
    else:
        msg = f"SHA-1 mismatch: expected {f.blob_sha1}, got {sha} ({size} bytes, expected ~{f.size})"
    return FileResult(f.name, path, True, False, f.blob_sha1, sha, size, msg)


def verify(dest: str | os.PathLike[str] = DEFAULT_DEST, names: Iterable[str] | None = None) -> list[FileResult]:
    """Check the official files already in ``dest`` (no network). One result per file, ``ok`` when
    present and matching its git blob SHA-1."""
    d = Path(dest)
    return [_check(f, d / f.name) for f in _select(names)]


def _download(client: httpx.Client, f: OfficialFile, url: str, tmp: Path,
              progress: Callable[[str, int, int | None], None] | None) -> None:
    """Stream ``url`` into ``tmp``; raise OfficialWeightsError on HTTP errors or a short body."""
    name = f.name
    with client.stream("GET", url) as resp:
        if resp.status_code != 200:
            raise OfficialWeightsError(f"{name}: HTTP {resp.status_code} from {url}")
        total = resp.headers.get("content-length")
        expected = int(total) if total and total.isdigit() else None
        got = 0
        with tmp.open("wb") as fh:
            for block in resp.iter_bytes():  # as received, so a cut-off download keeps its prefix
                fh.write(block)
                got += len(block)
                if progress:
                    progress(name, got, expected)
            fh.flush()
            os.fsync(fh.fileno())
        if expected is not None and got != expected:
            raise OfficialWeightsError(
                f"{name}: truncated download from {url}: {got} of {expected} bytes; partial file deleted: "
                f"expected SHA-1 {f.blob_sha1}, "
                f"got {git_blob_sha1(tmp)}")


def fetch(
    dest: str | os.PathLike[str] = DEFAULT_DEST,
    base_url: str | None = None,
    timeout: float = 60.0,
    *,
    names: Iterable[str] | None = None,
    force: bool = False,
    progress: Callable[[str, int, int | None], None] | None = None,
) -> list[FileResult]:
    """Download the official files from ``base_url`` (:func:`resolve_base_url`) into ``dest``,
    verifying each before it gets its real name.

    Each file is streamed to a hidden temporary file in ``dest``, checked against its git blob
    SHA-1, then renamed atomically; a wrong, truncated or failed download is deleted, so ``dest``
    only ever holds verified files under the official names. Files already present and valid are
    kept unless ``force``. Every file is attempted; if any fails, raises
    :class:`OfficialWeightsError` (with ``.results``) naming both hashes for a mismatch and, when the
    server cannot be reached, how to place the files by hand.
    """
    files = _select(names)
    d = Path(dest)
    d.mkdir(parents=True, exist_ok=True)
    results: list[FileResult] = []
    unreachable = False
    with httpx.Client(follow_redirects=True, timeout=timeout) as client:
        for f in files:
            final = d / f.name
            if not force:
                current = _check(f, final)
                if current.ok:
                    current.message = "already present, verified"
                    results.append(current)
                    continue
            url = f.url(base_url)
            if unreachable:  # don't wait for a timeout per file when the server is down
                results.append(FileResult(f.name, final, final.is_file(), False, f.blob_sha1,
                                          message=f"{f.name}: not attempted, server unreachable"))
                continue
            fd, tmp_name = tempfile.mkstemp(prefix=f".{f.name}.", suffix=".part", dir=d)
            os.close(fd)
            tmp = Path(tmp_name)
            try:
                try:
                    _download(client, f, url, tmp, progress)
                except httpx.TransportError as exc:
                    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                        unreachable = True
                        raise OfficialWeightsError(f"{f.name}: cannot reach {url}: {exc}") from exc
                    got = tmp.stat().st_size
                    raise OfficialWeightsError(
                        f"{f.name}: download from {url} failed or was truncated after {got} bytes "
                        f"({type(exc).__name__}: {exc}); partial file deleted: expected SHA-1 {f.blob_sha1}, "
                        f"got {git_blob_sha1(tmp)}") from exc
                checked = _check(f, tmp)
                if not checked.ok:
                    raise OfficialWeightsError(f"{f.name}: rejected download from {url}: {checked.message}")
                os.replace(tmp, final)
                results.append(FileResult(f.name, final, True, True, f.blob_sha1, checked.sha1, checked.size,
                                          f"downloaded, verified ({checked.size} bytes)"
                                          + ("" if checked.message == "ok" else f"; {checked.message}")))
            except OfficialWeightsError as exc:
                results.append(FileResult(f.name, final, final.is_file(), False, f.blob_sha1, message=str(exc)))
            finally:
                tmp.unlink(missing_ok=True)
    failed = [r for r in results if not r.ok]
    if failed:
        msg = "could not fetch the official files:\n" + "\n".join(f"  - {r.message}" for r in failed)
        if unreachable:
            msg += "\nThe download server could not be reached (offline?)."
        msg += "\n" + manual_instructions(dest, base_url)
        raise OfficialWeightsError(msg, results)
    return results


def configs_using(name: str, configs: str | os.PathLike[str] | None = DEFAULT_CONFIGS) -> list[str]:
    """Serve configuration files (``*.yaml``/``*.yml`` under ``configs``) whose text mentions ``name``
    as a file name (``models/official/pose.pth`` counts, ``my_pose.pth`` does not)."""
    if configs is None:
        return []
    root = Path(configs)
    if not root.is_dir():
        return []
    pattern = re.compile(rf"(?<![\w.-]){re.escape(name)}(?![\w.-])")
    hits = []
    for cfg in sorted([*root.rglob("*.yaml"), *root.rglob("*.yml")]):
        try:
            text = cfg.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if pattern.search(text):
            hits.append(str(cfg))
    return hits


def list_installed(dest: str | os.PathLike[str] = DEFAULT_DEST,
                   configs: str | os.PathLike[str] | None = DEFAULT_CONFIGS) -> list[FileResult]:
    """Every official file (present or not) plus any other file in ``dest``, with its verification
    and the serve configurations that use it. Unknown files have ``expected_sha1 == ""``."""
    rows = verify(dest)
    for r in rows:
        r.used_by = configs_using(r.name, configs)
    d = Path(dest)
    if d.is_dir():
        for extra in sorted(p for p in d.iterdir() if p.is_file() and p.name not in OFFICIAL_FILES
                            and not p.name.startswith(".")):
            rows.append(FileResult(extra.name, extra, True, False, "", git_blob_sha1(extra), extra.stat().st_size,
                                   "not an official file", configs_using(extra.name, configs)))
    return rows
