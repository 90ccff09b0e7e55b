"""Where a request's time goes: the project's own work per endpoint, in-process, without HTTP.

    python -m tests.bench.profile_requests --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_bench \
        [--requests 300] [--only submit,transition,get_case,list_cases] [--top 25]

Run it against a database the HTTP benchmark seeded (tests/bench/run.py leaves it in place). For
each endpoint it does what the route does — verify the token, load the principal, run the
service, build the view, commit — N times, and prints the mean time, the SQL statements per
request (each one a round trip to the database) and the functions of services/ and api/ that
take the most cumulative time (cProfile). Not a throughput benchmark (run.py is): this is the
profile that tells what to change. The work it creates (cases, accepted cases) stays in the
database, as the HTTP benchmark's does.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from tests.bench.seed import default_var_dir, configure_environment

SCENARIOS = ("submit", "transition", "get_case", "list_cases")


def _statement_counter(engine) -> list[int]:
    """Statements sent through SQLAlchemy on the engine and on the reads' pool. The writes that
    services.db sends straight through psycopg (write_at_once, write_guarded) are not seen: each
    is one more round trip."""
    from sqlalchemy import event

    from services.db import without_transactions

    counter = [0]

    def count(*_args) -> None:
        counter[0] += 1

    for each in {engine, without_transactions(engine)}:
        event.listen(each, "before_cursor_execute", count)
    return counter


def _request(engine, token: str, work: Callable) -> None:
    """What every authenticated route does around its service call (api/deps.py, api/routing.py):
    these four routes take a statement session (@reads_only, @autocommits)."""
    from api.deps import load_principal, resolve_principal
    from services.accounts import tokens
    from services.db import each_statement_commits, statement_session

    with statement_session(engine) as session:
        claims = tokens.decode_access_token(token)
        principal = asyncio.run(resolve_principal(session, claims=claims, load=load_principal))
        work(session, principal)
        if not each_statement_commits(session):
            session.commit()


def _citizen(engine, number_index: int, region_code: str) -> tuple[str, str, str]:
    """A citizen account bound to a subject (as real-name binding leaves it): (token, number, name)."""
    from sqlmodel import Session, select

    from services.accounts import tokens
    from services.accounts.models import CitizenAccount
    from datetime import date

    from services.subjects.identity_numbers import parse_subject_number
    from services.subjects.repository import get_or_create_subject
    from tests.bench.seed import id_number

    number = id_number(region_code[:6], date(1990, 1, 1), 900 + number_index % 100)
    with Session(engine, expire_on_commit=False) as session:
        subject = get_or_create_subject(session, number=parse_subject_number(number, subject_kind="person"),
                                        name="程序测")
        account = session.exec(select(CitizenAccount).where(CitizenAccount.subject_id == subject.id)).first()
        if account is None:  # the first run against this database
            account = CitizenAccount(openid=f"profile-{uuid.uuid4().hex}", subject_id=subject.id)
            session.add(account)
            session.commit()
        token, _, record = tokens.new_access_token(principal=f"citizen:{account.id}", roles=("citizen",),
                                                  family=tokens.new_family())
        session.add(record)
        session.commit()
    return token, number, "程序测"


def _staff_token(engine, username: str) -> str:
    from sqlmodel import Session, select

    from services.accounts import tokens
    from services.points.models import Staff

    with Session(engine) as session:
        staff = session.exec(select(Staff).where(Staff.username == username)).one()
        token, _, record = tokens.new_access_token(principal=f"staff:{staff.id}", roles=(staff.role,),
                                                  family=tokens.new_family())
        session.add(record)
        session.commit()
    return token


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--var-dir", type=Path, default=None)
    parser.add_argument("--redis-url", default=None)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", default=",".join(SCENARIOS))
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--no-profile", action="store_true",
                        help="time and count statements only: the CPU figures without cProfile's overhead")
    args = parser.parse_args(argv)
    args.var_dir = args.var_dir or default_var_dir(args.database_url)
    extra = {"ONESTOP_RATE_LIMITS": "off", **({"ONESTOP_REDIS_URL": args.redis_url} if args.redis_url else {})}
    configure_environment(args.database_url, args.var_dir, **extra)

    from sqlmodel import Session

    from services.cases import service as cases
    from services.db import get_engine
    from services.files.service import store_upload
    from services.outbox.registry import register_all_handlers
    from tests.bench.run import MINIMAL_PDF, application, busiest_town_points, sample_column
    from tests.bench.seed import seed_submitted_cases

    register_all_handlers()
    engine = get_engine()
    statements = _statement_counter(engine)
    reads, writes, submits = busiest_town_points()[:3]
    n = args.requests
    scenarios: dict[str, tuple[str, list[Callable]]] = {}
    only = set(args.only.split(","))

    if "get_case" in only:
        ids = sample_column("SELECT id FROM cases WHERE handling_point_id = :p ORDER BY random() LIMIT :n",
                            {"p": reads.id, "n": n})
        scenarios["get_case"] = (_staff_token(engine, reads.clerk), [
            (lambda case_id: lambda s, p: cases.get_case_view(s, principal=p, case_id=case_id))(i) for i in ids])
    if "list_cases" in only:
        scenarios["list_cases"] = (_staff_token(engine, reads.clerk),
                                   [lambda s, p: cases.list_cases(s, principal=p)] * n)
    if "transition" in only:
        ids = seed_submitted_cases(point_id=writes.id, count=n, rng_seed=int(time.time()), report=lambda m: None)
        scenarios["transition"] = (_staff_token(engine, writes.clerk), [
            (lambda case_id: lambda s, p: cases.case_view(
                s, cases.act(s, principal=p, case_id=case_id, action="accept", version=1, comment=None, payload=None),
                principal=p))(i) for i in ids])
    if "submit" in only:
        from services.accounts.service import load_principal

        token, number, name = _citizen(engine, 1, submits.village_code)
        with Session(engine, expire_on_commit=False) as session:
            from services.accounts import tokens

            principal = load_principal(session, principal_key=tokens.decode_access_token(token).principal)
            files = [store_upload(session, principal=principal, chunks=[MINIMAL_PDF]).id for _ in range(n)]
            session.commit()

        def submit(file_id: str):
            body = application(number=number, real_name=name, region_code=submits.village_code, file_id=file_id)

            def work(s, p):
                submitted = cases.submit_case(s, principal=p, body=body, idempotency_key=uuid.uuid4().hex)
                return cases.case_view(s, submitted.case, principal=p, details=submitted.details)
            return work
        scenarios["submit"] = (token, [submit(file_id) for file_id in files])

    for name in SCENARIOS:
        if name not in scenarios:
            continue
        token, works = scenarios[name]
        warm = max(5, len(works) // 10)
        for work in works[:warm]:
            _request(engine, token, work)
        timings, cpu = [], []
        statements[0] = 0
        profiler = cProfile.Profile()
        for work in works[warm:]:
            started, started_cpu = time.perf_counter(), time.thread_time()
            if not args.no_profile:
                profiler.enable()
            _request(engine, token, work)
            profiler.disable()
            timings.append((time.perf_counter() - started) * 1000)
            cpu.append((time.thread_time() - started_cpu) * 1000)
        count = len(timings)
        print(f"\n=== {name}: {count} requests, mean {statistics.mean(timings):.2f} ms, median "
              f"{statistics.median(timings):.2f} ms, CPU of this thread {statistics.median(cpu):.2f} ms"
              f"{'' if args.no_profile else ' (profiled: cProfile roughly doubles it)'}, "
              f"{statements[0] / count:.1f} SQL statements/request")
        if args.no_profile:
            continue
        stats = pstats.Stats(profiler)
        stats.sort_stats("cumulative")
        rows = [(key, value) for key, value in stats.stats.items()
                if "/services/" in key[0] or "/api/" in key[0] or "/workflows/" in key[0]]
        rows.sort(key=lambda item: -item[1][3])
        for (path, line, function), (_cc, calls, _tt, cumulative, _callers) in rows[:args.top]:
            short = path.split("/work/")[-1].split("/", 1)[-1]
            print(f"  {cumulative / count * 1000:7.2f} ms  {calls / count:5.1f}×  {function} ({short}:{line})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
