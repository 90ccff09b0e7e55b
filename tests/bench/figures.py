"""Benchmark of the regional figures (issue 4): build the rollups over N seeded cases, refresh
them after real transitions, then time the figures of a province, a city, a county and a town —
in-process through the service function and over HTTP against uvicorn — against the live
GROUP BY over the cases that serving without rollups would run, in the same run.

    .venv/bin/python -m tests.bench.figures \
        --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_figures_bench --cases 1000000

What it does, in order (PostgreSQL only):

1. unless --reuse-database: empty the database and seed N cases with tests/bench/seed.py (the demo
   county 婺源县, real villages, a realistic mix of states, ~8 events per case at 1M);
2. migrate to head (the figures tables and the indexes they need; timed: on a seeded database
   this builds the new indexes on cases);
3. --spread (default 0.8): re-home that share of the cases to the other villages of Jiangxi, one
   village per case by a hash of its id, so the province has all its cities, counties and towns
   (the seeder fills one county). Only `region_code` changes; the handling points stay the demo
   county's (the per-point figures are not what this measures). Skipped if already spread;
   --ratings (default 0.3): 好差评 ratings for that share of the ended cases (the seeder writes
   none), a few with a second round;
4. the full build (rebuild: facts + rollups in SQL), committed and ANALYZEd; its time and rows;
5. incremental refresh: once with no new changes, once after --changes real `accept` transitions
   made through services.cases.service.act (a clerk principal, the real guards and history), and
   the daily reconciliation (every fact recomputed and compared in SQL);
6. a check that the served figures equal the live recomputation for every measured region;
7. per region and query shape (all time; the last 90 days of one matter): --calls calls of the
   service function, each in its own session as a request would be, and --baseline-calls of the
   live GROUP BY (services.figures.service.live_region_figures: the same figures from the cases)
   and of the existing live counts (services.sla.counts.case_counts, states only); median, p99;
8. over HTTP: uvicorn (the production command line, one worker) and httpx, signed in as an
   administrator of a province-level point the benchmark adds; --calls sequential GETs per region
   and shape, and GET /healthz as the HTTP floor.

Results: printed, and written to tests/bench/results/figures-<UTC>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

from tests.bench.seed import default_var_dir, configure_environment, log, reset_database, seed

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
PROVINCE, CITY, COUNTY = "360000000000", "361100000000", "361130000000"
REFUSED = frozenset({"postgres", "test", "onestop_dev", "onestop", "onestop_test", "onestop_bench"})
BENCH_USER = "bench-province-admin"
TARGET_MS = 200.0


def _ms(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p99 = ordered[min(len(ordered) - 1, max(0, int(round(0.99 * len(ordered))) - 1))]
    return {"calls": len(values), "median_ms": round(statistics.median(ordered), 2), "p99_ms": round(p99, 2),
            "min_ms": round(ordered[0], 2), "max_ms": round(ordered[-1], 2)}


def _time(function: Callable[[], Any], calls: int, *, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        function()
    samples = []
    for _ in range(calls):
        started = time.perf_counter()
        function()
        samples.append((time.perf_counter() - started) * 1000)
    return _ms(samples)


def _autocommit(sql: str) -> None:
    from sqlalchemy import text

    from services.db import get_engine

    with get_engine().connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(sql))


# ----------------------------------------------------------------------------- preparation

def spread_cases(share: float) -> dict[str, Any]:
    """Re-home `share` of the cases to the other villages of Jiangxi (see the module docstring)."""
    from sqlalchemy import text

    from services.db import get_engine

    with get_engine().connect() as connection:
        outside = connection.execute(text("SELECT count(*) FROM cases WHERE region_code NOT LIKE '361130%'")).scalar()
        if outside:
            return {"skipped": "already spread", "outside_demo_county": outside}
    started = time.perf_counter()
    with get_engine().begin() as connection:
        villages = connection.execute(text(
            "SELECT count(*) FROM regions WHERE level = 'village' AND code LIKE '36%' AND code NOT LIKE '361130%'")).scalar()
        moved = connection.execute(text("""
            WITH v AS (SELECT code, (row_number() OVER (ORDER BY code)) - 1 AS i FROM regions
                       WHERE level = 'village' AND code LIKE '36%' AND code NOT LIKE '361130%')
            UPDATE cases c SET region_code = v.code FROM v
            WHERE (abs(hashtext(c.id)) % 1000) < :permille AND v.i = abs(hashtext(c.id || '-village')) % :villages
        """), {"permille": int(round(share * 1000)), "villages": villages}).rowcount
    _autocommit("VACUUM ANALYZE cases")
    return {"share": share, "moved": moved, "villages": villages, "seconds": round(time.perf_counter() - started, 1)}


def add_ratings(share: float) -> dict[str, Any]:
    """好差评 for `share` of the cases that ended (the seeder writes none): levels 5/4/3/2/1 in
    70/18/7/3/2 %, by the applicant's account, a day after closing; half of the bad ones rated a
    second time after a rectification (so the latest round counts). Skipped if any exist."""
    from sqlalchemy import text

    from services.db import get_engine

    with get_engine().connect() as connection:
        existing = connection.execute(text("SELECT count(*) FROM evaluations")).scalar()
    if existing:
        return {"skipped": "evaluations exist", "evaluations": existing}
    started = time.perf_counter()
    with get_engine().begin() as connection:
        first = connection.execute(text("""
            INSERT INTO evaluations (case_id, round, level, account_id, service_point_id, clerk_id, region_code,
                                     matter_code, created_at)
            SELECT c.id, 1, CASE WHEN h < 70 THEN 5 WHEN h < 88 THEN 4 WHEN h < 95 THEN 3 WHEN h < 98 THEN 2 ELSE 1 END,
                   a.id, c.handling_point_id, c.assignee_id, c.region_code, c.matter_code, c.closed_at + interval '1 day'
            FROM (SELECT *, abs(hashtext(id || '-level')) % 100 AS h FROM cases
                  WHERE state IN ('completed', 'delivered', 'denied', 'not_accepted') AND closed_at IS NOT NULL
                    AND abs(hashtext(id || '-rated')) % 1000 < :permille) c
            JOIN citizen_accounts a ON a.subject_id = c.subject_id
        """), {"permille": int(round(share * 1000))}).rowcount
        second = connection.execute(text("""
            INSERT INTO evaluations (case_id, round, level, account_id, service_point_id, clerk_id, region_code,
                                     matter_code, created_at)
            SELECT case_id, 2, 4, account_id, service_point_id, clerk_id, region_code, matter_code,
                   created_at + interval '10 days'
            FROM evaluations WHERE level <= 2 AND abs(hashtext(case_id || '-again')) % 2 = 0
        """)).rowcount
    _autocommit("VACUUM ANALYZE evaluations")
    return {"share": share, "first_round": first, "second_round": second,
            "seconds": round(time.perf_counter() - started, 1)}


def ensure_province_admin() -> str:
    """A province-level point (a label only: routing never looks at that level) with an
    administrator, so HTTP calls can ask for the province. Returns the password."""
    from sqlmodel import select

    from services.accounts.passwords import hash_password
    from services.db import session_scope
    from services.points.models import ServicePoint, Staff

    password = "bench-province-admin-password"
    with session_scope() as session:
        if session.exec(select(Staff).where(Staff.username == BENCH_USER)).first() is None:
            point = ServicePoint(name="江西省政务服务管理办公室（基准测试）", level="province", region_code=PROVINCE)
            session.add(point)
            session.flush()
            session.add(Staff(username=BENCH_USER, display_name="基准测试", role="admin", service_point_id=point.id,
                              password_hash=hash_password(password)))
    return password


def make_transitions(count: int) -> dict[str, Any]:
    """`count` real `accept` transitions (services.cases.service.act) on submitted cases."""
    from sqlalchemy import text
    from sqlmodel import select

    from services.accounts.service import staff_principal
    from services.cases.service import act
    from services.db import session_scope
    from services.points.models import Staff

    with session_scope() as session:
        rows = session.execute(text(
            "SELECT id, version, handling_point_id, assignee_id FROM cases WHERE state = 'submitted' "
            "ORDER BY submitted_at DESC LIMIT :n"), {"n": count}).all()
        clerks = {}
        for staff in session.exec(select(Staff).where(Staff.role == "clerk")):
            clerks.setdefault(staff.service_point_id, staff.id)
    done, failed, started = 0, {}, time.perf_counter()
    for start in range(0, len(rows), 100):
        with session_scope() as session:
            for case_id, version, point_id, assignee_id in rows[start:start + 100]:
                staff = session.get(Staff, assignee_id or clerks.get(point_id))
                try:
                    with session.begin_nested():
                        act(session, principal=staff_principal(session, staff), case_id=case_id, action="accept",
                            version=version, comment=None, payload=None)
                    done += 1
                except Exception as error:  # counted, not hidden
                    failed[type(error).__name__] = failed.get(type(error).__name__, 0) + 1
    return {"accepted": done, "failed": failed, "seconds": round(time.perf_counter() - started, 1)}


def database_facts() -> dict[str, Any]:
    from sqlalchemy import text

    from services.db import get_engine

    with get_engine().connect() as connection:
        facts = {name: connection.execute(text(f"SELECT count(*) FROM {name}")).scalar() for name in (
            "cases", "case_events", "evaluations", "figures_case_facts", "figures_regions", "figures_points",
            "figures_regions_open", "figures_points_open")}
        facts["open_cases"] = connection.execute(text(
            "SELECT count(*) FROM cases WHERE state NOT IN ('approved','completed','delivered','denied',"
            "'not_accepted','withdrawn')")).scalar()
        facts["cities_with_cases"] = connection.execute(text(
            "SELECT count(DISTINCT substr(region_code, 1, 4)) FROM cases")).scalar()
        facts["counties_with_cases"] = connection.execute(text(
            "SELECT count(DISTINCT substr(region_code, 1, 6)) FROM cases")).scalar()
        facts["postgres"] = connection.execute(text("SHOW server_version")).scalar()
        facts["database_size"] = connection.execute(text(
            "SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar()
        facts["rollup_size"] = connection.execute(text(
            "SELECT pg_size_pretty(sum(pg_total_relation_size(c.oid))) FROM pg_class c "
            "WHERE c.relname LIKE 'figures_%' AND c.relkind = 'r'")).scalar()
    return facts


def busiest_point() -> int:
    from sqlalchemy import text

    from services.db import get_engine

    with get_engine().connect() as connection:
        return connection.execute(text(
            "SELECT service_point_id FROM figures_points GROUP BY service_point_id ORDER BY sum(received) DESC "
            "LIMIT 1")).scalar()


def busiest_town() -> str:
    from sqlalchemy import text

    from services.db import get_engine

    with get_engine().connect() as connection:
        return connection.execute(text(
            "SELECT region_code FROM figures_regions WHERE parent_code = :county GROUP BY region_code "
            "ORDER BY sum(received) DESC LIMIT 1"), {"county": COUNTY}).scalar()


# ----------------------------------------------------------------------------- measuring

def in_process(regions: dict[str, str], shapes: dict[str, dict[str, Any]], *, calls: int,
               baseline_calls: int) -> dict[str, Any]:
    from sqlmodel import Session

    from services.accounts.principal import Principal
    from services.db import get_engine
    from services.figures import service
    from services.sla.counts import case_counts

    principal = Principal(kind="staff", account_id=0, roles=("admin",), jurisdiction_code=PROVINCE)
    engine = get_engine()

    def call(function: Callable[[Session], Any]) -> Callable[[], Any]:
        def run() -> Any:
            with Session(engine) as session:  # a session per call, as a request has
                return function(session)
        return run

    out: dict[str, Any] = {}
    for label, code in regions.items():
        for shape, window in shapes.items():
            key = f"{label}:{shape}"
            served = _time(call(lambda s: service.region_figures(s, principal=principal, region_code=code, **window)),
                           calls)
            live = _time(call(lambda s: service.live_region_figures(s, region_code=code, **window)),
                         baseline_calls, warmup=1)
            out[key] = {"region_code": code, "window": {k: str(v) for k, v in window.items()},
                        "rollup": served, "live_group_by": live,
                        "speedup_median": round(live["median_ms"] / served["median_ms"], 1)}
            if shape == "all":
                out[key]["live_case_counts"] = _time(call(lambda s: case_counts(s, region_code=code)),
                                                     baseline_calls, warmup=1)
            log(f"in-process {key}: rollup median {served['median_ms']} ms p99 {served['p99_ms']} ms; "
                f"live GROUP BY median {live['median_ms']} ms ({out[key]['speedup_median']}x)")
    point_id = busiest_point()
    served = _time(call(lambda s: service.point_figures(s, principal=principal, service_point_id=point_id)), calls)
    live = _time(call(lambda s: case_counts(s, service_point_id=point_id)), baseline_calls, warmup=1)
    out["busiest_point:all"] = {"service_point_id": point_id, "rollup": served, "live_case_counts": live}
    log(f"in-process busiest point {point_id}: rollup median {served['median_ms']} ms p99 {served['p99_ms']} ms; "
        f"live case_counts (states only) median {live['median_ms']} ms")
    return out


def over_http(regions: dict[str, str], shapes: dict[str, dict[str, Any]], *, calls: int, password: str,
              var_dir: Path) -> dict[str, Any]:
    import httpx

    from tests.bench.run import Processes, free_port, uvicorn_argv, wait_until_ready

    processes = Processes()
    port = free_port()
    env = {**os.environ, "ONESTOP_RATE_LIMITS": "off", "ONESTOP_RUN_WORKER_IN_SERVER": "false",
           "ONESTOP_LOG_LEVEL": "WARNING", "ONESTOP_VAR_DIR": str(var_dir)}
    env.pop("ONESTOP_REDIS_URL", None)
    log_path = var_dir / "figures-bench-uvicorn.log"
    base = f"http://127.0.0.1:{port}"
    out: dict[str, Any] = {}
    try:
        server = processes.start("uvicorn", uvicorn_argv("api.asgi:app", port), env=env, log_path=log_path)
        wait_until_ready(f"{base}/healthz", server, log_path=log_path)
        with httpx.Client(base_url=base, timeout=30) as client:
            login = client.post("/api/v1/auth/login", json={"username": BENCH_USER, "password": password})
            login.raise_for_status()
            headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
            out["healthz"] = _time(lambda: client.get("/healthz").raise_for_status(), calls)
            for label, code in regions.items():
                for shape, window in shapes.items():
                    params = {"from" if k == "date_from" else "to" if k == "date_to" else k: str(v)
                              for k, v in window.items()}

                    def get() -> None:
                        response = client.get(f"/api/v1/figures/regions/{code}", params=params, headers=headers)
                        if response.status_code != 200:
                            raise RuntimeError(f"{response.status_code} {response.text[:300]}")

                    out[f"{label}:{shape}"] = _time(get, calls)
                    log(f"HTTP {label}:{shape}: median {out[f'{label}:{shape}']['median_ms']} ms "
                        f"p99 {out[f'{label}:{shape}']['p99_ms']} ms")
    finally:
        processes.stop_all()
    return out


def check_against_live(regions: dict[str, str], shapes: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The served figures equal the live recomputation (every counter, every child)."""
    from services.accounts.principal import Principal
    from services.db import session_scope
    from services.figures import service
    from services.figures.models import COUNTER_NAMES

    principal = Principal(kind="staff", account_id=0, roles=("admin",), jurisdiction_code=PROVINCE)
    names = ("received", "accepted", "completed", "denied", "not_accepted", "withdrawn", "open", "overdue",
             "due_soon", "paused", "completion_cases")
    problems = []
    with session_scope() as session:
        for label, code in regions.items():
            for shape, window in shapes.items():
                served = service.region_figures(session, principal=principal, region_code=code, **window)
                live = service.live_region_figures(session, region_code=code, **window)
                pairs = [(code, served["figures"], live["figures"])] + [
                    (child["code"], child["figures"], live["children"].get(child["code"], {n: 0 for n in
                                                                                        COUNTER_NAMES + names}))
                    for child in served["children"]]
                for where, got, want in pairs:
                    mismatch = {n: (got[n], want[n]) for n in names if got[n] != want[n]}
                    ratings = [got["satisfaction"]["by_level"][str(level)] for level in range(1, 6)]
                    if ratings != [want[f"rated_{level}"] for level in range(1, 6)]:
                        mismatch["ratings"] = ratings
                    if mismatch:
                        problems.append({"region": where, "shape": shape, "mismatch": mismatch})
    return {"equal": not problems, "problems": problems[:20]}


# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url",
                        default="postgresql+psycopg://postgres@127.0.0.1:5432/onestop_figures_bench")
    parser.add_argument("--cases", type=int, default=1_000_000)
    parser.add_argument("--reuse-database", action="store_true", help="skip reset and seeding")
    parser.add_argument("--spread", type=float, default=0.8, help="share of cases re-homed across Jiangxi (0: none)")
    parser.add_argument("--ratings", type=float, default=0.3, help="share of ended cases given a 好差评 rating")
    parser.add_argument("--changes", type=int, default=1000, help="accept transitions before the timed refresh")
    parser.add_argument("--calls", type=int, default=60, help="timed calls per region and shape (≥ 50)")
    parser.add_argument("--baseline-calls", type=int, default=20, help="timed calls of each live baseline")
    parser.add_argument("--skip-http", action="store_true")
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--label", default="")
    args = parser.parse_args(argv)
    args.var_dir = args.var_dir or default_var_dir(args.database_url)
    if not args.database_url.startswith("postgresql"):
        parser.error("the figures benchmark needs PostgreSQL")
    if args.database_url.rsplit("/", 1)[-1] in REFUSED:
        parser.error("refusing that database: give the benchmark one of its own")
    configure_environment(args.database_url, args.var_dir)

    from services.db import session_scope
    from services.figures import service
    from services.migrate import upgrade_to_head

    result: dict[str, Any] = {"config": {**vars(args), "var_dir": str(args.var_dir)},
                              "started": datetime.now(timezone.utc).isoformat(),
                              "host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                       "loadavg_before": os.getloadavg(), "git_commit": _git_commit()}}
    if not args.reuse_database:
        reset_database(args.database_url)
        result["seed"] = seed(args.database_url, args.cases)
    started = time.perf_counter()
    upgrade_to_head(args.database_url)
    result["migrate_seconds"] = round(time.perf_counter() - started, 1)
    if args.spread > 0:
        result["spread"] = spread_cases(args.spread)
        log(f"spread: {result['spread']}")
    if args.ratings > 0:
        result["ratings"] = add_ratings(args.ratings)
        log(f"ratings: {result['ratings']}")
    password = ensure_province_admin()

    started = time.perf_counter()
    with session_scope() as session:
        build = service.rebuild(session)
    build["seconds_with_commit"] = round(time.perf_counter() - started, 1)
    started = time.perf_counter()
    _autocommit("VACUUM ANALYZE figures_case_facts, figures_regions, figures_points, figures_regions_open, "
                "figures_points_open")
    build["vacuum_analyze_seconds"] = round(time.perf_counter() - started, 1)
    result["build"] = build
    log(f"build: {build}")

    refreshes = {}
    started = time.perf_counter()
    with session_scope() as session:
        refreshes["no_new_changes"] = service.refresh(session)
    refreshes["no_new_changes"]["seconds_with_commit"] = round(time.perf_counter() - started, 3)
    refreshes["transitions"] = make_transitions(args.changes)
    started = time.perf_counter()
    with session_scope() as session:
        refreshes["after_transitions"] = service.refresh(session)
    refreshes["after_transitions"]["seconds_with_commit"] = round(time.perf_counter() - started, 3)
    started = time.perf_counter()
    with session_scope() as session:
        refreshes["reconcile"] = service.reconcile(session)
    refreshes["reconcile"]["seconds_with_commit"] = round(time.perf_counter() - started, 3)
    result["refresh"] = refreshes
    log(f"refresh: {json.dumps(refreshes, default=str)}")

    regions = {"province": PROVINCE, "city": CITY, "county": COUNTY, "town": busiest_town()}
    today = datetime.now(timezone(timedelta(hours=8))).date()
    shapes = {"all": {}, "last_90_days_one_matter": {"date_from": today - timedelta(days=90), "date_to": today,
                                                     "matter_code": "residence-certificate"}}
    result["regions"] = regions
    result["database"] = database_facts()
    log(f"database: {result['database']}")
    result["check"] = check_against_live(regions, shapes)
    log(f"served == live: {result['check']['equal']}")

    result["in_process"] = in_process(regions, shapes, calls=args.calls, baseline_calls=args.baseline_calls)
    if not args.skip_http:
        result["http"] = over_http(regions, shapes, calls=args.calls, password=password, var_dir=args.var_dir)
    result["target_ms"] = TARGET_MS
    province = result["in_process"]["province:all"]["rollup"]
    result["passed"] = bool(result["check"]["equal"] and province["p99_ms"] <= TARGET_MS
                            and (args.skip_http or result["http"]["province:all"]["p99_ms"] <= TARGET_MS))
    result["host"]["loadavg_after"] = os.getloadavg()
    RESULTS_DIR.mkdir(exist_ok=True)
    label = f"-{args.label}" if args.label else ""
    path = RESULTS_DIR / f"figures-{args.cases}{label}-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False, default=str))
    print_table(result)
    log(f"results: {path}")
    return 0 if result["passed"] else 2


def print_table(result: dict[str, Any]) -> None:
    print(f"\nregional figures over {result['database']['cases']:,} cases "
          f"({result['database']['cities_with_cases']} cities, {result['database']['counties_with_cases']} counties)")
    print(f"build {result['build']['seconds_with_commit']} s; refresh after {result['refresh']['transitions']['accepted']} "
          f"transitions {result['refresh']['after_transitions']['seconds_with_commit']} s; "
          f"reconcile {result['refresh']['reconcile']['seconds_with_commit']} s; served == live: {result['check']['equal']}")
    print(f"{'query':34} {'rollup p50':>11} {'p99':>8} {'HTTP p50':>9} {'p99':>8} {'live p50':>9} {'p99':>8} {'×':>6}")
    for key, row in result["in_process"].items():
        if "live_group_by" not in row:
            print(f"{key:34} {row['rollup']['median_ms']:>9.1f}ms {row['rollup']['p99_ms']:>6.1f}ms "
                  f"(live case_counts, states only: p50 {row['live_case_counts']['median_ms']:.0f} ms)")
            continue
        http = result.get("http", {}).get(key, {})
        print(f"{key:34} {row['rollup']['median_ms']:>9.1f}ms {row['rollup']['p99_ms']:>6.1f}ms "
              f"{http.get('median_ms', float('nan')):>7.1f}ms {http.get('p99_ms', float('nan')):>6.1f}ms "
              f"{row['live_group_by']['median_ms']:>7.0f}ms {row['live_group_by']['p99_ms']:>6.0f}ms "
              f"{row['speedup_median']:>6.1f}")
    if "http" in result:
        print(f"HTTP floor GET /healthz: p50 {result['http']['healthz']['median_ms']} ms, "
              f"p99 {result['http']['healthz']['p99_ms']} ms")
    print(f"target: province p99 ≤ {result['target_ms']:.0f} ms — {'PASS' if result['passed'] else 'FAIL'}")


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=10).stdout.strip() or None
    except OSError:
        return None


if __name__ == "__main__":
    sys.exit(main())
