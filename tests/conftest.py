"""Shared test fixtures: paths to the read-only reference fixtures next to the project."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Directory of the original implementations' reference outputs (never copied into the repo)."""
    if not SHARED_FIXTURES.is_dir():
        pytest.fail(f"reference fixtures not found at {SHARED_FIXTURES}: clone ward next to shared/")
    return SHARED_FIXTURES


# Every Ray the tests start (in-process, `ray start`, `serve run`, `ward run`) uses token authentication,
# with one token per test session in a private temp file (0600); RAY_AUTH_TOKEN would take precedence.
from ward.serve.launcher import ensure_ray_token  # noqa: E402

_RAY_TOKEN_DIR = Path(tempfile.mkdtemp(prefix="ward-test-ray-auth-"))
atexit.register(shutil.rmtree, _RAY_TOKEN_DIR, ignore_errors=True)
os.environ.pop("RAY_AUTH_TOKEN", None)
os.environ["RAY_AUTH_MODE"] = "token"
os.environ["RAY_AUTH_TOKEN_PATH"] = str(ensure_ray_token(_RAY_TOKEN_DIR / "auth_token"))
# Exported and compiled models (ward.vision.export, OpenVINO) go to a per-session temp folder, never to
# ~/.cache/ward; inherited by the processes the tests start.
_MODEL_CACHE_DIR = Path(tempfile.mkdtemp(prefix="ward-test-model-cache-"))
atexit.register(shutil.rmtree, _MODEL_CACHE_DIR, ignore_errors=True)
os.environ["WARD_CACHE_DIR"] = str(_MODEL_CACHE_DIR)
# Passwords in this process are hashed with cheap scrypt parameters (explicit and test-only: ward.security
# refuses it outside pytest), so hundreds of test accounts do not cost 128 MiB and ~0.5 s each. The
# defaults stay OWASP's N=2^17 (tests/test_passwords.py hashes with them), as do the ward and dashboard
# processes the tests start.
from ward.security import use_test_password_params  # noqa: E402

use_test_password_params()
# A test run started in the background by a non-interactive shell (`cmd &`, e.g. `nohup bash .ci/run &`)
# inherits SIGINT ignored, and so would every `serve run` the tests start: it then never sees the
# Ctrl-C the tests send. A Python handler here is reset to the default in children at exec.
import signal  # noqa: E402

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)
# Serve gives a starting HTTP proxy 5 s per readiness check and kills it after 3 misses; on 2 busy
# cores its worker process can take longer to import, and serve.start() then fails with the proxy
# "killed by ray.kill". Inherited by the Ray processes the tests start.
os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30")


@pytest.fixture(autouse=True, scope="module")
def _ray_isolation():
    """Shut down any Ray (and Serve) a test module left running, so the next module starts clean.

    Some tests start Ray implicitly (a Serve handle, an API client); without this, the next module's
    own ``ray.init(num_cpus=4)`` fails with "called ray.init twice".
    """
    yield
    if "ray" not in sys.modules:
        return
    import ray

    if ray.is_initialized():
        try:
            from ray import serve

            serve.shutdown()
        except Exception:  # noqa: BLE001 - best effort: Serve may never have started
            pass
        ray.shutdown()


@pytest.fixture()
def one_torch_thread():
    """Small torch forwards on a shared 2-core machine: OpenMP spinning across 2 threads is far slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path):
    """An empty database of each engine: SQLite in tmp_path, and the test run's PostgreSQL (reset)."""
    from support.pg import pg_base_url, reset_pg

    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ward.db'}"
    else:
        url = pg_base_url()
        reset_pg(url)
        yield url


# Every test has run and been reported by the time pytest unconfigures. A CI run at aac3ab1 passed all
# its tests and then died with SIGSEGV while the interpreter finalised (native libraries loaded in this
# process — torch, OpenVINO, ONNX Runtime, Ray, OpenCV — tearing down their threads and static objects),
# which turned a green run red. So the test process ends here: the atexit handlers (the temp folders
# above, Ray's own) run, the output is flushed, and the process exits with pytest's status without
# finalising those libraries. WARD_TEST_SOFT_EXIT=1 keeps the normal interpreter exit (to reproduce it;
# scripts/test.sh enables faulthandler, so a crash there prints every thread's stack).
_SESSION: list[pytest.Session] = []


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    _SESSION.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if not _SESSION or os.environ.get("WARD_TEST_SOFT_EXIT") == "1":
        return
    status = int(_SESSION[-1].exitstatus)
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
