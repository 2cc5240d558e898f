"""Secrets stay out of what Ray stores, and nothing serves plain HTTP on the network by accident.

- ``database``: exactly one of ``url`` / ``url_env`` / ``url_file``; a password in a literal URL is
  refused; a secrets file open to other users is refused; only the reference is dumped (what
  build_app binds), each process resolves ``cfg.database.url`` itself.
- ``api`` / ``dashboard``: a non-loopback host without ``tls_cert`` + ``tls_key`` is refused unless
  ``allow_plain_http_on_network`` (then warned); build_app checks Serve's ``http_options`` too.
- A real Ray ward deployed the way ``serve deploy`` does (config args stored by the Serve controller),
  with its database URL (password included) given by ``url_env`` and its API on HTTPS with a
  self-signed certificate: it stores and serves probabilities, and neither the deployed config nor
  anything in Serve's GCS state contains the URL's secret part.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from support.serve import free_port, sim_bed, wait_for, ward_args
from ward.config import ConfigError, WardConfig, load_ward_config
from ward.serve.app import check_http_options
from ward.serve.supervisor import dashboard_command, dashboard_env

BASE: dict[str, Any] = {"beds": [{"bed_id": "b1", "source": "sim://?seed=1"}],
                        "models": {"pose": {"path": "p.pth"}, "vsvig": {"path": "v.pth"}}}
PG_WITH_PASSWORD = "postgresql+psycopg://ward:Sup3r-secret@db.example:5432/ward"


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in tmp_path, next to stand-in weight files, so validate_paths=True only reports what a test sets."""
    monkeypatch.chdir(tmp_path)
    for name in ("p.pth", "v.pth"):
        (tmp_path / name).write_bytes(b"weights")


def _load(validate_paths: bool = False, **sections: Any) -> WardConfig:
    return load_ward_config({**BASE, **sections}, validate_paths=validate_paths)


def _problems(validate_paths: bool = False, **sections: Any) -> list[str]:
    with pytest.raises(ConfigError) as info:
        _load(validate_paths, **sections)
    return info.value.problems


def _secret_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text + "\n")
    path.chmod(mode)
    return path


# ---------------------------------------------------------------------------------- database URL

@pytest.mark.parametrize("url", [
    PG_WITH_PASSWORD,
    "postgresql://ward:pw@127.0.0.1/ward",
    "postgresql+psycopg://ward@db.example/ward?password=pw&sslmode=require",
    "postgresql://ward:@db.example/ward",  # an empty password is still a password field
])
def test_password_in_literal_url_refused(url: str) -> None:
    [problem] = _problems(database={"url": url})
    assert problem.startswith("database.url: contains a password")
    assert "url_env: WARD_DB_URL" in problem and "url_file:" in problem and "chmod 600" in problem
    assert "Sup3r-secret" not in problem and ":pw@" not in problem


@pytest.mark.parametrize("url", ["sqlite:///./ward.db", "sqlite:////var/lib/ward/ward.db",
                                 "postgresql+psycopg://ward@db.example:5432/ward?sslmode=verify-full"])
def test_literal_url_without_password_accepted(url: str) -> None:
    cfg = _load(database={"url": url})
    assert cfg.database.url == url and cfg.model_dump()["database"]["url"] == url


def test_default_is_local_sqlite() -> None:
    assert _load().database.url == "sqlite:///./ward.db"


@pytest.mark.parametrize("db, keys", [
    ({"url": "sqlite:///a.db", "url_env": "WARD_DB_URL"}, "url and url_env"),
    ({"url_env": "WARD_DB_URL", "url_file": "/etc/ward/db_url"}, "url_env and url_file"),
])
def test_exactly_one_source(db: dict[str, str], keys: str) -> None:
    [problem] = _problems(database=db)
    assert problem.endswith(f"give exactly one of url, url_env, url_file (got {keys})")


def test_url_env_is_a_name_not_the_url() -> None:
    [problem] = _problems(database={"url_env": PG_WITH_PASSWORD})
    assert problem.startswith("database.url_env: must be the NAME of an environment variable")
    assert "Sup3r-secret" not in problem


