"""Audit log throughput with and without signing: appends per second and verification speed.

Modes: ``unsigned`` (the hash chain only), ``signed`` (HMAC-SHA256 of every entry with a key), ``signed +
checkpoints`` (also a signed checkpoint line every 100 entries, after the first append and on close). Appends are
measured with ``synchronous=NORMAL`` and durable (``FULL``, every commit and checkpoint fsync'd); verification
reads the whole log: the chain alone, with the key, and with the key and the checkpoint file.

    python bench/audit_throughput.py [-n 3000] [--dir PATH] [--json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from tether.guard import AuditKey, AuditLog, verify_file

KEY = AuditKey(b"bench-key-0123456789abcdef0123456789abcdef", source="bench")


def payload(i: int) -> dict[str, object]:
    return {
        "tool": "search",
        "args": {"query": f"what does clause {i} say about renewals?", "k": 8, "filters": {"tags": ["legal"]}},
        "result": {"hits": [i, i + 1, i + 2], "ms": 12.5},
    }


def appends_per_s(path: Path, n: int, *, durable: bool, key: AuditKey | None, ckpt: Path | None) -> float:
    log = AuditLog.open(path, durable=durable, key=key, checkpoint_path=ckpt, checkpoint_every=100)
    t0 = time.perf_counter()
    for i in range(n):
        log.append("tool_call", "bench", payload(i), config_hash="c0ffee")
    log.close()  # the last checkpoint is part of the cost
    return n / (time.perf_counter() - t0)


def verify_per_s(path: Path, n: int, *, key: AuditKey | None, ckpt: Path | None) -> float:
    t0 = time.perf_counter()
    report = verify_file(path, key=key, checkpoint_path=ckpt)
    elapsed = time.perf_counter() - t0
    assert report.ok and report.entries == n, report
    return n / elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=3000, help="entries per log (default 3000)")
    ap.add_argument("--dir", type=Path, default=None, help="where to write the logs (default: a temp folder)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    n = args.n
    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        d = Path(tmp)
        modes: list[tuple[str, AuditKey | None, bool]] = [
            ("unsigned", None, False),
            ("signed", KEY, False),
            ("signed_checkpoints", KEY, True),
        ]
        for durable in (False, True):
            sync = "durable" if durable else "normal"
            for name, key, with_ckpt in modes:
                stem = d / f"{name}-{sync}"
                figures[f"append_{name}_{sync}"] = appends_per_s(
                    stem.with_suffix(".db"),
                    n,
                    durable=durable,
                    key=key,
                    ckpt=stem.with_suffix(".ckpt") if with_ckpt else None,
                )
        log, ckpt_file = d / "signed_checkpoints-normal.db", d / "signed_checkpoints-normal.ckpt"
        figures["verify_chain_only"] = verify_per_s(d / "unsigned-normal.db", n, key=None, ckpt=None)
        figures["verify_signed"] = verify_per_s(log, n, key=KEY, ckpt=None)
        figures["verify_signed_checkpoints"] = verify_per_s(log, n, key=KEY, ckpt=ckpt_file)
    rounded = {"entries": n, **{k: round(v) for k, v in figures.items()}}
    if args.json:
        print(json.dumps(rounded))
        return
    print(f"audit log, {n:,} entries per run (entries/s)")
    print(f"{'append':<28}{'synchronous=NORMAL':>20}{'durable (FULL)':>18}")
    for name, label in [("unsigned", "unsigned (chain only)"), ("signed", "signed (HMAC-SHA256)")]:
        print(f"  {label:<26}{rounded[f'append_{name}_normal']:>20,}{rounded[f'append_{name}_durable']:>18,}")
    sc = "signed_checkpoints"
    print(
        f"  {'signed + checkpoints/100':<26}{rounded[f'append_{sc}_normal']:>20,}{rounded[f'append_{sc}_durable']:>18,}"
    )
    print("verify (whole log)")
    print(f"  {'chain only':<26}{rounded['verify_chain_only']:>20,}")
    print(f"  {'chain + signatures':<26}{rounded['verify_signed']:>20,}")
    print(f"  {'+ checkpoint file':<26}{rounded['verify_signed_checkpoints']:>20,}")


if __name__ == "__main__":
    main()
