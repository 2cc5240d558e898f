"""CI smoke test: `serve run` on a temp copy of serve_configs/ward.yaml, probabilities via the API, SIGINT.

The copy changes only what must differ in CI (tests/support/process.py): database and spill in a temp
dir, free API and dashboard ports, and, while the shipped weights under models/ do not exist yet, tiny
untrained weights (said in the assertion message when used). The dashboard stays enabled, as in the
default config, so the Ctrl-C ending also shows that it goes with the ward: after SIGINT `serve run`
exits 0 and no process of that ward (the dashboard included) is left, both ports are free.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from support.process import (ROOT, WARD_TEST_ENV, assert_nothing_left, cmdline, default_config_copy, descendants,
                             kill_leftovers)
from support.serve import wait_for

pytestmark = pytest.mark.ray


def test_serve_run_default_config(tmp_path):
    from ward.store import Store

    cfg_path, app = default_config_copy(tmp_path)
    port = app["api"]["port"]
    shipped = all((ROOT / app["models"][m]["path"]).is_file() for m in ("pose", "vsvig"))
    store = Store(app["database"]["url"])
    store.create_user("ci", "ci-password")
    env = {**os.environ, **WARD_TEST_ENV}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "serve"), "run", str(cfg_path)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    tree: dict[int, int] = {}
    try:
        def flowing():
            r = httpx.get(f"http://127.0.0.1:{port}/api/beds", auth=("ci", "ci-password"), timeout=5)
            beds = r.json() if r.status_code == 200 else []
            return [b for b in beds if b["probability"] is not None] or None

        assert proc.poll() is None
        beds = wait_for(flowing, 240, interval=2, what="probabilities from `serve run` "
                        + ("(shipped weights)" if shipped else "(tiny untrained weights: shipped ones missing)"))
        assert all(0.0 <= b["probability"] <= 1.0 for b in beds)
        tree = descendants(proc.pid)
        assert any("ward.serve.supervisor" in cmdline(p) for p in tree), "the dashboard is not running"
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=90)
        assert rc == 0, (tmp_path / "serve.log").read_text()[-3000:]
        assert_nothing_left(tree, [port, app["dashboard"]["port"]], [str(cfg_path)])
    finally:
        kill_leftovers(proc, tree)
        log.close()
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
    stored = sum(len(store.history(b["bed_id"], datetime(2000, 1, 1, tzinfo=timezone.utc), resolution="1s"))
                 for b in beds)
    assert stored > 0, "probabilities were served by the API but not stored"
