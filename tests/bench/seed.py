"""Seed a database for the benchmark: schema, the demo county, then N cases in bulk.

    python -m tests.bench.seed --database-url postgresql+psycopg://postgres@127.0.0.1:5432/onestop_bench \
        --cases 10000 [--var-dir /tmp/onestop-bench-var] [--events-per-case 8]

What it writes (PostgreSQL: COPY; SQLite: executemany; never the HTTP API):

* the schema (Alembic, `services.migrate.upgrade_to_head`) and the demo county 婺源县
  (`services.demo.seed.seed_demo`: regions, service points, staff);
* subjects (about 0.75 per case: people apply more than once) with valid 18-digit ID numbers
  (GB 11643 check character from `mod11_2_check`), encrypted, keyed-hashed and masked through
  `get_protector()` exactly like real ones, each bound to a citizen account;
* N `residence-certificate` cases spread over the real villages of 婺源县 (weighted, some
  villages busier than others), routed by the project's own `route()` (village station where
  there is one, otherwise the town centre), in a realistic mix of states, with their hash-chained
  history (`_event_hash` of services/cases/service.py, each transition checked by the workflow
  engine's `decide`), materials and uploaded-file rows, idempotency records, and for approved
  cases the outbox job (done) and the e-certificate registry row (identifier built by
  `build_identifier`, serials from the same counter the issuing job uses);
* the counters (case numbers per county and day, certificate serials) moved past what was
  seeded, so cases submitted afterwards through the API get fresh numbers.

History length: the normal lifecycle gives about 5 events per case (most cases end delivered:
submit, accept, start_review, approve, complete, deliver; a few go through a correction round).
`--events-per-case 8` (the default from 1,000,000 cases on, as BENCHMARKS.md asks for the large
run) adds more correction rounds (request_correction + supplement) to reach that mean.

Seeded rows stand for data that exists; two shortcuts keep seeding fast and are visible in the
data: seeded files have rows but no bytes in storage (storage_key under files/, nothing written),
and seeded certificates have registry rows but no rendered PDF (storage_key under
certificates/bench-unrendered/). Nothing the benchmark measures reads those bytes.

Settings come from ONESTOP_* environment variables, set here before any project module is
imported. Use the same --var-dir for seeding and for the server: the PII keys, the JWT key and
the demo passwords live there.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any

VAR_DIR_ROOT = Path("/tmp/onestop-bench-var")


def default_var_dir(database_url: str) -> Path:
    """One ONESTOP_VAR_DIR per benchmark database: the keys in it encrypt and hash that database's
    ID numbers, so two databases must never share one (a run that empties it for a fresh seed would
    leave the other database's data unreadable)."""
    from sqlalchemy.engine import make_url

    return VAR_DIR_ROOT / (make_url(database_url).database or "default")
MATTER_CODE = "residence-certificate"
DEMO_COUNTY = "361130000000"
CHINA = timezone(timedelta(hours=8))
BATCH_CASES = 5000

# Final states and their share of all cases. Open cases (submitted … approved) are recent; the
# closed ones are spread over two years.
STATE_MIX: tuple[tuple[str, float], ...] = (
    ("delivered", 53), ("completed", 15), ("approved", 2), ("in_review", 4), ("accepted", 5),
    ("submitted", 6), ("correcting", 2), ("denied", 3), ("not_accepted", 4), ("withdrawn", 6),
)
OPEN_STATES = frozenset({"submitted", "correcting", "accepted", "in_review", "approved"})
NATURAL_CORRECTION_ROUNDS = 0.14  # mean correction rounds per case without a target
LARGE_RUN_CASES = 1_000_000
LARGE_RUN_EVENTS = 8.0

# Hours between an action and the one before it (uniform in the range).
DELAYS_HOURS: dict[str, tuple[float, float]] = {
    "request_correction": (2, 30), "supplement": (1, 72), "accept": (0.5, 24), "refuse": (1, 24),
    "start_review": (0.5, 24), "approve": (1, 48), "deny": (2, 48), "complete": (0.05, 2),
    "deliver": (1, 72), "withdraw": (1, 48),
}
APPLICANT_ACTIONS = frozenset({"submit", "supplement", "withdraw"})
PURPOSES = ("子女入学", "办理居住证", "就业登记", "申请公租房", "社保办理", "银行开户", "其他")
CORRECTION_COMMENTS = ("请补充居住情况佐证材料", "身份证照片不清晰，请重新上传", "居住地址与佐证材料不一致，请核对")
CORRECTION_ITEMS = (["居住情况佐证材料（房产证明、租赁合同或村组证明）"], ["居民身份证（正反面清晰）"])
GIVEN_EXTRA = "文德志建国秀春梅兰荣海金永福"


def log(message: str) -> None:
    print(f"[seed] {message}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- environment

def configure_environment(database_url: str, var_dir: Path | str | None = None, **extra: str) -> None:
    """Point onestop's settings at this database and var dir. Must run before project modules
    read their settings; refuses to continue if they already read different ones."""
    values = {
        "ONESTOP_DATABASE_URL": database_url,
        "ONESTOP_VAR_DIR": str(Path(var_dir or default_var_dir(database_url)).resolve()),
        "ONESTOP_DEMO": "true",
        "ONESTOP_RUN_WORKER_IN_SERVER": "false",
        "ONESTOP_LOG_LEVEL": "WARNING",
        **extra,
    }
    os.environ.update(values)
    if "services.config" in sys.modules:
        from services.config import get_settings

        get_settings.cache_clear()
        settings = get_settings()
        if settings.resolved_database_url != database_url or settings.var_dir != Path(values["ONESTOP_VAR_DIR"]):
            raise RuntimeError("project settings were read before the benchmark environment was set")


# ----------------------------------------------------------------------------- bulk writing

def _is_postgres(engine) -> bool:
    return engine.dialect.name == "postgresql"


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(timezone.utc).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def bulk_insert(dbapi_connection, *, postgres: bool, table: str, columns: Sequence[str],
                rows: Iterable[Sequence[Any]]) -> int:
    """COPY (PostgreSQL) or executemany (SQLite) rows into a table; JSON values given as text."""
    count = 0
    cursor = dbapi_connection.cursor()
    try:
        if postgres:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
                    count += 1
        else:
            batch = [tuple(_sqlite_value(value) for value in row) for row in rows]
            placeholders = ", ".join("?" for _ in columns)
            cursor.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", batch)
            count = len(batch)
    finally:
        cursor.close()
    return count


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


# ----------------------------------------------------------------------------- context

@dataclass(frozen=True)
class Village:
    code: str
    name: str
    town_name: str
    point_id: int
    point_name: str
    clerk_id: int
    clerk_name: str
    assignee_id: int | None
    routing_reason: str
    weight: float


@dataclass
class SubjectRef:
    id: int
    number_hash: str
    name: str
    principal: str  # "citizen:<account id>"


class _Event:
    """Duck-types the CaseEvent attributes services.cases.service._event_hash reads."""

    __slots__ = ("case_id", "seq", "action", "from_state", "to_state", "actor", "comment", "payload", "created_at")

    def __init__(self, **values: Any):
        for name, value in values.items():
            setattr(self, name, value)


def _village_base(name: str) -> str:
    for suffix, replacement in (("社区居委会", "社区"), ("村民委员会", "村"), ("村委会", "村"), ("居委会", "社区")):
        if name.endswith(suffix):
            return name[: -len(suffix)] + replacement
    return name


def load_villages(session, rng: random.Random) -> list[Village]:
    """Every active village of the demo county with the routing decision the project makes for it."""
    from sqlmodel import select

    from services.matters.service import get_matter
    from services.points.models import Staff
    from services.regions.repository import children
    from services.routing.service import route

    definition = get_matter(MATTER_CODE).definition
    villages: list[Village] = []
    for town in children(session, parent_code=DEMO_COUNTY):
        for village in children(session, parent_code=town.code):
            decision = route(session, handle_level=definition.handle_level, region_code=village.code)
            clerk = decision.assignee or session.exec(
                select(Staff).where(Staff.service_point_id == decision.handling_point.id, Staff.role == "clerk")
                .order_by(Staff.id)).first()
            # village sizes differ a lot; the county seat's neighbourhoods are the busiest
            weight = rng.lognormvariate(0, 0.6) * (2.5 if town.code.endswith("001000") else 1.0)
            villages.append(Village(
                code=village.code, name=village.name, town_name=town.name, point_id=decision.handling_point.id,
                point_name=decision.handling_point.name, clerk_id=clerk.id, clerk_name=clerk.display_name,
                assignee_id=decision.assignee.id if decision.assignee else None,
                routing_reason=decision.reason, weight=weight))
    if not villages:
        raise RuntimeError("the demo county has no villages: was seed_demo run?")
    return villages


@lru_cache(maxsize=4096)
def _due_dates(day: date) -> tuple[date, date | None]:
    from services.cases.service import calendar
    from services.matters.service import get_matter

    definition = get_matter(MATTER_CODE).definition
    legal = calendar.add_working_days(day, definition.legal_days) if definition.legal_days is not None else None
    return calendar.add_working_days(day, definition.promised_days), legal


def person_name(rng: random.Random) -> str:
    from services.demo.seed import GIVEN, SURNAMES

    given = rng.choice(GIVEN) + (rng.choice(GIVEN_EXTRA) if rng.random() < 0.6 else "")
    return rng.choice(SURNAMES) + given


def id_number(region: str, birth: date, sequence: int) -> str:
    from services.subjects.identity_numbers import mod11_2_check

    body = f"{region}{birth:%Y%m%d}{sequence:03d}"
    return body + mod11_2_check(body)


# ----------------------------------------------------------------------------- the generator

class CaseGenerator:
    """Builds rows for cases and everything that hangs off them, in memory, batch by batch."""

    def __init__(self, session, *, rng: random.Random, now: datetime, correction_rounds: float):
        from services.certificates.types import load_certificate_types
        from services.matters.service import get_matter

        self.rng = rng
        self.now = now
        self.correction_rounds = correction_rounds
        self.matter = get_matter(MATTER_CODE)
        self.lifecycle = self.matter.lifecycle
        self.definition = self.matter.definition
        self.cert_type = load_certificate_types()[self.definition.certificate_type]
        self.serial_counter_name = f"certificate:{self.cert_type.type_code}:{self.cert_type.issuer.credit_code}"
        self.counters = self._load_counters(session)
        self.start_counters = dict(self.counters)
        self.reset_buffers()

    @staticmethod
    def _load_counters(session) -> dict[str, int]:
        from sqlalchemy import text

        rows = session.execute(text("SELECT name, value FROM counters"))
        return {name: int(value) for name, value in rows}

    def reset_buffers(self) -> None:
        self.cases: list[tuple] = []
        self.events: list[tuple] = []
        self.files: list[tuple] = []
        self.materials: list[tuple] = []
        self.certificates: list[tuple] = []
        self.outbox: list[tuple] = []
        self.idempotency: list[tuple] = []
        self.case_ids: list[str] = []
        self.identifiers: list[str] = []

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _hex(self) -> str:
        return "%064x" % self.rng.getrandbits(256)

    def _next(self, name: str) -> int:
        self.counters[name] = self.counters.get(name, 0) + 1
        return self.counters[name]

    # paths ---------------------------------------------------------------------------------

    def _rounds(self) -> int:
        mean = self.correction_rounds
        if mean <= 0:
            return 0
        # Poisson(mean) by inversion: small means only
        limit, k, product = math.exp(-mean), 0, self.rng.random()
        while product > limit:
            k += 1
            product *= self.rng.random()
        return k

    def sample_final_state(self) -> str:
        states, weights = zip(*STATE_MIX)
        return self.rng.choices(states, weights)[0]

    def path_to(self, final: str, rounds: int) -> list[str]:
        rng = self.rng
        head = ["submit"] + ["request_correction", "supplement"] * rounds
        review = ["start_review"] if rng.random() < 0.7 else []
        tails = {
            "submitted": [],
            "correcting": ["request_correction"],
            "accepted": ["accept"],
            "in_review": ["accept", "start_review"],
            "approved": ["accept", *review, "approve"],
            "completed": ["accept", *review, "approve", "complete"],
            "delivered": ["accept", *review, "approve", "complete", "deliver"],
            "denied": ["accept", *review, "deny"],
            "not_accepted": ["refuse"],
            "withdrawn": [*rng.choice(([], ["accept"], ["accept", "start_review"])), "withdraw"],
        }
        return head + tails[final]

    # one case ------------------------------------------------------------------------------

    def add_case(self, *, subject: SubjectRef, village: Village, actions: list[str], end: datetime) -> str:
        """Append the rows of one case whose last event happens at `end`."""
        from services.cases.service import GENESIS_HASH, _event_hash
        from services.certificates.identifiers import build_identifier
        from workflows.engine import Actor, decide

        rng = self.rng
        # times: offsets first, then anchored so that the last event happens at `end`
        offsets = [0.0]
        for action in actions[1:]:
            low, high = DELAYS_HOURS[action]
            offsets.append(offsets[-1] + rng.uniform(low, high) * 3600 + rng.random())
        start = end - timedelta(seconds=offsets[-1])
        times = [start + timedelta(seconds=offset) for offset in offsets]

        case_id = self._uuid()
        submitted_at = times[0]
        day = submitted_at.astimezone(CHINA).date()
        county = village.code[:6]
        number = f"{county}{day:%Y%m%d}{self._next(f'case:{county}:{day:%Y%m%d}'):06d}"
        form = {"address": f"江西省婺源县{village.town_name}{_village_base(village.name)}{rng.randint(1, 240)}号",
                "since": f"{rng.randint(1985, min(2024, day.year))}-{rng.randint(1, 12):02d}",
                "purpose": rng.choice(PURPOSES)}

        staff_actor, citizen_actor = f"staff:{village.clerk_id}", subject.principal
        applicant_roles, staff_roles = Actor(frozenset({"applicant"})), Actor(frozenset({"clerk"}))
        state = None
        prev_hash = GENESIS_HASH
        sla_state, accepted_at, due, legal_due, closed_at = "not_started", None, None, None, None
        approved_at = None
        for seq, (action, moment) in enumerate(zip(actions, times), start=1):
            comment: str | None = None
            payload: dict[str, Any] = {}
            if action == "submit":
                from_state, to_state, sla, effects = None, self.lifecycle.initial, None, ()
                payload = {"routing_reason": village.routing_reason}
            else:
                if action == "request_correction":
                    comment, payload = rng.choice(CORRECTION_COMMENTS), {"items": rng.choice(CORRECTION_ITEMS)}
                elif action == "refuse":
                    comment = "非本村（社区）常住居民，不属于本站受理范围"
                elif action == "deny":
                    comment = "经入户核实，申请人未在申报地址居住"
                elif action == "approve" and rng.random() < 0.5:
                    comment = "情况属实"
                elif action == "withdraw" and rng.random() < 0.3:
                    comment = "已不需要"
                actor_roles = applicant_roles if action in APPLICANT_ACTIONS else staff_roles
                decision = decide(self.lifecycle, state=state, action=action, actor=actor_roles,
                                  request={"comment": comment, "items": payload.get("items")})
                from_state, to_state, sla, effects = decision.from_state, decision.to_state, decision.sla, decision.effects
            if sla == "start":
                sla_state, accepted_at = "running", moment
                due, legal_due = _due_dates(moment.astimezone(CHINA).date())
            elif sla == "stop":
                sla_state, closed_at = "stopped", moment
            applicant_side = action in APPLICANT_ACTIONS
            event = _Event(case_id=case_id, seq=seq, action=action, from_state=from_state, to_state=to_state,
                           actor=citizen_actor if applicant_side else staff_actor, comment=comment,
                           payload=payload, created_at=moment)
            event_hash = _event_hash(prev_hash, event)
            self.events.append((case_id, seq, action, from_state, to_state, event.actor,
                                subject.name if applicant_side else village.clerk_name, comment, _json(payload),
                                moment, prev_hash, event_hash))
            prev_hash = event_hash
            state = to_state
            if "issue_certificate" in effects:
                approved_at = moment

        self.cases.append((
            case_id, number, MATTER_CODE, self.definition.version, state, len(actions), subject.id,
            subject.number_hash, subject.name, village.code, "online", None, village.point_id, village.assignee_id,
            village.routing_reason, _json(form), "self", subject.principal, submitted_at, accepted_at, due,
            legal_due, sla_state, closed_at, times[-1]))

        codes = ["id-card"] + (["residence-proof"] if rng.random() < 0.35 else [])
        for code in codes:
            file_id = self._uuid()
            pdf = code == "id-card" or rng.random() < 0.5
            self.files.append((file_id, self._hex(), rng.randint(40_000, 2_000_000),
                               "application/pdf" if pdf else "image/jpeg", f"files/{file_id[:2]}/{file_id}",
                               subject.principal, case_id, submitted_at - timedelta(seconds=rng.uniform(30, 1800))))
            self.materials.append((case_id, code, file_id, None))
        self.idempotency.append((subject.principal, uuid.UUID(int=rng.getrandbits(128)).hex, self._hex(), case_id,
                                 submitted_at))

        if approved_at is not None:
            issued_at = approved_at + timedelta(seconds=rng.uniform(5, 600))
            issued_day = issued_at.astimezone(CHINA).date()
            serial = f"{issued_day:%Y}{self._next(self.serial_counter_name):08d}"
            identifier = build_identifier(type_code=self.cert_type.type_code,
                                          issuer_code=self.cert_type.issuer.credit_code, serial=serial, version=1)
            certificate_id = self._uuid()
            self.certificates.append((
                certificate_id, identifier, self.definition.certificate_type, self.cert_type.type_code,
                self.cert_type.name, case_id, subject.id, subject.number_hash, subject.masked,
                self.cert_type.issuer.name, self.cert_type.issuer.credit_code, serial, "valid", issued_at,
                issued_day, self.cert_type.valid_until(issued_day),
                f"certificates/bench-unrendered/{certificate_id}.pdf", self._hex(), self._hex(),
                _json([["姓名", subject.name], ["居住地址", form["address"]], ["用途", form["purpose"]]])))
            self.outbox.append(("issue_certificate", _json({"case_id": case_id}), f"issue_certificate:{case_id}",
                                "done", 1, approved_at, None, "bench-seed", None, approved_at, issued_at))
            self.identifiers.append(identifier)
        self.case_ids.append(case_id)
        return case_id

    # writing -------------------------------------------------------------------------------

    def flush(self, dbapi_connection, *, postgres: bool) -> None:
        write = lambda table, columns, rows: bulk_insert(dbapi_connection, postgres=postgres, table=table,  # noqa: E731
                                                         columns=columns, rows=rows)
        write("cases", CASE_COLUMNS, self.cases)
        write("case_events", EVENT_COLUMNS, self.events)
        write("files", FILE_COLUMNS, self.files)
        write("case_materials", ("case_id", "code", "file_id", "certificate_id"), self.materials)
        write("idempotency_records", ("principal", "key", "request_sha256", "case_id", "created_at"),
              self.idempotency)
        write("certificates", CERTIFICATE_COLUMNS, self.certificates)
        write("outbox_jobs", OUTBOX_COLUMNS, self.outbox)
        self.reset_buffers()

    def save_counters(self, connection) -> None:
        """Move the counters past what was seeded (never backwards)."""
        from sqlalchemy import text

        changed = {name: value for name, value in self.counters.items() if self.start_counters.get(name) != value}
        if not changed:
            return
        greatest = "GREATEST" if connection.dialect.name == "postgresql" else "MAX"
        connection.execute(
            text("INSERT INTO counters (name, value) VALUES (:name, :value) ON CONFLICT (name) DO UPDATE "
                 f"SET value = {greatest}(counters.value, excluded.value)"),
            [{"name": name, "value": value} for name, value in changed.items()])
        self.start_counters.update(changed)


CASE_COLUMNS = ("id", "number", "matter_code", "matter_version", "state", "version", "subject_id", "subject_hash",
                "applicant_name", "region_code", "receiving_channel", "receiving_point_id", "handling_point_id",
                "assignee_id", "routing_reason", "form", "created_by", "created_by_principal", "submitted_at",
                "accepted_at", "due_date", "legal_due_date", "sla_state", "closed_at", "updated_at")
EVENT_COLUMNS = ("case_id", "seq", "action", "from_state", "to_state", "actor", "actor_name", "comment", "payload",
                 "created_at", "prev_hash", "hash")
FILE_COLUMNS = ("id", "sha256", "size", "content_type", "storage_key", "uploader", "case_id", "created_at")
CERTIFICATE_COLUMNS = ("id", "identifier", "cert_type", "type_code", "type_name", "case_id", "holder_subject_id",
                       "holder_hash", "holder_masked", "issuer_name", "issuer_code", "serial", "status", "issued_at",
                       "valid_from", "valid_until", "storage_key", "pdf_sha256", "content_sha256", "fields")
OUTBOX_COLUMNS = ("kind", "payload", "dedupe_key", "state", "attempts", "run_after", "locked_until", "locked_by",
                  "last_error", "created_at", "finished_at")


@dataclass
class _Subject(SubjectRef):
    masked: str = ""


# ----------------------------------------------------------------------------- subjects

def seed_subjects(engine, dbapi_connection, *, count: int, rng: random.Random, now: datetime,
                  region_prefixes: Sequence[str]) -> list[_Subject]:
    """`count` subjects with valid, unique ID numbers (born 1940–2005), each bound to a citizen account."""
    from sqlalchemy import text

    from services.subjects.identity_numbers import mask_number
    from services.subjects.protection import get_protector

    protector = get_protector()
    with engine.connect() as connection:
        subject_start = connection.execute(text("SELECT COALESCE(MAX(id), 0) FROM subjects")).scalar_one() + 1
        account_start = connection.execute(text("SELECT COALESCE(MAX(id), 0) FROM citizen_accounts")).scalar_one() + 1
    first_birth = date(1940, 1, 1)
    days = (date(2005, 12, 31) - first_birth).days
    subjects: list[_Subject] = []
    account_rows = []

    def subject_rows():  # streamed into COPY: a million encrypted numbers need not sit in memory twice
        for index, code in enumerate(rng.sample(range(days * 1000), count)):
            region = "361130" if rng.random() < 0.85 else rng.choice(region_prefixes)
            number = id_number(region, first_birth + timedelta(days=code // 1000), code % 1000)
            name = person_name(rng)
            created = now - timedelta(days=800) + timedelta(seconds=rng.uniform(0, 30 * 86400))
            subject_id, account_id = subject_start + index, account_start + index
            number_hash, masked = protector.keyed_hash(number), mask_number(number)
            # WeChat openids look like "o" + 27 URL-safe characters
            openid = "o" + base64.urlsafe_b64encode(rng.getrandbits(168).to_bytes(21, "big")).decode()[:27]
            account_rows.append((account_id, openid, subject_id, created))
            subjects.append(_Subject(id=subject_id, number_hash=number_hash, name=name,
                                     principal=f"citizen:{account_id}", masked=masked))
            yield (subject_id, "person", "citizen_id", number_hash, protector.encrypt(number), masked, name, created)

    postgres = _is_postgres(engine)
    bulk_insert(dbapi_connection, postgres=postgres, table="subjects",
                columns=("id", "kind", "number_type", "number_hash", "number_encrypted", "number_masked", "name",
                         "created_at"), rows=subject_rows())
    bulk_insert(dbapi_connection, postgres=postgres, table="citizen_accounts",
                columns=("id", "openid", "subject_id", "created_at"), rows=account_rows)
    return subjects


def _fix_sequences(connection) -> None:
    from sqlalchemy import text

    if connection.dialect.name != "postgresql":
        return
    for table in ("subjects", "citizen_accounts"):
        connection.execute(text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                                f"(SELECT COALESCE(MAX(id), 0) + 1 FROM {table}), false)"))


def _vacuum_analyze(connection) -> None:
    """What autovacuum does after a bulk load (it may be off on a benchmark machine, as it is on
    the team's): the statistics, and on PostgreSQL the visibility map too, without which the
    index-only scans the request path relies on (e.g. routing's count of each clerk's open
    cases) visit the heap for every row."""
    from sqlalchemy import text

    connection.execute(text("VACUUM (ANALYZE)" if connection.dialect.name == "postgresql" else "ANALYZE"))


def _correction_rounds_for(generator: CaseGenerator, events_per_case: float | None) -> float:
    """Mean correction rounds so that the mean history length is `events_per_case`."""
    if events_per_case is None:
        return NATURAL_CORRECTION_ROUNDS
    probe = random.Random(1)
    saved, generator.rng = generator.rng, probe
    try:
        base = sum(len(generator.path_to(generator.sample_final_state(), 0)) for _ in range(20000)) / 20000
    finally:
        generator.rng = saved
    return max(0.0, (events_per_case - base) / 2)


# ----------------------------------------------------------------------------- entry points

def seed(database_url: str, cases: int, *, events_per_case: float | None = None, rng_seed: int = 20261126,
         subjects_per_case: float = 0.75, report: Callable[[str], None] = log) -> dict[str, Any]:
    """Migrate, seed the demo county and `cases` cases. Returns a summary. Settings must already
    point at `database_url` (configure_environment)."""
    from sqlalchemy import text
    from sqlmodel import Session

    from services.db import get_engine, session_scope, utcnow
    from services.demo.seed import seed_demo
    from services.migrate import upgrade_to_head

    started = time.perf_counter()
    if events_per_case is None and cases >= LARGE_RUN_CASES:
        events_per_case = LARGE_RUN_EVENTS
    upgrade_to_head(database_url)
    with session_scope() as session:
        demo = seed_demo(session)
    report(f"schema and demo county ready ({demo.get('reason') or 'seeded'}) in {time.perf_counter() - started:.1f}s")

    engine = get_engine()
    postgres = _is_postgres(engine)
    rng = random.Random(rng_seed)
    now = utcnow()
    with Session(engine) as session:
        villages = load_villages(session, rng)
        region_prefixes = [code[:6] for (code,) in session.execute(
            text("SELECT code FROM regions WHERE level = 'county' AND code LIKE '36%'"))] or ["361130"]
        generator = CaseGenerator(session, rng=rng, now=now, correction_rounds=0.0)
    generator.correction_rounds = _correction_rounds_for(generator, events_per_case)
    weights = [village.weight for village in villages]

    raw = engine.raw_connection()
    try:
        dbapi = raw.driver_connection
        subject_count = max(1, int(cases * subjects_per_case))
        t0 = time.perf_counter()
        subjects = seed_subjects(engine, dbapi, count=subject_count, rng=rng, now=now, region_prefixes=region_prefixes)
        raw.commit()
        report(f"{subject_count:,} subjects and citizen accounts in {time.perf_counter() - t0:.1f}s")

        t0 = time.perf_counter()
        totals = {"cases": 0, "events": 0, "certificates": 0, "files": 0}
        states: dict[str, int] = {}
        two_years = 730 * 86400
        for done in range(0, cases, BATCH_CASES):
            for _ in range(min(BATCH_CASES, cases - done)):
                final = generator.sample_final_state()
                actions = generator.path_to(final, generator._rounds())
                if final in OPEN_STATES:  # still being worked on: the last step happened recently
                    end = now - timedelta(seconds=rng.uniform(60, 6 * 86400))
                else:
                    end = now - timedelta(seconds=rng.uniform(86400, two_years))
                generator.add_case(subject=rng.choice(subjects), village=rng.choices(villages, weights)[0],
                                   actions=actions, end=end)
                states[final] = states.get(final, 0) + 1
            totals["cases"] += len(generator.cases)
            totals["events"] += len(generator.events)
            totals["certificates"] += len(generator.certificates)
            totals["files"] += len(generator.files)
            generator.flush(dbapi, postgres=postgres)
            raw.commit()
            if cases >= 5 * BATCH_CASES:
                report(f"  {totals['cases']:,}/{cases:,} cases, {totals['events']:,} events "
                       f"({time.perf_counter() - t0:.0f}s)")
    finally:
        raw.close()
    with engine.begin() as connection:
        generator.save_counters(connection)
        _fix_sequences(connection)
    t1 = time.perf_counter()
    with engine.connect() as connection:
        connection = connection.execution_options(isolation_level="AUTOCOMMIT")
        _vacuum_analyze(connection)
    report(f"{totals['cases']:,} cases, {totals['events']:,} events ({totals['events'] / max(1, cases):.2f} per case), "
           f"{totals['certificates']:,} certificates in {t1 - t0:.1f}s; VACUUM/ANALYZE {time.perf_counter() - t1:.1f}s")
    return {"cases": totals["cases"], "events": totals["events"], "events_per_case": totals["events"] / max(1, cases),
            "certificates": totals["certificates"], "files": totals["files"], "subjects": subject_count,
            "villages": len(villages), "states": dict(sorted(states.items())),
            "seconds": round(time.perf_counter() - started, 1)}


def seed_submitted_cases(*, point_id: int, count: int, rng_seed: int = 7,
                         report: Callable[[str], None] = log) -> list[str]:
    """`count` freshly submitted cases (state submitted, version 1, one submit event) handled by
    service point `point_id`, from existing seeded subjects. The transition benchmark acts on
    them, one case per request. Returns their ids in creation order."""
    from sqlalchemy import text
    from sqlmodel import Session

    from services.db import get_engine, utcnow

    engine = get_engine()
    rng = random.Random(rng_seed)
    now = utcnow()
    with Session(engine) as session:
        villages = [v for v in load_villages(session, rng) if v.point_id == point_id]
        if not villages:
            raise RuntimeError(f"no village routes to service point {point_id}")
        rows = session.execute(text(
            "SELECT s.id, s.number_hash, s.name, s.number_masked, a.id FROM subjects s "
            "JOIN citizen_accounts a ON a.subject_id = s.id ORDER BY s.id LIMIT 500")).all()
        if not rows:
            raise RuntimeError("no seeded subjects to apply")
        subjects = [_Subject(id=r[0], number_hash=r[1], name=r[2], principal=f"citizen:{r[4]}", masked=r[3])
                    for r in rows]
        generator = CaseGenerator(session, rng=rng, now=now, correction_rounds=0.0)
    t0 = time.perf_counter()
    ids: list[str] = []
    raw = engine.raw_connection()
    try:
        for done in range(0, count, BATCH_CASES):
            for index in range(done, min(count, done + BATCH_CASES)):
                # oldest first, all within the last hour
                end = now - timedelta(seconds=3600 * (count - index) / count + 1)
                generator.add_case(subject=rng.choice(subjects), village=rng.choice(villages), actions=["submit"],
                                   end=end)
            ids.extend(generator.case_ids)
            generator.flush(raw.driver_connection, postgres=_is_postgres(engine))
            raw.commit()
    finally:
        raw.close()
    with engine.begin() as connection:
        generator.save_counters(connection)
    report(f"{count:,} submitted cases for service point {point_id} in {time.perf_counter() - t0:.1f}s")
    return ids


def reset_database(database_url: str) -> None:
    """Empty the benchmark database: DROP/CREATE SCHEMA public (creating the database if it is
    missing) on PostgreSQL, delete the file on SQLite. Refuses databases that are not ours."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            for suffix in ("", "-wal", "-shm"):
                Path(url.database + suffix).unlink(missing_ok=True)
        return
    name = url.database or ""
    if name in PROTECTED_DATABASES or name.startswith("template"):
        raise SystemExit(f"refusing to reset database {name!r}: use a database of the benchmark's own "
                         "(e.g. onestop_bench)")
    admin = sa.create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            exists = connection.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                                        {"name": name}).first()
            if not exists:
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
                return
    finally:
        admin.dispose()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text("DROP SCHEMA IF EXISTS public CASCADE"))
            connection.execute(sa.text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


PROTECTED_DATABASES = frozenset({"postgres", "test", "onestop_dev", "onestop", "onestop_test"})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench.seed", description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--cases", type=int, required=True)
    parser.add_argument("--var-dir", type=Path, default=None,
                        help="ONESTOP_VAR_DIR (keys, demo passwords); the server must use the same one")
    parser.add_argument("--events-per-case", type=float, default=None,
                        help=f"target mean history length (default: the natural mix, {LARGE_RUN_EVENTS:g} "
                             f"from {LARGE_RUN_CASES:,} cases)")
    parser.add_argument("--reset", action="store_true", help="drop and recreate the schema first")
    parser.add_argument("--seed", type=int, default=20261126, help="random seed (the data is reproducible)")
    args = parser.parse_args(argv)
    args.var_dir = args.var_dir or default_var_dir(args.database_url)
    configure_environment(args.database_url, args.var_dir)
    if args.reset:
        reset_database(args.database_url)
    summary = seed(args.database_url, args.cases, events_per_case=args.events_per_case, rng_seed=args.seed)
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
