"""CI smoke test: `serve run` on a temp copy of serve_configs/ward.yaml, probabilities via the API, SIGINT.

The copy changes only what must differ in CI: database and spill in a temp dir, a free HTTP port, the
dashboard off (its own tests cover it), and, while the shipped weights under models/ do not exist
yet, tiny untrained weights (said in the assertion message when used).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from serve_support import free_port, make_weights, wait_for

pytestmark = pytest.mark.ray
ROOT = Path(__file__).resolve().parents[1]


def test_serve_run_default_config(tmp_path):
    from ward.store import Store

    raw = yaml.safe_load((ROOT / "serve_configs" / "ward.yaml").read_text())
    app = raw["applications"][0]["args"]
    port = free_port()
    raw["http_options"]["port"] = port
    app["api"]["port"] = port
    app["database"] = {"url": f"sqlite:///{tmp_path / 'ward.db'}", "spill_dir": str(tmp_path / "spill")}
    app["dashboard"]["enabled"] = False
    shipped = all((ROOT / app["models"][m]["path"]).is_file() for m in ("pose", "vsvig"))
    if not shipped:
        pose_p, vsvig_p = make_weights(tmp_path / "models")
        app["models"]["pose"]["path"], app["models"]["vsvig"]["path"] = str(pose_p), str(vsvig_p)
    cfg_path = tmp_path / "ward.yaml"
    cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
    store = Store(app["database"]["url"])
    store.create_user("ci", "ci-password")
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONUNBUFFERED": "1"}
    log = (tmp_path / "serve.log").open("wb")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "serve"), "run", str(cfg_path)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def flowing():
            r = httpx.get(f"http://127.0.0.1:{port}/api/beds", auth=("ci", "ci-password"), timeout=5)
            beds = r.json() if r.status_code == 200 else []
            return [b for b in beds if b["probability"] is not None] or None

        assert proc.poll() is None
        beds = wait_for(flowing, 240, interval=2, what="probabilities from `serve run` "
                        + ("(shipped weights)" if shipped else "(tiny untrained weights: shipped ones missing)"))
        assert all(0.0 <= b["probability"] <= 1.0 for b in beds)
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=90)
        assert rc == 0, (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    from datetime import datetime, timezone

    stored = sum(len(store.history(b["bed_id"], datetime(2000, 1, 1, tzinfo=timezone.utc), resolution="1s"))
                 for b in beds)
    assert stored > 0, "probabilities were served by the API but not stored"
