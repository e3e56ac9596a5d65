"""Audit log throughput: appends per second (durable and not) and verification speed on a 10,000-entry log.

Each append is its own ``BEGIN IMMEDIATE`` transaction on a WAL SQLite file; ``durable`` syncs every commit
(``synchronous=FULL``), the other mode leaves syncing to checkpoints (``synchronous=NORMAL``).

    python bench/audit_bench.py [-n 10000] [--dir PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tether.guard import AuditLog, verify_file


def payload(i: int) -> dict[str, object]:
    return {
        "tool": "search",
        "args": {"query": f"what does clause {i} say about renewals?", "k": 8, "filters": {"tags": ["legal"]}},
        "result": {"hits": [i, i + 1, i + 2], "ms": 12.5},
    }


def bench_appends(path: Path, n: int, *, durable: bool) -> float:
    with AuditLog.open(path, durable=durable) as log:
        t0 = time.perf_counter()
        for i in range(n):
            log.append("tool_call", "bench", payload(i), config_hash="c0ffee")
        return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=10_000, help="entries per log (default 10000)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the logs (default: a temp folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        durable = bench_appends(folder / "durable.db", args.n, durable=True)
        fast = bench_appends(folder / "fast.db", args.n, durable=False)
        path = folder / "durable.db"
        t0 = time.perf_counter()
        report = verify_file(path)
        verify_s = time.perf_counter() - t0
        assert report.ok and report.entries == args.n, report
        with AuditLog.open(path, read_only=True) as log:
            t0 = time.perf_counter()
            read = sum(1 for _ in log.entries())
            read_s = time.perf_counter() - t0
        size = path.stat().st_size + sum(p.stat().st_size for p in folder.glob("durable.db-*"))
    figures = {
        "entries": args.n,
        "append_per_s_durable": round(durable),
        "append_per_s_normal": round(fast),
        "verify_s": round(verify_s, 4),
        "verify_entries_per_s": round(args.n / verify_s),
        "read_entries_per_s": round(read / read_s),
        "bytes_per_entry": round(size / args.n),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"audit log, {args.n:,} entries ({figures['bytes_per_entry']} bytes/entry on disk incl. WAL)")
    print(f"  append, durable (synchronous=FULL):  {figures['append_per_s_durable']:>10,} entries/s")
    print(f"  append, synchronous=NORMAL:          {figures['append_per_s_normal']:>10,} entries/s")
    print(f"  verify (verify_file, whole chain):   {figures['verify_entries_per_s']:>10,} entries/s ({verify_s:.3f} s)")
    print(f"  read back (entries()):               {figures['read_entries_per_s']:>10,} entries/s")


if __name__ == "__main__":
    main()
