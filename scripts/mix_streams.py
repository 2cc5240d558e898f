"""Average the probabilities of several models' saved streams (an ensemble, without scoring again).

    .venv/bin/python scripts/mix_streams.py A.npz B.npz [C.npz ...] --out MIX.npz [--how mean|min]
    ward eval-tune MIX.npz --curve 0,1,2,5,10,20

`ward eval --streams` files of one seed, path and length hold the same clips in the same order (the
scoring is deterministic), so the p of several models can be combined clip by clip; everything else is
taken from the first file. Refused when the files do not line up (other seeds, lengths or paths).
"""

from __future__ import annotations

import argparse

import numpy as np


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("streams", nargs="+")
    ap.add_argument("--out", required=True)
    ap.add_argument("--how", choices=("mean", "min"), default="mean")
    a = ap.parse_args(argv)
    if len(a.streams) < 2:
        ap.error("give at least two stream files")
    zs = [np.load(s, allow_pickle=False) for s in a.streams]
    first = zs[0]
    for s, z in zip(a.streams[1:], zs[1:]):
        if set(z.files) != set(first.files) or int(z["eval_seed"]) != int(first["eval_seed"]):
            raise SystemExit(f"{s} does not line up with {a.streams[0]} (other seed or scenarios)")
        bad = [k for k in first.files if k.endswith("/t_end") and not np.array_equal(z[k], first[k])]
        if bad:
            raise SystemExit(f"{s}: clip times of {bad[0]} differ from {a.streams[0]}'s")
    combine = np.mean if a.how == "mean" else np.min
    out = {k: (combine([z[k] for z in zs], axis=0).astype(np.float32) if k.endswith("/p") else first[k])
           for k in first.files}
    np.savez(a.out, **out)
    print(f"wrote {a.out}: {a.how} of {len(zs)} models' p over {sum(k.endswith('/p') for k in first.files)} streams")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