def test_url_env_resolved_per_process_and_only_the_reference_dumped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARD_TEST_SECRET_DB_URL", raising=False)
    cfg = _load(database={"url_env": "WARD_TEST_SECRET_DB_URL"})  # offline: not resolved yet
    with pytest.raises(ConfigError, match=r"^database.url_env: environment variable WARD_TEST_SECRET_DB_URL is not set"):
        _ = cfg.database.url
    monkeypatch.setenv("WARD_TEST_SECRET_DB_URL", PG_WITH_PASSWORD)
    assert cfg.database.url == PG_WITH_PASSWORD  # a password in the environment is fine
    for dumped in (cfg.model_dump(), cfg.model_dump(mode="json"), cfg.model_dump_json(), repr(cfg), str(cfg)):
        assert "Sup3r-secret" not in str(dumped) and "WARD_TEST_SECRET_DB_URL" in str(dumped)
    again = load_ward_config(cfg.model_dump(mode="json"), validate_paths=False)
    assert again == cfg and again.database.url == PG_WITH_PASSWORD


def test_url_env_missing_fails_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WARD_TEST_SECRET_DB_URL", raising=False)
    problems = _problems(validate_paths=True, database={"url_env": "WARD_TEST_SECRET_DB_URL"})
    assert any(p.startswith("database.url_env: environment variable WARD_TEST_SECRET_DB_URL is not set")
               for p in problems), problems


def test_resolved_url_must_be_a_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WARD_TEST_SECRET_DB_URL", "mysql://ward:Sup3r-secret@db/ward")
    cfg = _load(database={"url_env": "WARD_TEST_SECRET_DB_URL"})
    with pytest.raises(ConfigError, match=r"WARD_TEST_SECRET_DB_URL must be an SQLAlchemy URL") as info:
        _ = cfg.database.url
    assert "Sup3r-secret" not in str(info.value)


def test_url_file_private_resolved_and_made_absolute(tmp_path: Path) -> None:
    _secret_file(tmp_path / "db_url", PG_WITH_PASSWORD)
    cfg = _load(validate_paths=True, database={"url_file": "db_url"})
    assert cfg.database.url_file == str(tmp_path / "db_url") and cfg.database.url == PG_WITH_PASSWORD
    assert "Sup3r-secret" not in str(cfg.model_dump())


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_url_file_open_to_others_refused(tmp_path: Path, mode: int) -> None:
    path = _secret_file(tmp_path / "db_url", PG_WITH_PASSWORD, mode)
    [problem] = _problems(validate_paths=True, database={"url_file": str(path)})
    assert problem == (f"database.url_file: {path} is open to other users (mode {mode:04o}) but holds a secret: "
                       f"run `chmod 600 {path}`")
    # loaded offline (a replica), then found open: refused when read, too
    cfg = _load(database={"url_file": str(path)})
    with pytest.raises(ConfigError, match=r"^database.url_file: .* is open to other users"):
        _ = cfg.database.url


def test_url_file_missing_or_empty(tmp_path: Path) -> None:
    [problem] = _problems(validate_paths=True, database={"url_file": str(tmp_path / "nope")})
    assert problem == f"database.url_file: file not found: {tmp_path / 'nope'} (fix the path)"
    empty = _secret_file(tmp_path / "empty", "")
    [problem] = _problems(validate_paths=True, database={"url_file": str(empty)})
    assert problem == f"database.url_file: {empty} is empty"


# ------------------------------------------------------------------------------------------- TLS

@pytest.mark.parametrize("section", ["api", "dashboard"])
@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "ward.example", "fe80::1"])
def test_network_bind_without_tls_refused(section: str, host: str) -> None:
    [problem] = _problems(**{section: {"host": host}})
    assert problem.startswith(f"{section}.host: {host!r} is reachable from the network")
    assert "tls_cert and tls_key" in problem and "allow_plain_http_on_network: true" in problem


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost", "LOCALHOST"])
def test_loopback_needs_no_tls(host: str) -> None:
    cfg = _load(api={"host": host}, dashboard={"host": host})
    assert cfg.api.url.startswith("http://")


def test_disabled_dashboard_binds_nothing() -> None:
    assert _load(dashboard={"enabled": False, "host": "0.0.0.0"}).dashboard.host == "0.0.0.0"


def test_plain_http_on_network_allowed_explicitly_and_warned(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="ward.config"):
        cfg = _load(api={"host": "0.0.0.0", "allow_plain_http_on_network": True})
    assert cfg.api.url == "http://0.0.0.0:8000"
    assert any("the API serves plain HTTP on 0.0.0.0" in r.getMessage() for r in caplog.records)


