"""In-process micro-benchmark: the workflow engine's decision for one action.

    python -m tests.bench.micro [--repeat 25] [--min-time 0.2]

`workflows.engine.decide` on the residence-certificate lifecycle (the standard lifecycle as the
matter resolves it), timed with timeit: each repeat runs the call enough times to last
--min-time seconds; the figure is the median over the repeats of the time per call.
BENCHMARKS.md target: ≤ 100 µs median for one decision. The headline is `accept` by a clerk on a
submitted case (the transition the HTTP benchmark measures); the other actions of the normal path
and the refusals (wrong role, missing reason, wrong state) are reported too. No database, no I/O.
The JSON goes to tests/bench/results/micro-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import timeit
from datetime import datetime, timezone
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
TARGET_MEDIAN_US = 100.0
MATTER_CODE = "residence-certificate"


def cases():
    """(name, state, action, roles, request, expected outcome) — the calls timed."""
    clerk, applicant = frozenset({"clerk"}), frozenset({"applicant"})
    return [
        ("accept", "submitted", "accept", clerk, {"comment": None, "items": None}, "Decision"),
        ("start_review", "accepted", "start_review", clerk, {"comment": None, "items": None}, "Decision"),
        ("approve", "in_review", "approve", clerk, {"comment": "情况属实", "items": None}, "Decision"),
        ("request_correction", "submitted", "request_correction", clerk,
         {"comment": "请补充居住情况佐证材料", "items": ["居住情况佐证材料"]}, "Decision"),
        ("supplement", "correcting", "supplement", applicant, {"comment": None, "items": None}, "Decision"),
        ("refused: wrong role", "submitted", "accept", applicant, {"comment": None, "items": None}, "RoleNotAllowed"),
        ("refused: reason missing", "submitted", "refuse", clerk, {"comment": None, "items": None}, "MissingNeeds"),
        ("refused: wrong state", "delivered", "accept", clerk, {"comment": None, "items": None}, "ActionNotAvailable"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.micro", description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=25, help="timeit repeats (the median is taken over these)")
    parser.add_argument("--min-time", type=float, default=0.2, help="seconds per repeat (sets the loop count)")
    parser.add_argument("--no-write", action="store_true", help="print only, write no JSON")
    args = parser.parse_args(argv)

    from workflows.catalogue import default_catalogue
    from workflows.engine import Actor, TransitionRejected, decide

    lifecycle = default_catalogue().get(MATTER_CODE).lifecycle
    results = {}
    for name, state, action, roles, request, expected in cases():
        actor = Actor(roles=roles)

        def call(state=state, action=action, actor=actor, request=request):
            try:
                return decide(lifecycle, state=state, action=action, actor=actor, request=request)
            except TransitionRejected as error:
                return error

        outcome = type(call()).__name__
        if outcome != expected:
            raise SystemExit(f"{name}: expected {expected}, got {outcome} — the lifecycle changed; update micro.py")
        timer = timeit.Timer(call)
        number, seconds = timer.autorange()
        number = max(number, int(number * args.min_time / max(seconds, 1e-9)))
        per_call = [total / number * 1e6 for total in timer.repeat(repeat=args.repeat, number=number)]
        results[name] = {"state": state, "action": action, "roles": sorted(roles), "outcome": outcome,
                         "median_us": statistics.median(per_call), "min_us": min(per_call),
                         "max_us": max(per_call), "loops": number, "repeats": args.repeat}

    headline = results["accept"]["median_us"]
    passed = headline <= TARGET_MEDIAN_US
    print(f"\nworkflows.engine.decide — {MATTER_CODE} lifecycle, median over {args.repeat} repeats\n")
    print(f"{'call':<26}{'outcome':<20}{'median µs':>11}{'min µs':>9}{'max µs':>9}")
    print("-" * 75)
    for name, r in results.items():
        print(f"{name:<26}{r['outcome']:<20}{r['median_us']:>11.2f}{r['min_us']:>9.2f}{r['max_us']:>9.2f}")
    print(f"\none decision (accept): {headline:.2f} µs median — target ≤ {TARGET_MEDIAN_US:.0f} µs: "
          f"{'pass' if passed else 'FAIL'}")
    if not args.no_write:
        now = datetime.now(timezone.utc)
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        path = RESULTS_DIR / f"micro-{now:%Y%m%dT%H%M%SZ}.json"
        path.write_text(json.dumps({
            "started_at": now.isoformat(), "benchmark": "workflows.engine.decide", "matter": MATTER_CODE,
            "target": {"median_us_max": TARGET_MEDIAN_US, "call": "accept"},
            "median_us": headline, "passed": passed, "calls": results,
            "host": {"platform": platform.platform(), "python": platform.python_version()},
        }, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        print(f"results: {path}")
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
