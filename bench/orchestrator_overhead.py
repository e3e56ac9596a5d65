"""Orchestrator overhead per step, without model time: a scripted plan of trivial tool calls.

Each step runs the full path: permission check, policy decision, argument and result validation,
persisted step state, and (with the audit log) hash-chained audit entries. The tool itself does nothing.

    python bench/orchestrator_overhead.py [--steps 500] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from tether.guard import AuditLog
from tether.tools import CallerProfile, Policy, tool
from tether.tools._orchestrator import Orchestrator, Plan, Step


@tool(effects=["read"])
def noop(x: int) -> int:
    """Return x."""
    return x


def measure(steps: int, root: Path, *, audit: bool, durable: bool = True) -> float:
    policy_file = root / "policy.yaml"
    policy_file.write_text(
        "version: 1\ndefault: allow\nrules:\n  - id: big\n    when: {args: {x: {gt: 10000000}}}\n    action: deny\n"
    )
    log = AuditLog.open(root / f"audit-{audit}-{durable}.db", durable=durable) if audit else None
    orch = Orchestrator(
        [noop],
        root / f"runs-{audit}-{durable}.db",
        profile=CallerProfile(name="b"),
        policy=Policy.load(policy_file),
        audit=log,
    )
    plan = Plan(goal="bench", steps=[Step(n=i, tool="noop", args={"x": i}) for i in range(1, steps + 1)])
    t0 = time.perf_counter()
    rec = orch.run(plan)
    dt = time.perf_counter() - t0
    assert rec.status == "done"
    orch.close()
    return dt / steps * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        out = {
            "steps": args.steps,
            "ms_per_step_no_audit": round(measure(args.steps, root, audit=False), 3),
            "ms_per_step_audit_durable": round(measure(args.steps, root, audit=True), 3),
            "ms_per_step_audit_synchronous_normal": round(measure(args.steps, root, audit=True, durable=False), 3),
        }
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for k, v in out.items():
            print(f"{k:40s} {v}")


if __name__ == "__main__":
    main()
