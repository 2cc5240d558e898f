"""Ray token authentication: the ward's token file, and a real ``ray start --head`` cluster that refuses
drivers and HTTP clients without the token.

The whole suite runs with token auth (tests/conftest.py: RAY_AUTH_MODE=token, a session token in a
0600 temp file); the unit tests here cover how ``ward run`` keeps its token
(ward.serve.launcher.setup_ray_auth), the Ray test proves that Ray enforces it.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from support.serve import free_port, wait_for
from ward.serve.launcher import RayAuthError, ensure_ray_token, ray_token_path, setup_ray_auth

RAY = str(Path(sys.executable).parent / "ray")
REFUSED = "Authentication token is missing or incorrect"


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ------------------------------------------------------------------------------ the token file

def test_token_generated_private_and_kept(tmp_path: Path) -> None:
    path = ensure_ray_token(tmp_path / "state" / "auth_token")
    token = path.read_text()
    assert len(token) == 64 and int(token, 16) >= 0, "256 random bits, hex"
    assert _mode(path) == 0o600 and _mode(path.parent) == 0o700
    assert ensure_ray_token(path).read_text() == token, "an existing token is kept, not replaced"
    assert ensure_ray_token(tmp_path / "other").read_text() != token


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_token_readable_by_others_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "auth_token"
    path.write_text("0" * 64)
    path.chmod(mode)
    with pytest.raises(RayAuthError, match=rf"readable by other users \(mode 0{mode:o}\).*chmod 600 {path}"):
        ensure_ray_token(path)


def test_token_empty_or_not_a_file_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.touch(mode=0o600)
    with pytest.raises(RayAuthError, match="is empty"):
        ensure_ray_token(empty)
    with pytest.raises(RayAuthError, match="not a regular file"):
        ensure_ray_token(tmp_path)


def test_setup_defaults_to_token_mode_and_rays_default_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    env: dict[str, str] = {}
    path = setup_ray_auth(env)
    assert env["RAY_AUTH_MODE"] == "token"
    assert path == tmp_path / ".ray" / "auth_token" == ray_token_path(env) and _mode(path) == 0o600
    env2 = {"RAY_AUTH_TOKEN_PATH": str(tmp_path / "ward_token")}
    assert setup_ray_auth(env2) == tmp_path / "ward_token" and _mode(tmp_path / "ward_token") == 0o600


def test_setup_joining_a_cluster_needs_its_token(tmp_path: Path) -> None:
    env = {"RAY_ADDRESS": "10.0.0.1:6379", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "missing")}
    with pytest.raises(RayAuthError, match="RAY_ADDRESS names an existing cluster, so copy that cluster's token"):
        setup_ray_auth(env)
    assert not (tmp_path / "missing").exists(), "a generated token could not match the cluster's"
    assert setup_ray_auth({**env, "RAY_AUTH_TOKEN": "abc"}) is None, "a token given in the environment is used as is"


def test_setup_disabled_is_respected_but_warned(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    env = {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN_PATH": str(tmp_path / "t")}
    assert setup_ray_auth(env) is None
    assert "WITHOUT authentication" in capsys.readouterr().err
    assert not (tmp_path / "t").exists()


def test_suite_runs_with_token_auth() -> None:
    """conftest.py: every Ray the tests start inherits token mode and a private token file."""
    assert os.environ["RAY_AUTH_MODE"] == "token" and "RAY_AUTH_TOKEN" not in os.environ
    assert _mode(Path(os.environ["RAY_AUTH_TOKEN_PATH"])) == 0o600


# ------------------------------------------------------------------------------ a real cluster

_DRIVER = """
import sys, ray
ray.init(address=sys.argv[1], log_to_driver=False)
print("ANSWER", ray.get(ray.remote(lambda: 41 + 1).remote()), flush=True)
"""


def _ray_env(**over: str | None) -> dict[str, str]:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "RAY_USAGE_STATS_ENABLED": "0"}
    env.pop("RAY_ADDRESS", None)
    for key, value in over.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


@pytest.fixture()
def token_head():
    """``ray start --head --block`` with token auth (the cluster recipe's head) on free ports, in its
    own temp dir (so no other Ray on this machine takes it for the default cluster) and process group,
    stopped by pid afterwards. Yields (GCS address, dashboard URL)."""
    temp = Path(tempfile.mkdtemp(prefix="wra-", dir="/tmp"))  # short: Ray's socket paths live below it
    gcs, dash = free_port(), free_port()
    cmd = [RAY, "start", "--head", "--block", f"--port={gcs}", "--num-cpus=1", f"--temp-dir={temp}",
           "--dashboard-host=127.0.0.1", f"--dashboard-port={dash}", f"--ray-client-server-port={free_port()}",
           f"--dashboard-agent-listen-port={free_port()}", "--disable-usage-stats"]
    log = (temp / "head.log").open("wb")
    proc = subprocess.Popen(cmd, env=_ray_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"ray start exited ({proc.returncode}): {(temp / 'head.log').read_text()[-3000:]}")
            return httpx.get(f"{url}/api/version", timeout=5).status_code in (200, 401)

        wait_for(up, 180, interval=1, what="the token-auth head's dashboard")
        yield f"127.0.0.1:{gcs}", url
    finally:
        _stop_group(proc)
        log.close()
        subprocess.run(["rm", "-rf", str(temp)], check=False)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM to the head's process group (ray start --block stops its daemons), SIGKILL after 10 s: Ray's
    graceful stop takes ~35 s here and this throw-away head, in its own temp dir, keeps nothing worth it."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            break
        proc.poll()
        time.sleep(1)
    else:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(timeout=30)


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_cluster_refuses_drivers_and_http_without_the_token(token_head, tmp_path: Path) -> None:
    gcs, dash = token_head
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    nohome = tmp_path / "home"  # no ~/.ray/auth_token there
    nohome.mkdir()
    drivers = {  # started together: each is a Python process importing Ray (seconds on a busy machine)
        "token": _ray_env(),
        "wrong token": _ray_env(RAY_AUTH_TOKEN="0" * 64),
        "no token, auth off": _ray_env(RAY_AUTH_MODE="disabled", RAY_AUTH_TOKEN_PATH=None, HOME=str(nohome)),
        "no token, auth unset": _ray_env(RAY_AUTH_MODE=None, RAY_AUTH_TOKEN_PATH=None, HOME=str(nohome)),
    }
    procs = {name: subprocess.Popen([sys.executable, "-c", _DRIVER, gcs], env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True) for name, env in drivers.items()}
    out = {name: p.communicate(timeout=300)[0] for name, p in procs.items()}
    assert procs["token"].returncode == 0 and "ANSWER 42" in out["token"], out["token"][-3000:]
    for name in ("wrong token", "no token, auth off", "no token, auth unset"):
        assert procs[name].returncode != 0 and "ANSWER" not in out[name], (name, out[name][-3000:])
        assert REFUSED in out[name], (name, out[name][-3000:])

    # The dashboard's HTTP API (job submission runs arbitrary code): 401 without, 403 with a wrong token.
    assert httpx.get(f"{dash}/api/jobs/", timeout=30).status_code == 401
    assert httpx.get(f"{dash}/api/jobs/", headers={"Authorization": "Bearer " + "0" * 64}, timeout=30).status_code == 403
    job = {"entrypoint": "echo pwned"}
    assert httpx.post(f"{dash}/api/jobs/", json=job, timeout=30).status_code == 401
    assert httpx.get(f"{dash}/api/jobs/", headers={"Authorization": f"Bearer {token}"}, timeout=30).status_code == 200

    # The documented CLI calls: `RAY_AUTH_MODE=token ray status` / `serve status` find the token.
    status = subprocess.run([RAY, "status", "--address", gcs], env=_ray_env(), capture_output=True, text=True,
                            timeout=180)
    assert status.returncode == 0 and "Active:" in status.stdout, status.stdout[-2000:] + status.stderr[-2000:]
    serve_status = subprocess.run([str(Path(sys.executable).parent / "serve"), "status", "-a", dash], env=_ray_env(),
                                  capture_output=True, text=True, timeout=180)
    assert serve_status.returncode == 0 and "applications" in serve_status.stdout, serve_status.stderr[-2000:]