def test_tls_files_go_together_and_the_key_is_private(tmp_path: Path) -> None:
    [problem] = _problems(api={"host": "0.0.0.0", "tls_cert": "c.pem"})
    assert problem.startswith("api.tls_key: tls_cert and tls_key go together")
    cert = _secret_file(tmp_path / "c.pem", "CERT", 0o644)
    key = _secret_file(tmp_path / "k.pem", "KEY", 0o644)
    [problem] = _problems(validate_paths=True, dashboard={"host": "0.0.0.0", "tls_cert": str(cert), "tls_key": str(key)})
    assert problem.startswith(f"dashboard.tls_key: {key} is open to other users")
    key.chmod(0o600)
    cfg = _load(validate_paths=True, dashboard={"host": "0.0.0.0", "tls_cert": str(cert), "tls_key": str(key)},
                api={"host": "ward.example", "port": 8443, "tls_cert": str(cert), "tls_key": str(key)})
    assert cfg.dashboard.tls and cfg.api.url == "https://ward.example:8443"


def test_dashboard_gets_streamlit_tls_flags_and_the_https_api(tmp_path: Path) -> None:
    cert, key = _secret_file(tmp_path / "c.pem", "CERT", 0o644), _secret_file(tmp_path / "k.pem", "KEY")
    cmd = dashboard_command("0.0.0.0", 8501, tmp_path / "app.py", str(cert), str(key))
    assert cmd[cmd.index("--server.sslCertFile") + 1] == str(cert)
    assert cmd[cmd.index("--server.sslKeyFile") + 1] == str(key)
    assert "--server.sslCertFile" not in dashboard_command("127.0.0.1", 8501, tmp_path / "app.py")
    cfg = _load(api={"host": "127.0.0.1", "tls_cert": str(cert), "tls_key": str(key)})
    env = dashboard_env(cfg)
    assert env == {"WARD_DB_URL": "sqlite:///./ward.db", "WARD_API_URL": "https://127.0.0.1:8000",
                   "SSL_CERT_FILE": str(cert)}


class _Http:
    """Stands in for Serve's HTTPOptions (the fields check_http_options reads)."""

    def __init__(self, host: str, ssl_certfile: str | None = None) -> None:
        self.host, self.ssl_certfile = host, ssl_certfile


def test_serve_http_options_checked_against_api() -> None:
    cfg = _load()
    check_http_options(cfg, _Http("127.0.0.1"))
    check_http_options(cfg, _Http("0.0.0.0", "/etc/ward/tls/api.crt"))
    with pytest.raises(ConfigError, match=r"Serve's http_options.host is '0.0.0.0' \(reachable from the network\) "
                                          r"without ssl_certfile/ssl_keyfile"):
        check_http_options(cfg, _Http("0.0.0.0"))
    check_http_options(_load(api={"allow_plain_http_on_network": True}), _Http("0.0.0.0"))
    tls = _load(api={"tls_cert": "c.pem", "tls_key": "k.pem"})
    with pytest.raises(ConfigError, match="api.tls_cert is set but Serve's http_options has no ssl_certfile"):
        check_http_options(tls, _Http("127.0.0.1"))


# ------------------------------------------------------------------------------- a real Ray ward

