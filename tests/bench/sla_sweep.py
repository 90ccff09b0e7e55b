"""The SLA sweep over a million open cases (BENCHMARKS.md / issue 3: under 60 s, bounded memory).

    python -m tests.bench.sla_sweep --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_cases_sweep \
        [--open-cases 1000000] [--reuse-database]

Seeds the demo county and a few thousand real cases with tests/bench/seed.py, then adds
`--open-cases` accepted cases with running clocks in one INSERT … SELECT (cloned from the seeded
ones, so they carry real subjects, villages and handling points): due dates spread from 3 working
days ago to 5 weeks ahead (about 7 % overdue, 5 % due soon), 2 % suspended past their maximum.
Then runs the sweep twice in this process (the second run finds nothing new to escalate) and
reports wall time, peak RSS and the sweep's counts; JSON in tests/bench/results/sla-sweep-*.json.
The database named is emptied: give it one of its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from tests.bench.seed import default_var_dir, configure_environment, log, reset_database, seed

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REFUSED = {"postgres", "test", "onestop", "onestop_dev", "onestop_ci", "onestop_test"}

CLONE = """
WITH template AS (
    SELECT row_number() OVER (ORDER BY id) AS rn, * FROM cases ORDER BY id LIMIT 2000
), size AS (SELECT count(*) AS n FROM template)
INSERT INTO cases (id, number, matter_code, matter_version, state, version, subject_id, subject_hash,
                   applicant_name, region_code, receiving_channel, handling_point_id, assignee_id, routing_reason,
                   form, created_by, created_by_principal, submitted_at, accepted_at, due_date, legal_due_date,
                   sla_state, updated_at, extension_days, sla_flag, escalation_level,
                   sla_days_left, sla_paused_at, suspend_until, previous_state)
SELECT gen_random_uuid()::text, 'SW' || lpad(g::text, 14, '0'), t.matter_code, t.matter_version,
       CASE WHEN g % 50 = 0 THEN 'suspended' ELSE 'accepted' END, 2, t.subject_id, t.subject_hash,
       t.applicant_name, t.region_code, 'online', t.handling_point_id, t.assignee_id, t.routing_reason, t.form,
       'self', t.created_by_principal, now() - interval '10 days', now() - interval '9 days',
       current_date + ((g % 40) - 3), current_date + ((g % 40) - 3) + 5,
       CASE WHEN g % 50 = 0 THEN 'paused' ELSE 'running' END, now(), 0, 'ok', 0,
       CASE WHEN g % 50 = 0 THEN 2 END, CASE WHEN g % 50 = 0 THEN now() - interval '9 days' END,
       CASE WHEN g % 50 = 0 THEN current_date - 2 END, CASE WHEN g % 50 = 0 THEN 'accepted' END
FROM generate_series(1, :count) AS g
JOIN size ON true
JOIN template t ON t.rn = (g % size.n) + 1
"""


def rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--open-cases", type=int, default=1_000_000)
    parser.add_argument("--seed-cases", type=int, default=5_000, help="real cases seeded first (templates)")
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--reuse-database", action="store_true", help="skip reset and seeding")
    args = parser.parse_args(argv)
    args.var_dir = args.var_dir or default_var_dir(args.database_url)
    if not args.database_url.startswith("postgresql"):
        parser.error("the sweep benchmark needs PostgreSQL (generate_series, gen_random_uuid)")
    if args.database_url.rsplit("/", 1)[-1] in REFUSED:
        parser.error("refusing to empty that database: give the benchmark one of its own")
    configure_environment(args.database_url, args.var_dir, ONESTOP_LOG_LEVEL="WARNING")

    from sqlalchemy import text

    from services.db import get_engine, session_scope
    from services.sla.sweep import run_sweep

    result: dict = {"config": vars(args) | {"var_dir": str(args.var_dir)},
                    "started": datetime.now(timezone.utc).isoformat()}
    if not args.reuse_database:
        reset_database(args.database_url)
        seed(args.database_url, args.seed_cases)
        started = time.perf_counter()
        with get_engine().begin() as connection:
            connection.execute(text(CLONE), {"count": args.open_cases})
            connection.execute(text("ANALYZE cases"))
        result["insert_seconds"] = round(time.perf_counter() - started, 1)
        log(f"{args.open_cases:,} open cases inserted in {result['insert_seconds']}s")
    with get_engine().connect() as connection:
        result["open_cases"] = connection.execute(text("SELECT count(*) FROM cases WHERE closed_at IS NULL")).scalar()
        result["running"] = connection.execute(text("SELECT count(*) FROM cases WHERE sla_state = 'running'")).scalar()
    rss_before = rss_mib()
    runs = []
    for label in ("first", "second"):
        started = time.perf_counter()
        with session_scope() as session:
            report = run_sweep(session)
        seconds = round(time.perf_counter() - started, 2)
        runs.append({"run": label, "seconds": seconds, "report": report.as_dict(), "peak_rss_mib": round(rss_mib(), 1)})
        log(f"sweep {label}: {seconds}s, escalated {report.escalated}, overdue marked {report.overdue_marked}, "
            f"due soon marked {report.due_soon_marked}, suspensions restarted {report.suspensions_expired}, "
            f"peak RSS {rss_mib():.0f} MiB")
    result.update(runs=runs, rss_before_mib=round(rss_before, 1),
                  passed=runs[0]["seconds"] < 60 and runs[1]["report"]["escalated"] == {1: 0, 2: 0})
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"sla-sweep-{args.open_cases}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print(json.dumps({k: result[k] for k in ("open_cases", "running", "runs", "rss_before_mib")}, ensure_ascii=False,
                     indent=2, default=str))
    log(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
