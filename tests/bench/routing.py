"""Routing at national scale: import every region of the country, put a service point on every
county and town and on one village in ten, build the in-memory index, and time the pure routing
decision (target: median ≤ 50 µs). Also times the import (target < 60 s) and reports the index
build time and the process's memory.

    python -m tests.bench.routing --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_routing_bench

The database is reset first (its public schema is dropped): use a scratch database.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import statistics
import tempfile
import time
import timeit
from datetime import datetime, timezone
from pathlib import Path

NATIONAL_FILE = Path(os.environ.get("ONESTOP_NATIONAL_REGIONS", "../shared/data/regions/cn-regions-2023.csv.gz"))
PROTECTED = {"postgres", "test", "onestop_dev", "onestop_ci", "onestop"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--file", type=Path, default=NATIONAL_FILE)
    parser.add_argument("--decisions", type=int, default=20000)
    args = parser.parse_args()
    os.environ["ONESTOP_DATABASE_URL"] = args.database_url
    os.environ.setdefault("ONESTOP_VAR_DIR", tempfile.mkdtemp(prefix="onestop-routing-bench-"))

    import sqlalchemy as sa
    from sqlmodel import Session

    from services.db import get_engine
    from services.migrate import upgrade_to_head
    from services.regions.importer import import_regions
    from services.routing.index import build_index, mark_changed

    url = sa.make_url(args.database_url)
    if url.database in PROTECTED:
        raise SystemExit(f"refusing to reset the database {url.database!r}")
    engine = sa.create_engine(args.database_url)
    with engine.begin() as connection:
        connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade_to_head(args.database_url)

    results: dict = {"started_at": datetime.now(timezone.utc).isoformat(), "database": url.render_as_string(hide_password=True)}
    with Session(get_engine()) as session:
        started = time.perf_counter()
        report = import_regions(session, args.file)
        session.commit()
        results["import_seconds"] = round(time.perf_counter() - started, 2)
        results["regions"] = report.rows
        started = time.perf_counter()
        report_again = import_regions(session, args.file)
        session.commit()
        results["reimport_seconds"] = round(time.perf_counter() - started, 2)
        results["reimport_unchanged"] = report_again.unchanged

        rows = session.execute(sa.text("SELECT code, level FROM regions")).all()
        rng = random.Random(7)
        points = [{"name": f"{code} 服务点", "level": level, "region_code": code}
                  for code, level in rows if level in ("county", "town") or (level == "village" and rng.random() < 0.1)]
        session.execute(sa.text(
            "INSERT INTO service_points (name, level, region_code, address, hours, routing_mode, active, created_at) "
            "VALUES (:name, :level, :region_code, '', '', 'assign', true, now())"), points)
        mark_changed(session)
        session.commit()
        results["service_points"] = len(points)

        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        started = time.perf_counter()
        index = build_index(session)
        results["index_build_seconds"] = round(time.perf_counter() - started, 2)
        results["max_rss_mib_after_build"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
        results["max_rss_mib_before_build"] = round(rss_before / 1024, 1)

    villages = [code for code, level in rows if level == "village"]
    sample = [rng.choice(villages) for _ in range(args.decisions)]
    levels = ("village", "town", "county")
    for level in levels:
        position = iter(range(10**9))
        runs = timeit.repeat(lambda: index.decide(handle_level=level, region_code=sample[next(position) % len(sample)]),
                             number=args.decisions, repeat=7)
        per_call = sorted(run / args.decisions * 1e6 for run in runs)
        results[f"decision_{level}_median_us"] = round(statistics.median(per_call), 2)
    results["target_median_us"] = 50
    results["passed"] = all(results[f"decision_{level}_median_us"] <= 50 for level in levels) and results["import_seconds"] < 60
    print(json.dumps(results, ensure_ascii=False, indent=2))
    out = Path(__file__).parent / "results" / f"routing-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