def _self_signed(dirpath: Path) -> tuple[Path, Path]:
    """A throwaway certificate for 127.0.0.1 (openssl), key mode 0600."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl not found: install Debian's openssl (the HTTPS test makes a self-signed certificate)")
    cert, key = dirpath / "api.crt", dirpath / "api.key"
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    key.chmod(0o600)
    return cert, key


def _pg_database_with_password(secret: str) -> str:
    """A fresh database on the test PostgreSQL server, its URL carrying ``secret`` as the password (the
    throwaway server trusts local connections, so this proves the plumbing, not password auth)."""
    import sqlalchemy as sa

    base = os.environ.get("WARD_TEST_PG_URL")
    if not base:
        if os.environ.get("WARD_TEST_ALLOW_NO_PG") == "1":
            pytest.skip("WARD_TEST_PG_URL not set and WARD_TEST_ALLOW_NO_PG=1")
        pytest.fail("needs WARD_TEST_PG_URL: run via scripts/test.sh (throwaway PostgreSQL), or set WARD_TEST_ALLOW_NO_PG=1")
    name = "ward_secrets_test"
    eng = sa.create_engine(sa.make_url(base), isolation_level="AUTOCOMMIT")
    with eng.connect() as c:
        c.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        c.exec_driver_sql(f'CREATE DATABASE "{name}"')
    eng.dispose()
    return sa.make_url(base).set(database=name, password=secret).render_as_string(hide_password=False)


def _serve_kv_values() -> list[bytes]:
    """Every value the Serve controller keeps in Ray's GCS (its checkpoints: app configs, deployments
    with their init args)."""
    from ray.experimental.internal_kv import _internal_kv_get, _internal_kv_list
    from ray.serve._private.storage.kv_store import SERVE_INTERNAL_KV_NAMESPACE

    keys = _internal_kv_list(b"", namespace=SERVE_INTERNAL_KV_NAMESPACE)
    return [v for k in keys if (v := _internal_kv_get(k, namespace=SERVE_INTERNAL_KV_NAMESPACE))]


@pytest.mark.ray
@pytest.mark.parametrize("engine", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_ward_with_url_env_over_https_stores_no_secret(engine: str, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import ray
    from ray import serve
    from ray.serve.schema import ServeDeploySchema

    from ward.serve.app import _serve_http_options
    from ward.store import Store

    secret = f"s3cret-{secrets.token_hex(8)}"
    if engine == "postgres":
        url = _pg_database_with_password(secret)
    else:  # SQLite has no password: the secret is a directory name in the URL, as telling a marker
        (tmp_path / secret).mkdir()
        url = f"sqlite:///{tmp_path / secret / 'ward.db'}"
    env_name = f"WARD_TEST_DB_URL_{secrets.token_hex(4).upper()}"
    monkeypatch.setenv(env_name, url)  # before Ray starts: its workers inherit the environment
    store = Store(url)
    store.create_user("ci", "ci-password")
    store.close()
    cert, key = _self_signed(tmp_path)
    port = free_port()
    args = ward_args(tmp_path, [sim_bed("bed-1", 1, fps=4.0, keypoints="simulator")],
                     database={"url_env": env_name, "spill_dir": str(tmp_path / "spill"), "flush_interval_s": 0.5},
                     api={"host": "127.0.0.1", "port": port, "tls_cert": str(cert), "tls_key": str(key)})
    ray.init(address="local", num_cpus=4, include_dashboard=False, object_store_memory=200 * 2**20,
             log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port, "ssl_certfile": str(cert),
                                  "ssl_keyfile": str(key)})
        assert _serve_http_options().ssl_certfile == str(cert)
        # as `serve deploy CONFIG` does: the controller keeps the args and builds the app in a task
        client = serve.context._get_global_client()
        client.deploy_apps(ServeDeploySchema.model_validate({"applications": [
            {"name": "ward", "route_prefix": "/", "import_path": "ward.serve.app:build_app", "args": args}]}))

        def scored() -> list[dict[str, Any]] | None:
            r = httpx.get(f"https://127.0.0.1:{port}/api/beds", auth=("ci", "ci-password"), verify=str(cert), timeout=10)
            beds = r.json() if r.status_code == 200 else []
            # a probability is live before its sample is flushed to the database (~1 s later): wait for both
            return [b for b in beds if b["probability"] is not None and b["samples_stored"] > 0] or None

        [bed] = wait_for(scored, 300, interval=2, what="a probability stored in the url_env database, over HTTPS")
        assert bed["bed_id"] == "bed-1"
        with pytest.raises(httpx.HTTPError):  # no plain HTTP on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/api/health", timeout=10).raise_for_status()

        details = client.get_serve_details()
        deployed = str(details["applications"]["ward"]["deployed_app_config"])
        assert env_name in deployed and secret not in deployed, "`serve config` shows the reference only"
        stored = _serve_kv_values()
        # positive control: the scan sees the reference in the app config AND the deployments' bound init args
        assert sum(env_name.encode() in v for v in stored) >= 2, "Serve's checkpoints not found"
        assert not [v[:200] for v in stored if secret.encode() in v], "the resolved URL reached Serve's state"
    finally:
        serve.shutdown()
        ray.shutdown()
