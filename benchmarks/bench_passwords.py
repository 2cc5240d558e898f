"""Password hashing benchmark: what one scrypt check costs at OWASP's parameters, on this machine.

Per parameter set (ward's old N=2^14 and OWASP's N=2^17, r=8, p=1): milliseconds per hash (median
and worst of --repeats), the process's peak memory growth, and the throughput of two threads hashing
at once (a PasswordHasher lets two run per process). Then a dashboard/API login through the store
(SQLite) for a known user, a wrong password and an unknown user name: each is one scrypt, so their
times should be alike (the tests prove it by counting calls, this shows what it costs).

Usage:
  .venv/bin/python benchmarks/bench_passwords.py [--repeats 10] [--json docs/results/bench_passwords.json]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks._util import add_json_option, report  # noqa: E402
from ward.security import LEGACY_SCRYPT, OWASP_SCRYPT, PasswordHasher, ScryptParams  # noqa: E402

PASSWORD = "correct horse battery staple"


def timed_ms(fn: Callable[[], Any], repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(1000 * (time.perf_counter() - t0))
    return out


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def hash_row(name: str, params: ScryptParams, repeats: int) -> dict[str, Any]:
    hasher = PasswordHasher(params)
    before = peak_rss_mib()
    stored = hasher.hash(PASSWORD)
    grew = peak_rss_mib() - before
    ms = timed_ms(lambda: hasher.verify(PASSWORD, stored), repeats)
    pair = two_threads_per_s(hasher, stored, max(2, repeats // 2))
    return {"path": name, "N": params.n, "r": params.r, "p": params.p,
            "memory_mib": params.memory_bytes / 2**20, "peak_rss_growth_mib": round(grew, 1),
            "median_ms": round(statistics.median(ms), 1), "max_ms": round(max(ms), 1),
            "two_threads_hashes_per_s": round(pair, 2)}


def two_threads_per_s(hasher: PasswordHasher, stored: str, per_thread: int) -> float:
    """Checks per second with two threads verifying at once (hashlib releases the GIL)."""
    def work() -> None:
        for _ in range(per_thread):
            hasher.verify(PASSWORD, stored)

    threads = [threading.Thread(target=work) for _ in range(2)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return 2 * per_thread / (time.perf_counter() - t0)


def login_rows(repeats: int) -> list[dict[str, Any]]:
    """Store.authenticate at the production parameters: known user, wrong password, unknown name."""
    from ward.store.repository import Store

    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{tmp}/ward.db")
        store.create_user("nurse", PASSWORD, "clinician")
        rows = []
        for case, name, pw in (("login: right password", "nurse", PASSWORD),
                               ("login: wrong password", "nurse", "wrong password!"),
                               ("login: unknown user", "nobody", PASSWORD)):
            ms = timed_ms(lambda: store.authenticate(name, pw), repeats)
            rows.append({"path": case, "N": OWASP_SCRYPT.n, "median_ms": round(statistics.median(ms), 1),
                         "max_ms": round(max(ms), 1)})
        store.close()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    add_json_option(ap, "bench_passwords")
    args = ap.parse_args()
    rows = [hash_row("scrypt (ward before, N=2^14)", LEGACY_SCRYPT, args.repeats),
            hash_row("scrypt (OWASP, N=2^17)", OWASP_SCRYPT, args.repeats),
            *login_rows(args.repeats)]
    report("bench_passwords", rows, {"repeats": args.repeats}, json_path=args.json)


if __name__ == "__main__":
    main()
