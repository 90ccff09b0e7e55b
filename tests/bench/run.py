"""The HTTP benchmark: bare baseline, the project's endpoints, bare baseline again (BENCHMARKS.md).

    python -m tests.bench.run --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_bench \
        --cases 10000 [--duration 30 --warmup 10 --connections 8]
    python -m tests.bench.run --database-url ... --smoke        # = --cases 1000 --duration 5 --warmup 2

Steps: reset the database (DROP/CREATE SCHEMA public, or CREATE DATABASE) and seed it
(tests/bench/seed.py); start the fake WeChat server in this process; start the baseline app with
uvicorn and measure hello / insert / select with wrk; start the project the production way
(`uvicorn api.asgi:app --workers 1 --log-level warning`), prepare sign-ins, files and cases over
its API (and in-process where only volume matters), measure the five endpoints; measure the
baseline again; write the JSON to tests/bench/results/ and print a table. Every process started
here is stopped on the way out, also on Ctrl-C or an error. See README.md here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from tests.bench.seed import default_var_dir, configure_environment, id_number, log as _seed_log

BENCH_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = BENCH_DIR.parent.parent
LUA_DIR = BENCH_DIR / "lua"
RESULTS_DIR = BENCH_DIR / "results"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/onestop_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
FAKE_WECHAT_APPID, FAKE_WECHAT_SECRET = "wxdemo0000000000", "demo-secret"
MINIMAL_PDF = (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\n"
               b"trailer<</Root 1 0 R>>\n%%EOF\n")
SKIPPED_BASELINE_INSERT_RPS = 2_000.0  # sizes the write pools when no bare insert was measured: generous
SAMPLE_LIMIT = 20_000  # ids / identifiers handed to wrk for the read benchmarks

# BENCHMARKS.md "Targets". throughput: at least this share of the matching bare figure; p99: at most
# this multiple of the bare p99; scale: 1M-case figures at most this multiple of the 10k ones
# (compared as ratios to the baseline of their own run, see README.md).
TARGETS: dict[str, dict[str, Any]] = {
    "submit": {"label": "POST /cases", "baseline": "insert", "min_throughput": 0.35, "max_p99": 3.0,
               "max_scale": 1.25},
    "transition": {"label": "POST /cases/{id}/actions", "baseline": "insert", "min_throughput": 0.35,
                   "max_p99": 3.0, "max_scale": 1.25},
    "get_case": {"label": "GET /cases/{id}", "baseline": "select", "min_throughput": 0.50, "max_p99": 3.0,
                 "max_scale": 1.25},
    "list_cases": {"label": "GET /cases", "baseline": "select", "min_throughput": 0.40, "max_p99": 3.0,
                   "max_scale": 1.25},
    "certificate_status": {"label": "GET /public/certificates/{id}/status", "baseline": "hello",
                           "min_throughput": 0.50, "max_p99": 3.0, "max_scale": None},
    # issue 6: sign-in p99 within 3× of the bare hello's, against the local fake WeChat (no throughput
    # target). "floor": the bare WeChat code exchange alone, the least a sign-in does, reported beside it
    "sign_in": {"label": "POST /auth/wechat-login", "baseline": "hello", "min_throughput": None, "max_p99": 3.0,
                "max_scale": None, "floor": "wechat"},
}
ENDPOINT_ORDER = ("get_case", "list_cases", "certificate_status", "submit", "transition", "sign_in")
BASELINE_ORDER = ("hello", "insert", "select", "wechat")


def say(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def shout(message: str) -> None:
    bar = "!" * 100
    print(f"\n{bar}\n!!! {message}\n{bar}\n", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- processes

class Processes:
    """Child processes, each in its own session so that it (and anything it forks) can be
    stopped by its own process-group id, and nothing else."""

    def __init__(self) -> None:
        self.running: dict[str, subprocess.Popen] = {}
        self._logs: dict[str, Any] = {}

    def start(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path | None = None,
              capture: bool = False) -> subprocess.Popen:
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(log_path, "wb")  # noqa: SIM115 (closed in stop)
            self._logs[name] = handle
            stdout = stderr = handle
        elif capture:
            stdout, stderr = subprocess.PIPE, subprocess.PIPE
        else:
            stdout = stderr = subprocess.DEVNULL
        process = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=stdout, stderr=stderr,
                                   start_new_session=True)
        self.running[name] = process
        return process

    def stop(self, name: str, *, grace: float = 10.0) -> int | None:
        process = self.running.pop(name, None)
        if process is None:
            return None
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                process.wait(timeout=5)
        handle = self._logs.pop(name, None)
        if handle is not None:
            handle.close()
        return process.returncode

    def stop_all(self) -> None:
        for name in list(self.running):
            try:
                self.stop(name)
            except Exception as error:  # keep stopping the others
                say(f"could not stop {name}: {error}")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_ready(url: str, process: subprocess.Popen, *, log_path: Path, timeout: float = 90.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before it was ready; log {log_path}:\n"
                               + tail(log_path))
        try:
            response = httpx.get(url, timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:200]}"
        except httpx.HTTPError as error:
            last = type(error).__name__
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s ({last}); log {log_path}:\n" + tail(log_path))


def tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def uvicorn_argv(app: str, port: int) -> list[str]:
    # The production command line (README / BENCHMARKS.md), on a free loopback port.
    return [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", "1", "--log-level", "warning"]


# ----------------------------------------------------------------------------- wrk

@dataclass
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]
    raw: str = field(repr=False)

    @property
    def errors(self) -> int:
        return self.non_2xx + sum(self.socket_errors.values())


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(number: str, unit: str) -> float:
    return float(number) * _UNITS_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    def need(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise ValueError(f"wrk output without {pattern!r}:\n{output}")
        return match

    total = need(r"(\d+) requests in ([\d.]+)(us|ms|s|m|h),")
    latency = {int(m.group(1)): _ms(m.group(2), m.group(3))
               for m in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)}
    max_latency = need(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m|h)")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    return WrkResult(
        requests=int(total.group(1)), seconds=_ms(total.group(2), total.group(3)) / 1000,
        rps=float(need(r"Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=latency[50], p75_ms=latency[75], p90_ms=latency[90], p99_ms=latency[99],
        max_ms=_ms(max_latency.group(1), max_latency.group(2)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=dict(zip(("connect", "read", "write", "timeout"), map(int, sockets.groups())))
        if sockets else {},
        raw=output)


@dataclass
class Load:
    threads: int
    connections: int
    warmup: int
    duration: int
    timeout: str


def run_wrk(processes: Processes, url: str, *, load: Load, seconds: int, script: Path | None = None,
            script_args: list[Any] | None = None) -> WrkResult:
    argv = ["wrk", "-t", str(load.threads), "-c", str(load.connections), "-d", f"{seconds}s", "--latency",
            "--timeout", load.timeout]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(url)
    if script_args:
        argv += ["--", *map(str, script_args)]
    process = processes.start("wrk", argv, env=dict(os.environ), capture=True)
    try:
        stdout, stderr = process.communicate(timeout=seconds + 120)
    finally:
        processes.stop("wrk")
    output = stdout.decode(errors="replace")
    if process.returncode != 0 or "requests in" not in output:
        raise RuntimeError(f"wrk failed ({process.returncode}): {' '.join(map(str, argv))}\n"
                           f"{output}\n{stderr.decode(errors='replace')}")
    if stderr.strip():
        say("wrk said: " + stderr.decode(errors="replace").strip()[:500])
    return parse_wrk(output)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process (all its threads) has used so far, from /proc. Unlike
    wall-clock throughput it does not count time the host gave to other machines (steal)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def database_cpu_seconds() -> float:
    """CPU time of every process named postgres on this machine (the server and its backends;
    backends that exit during the run take theirs with them, the project's pool keeps its own)."""
    total = 0.0
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() == "postgres":
                    total += cpu_seconds(int(entry.name))
            except (FileNotFoundError, ProcessLookupError, PermissionError):
                continue
    return total


def measure(processes: Processes, name: str, url: str, *, load: Load, script: Path | None = None,
            args_for: Any = None, server: subprocess.Popen | None = None) -> dict[str, Any]:
    """Warm-up run (discarded), then the measured run. `args_for(phase)` gives the script
    arguments of each phase ("warmup", "measure"). With the `server` process, also the CPU
    milliseconds it and PostgreSQL spent per request during the measured run: a figure the
    host's noise moves less than requests per second."""
    load_average = os.getloadavg()
    if load.warmup > 0:
        warm = run_wrk(processes, url, load=load, seconds=load.warmup, script=script,
                       script_args=args_for("warmup") if args_for else None)
        say(f"  {name:<20} warm-up  {warm.rps:9.1f} req/s  p99 {warm.p99_ms:8.2f} ms  errors {warm.errors}")
    cpu_before = (cpu_seconds(server.pid), database_cpu_seconds()) if server else None
    result = run_wrk(processes, url, load=load, seconds=load.duration, script=script,
                     script_args=args_for("measure") if args_for else None)
    summary = {key: value for key, value in asdict(result).items() if key != "raw"}
    cpu = ""
    if cpu_before and result.requests:
        summary["server_cpu_ms_per_request"] = (cpu_seconds(server.pid) - cpu_before[0]) * 1000 / result.requests
        summary["database_cpu_ms_per_request"] = (database_cpu_seconds() - cpu_before[1]) * 1000 / result.requests
        cpu = (f"  cpu/req {summary['server_cpu_ms_per_request']:.2f} ms server"
               f" + {summary['database_cpu_ms_per_request']:.2f} ms db")
    flag = "   <-- ERRORS" if result.errors else ""
    say(f"  {name:<20} measured {result.rps:9.1f} req/s  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:8.2f} ms"
        f"  errors {result.errors}{cpu}{flag}")
    summary["errors"] = result.errors
    summary["loadavg_before"] = [round(value, 2) for value in load_average]  # 1/5/15 min: was the machine busy?
    summary["wrk_output"] = result.raw
    return summary


# ----------------------------------------------------------------------------- wrk data files

def _lua(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        if "]==]" in value or value.startswith("\n"):
            raise ValueError("string not representable as a Lua long string")
        return "[==[" + value + "]==]"
    if isinstance(value, (list, tuple)):
        return "{" + ", ".join(_lua(item) for item in value) + "}"
    if isinstance(value, dict):
        if not all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", str(key)) for key in value):
            raise ValueError("Lua table keys must be identifiers")
        return "{" + ", ".join(f"{key} = {_lua(item)}" for key, item in value.items()) + "}"
    raise TypeError(type(value))


def write_data_file(directory: Path, name: str, *, items: list[str], **fields: Any) -> Path:
    """A Lua data file for lua/pool.lua: `items` one per line in a long string (a table literal
    with tens of thousands of constants would hit LuaJIT's limits), other fields as literals."""
    if not items or any("\n" in item or not item for item in items):
        raise ValueError("items must be non-empty single-line strings")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.lua"
    body = [f"  {key} = {_lua(value)}," for key, value in fields.items()]
    path.write_text("return {\n" + "\n".join(body) + "\n  items = " + _lua("\n".join(items)) + ",\n}\n",
                    encoding="utf-8")
    path.chmod(0o600)  # holds bearer tokens
    return path


def pool_args(data: Path, size: int, threads: int):
    """Script arguments for a read pool: every phase may use every item."""
    return lambda phase: [data, 0, size, threads]


@dataclass
class ConsumablePool:
    """Items that can be used once (files, cases to accept): separate slices for warm-up and
    measured run, and two spares for the probes before and after."""

    warmup: int
    measure: int

    @classmethod
    def sized(cls, *, bound_rps: float, load: Load) -> "ConsumablePool":
        margin = 2 * load.connections + 8 * load.threads
        return cls(warmup=math.ceil(bound_rps * load.warmup) + margin if load.warmup else 0,
                   measure=math.ceil(bound_rps * load.duration) + margin)

    @property
    def total(self) -> int:
        return self.warmup + self.measure + 2

    @property
    def probe_before(self) -> int:
        return self.warmup + self.measure

    @property
    def probe_after(self) -> int:
        return self.warmup + self.measure + 1

    def args(self, data: Path, threads: int):
        def for_phase(phase: str) -> list[Any]:
            if phase == "warmup":
                return [data, 0, self.warmup, threads]
            return [data, self.warmup, self.warmup + self.measure, threads]
        return for_phase


# ----------------------------------------------------------------------------- the API, for preparation

class Api:
    """The project's API for the preparation steps (not measured).

    Writes are retried for a short while when the next request does not see them yet: the
    project commits a request's transaction only after the response has been sent (see
    README.md, "Caveats"), so a client that acts on an answer at once can find the row
    not there yet. Every such retry is counted in `read_after_write_retries`.
    """

    RETRY_FOR_SECONDS = 5.0

    def __init__(self, base_url: str):
        import httpx

        self.client = httpx.Client(base_url=base_url, timeout=120)
        self.server: subprocess.Popen | None = None
        self.read_after_write_retries: dict[str, int] = {}

    def close(self) -> None:
        self.client.close()

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def expect(self, response, *statuses: int):
        if response.status_code not in statuses:
            raise RuntimeError(f"{response.request.method} {response.request.url.path} -> {response.status_code}: "
                               f"{response.text[:2000]}")
        return response

    def until(self, what: str, send, *statuses: int, ok=None):
        """send() until the status is one of `statuses` (and ok(response), if given) or time is up."""
        deadline = time.monotonic() + self.RETRY_FOR_SECONDS
        while True:
            response = send()
            if response.status_code in statuses and (ok is None or ok(response)):
                return response
            if response.status_code >= 500 or time.monotonic() > deadline:
                return self.expect(response, -1)
            self.read_after_write_retries[what] = self.read_after_write_retries.get(what, 0) + 1
            time.sleep(0.02)

    def citizen_login(self, name: str) -> dict[str, Any]:
        code = f"demo-{name}.{uuid.uuid4().hex[:12]}"
        tokens = self.expect(self.client.post("/api/v1/auth/wechat-login", json={"code": code}), 200).json()
        # the account row (first sign-in) must be there before the token is any use
        self.until("sign-in -> /me", lambda: self.client.get("/api/v1/me", headers=self.auth(tokens["access_token"])),
                   200)
        return tokens

    def verified_citizen(self, name: str, *, real_name: str, number: str) -> tuple[str, int]:
        """Sign in and bind a real name (idempotent for an account already bound to the number).
        Returns (access token, citizen account id)."""
        tokens = self.citizen_login(name)
        token = tokens["access_token"]
        headers = self.auth(token)
        if not tokens["user"]["real_name_verified"]:
            started = self.expect(self.client.post("/api/v1/me/real-name/start",
                                                   json={"name": real_name, "id_number": number},
                                                   headers=headers), 200).json()
            self.until("real-name start -> finish",
                       lambda: self.client.post("/api/v1/me/real-name", json={"verify_id": started["verify_id"]},
                                                headers=headers), 200)
        me = self.until("real-name finish -> /me", lambda: self.client.get("/api/v1/me", headers=headers), 200,
                        ok=lambda r: r.json()["real_name_verified"]).json()
        return token, int(me["id"].split(":", 1)[1])

    def staff_login(self, username: str) -> str:
        from services.demo.seed import demo_password

        response = self.client.post("/api/v1/auth/login",
                                    json={"username": username, "password": demo_password(username)})
        return self.expect(response, 200).json()["access_token"]

    def upload_pdf(self, token: str) -> str:
        response = self.client.post("/api/v1/files", files={"file": ("id-card.pdf", MINIMAL_PDF, "application/pdf")},
                                    headers=self.auth(token))
        return self.expect(response, 201).json()["id"]


def application(*, number: str, real_name: str, region_code: str, file_id: str) -> dict[str, Any]:
    return {"matter_code": "residence-certificate",
            "applicant": {"kind": "person", "id_number": number, "name": real_name},
            "region_code": region_code,
            "form": {"address": "江西省婺源县秋口镇秋口村 12 号", "since": "2019-05", "purpose": "子女入学"},
            "materials": [{"code": "id-card", "file_id": file_id}]}


def bench_citizen(index: int) -> tuple[str, str, str]:
    """(fake-WeChat name, real name, ID number) of the benchmark's own citizens: born from 2006 on,
    so their numbers never collide with the seeded subjects (born 1940-2005)."""
    names = "王李张刘陈杨黄赵吴周"
    number = id_number("361130", date(2006, 1, 1) + timedelta(days=index // 900), index % 900 + 100)
    return f"bench{index}", names[index % len(names)] + "测试" + "一二三四五六七八九十"[index // 10 % 10], number


# ----------------------------------------------------------------------------- database look-ups

@dataclass(frozen=True)
class Point:
    id: int
    name: str
    cases: int
    clerk: str
    village_code: str  # a village whose residence-certificate cases this point handles


def busiest_town_points() -> list[Point]:
    """Town centres by number of cases they handle, busiest first, with a clerk and a village."""
    import random as _random

    from sqlalchemy import text
    from sqlmodel import Session

    from services.db import get_engine
    from tests.bench.seed import load_villages

    with Session(get_engine()) as session:
        rows = session.execute(text(
            "SELECT sp.id, sp.name, COUNT(c.id) AS n FROM service_points sp "
            "LEFT JOIN cases c ON c.handling_point_id = sp.id WHERE sp.level = 'town' "
            "GROUP BY sp.id, sp.name ORDER BY n DESC, sp.id")).all()
        clerks = dict(session.execute(text(
            "SELECT DISTINCT ON (service_point_id) service_point_id, username FROM staff "
            "WHERE role = 'clerk' AND active ORDER BY service_point_id, id")).all()) \
            if session.get_bind().dialect.name == "postgresql" else {
            point: username for point, username in session.execute(text(
                "SELECT service_point_id, username FROM staff WHERE role = 'clerk' AND active "
                "ORDER BY service_point_id DESC, id DESC")).all()}
        villages: dict[int, str] = {}
        for village in load_villages(session, _random.Random(0)):
            villages.setdefault(village.point_id, village.code)
    return [Point(id=r[0], name=r[1], cases=int(r[2]), clerk=clerks[r[0]], village_code=villages[r[0]])
            for r in rows if r[0] in clerks and r[0] in villages]


def sample_column(sql: str, params: dict[str, Any] | None = None) -> list[str]:
    from sqlalchemy import text

    from services.db import get_engine

    with get_engine().connect() as connection:
        return [row[0] for row in connection.execute(text(sql), params or {})]


def database_facts() -> dict[str, Any]:
    from sqlalchemy import text

    from services.db import get_engine

    engine = get_engine()
    with engine.connect() as connection:
        facts = {table: connection.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
                 for table in ("cases", "case_events", "subjects", "certificates", "files")}
        if engine.dialect.name == "postgresql":
            facts["server"] = connection.execute(text("SHOW server_version")).scalar_one()
            facts["database_size"] = connection.execute(
                text("SELECT pg_size_pretty(pg_database_size(current_database()))")).scalar_one()
    return facts


# ----------------------------------------------------------------------------- preparation steps

def create_files_in_process(account_ids: list[int], count: int) -> list[tuple[int, str]]:
    """`count` uploaded PDFs, round-robin over the citizens, through the project's own
    store_upload (same rows and storage as POST /files, without 40,000 multipart requests).
    Returns (citizen index, file id) in order."""
    from services.accounts.principal import Principal
    from services.db import session_scope
    from services.files.service import store_upload

    principals = [Principal(kind="citizen", account_id=account_id, roles=("citizen",)) for account_id in account_ids]
    out: list[tuple[int, str]] = []
    started = time.perf_counter()
    while len(out) < count:
        with session_scope() as session:
            for _ in range(min(2000, count - len(out))):
                index = len(out) % len(principals)
                record = store_upload(session, principal=principals[index], chunks=[MINIMAL_PDF])
                out.append((index, record.id))
    say(f"  {count:,} files stored in-process in {time.perf_counter() - started:.1f}s")
    return out


def issue_real_certificate(api: Api, point: Point) -> str | None:
    """One case through the real path: API submit, accept, approve, the outbox job renders and
    signs the PDF. Returns the certificate's identifier (None, loudly, if issuing failed)."""
    from services.db import get_engine
    from services.outbox.registry import register_all_handlers
    from services.outbox.service import run_until_idle

    name, real_name, number = bench_citizen(999)
    token, _account = api.verified_citizen(name, real_name=real_name, number=number)
    file_id = api.upload_pdf(token)
    body = application(number=number, real_name=real_name, region_code=point.village_code, file_id=file_id)
    key = uuid.uuid4().hex
    case = api.until("upload -> submit", lambda: api.client.post(
        "/api/v1/cases", json=body, headers={**api.auth(token), "Idempotency-Key": key}), 201).json()
    clerk = api.staff_login(point.clerk)
    for action, extra in (("accept", {}), ("approve", {"comment": "情况属实"})):
        version = case["version"]
        case = api.until(f"{action}", lambda: api.client.post(
            f"/api/v1/cases/{case['id']}/actions", json={"action": action, "version": version, **extra},
            headers=api.auth(clerk)), 200).json()
    register_all_handlers()
    started = time.perf_counter()
    ran, mine = 0, []
    while time.perf_counter() - started < 60 and not mine:
        # the approval's job is committed after its response; only issuing jobs: on a reused
        # database earlier runs' notifications (tens of thousands) would come first
        ran += run_until_idle(get_engine(), kinds=("issue_certificate",))
        certificates = api.expect(api.client.get("/api/v1/certificates", headers=api.auth(token)),
                                  200).json()["items"]
        mine = [c for c in certificates if c["case_id"] == case["id"]]
        if not mine:
            time.sleep(0.1)
    if not mine:
        shout(f"the issuing job did not produce a certificate (ran {ran} job(s)); see outbox_jobs.last_error")
        return None
    identifier = mine[0]["identifier"]
    status = api.client.get(f"/api/v1/public/certificates/{identifier}/status")
    api.expect(status, 200)
    say(f"  real certificate issued through the outbox in {time.perf_counter() - started:.1f}s: {identifier}")
    return identifier


def probe(api: Api, method: str, path: str, *, token: str | None = None, body: Any = None,
          headers: dict[str, str] | None = None) -> dict[str, Any]:
    """One request like wrk's, to check the set-up and to show what an error looks like."""
    all_headers = dict(headers or {})
    if api.server is not None and api.server.poll() is not None:
        return {"status": None, "ms": None, "body": f"the server is gone (exit {api.server.returncode})"}
    if token:
        all_headers.update(api.auth(token))
    started = time.perf_counter()
    response = api.client.request(method, path, headers=all_headers,
                                  content=body.encode() if isinstance(body, str) else None)
    return {"status": response.status_code, "ms": round((time.perf_counter() - started) * 1000, 2),
            "body": response.text[:1500] if response.status_code >= 300 else None}


# ----------------------------------------------------------------------------- phases

def run_baseline(processes: Processes, *, label: str, load: Load, env: dict[str, str], logs: Path,
                 database_url: str) -> dict[str, Any]:
    port = free_port()
    log_path = logs / f"baseline-{label}.log"
    server = processes.start(f"baseline-{label}", uvicorn_argv("tests.bench.baseline_app:app", port),
                             env={**env, "BENCH_DATABASE_URL": database_url}, log_path=log_path)
    base = f"http://127.0.0.1:{port}"
    results: dict[str, Any] = {}
    try:
        wait_until_ready(f"{base}/hello", server, log_path=log_path)
        say(f"baseline ({label}) on {base}")
        results["hello"] = measure(processes, "hello", f"{base}/hello", load=load, server=server)
        results["insert"] = measure(processes, "insert", f"{base}/rows", load=load, script=LUA_DIR / "insert.lua",
                                    server=server)
        results["select"] = measure(processes, "select", f"{base}/rows/1", load=load, script=LUA_DIR / "select.lua",
                                    args_for=lambda phase: [10_000], server=server)
        results["wechat"] = measure(processes, "wechat", f"{base}/wechat-code", load=load,
                                    script=LUA_DIR / "sign_in.lua", args_for=lambda phase: ["/wechat-code"],
                                    server=server)
    finally:
        processes.stop(f"baseline-{label}")
    for name, result in results.items():
        if result["errors"]:
            shout(f"baseline {name} ({label}) had {result['errors']} errors; log {log_path}:\n{tail(log_path)}")
    return results


def run_project(processes: Processes, *, load: Load, env: dict[str, str], logs: Path, data_dir: Path,
                insert_rps: float, only: set[str]) -> dict[str, Any]:
    port = free_port()
    log_path = logs / "project.log"
    server = processes.start("project", uvicorn_argv("api.asgi:app", port), env=env, log_path=log_path)
    base = f"http://127.0.0.1:{port}"
    api = Api(base)
    api.server = server
    results: dict[str, Any] = {"_server_log": str(log_path)}
    try:
        wait_until_ready(f"{base}/readyz", server, log_path=log_path)
        say(f"project on {base} (uvicorn api.asgi:app, 1 worker)")
        points = busiest_town_points()
        if len(points) < 3:
            raise RuntimeError("need three town service points with clerks")
        reads, writes, submits = points[0], points[1], points[2]
        results["_points"] = {"reads": asdict(reads), "transitions": asdict(writes), "submissions": asdict(submits)}
        say(f"  reads as {reads.clerk} ({reads.name}, {reads.cases:,} cases); accept as {writes.clerk} "
            f"({writes.name}); citizens apply in {submits.village_code} -> {submits.name}")
        real_identifier = issue_real_certificate(api, submits)
        results["_real_certificate"] = real_identifier
        bound_rps = max(insert_rps, 50.0) * 1.15  # writes can't beat a bare one-row insert
        threads = load.threads

        def alive(step: str) -> None:
            if server.poll() is not None:
                raise RuntimeError(f"the project server exited with {server.returncode} during {step} "
                                   f"(negative: killed by that signal); log {log_path}:\n{tail(log_path)}")

        def record(name: str, outcome: dict[str, Any], before: dict[str, Any], after: dict[str, Any] | None) -> None:
            alive(name)
            outcome["probe_before"], outcome["probe_after"] = before, after
            if before["status"] is None or before["status"] >= 300:
                shout(f"{name}: the probe request before the run failed: {before}")
            if outcome["errors"]:
                shout(f"{name}: {outcome['errors']} failed requests (non-2xx {outcome['non_2xx']}, "
                      f"socket {outcome['socket_errors']}) — req/s of this endpoint is NOT valid throughput.\n"
                      f"probe after the run: {after}\nserver log tail ({log_path}):\n{tail(log_path)}")
                outcome["server_log_tail"] = tail(log_path, 80)
            results[name] = outcome

        if "get_case" in only:
            clerk = api.staff_login(reads.clerk)
            ids = sample_column("SELECT id FROM cases WHERE handling_point_id = :point ORDER BY random() LIMIT :n",
                                {"point": reads.id, "n": SAMPLE_LIMIT})
            data = write_data_file(data_dir, "get_case", items=ids, token=clerk)
            before = probe(api, "GET", f"/api/v1/cases/{ids[0]}", token=clerk)
            outcome = measure(processes, "get_case", f"{base}/api/v1/cases/x", load=load,
                              script=LUA_DIR / "get_case.lua", args_for=pool_args(data, len(ids), threads),
                              server=server)
            outcome["pool"] = len(ids)
            record("get_case", outcome, before, probe(api, "GET", f"/api/v1/cases/{ids[-1]}", token=clerk))

        if "list_cases" in only:
            clerk = api.staff_login(reads.clerk)
            data = write_data_file(data_dir, "list_cases", items=["-"] * threads, token=clerk)
            before = probe(api, "GET", "/api/v1/cases", token=clerk)
            outcome = measure(processes, "list_cases", f"{base}/api/v1/cases", load=load,
                              script=LUA_DIR / "list_cases.lua", args_for=pool_args(data, threads, threads),
                              server=server)
            record("list_cases", outcome, before, probe(api, "GET", "/api/v1/cases", token=clerk))

        if "certificate_status" in only:
            identifiers = sample_column("SELECT identifier FROM certificates ORDER BY random() LIMIT :n",
                                        {"n": SAMPLE_LIMIT})
            if not identifiers:
                raise RuntimeError("no certificates to ask about")
            data = write_data_file(data_dir, "certificate_status", items=identifiers)
            path = "/api/v1/public/certificates/{}/status"
            before = probe(api, "GET", path.format(identifiers[0]))
            outcome = measure(processes, "certificate_status", f"{base}/api/v1/public/certificates/x/status",
                              load=load, script=LUA_DIR / "certificate_status.lua",
                              args_for=pool_args(data, len(identifiers), threads), server=server)
            outcome["pool"] = len(identifiers)
            record("certificate_status", outcome, before, probe(api, "GET", path.format(identifiers[-1])))

        if "submit" in only:
            pool = ConsumablePool.sized(bound_rps=bound_rps, load=load)
            citizens, account_ids = [], []
            for index in range(8):
                name, real_name, number = bench_citizen(index)
                token, account_id = api.verified_citizen(name, real_name=real_name, number=number)
                head, tail_ = json.dumps(application(number=number, real_name=real_name,
                                                     region_code=submits.village_code, file_id="@FILE@"),
                                         ensure_ascii=False).split("@FILE@")
                citizens.append({"token": token, "body_head": head, "body_tail": tail_})
                account_ids.append(account_id)
            uploaded = [(index, api.upload_pdf(citizens[index]["token"])) for index in range(len(citizens))]
            files = uploaded + create_files_in_process(account_ids, pool.total - len(uploaded))
            run_id = f"bench-{uuid.uuid4().hex[:10]}"
            data = write_data_file(data_dir, "submit", items=[f"{c + 1} {f}" for c, f in files],
                                   citizens=citizens, run_id=run_id)

            def submit_probe(index: int) -> dict[str, Any]:
                citizen, file_id = files[index]
                c = citizens[citizen]
                return probe(api, "POST", "/api/v1/cases", token=c["token"], body=c["body_head"] + file_id + c["body_tail"],
                             headers={"Content-Type": "application/json", "Idempotency-Key": f"{run_id}-p{index}"})

            before = submit_probe(pool.probe_before)
            outcome = measure(processes, "submit", f"{base}/api/v1/cases", load=load, script=LUA_DIR / "submit.lua",
                              args_for=pool.args(data, threads), server=server)
            outcome["pool"] = asdict(pool)
            record("submit", outcome, before, submit_probe(pool.probe_after))

        if "sign_in" in only:
            body = json.dumps({"code": f"demo-benchprobe.{uuid.uuid4().hex[:12]}"})
            before = probe(api, "POST", "/api/v1/auth/wechat-login", body=body,
                           headers={"Content-Type": "application/json"})
            outcome = measure(processes, "sign_in", f"{base}/api/v1/auth/wechat-login", load=load,
                              script=LUA_DIR / "sign_in.lua", server=server)
            body = json.dumps({"code": f"demo-benchprobe.{uuid.uuid4().hex[:12]}"})
            record("sign_in", outcome, before, probe(api, "POST", "/api/v1/auth/wechat-login", body=body,
                                                     headers={"Content-Type": "application/json"}))

        if "transition" in only:
            from tests.bench.seed import seed_submitted_cases

            pool = ConsumablePool.sized(bound_rps=bound_rps, load=load)
            # a seed of its own each run: a reused database keeps the cases an earlier run added
            ids = seed_submitted_cases(point_id=writes.id, count=pool.total, rng_seed=time.time_ns(),
                                       report=lambda m: say("  " + m))
            vacuum_analyze("cases", "case_events", "files", "case_materials")
            clerk = api.staff_login(writes.clerk)
            data = write_data_file(data_dir, "transition", items=ids, token=clerk)
            body = json.dumps({"action": "accept", "version": 1})
            headers = {"Content-Type": "application/json"}
            before = probe(api, "POST", f"/api/v1/cases/{ids[pool.probe_before]}/actions", token=clerk, body=body,
                           headers=headers)
            outcome = measure(processes, "transition", f"{base}/api/v1/cases/x/actions", load=load,
                              script=LUA_DIR / "transition.lua", args_for=pool.args(data, threads), server=server)
            outcome["pool"] = asdict(pool)
            record("transition", outcome, before, probe(api, "POST", f"/api/v1/cases/{ids[pool.probe_after]}/actions",
                                                        token=clerk, body=body, headers=headers))
    finally:
        results["_read_after_write_retries"] = dict(api.read_after_write_retries)
        if api.read_after_write_retries:
            say(f"  preparation had to wait for its own writes: {api.read_after_write_retries} (see "
                "tests/bench/README.md, Caveats)")
        api.close()
        processes.stop("project")
    return results


def vacuum_analyze(*tables: str) -> None:
    """What autovacuum would do after a bulk load: the planner knows the new rows, and index-only
    scans need not visit them in the heap (tests.bench.seed._vacuum_analyze)."""
    from sqlalchemy import text

    from services.db import get_engine

    engine = get_engine()
    if engine.dialect.name != "postgresql":
        return
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        for table in tables:
            connection.execute(text(f"VACUUM (ANALYZE) {table}"))


# ----------------------------------------------------------------------------- verdicts and report

def reference_baseline(before: dict[str, Any], after: dict[str, Any] | None) -> dict[str, dict[str, float]]:
    """The bare figures the ratios use: the mean of the runs before and after the project."""
    out = {}
    for name in BASELINE_ORDER:
        runs = [r[name] for r in (before, after) if r and name in r]
        if not runs:  # a result file from before this baseline existed
            continue
        out[name] = {"rps": sum(r["rps"] for r in runs) / len(runs),
                     "p50_ms": sum(r["p50_ms"] for r in runs) / len(runs),
                     "p99_ms": sum(r["p99_ms"] for r in runs) / len(runs)}
        cpu = [r["server_cpu_ms_per_request"] for r in runs if "server_cpu_ms_per_request" in r]
        if cpu:
            out[name]["server_cpu_ms_per_request"] = sum(cpu) / len(cpu)
        if len(runs) == 2 and runs[0]["rps"]:
            out[name]["drift"] = runs[1]["rps"] / runs[0]["rps"]
    return out


def verdicts(endpoints: dict[str, Any], bare: dict[str, dict[str, float]],
             previous: dict[str, Any] | None) -> dict[str, Any]:
    out = {}
    for name in ENDPOINT_ORDER:
        result = endpoints.get(name)
        if result is None:
            continue
        target = TARGETS[name]
        base = bare[target["baseline"]]
        throughput = result["rps"] / base["rps"] if base["rps"] else None
        p99 = result["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None
        cpu, base_cpu = result.get("server_cpu_ms_per_request"), base.get("server_cpu_ms_per_request")
        entry = {
            "baseline": target["baseline"], "throughput_ratio": throughput, "p99_ratio": p99,
            # not a target: the throughput ratio the server's CPU per request alone would allow
            "cpu_ratio": base_cpu / cpu if cpu and base_cpu else None,
            "target": {"min_throughput_ratio": target["min_throughput"], "max_p99_ratio": target["max_p99"],
                       "max_scale_ratio": target["max_scale"]},
            "throughput_pass": target["min_throughput"] is None or (throughput is not None
                                                                   and throughput >= target["min_throughput"]),
            "p99_pass": p99 is not None and p99 <= target["max_p99"],
            "errors": result["errors"],
        }
        if target.get("floor") in bare:
            floor = bare[target["floor"]]
            # how far the bare floor alone already is from the target's baseline (p99 ratio)
            entry["floor"] = {"baseline": target["floor"], "rps": floor["rps"], "p99_ms": floor["p99_ms"],
                              "p99_ratio": floor["p99_ms"] / base["p99_ms"] if base["p99_ms"] else None}
        if previous and target["max_scale"] and name in previous.get("verdicts", {}):
            other = previous["verdicts"][name]
            # both as ratios to their own run's baseline, so machine drift between the runs cancels
            entry["scale"] = {
                "compared_to": previous.get("_file"), "compared_cases": previous.get("config", {}).get("cases"),
                "throughput": other["throughput_ratio"] / throughput if throughput else None,
                "p99": p99 / other["p99_ratio"] if other.get("p99_ratio") else None,
            }
            entry["scale_pass"] = all(value is not None and value <= target["max_scale"]
                                      for value in (entry["scale"]["throughput"], entry["scale"]["p99"]))
        checks = [entry["throughput_pass"], entry["p99_pass"], entry.get("scale_pass", True)]
        entry["pass"] = result["errors"] == 0 and all(checks)
        entry["verdict"] = "ERRORS" if result["errors"] else ("pass" if entry["pass"] else "FAIL")
        out[name] = entry
    return out


def print_table(report: dict[str, Any]) -> None:
    bare = report["baseline"]["reference"]
    lines = ["", f"onestop benchmark — {report['config']['cases']:,} cases, {report['config']['connections']} "
                 f"connections, {report['config']['duration']} s measured after {report['config']['warmup']} s warm-up",
             "",
             f"{'bare baseline':<38}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'cpu ms':>8}   before → after req/s",
             "-" * 104]
    for name in BASELINE_ORDER:
        if name not in bare:
            continue
        before = report["baseline"]["before"].get(name, {})
        after = (report["baseline"].get("after") or {}).get(name, {})
        ref = bare[name]
        lines.append(f"{name:<38}{ref['rps']:>10.1f}{ref['p50_ms']:>9.2f}{ref['p99_ms']:>9.2f}"
                     f"{ref.get('server_cpu_ms_per_request', 0):>8.2f}   "
                     f"{before.get('rps', 0):.1f} → {after.get('rps', 0):.1f}"
                     + (f" (drift {ref['drift']:.2f}×)" if "drift" in ref else ""))
    lines += ["",
              f"{'endpoint':<38}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}  {'vs':<7}"
              f"{'thr ratio (target)':>20}{'p99 ratio (target)':>21}{'cpu ms':>8}{'cpu ratio':>10}  verdict",
              "-" * 148]
    for name in ENDPOINT_ORDER:
        result = report["endpoints"].get(name)
        if result is None:
            continue
        v = report["verdicts"][name]
        minimum = v["target"]["min_throughput_ratio"]
        throughput = f"{v['throughput_ratio']:.2f} " + (f"(≥{minimum:.2f})" if minimum is not None else "(—)")
        p99 = f"{v['p99_ratio']:.2f} (≤{v['target']['max_p99_ratio']:.1f})"
        scale = ""
        if "scale" in v:
            scale = f"  scale thr {v['scale']['throughput']:.2f} p99 {v['scale']['p99']:.2f} (≤1.25)"
        lines.append(f"{TARGETS[name]['label']:<38}{result['rps']:>10.1f}{result['p50_ms']:>9.2f}"
                     f"{result['p99_ms']:>9.2f}{result['errors']:>8}  {v['baseline']:<7}{throughput:>20}{p99:>21}"
                     f"{result.get('server_cpu_ms_per_request', 0):>8.2f}{v.get('cpu_ratio') or 0:>10.2f}  "
                     f"{v['verdict']}{scale}")
        if v.get("floor"):
            floor = v["floor"]
            lines.append(f"{'  floor: bare ' + floor['baseline']:<38}{floor['rps']:>10.1f}{'':>9}{floor['p99_ms']:>9.2f}"
                         f"{'':>8}  {v['baseline']:<7}{'':>20}{floor['p99_ratio']:>6.2f}")
    lines.append("")
    print("\n".join(lines), flush=True)
    failed = [name for name, v in report["verdicts"].items() if v["errors"]]
    if failed:
        shout("REQUESTS FAILED during " + ", ".join(failed) + ": those figures are not throughput. "
              "See probe_after / server_log_tail in the JSON.")


# ----------------------------------------------------------------------------- main

def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help="a database of the benchmark's own: it is emptied (default %(default)s)")
    parser.add_argument("--cases", type=int, default=10_000, help="cases to seed (10000 small run, 1000000 large)")
    parser.add_argument("--duration", type=int, default=30, help="measured seconds per endpoint")
    parser.add_argument("--warmup", type=int, default=10, help="warm-up seconds per endpoint (discarded)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1 keeps the load generator cheap)")
    parser.add_argument("--timeout", default="5s", help="wrk's per-request timeout (timeouts count as errors)")
    parser.add_argument("--smoke", action="store_true", help="quick check of the harness: --cases 1000 "
                        "--duration 5 --warmup 2 unless given")
    parser.add_argument("--var-dir", type=Path, default=None,
                        help="ONESTOP_VAR_DIR shared by seeding, this process and the server (emptied first)")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--reuse-database", action="store_true",
                        help="skip reset and seeding: benchmark a database seeded before (with the same --var-dir)")
    parser.add_argument("--events-per-case", type=float, default=None, help="passed to the seeder")
    parser.add_argument("--only", default=",".join(ENDPOINT_ORDER),
                        help="comma-separated subset of: " + ", ".join(ENDPOINT_ORDER))
    parser.add_argument("--compare-to", type=Path, default=None,
                        help="a results JSON of the 10k run, to judge the '1M vs 10k' targets")
    parser.add_argument("--label", default=None, help="added to the result file name")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="for A/B work on one change: measure the project only (its CPU per request), "
                             "without the bare baseline, ratios or verdicts")
    args = parser.parse_args(argv)
    args.var_dir = args.var_dir or default_var_dir(args.database_url)
    if args.smoke:
        explicit = set(argv if argv is not None else sys.argv[1:])
        if "--cases" not in explicit:
            args.cases = 1000
        if "--duration" not in explicit:
            args.duration = 5
        if "--warmup" not in explicit:
            args.warmup = 2
        args.label = args.label or "smoke"
    unknown = set(args.only.split(",")) - set(ENDPOINT_ORDER)
    if unknown:
        parser.error(f"unknown endpoints in --only: {sorted(unknown)}")
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads")
    return args


def _raise_on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


# The server's rate limits stay on, as in production, so that every limited endpoint pays for
# its check (a Redis round trip on sign-in and submission); their rates are set beyond any load a
# benchmark makes, so that none refuses a request.
def _unreached_rate_limits() -> dict[str, str]:
    from services.ratelimit.settings import RateLimitSettings

    rates = [name for name, field in RateLimitSettings.model_fields.items() if field.annotation is str]
    return {"ONESTOP_RATE_LIMITS": "on",
            **{f"ONESTOP_RATE_LIMIT_{name.upper()}": "1000000000/minute" for name in rates}}


UNREACHED_RATE_LIMITS = _unreached_rate_limits()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    var_dir = args.var_dir.resolve()
    if not args.reuse_database and var_dir.exists():
        shutil.rmtree(var_dir)  # fresh keys and storage: the database is fresh too
    var_dir.mkdir(parents=True, exist_ok=True)
    configure_environment(args.database_url, var_dir, ONESTOP_REDIS_URL=args.redis_url, ONESTOP_RATE_LIMITS="off")
    signal.signal(signal.SIGTERM, _raise_on_signal)
    signal.signal(signal.SIGHUP, _raise_on_signal)

    load = Load(threads=args.threads, connections=args.connections, warmup=args.warmup, duration=args.duration,
                timeout=args.timeout)
    started_at = datetime.now(timezone.utc)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    logs = var_dir / "logs" / stamp
    data_dir = var_dir / "wrk-data" / stamp
    previous = None
    if args.compare_to:
        previous = json.loads(args.compare_to.read_text())
        previous["_file"] = str(args.compare_to)

    processes = Processes()
    stop_fake = None
    report: dict[str, Any] = {
        "started_at": started_at.isoformat(),
        "config": {"database_url": _without_password(args.database_url), "cases": args.cases,
                   "duration": args.duration, "warmup": args.warmup, "connections": args.connections,
                   "threads": args.threads, "timeout": args.timeout, "label": args.label,
                   "reuse_database": args.reuse_database},
        "host": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                 "git_commit": _git_commit()},
        "targets": TARGETS,
    }
    try:
        from tests.bench.seed import reset_database, seed

        if args.reuse_database:
            say("reusing the database as it is (no reset, no seeding)")
            report["seed"] = None
        else:
            say(f"resetting {_without_password(args.database_url)} and seeding {args.cases:,} cases")
            reset_database(args.database_url)
            report["seed"] = seed(args.database_url, args.cases, events_per_case=args.events_per_case,
                                  report=lambda m: _seed_log(m))
        report["database_before"] = database_facts()

        from services.wechat.fake_server import create_fake_wechat_app, serve_in_thread

        fake_url, stop_fake = serve_in_thread(create_fake_wechat_app(appid=FAKE_WECHAT_APPID, secret=FAKE_WECHAT_SECRET))
        env = {**os.environ, "ONESTOP_WECHAT_BASE_URL": fake_url, "ONESTOP_LOG_LEVEL": "WARNING",
               "ONESTOP_RUN_WORKER_IN_SERVER": "false", "ONESTOP_DEMO": "true", **UNREACHED_RATE_LIMITS,
               "ONESTOP_REDIS_URL": args.redis_url, "PYTHONUNBUFFERED": "1"}
        os.environ["ONESTOP_WECHAT_BASE_URL"] = fake_url
        # the harness runs outbox jobs itself (the real certificate): its settings and WeChat
        # client were built during seeding, before the fake existed
        from services.config import get_settings
        from services.wechat.client import get_wechat_client

        get_settings.cache_clear()
        get_wechat_client.cache_clear()

        if args.skip_baseline:
            project = run_project(processes, load=load, env=env, logs=logs, data_dir=data_dir,
                                  insert_rps=SKIPPED_BASELINE_INSERT_RPS, only=set(args.only.split(",")))
            return 0 if all(not v["errors"] for k, v in project.items() if not k.startswith("_")) else 2
        before = run_baseline(processes, label="before", load=load, env=env, logs=logs, database_url=args.database_url)
        project = run_project(processes, load=load, env=env, logs=logs, data_dir=data_dir,
                              insert_rps=before["insert"]["rps"], only=set(args.only.split(",")))
        after = run_baseline(processes, label="after", load=load, env=env, logs=logs, database_url=args.database_url)

        bare = reference_baseline(before, after)
        endpoints = {name: value for name, value in project.items() if not name.startswith("_")}
        report.update({
            "finished_at": datetime.now(timezone.utc).isoformat(),
            "baseline": {"before": before, "after": after, "reference": bare},
            "endpoints": endpoints,
            "points": project.get("_points"), "real_certificate": project.get("_real_certificate"),
            "server_log": project.get("_server_log"),
            "read_after_write_retries": project.get("_read_after_write_retries"),
            "database_after": database_facts(),
        })
        report["verdicts"] = verdicts(endpoints, bare, previous)
        report["errors"] = sum(v["errors"] for v in report["verdicts"].values()) + sum(
            r["errors"] for phase in (before, after) for r in phase.values())
        report["passed"] = report["errors"] == 0 and all(v["pass"] for v in report["verdicts"].values())
        for name, ref in bare.items():
            if "drift" in ref and abs(ref["drift"] - 1) > 0.15:
                shout(f"the bare {name} moved {ref['drift']:.2f}× between before and after: the machine was noisy, "
                      "treat the ratios with care")
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        label = f"-{args.label}" if args.label else ""
        path = RESULTS_DIR / f"bench-{args.cases}{label}-{stamp}.json"
        path.write_text(json.dumps(report, ensure_ascii=False, indent=2, default=str) + "\n", encoding="utf-8")
        print_table(report)
        print(f"results: {path}", flush=True)
        return 0 if report["errors"] == 0 else 2
    except KeyboardInterrupt:
        say("interrupted: stopping everything this run started")
        return 130
    finally:
        processes.stop_all()
        if stop_fake is not None:
            stop_fake()
        shutil.rmtree(var_dir / "wrk-data", ignore_errors=True)  # bearer tokens


def _without_password(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                              timeout=5).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


if __name__ == "__main__":
    sys.exit(main())
