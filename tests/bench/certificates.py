"""E-certificate benchmarks (BENCHMARKS.md): render + sign in a warm worker, and the worker's
memory over 1,000 consecutive issues.

    python -m tests.bench.certificates [--render 200] [--issues 1000]
        [--database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_certs_bench]

1. **render + sign** (in this process, no database): `produce_certificate_pdf` for the
   residence certificate (the demo's most common type) after 10 warm-up calls, N times; then
   30 times per type. Median, p90, max in ms. Target: median ≤ 200 ms.
2. **worker RSS over 1,000 issues**: the database named by --database-url is emptied
   (DROP/CREATE SCHEMA public; the names tests/bench/seed.py protects are refused), migrated,
   seeded with the demo county; 1,000 approved residence-certificate cases and their
   `issue_certificate` outbox jobs are written; then a separate worker process (the production
   code path: `services.outbox.service.run_one` in a loop) issues them one by one, reading its
   own VmRSS from /proc after every job. Reported: RSS after the first 100 issues (warm: fonts,
   keys, caches loaded) and at the end; the ratio must stay ≤ 1.10. Also the per-issue time
   (render, sign, store, register, commit).

The public status endpoint is measured with the HTTP harness (Redis, wrk, the bare hello, its
rate limit on at a rate no load reaches):

    python -m tests.bench.run --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_certs_bench \\
        --redis-url redis://127.0.0.1:6379/14 --cases 10000 --only certificate_status

JSON goes to tests/bench/results/certificates-<UTC time>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/onestop_certs_bench"
TARGET_RENDER_MS = 200.0
TARGET_RSS_RATIO = 1.10


def say(message: str) -> None:
    print(f"[cert-bench] {message}", file=sys.stderr, flush=True)


def rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 2),
            "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))], 2),
            "min_ms": round(ordered[0], 2), "max_ms": round(ordered[-1], 2), "n": len(ordered)}


# ----------------------------------------------------------------------------- render + sign

def bench_render(count: int, var_dir: Path) -> dict:
    import datetime as dt

    from services.certificates.identifiers import build_identifier
    from services.certificates.pipeline import produce_certificate_pdf
    from services.certificates.types import load_certificate_types
    from services.config import Settings

    load_before = [round(value, 2) for value in os.getloadavg()]
    settings = Settings(var_dir=var_dir, issuer_pkcs12_path=None)
    types = load_certificate_types()
    issued = dt.date.today()

    cpu: list[float] = []

    def one(cert_type, serial: int) -> float:
        identifier = build_identifier(type_code=cert_type.type_code, issuer_code=cert_type.issuer_code,
                                      serial=f"{issued:%Y}{serial:08d}")
        applicant = cert_type.sample["applicant"]
        holder = applicant.get("credit_code") if cert_type.holder_kind == "organization" else applicant["number_masked"]
        started, started_cpu = time.perf_counter(), time.process_time()
        produce_certificate_pdf(cert_type=cert_type, identifier=identifier, context=cert_type.sample,
                                holder_masked=holder, issued_at=issued, valid_until=cert_type.valid_until(issued),
                                settings=settings)
        cpu.append((time.process_time() - started_cpu) * 1000)
        return (time.perf_counter() - started) * 1000

    residence = types["residence-certificate"]
    for serial in range(10):  # warm-up: fonts, style sheets, keys, the CRL, the seal XObject
        one(residence, serial)
    for cert_type in types.values():
        one(cert_type, 1)
    cpu.clear()
    samples = [one(residence, 100 + index) for index in range(count)]
    cpu_samples = list(cpu)
    per_type = {code: _stats([one(cert_type, 1000 + index) for index in range(30)])
                for code, cert_type in types.items()}
    # wall time is the figure; CPU time (this process only) shows what other load on a shared
    # 2-core machine added to it
    result = {"residence-certificate": _stats(samples), "residence-certificate_cpu": _stats(cpu_samples),
              "per_type": per_type, "target_median_ms": TARGET_RENDER_MS,
              "loadavg_before": load_before}
    result["passed"] = result["residence-certificate"]["median_ms"] <= TARGET_RENDER_MS
    return result


# ----------------------------------------------------------------------------- worker RSS

def prepare_issues(count: int) -> None:
    """Migrate, seed the demo county, write `count` approved cases and their issuing jobs."""
    from sqlmodel import Session, select

    from services.cases.models import Case
    from services.db import get_engine, session_scope
    from services.demo.seed import seed_demo
    from services.migrate import upgrade_to_head
    from services.outbox.models import OutboxJob
    from services.points.models import ServicePoint
    from services.subjects.identity_numbers import mod11_2_check, parse_subject_number
    from services.subjects.repository import get_or_create_subject

    from services.config import get_settings

    upgrade_to_head(get_settings().resolved_database_url)
    with session_scope() as session:
        seed_demo(session)
    with Session(get_engine()) as session:
        point = session.exec(select(ServicePoint).where(ServicePoint.level == "village")).first()
    with session_scope() as session:
        for index in range(count):
            body = f"361130{19600101 + (index % 28) + 100 * (index % 12):08d}{index % 1000:03d}"
            number = parse_subject_number(body + mod11_2_check(body), subject_kind="person")
            subject = get_or_create_subject(session, number=number, name="程" + "春花秀英立新"[index % 6])
            case_id = str(uuid.uuid4())
            session.add(Case(id=case_id, number=f"B{index:019d}", matter_code="residence-certificate",
                             matter_version=1, state="approved", subject_id=subject.id,
                             subject_hash=subject.number_hash, applicant_name=subject.name,
                             region_code=point.region_code, receiving_channel="online", handling_point_id=point.id,
                             routing_reason="benchmark", created_by="self", created_by_principal="bench:0",
                             form={"address": f"婺源县秋口镇秋口村 {index} 号", "since": "2019-05", "purpose": "子女入学"}))
            session.flush()
            session.add(OutboxJob(kind="issue_certificate", payload={"case_id": case_id},
                                  dedupe_key=f"issue_certificate:{case_id}"))
            if index % 200 == 199:
                session.flush()


def worker_main(count: int) -> None:
    """The worker process: run issuing jobs one by one, print RSS and time per job (JSON lines)."""
    from services.db import get_engine
    from services.outbox.registry import register_all_handlers
    from services.outbox.service import run_one

    register_all_handlers()
    engine = get_engine()
    print(json.dumps({"event": "start", "rss_kib": rss_kib()}), flush=True)
    for index in range(count):
        started = time.perf_counter()
        if not run_one(engine, worker="bench-worker"):
            break
        print(json.dumps({"event": "job", "index": index, "ms": round((time.perf_counter() - started) * 1000, 2),
                          "rss_kib": rss_kib()}), flush=True)


def bench_rss(database_url: str, count: int, var_dir: Path) -> dict:
    from services.db import get_engine

    from tests.bench.seed import reset_database

    say(f"resetting and seeding {database_url.rsplit('/', 1)[-1]} ...")
    reset_database(database_url)
    get_engine.cache_clear()
    started = time.perf_counter()
    prepare_issues(count)
    say(f"{count} approved cases with their jobs written in {time.perf_counter() - started:.1f}s; "
        "starting the worker process")
    process = subprocess.run([sys.executable, "-m", "tests.bench.certificates", "--worker", str(count)],
                             cwd=PROJECT_ROOT, env=os.environ.copy(), capture_output=True, text=True,
                             timeout=3600)
    if process.returncode != 0:
        raise RuntimeError(f"worker failed: {process.stderr[-3000:]}")
    lines = [json.loads(line) for line in process.stdout.splitlines() if line.startswith("{")]
    jobs = [line for line in lines if line["event"] == "job"]
    if len(jobs) != count:
        raise RuntimeError(f"the worker ran {len(jobs)} jobs of {count}: {process.stderr[-2000:]}")
    warm = jobs[min(99, count - 1)]["rss_kib"]
    samples = {str(job["index"] + 1): job["rss_kib"] for job in jobs if (job["index"] + 1) % 100 == 0}
    from sqlalchemy import text

    with get_engine().connect() as connection:
        issued = connection.execute(text("SELECT count(*) FROM certificates")).scalar_one()
    result = {"issues": count, "certificates_in_registry": issued, "rss_start_kib": lines[0]["rss_kib"],
              "rss_after_100_kib": warm, "rss_end_kib": jobs[-1]["rss_kib"],
              "rss_max_kib": max(job["rss_kib"] for job in jobs), "rss_every_100_kib": samples,
              "ratio_end_to_warm": round(jobs[-1]["rss_kib"] / warm, 4),
              "ratio_max_to_warm": round(max(job["rss_kib"] for job in jobs[99:]) / warm, 4),
              "issue_ms": _stats([job["ms"] for job in jobs[10:]]), "target_ratio": TARGET_RSS_RATIO}
    result["passed"] = result["ratio_max_to_warm"] <= TARGET_RSS_RATIO and issued == count
    return result


# ----------------------------------------------------------------------------- status over HTTP, limiter on

# ----------------------------------------------------------------------------- main

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.certificates", description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", type=int, default=200, help="render + sign calls measured")
    parser.add_argument("--issues", type=int, default=1000, help="issues for the RSS run (0: skip it)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL, help="emptied and reseeded for the RSS run")
    parser.add_argument("--var-dir", type=Path, default=Path(tempfile.gettempdir()) / "onestop-cert-bench-var")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker is not None:
        worker_main(args.worker)
        return 0
    from tests.bench.seed import configure_environment

    import shutil

    shutil.rmtree(args.var_dir, ignore_errors=True)
    configure_environment(args.database_url, args.var_dir, ONESTOP_RATE_LIMITS="off")
    os.environ.pop("ONESTOP_REDIS_URL", None)
    results: dict = {"host": {"cpus": os.cpu_count(), "platform": platform.platform(),
                              "python": platform.python_version()},
                     "started_at": datetime.now(timezone.utc).isoformat()}
    say(f"render + sign: {args.render} residence certificates after warm-up, then 30 of every type")
    results["render_sign"] = bench_render(args.render, args.var_dir / "render")
    headline = results["render_sign"]["residence-certificate"]
    say(f"  median {headline['median_ms']} ms, p90 {headline['p90_ms']} ms, CPU median "
        f"{results['render_sign']['residence-certificate_cpu']['median_ms']} ms "
        f"({'PASS' if results['render_sign']['passed'] else 'FAIL'} ≤ {TARGET_RENDER_MS:.0f} ms)")
    for code, figures in results["render_sign"]["per_type"].items():
        say(f"    {code:<36} median {figures['median_ms']:7.2f} ms  p90 {figures['p90_ms']:7.2f} ms")
    if args.issues:
        results["worker_rss"] = bench_rss(args.database_url, args.issues, args.var_dir)
        rss = results["worker_rss"]
        say(f"  worker RSS: {rss['rss_after_100_kib'] / 1024:.1f} MiB after 100 issues, "
            f"{rss['rss_end_kib'] / 1024:.1f} MiB after {rss['issues']} (max/warm {rss['ratio_max_to_warm']}, "
            f"{'PASS' if rss['passed'] else 'FAIL'} ≤ {TARGET_RSS_RATIO}); per issue median "
            f"{rss['issue_ms']['median_ms']} ms")
    results["passed"] = all(part.get("passed", True) for part in results.values() if isinstance(part, dict))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"certificates-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(results, ensure_ascii=False, indent=2))
    say(f"wrote {out}")
    return 0 if results["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
