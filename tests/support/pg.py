"""The throwaway PostgreSQL server of the test run (started by scripts/services.sh): its URL, a reset, pg_ctl."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa


def pg_base_url() -> str:
    """WARD_TEST_PG_URL, or a failure that says how to get one (a skip only when asked for)."""
    url = os.environ.get("WARD_TEST_PG_URL")
    if not url:
        if os.environ.get("WARD_TEST_ALLOW_NO_PG") == "1":
            pytest.skip("WARD_TEST_PG_URL not set and WARD_TEST_ALLOW_NO_PG=1")
        pytest.fail("PostgreSQL tests need WARD_TEST_PG_URL: run them via scripts/test.sh (which starts a "
                    "throwaway server from /usr/lib/postgresql/*/bin), or set WARD_TEST_ALLOW_NO_PG=1 to skip")
    return url


def reset_pg(url: str) -> None:
    """An empty public schema."""
    eng = sa.create_engine(url)
    with eng.begin() as conn:
        conn.exec_driver_sql("DROP SCHEMA IF EXISTS public CASCADE")
        conn.exec_driver_sql("CREATE SCHEMA public")
    eng.dispose()


def pg_ctl(action: str) -> None:
    """Stop (fast) or start the test server, waiting until it is down / accepts connections."""
    ctl, data = os.environ.get("WARD_TEST_PG_CTL"), os.environ.get("WARD_TEST_PG_DATA")
    if not ctl or not data:
        pytest.fail("outage test needs WARD_TEST_PG_CTL and WARD_TEST_PG_DATA (exported by scripts/services.sh)")
    cmd = [ctl, "-D", data, "-w", "-t", "30"] + (["-m", "fast", "stop"] if action == "stop" else
                                                 ["-l", str(Path(data).parent / "server.log"), "start"])
    runas = os.environ.get("WARD_TEST_PG_RUNAS")
    if runas:
        cmd = ["runuser", "-u", runas, "--"] + cmd
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)
