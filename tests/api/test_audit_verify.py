"""`onestop audit verify` recomputes every case's hash chain and names each case whose history
was edited, reordered or cut — here after rows were changed directly in the database."""

from __future__ import annotations

import json

from sqlalchemy import delete, update
from sqlmodel import Session, select
from typer.testing import CliRunner

from api.cli import app
from services.cases.models import CaseEvent
from tests.services.cases.helpers import staff
from tests.support import WITH_STATION, act, residence_application, submit, upload_pdf, verified_citizen


def case_with_history(client) -> dict:
    token, id_number = verified_citizen(client)
    case = submit(client, token, residence_application(id_number, upload_pdf(client, token))).json()
    clerk = staff(client, f"clerk-{WITH_STATION}")
    case = act(client, clerk, case, "accept").json()
    return act(client, clerk, case, "approve", comment="情况属实").json()


def verify(*args: str) -> tuple[int, list[dict]]:
    result = CliRunner().invoke(app, ["audit", "verify", "--json", *args])
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.strip()]
    return result.exit_code, lines


def test_audit_names_every_case_whose_history_was_edited_reordered_or_cut(client, engine):
    edited, reordered, cut, intact = (case_with_history(client) for _ in range(4))
    with Session(engine) as session:
        session.execute(update(CaseEvent).where(CaseEvent.case_id == edited["id"], CaseEvent.seq == 2)
                        .values(comment="改过的理由"))
        events = session.exec(select(CaseEvent).where(CaseEvent.case_id == reordered["id"])
                              .order_by(CaseEvent.seq)).all()
        session.execute(update(CaseEvent).where(CaseEvent.id == events[1].id).values(seq=-1))
        session.execute(update(CaseEvent).where(CaseEvent.id == events[2].id).values(seq=2))
        session.execute(update(CaseEvent).where(CaseEvent.id == events[1].id).values(seq=3))
        session.execute(delete(CaseEvent).where(CaseEvent.case_id == cut["id"], CaseEvent.seq == 3))
        session.commit()

    code, lines = verify()
    broken = {line["case_id"]: line for line in lines if "case_id" in line}
    assert code == 1
    assert {edited["id"], reordered["id"], cut["id"]} <= set(broken) and intact["id"] not in broken
    assert {"problem": "hash", "seq": 2} in broken[edited["id"]]["problems"]
    assert "reordered" in [p["problem"] for p in broken[reordered["id"]]["problems"]]
    assert "cut" in [p["problem"] for p in broken[cut["id"]]["problems"]]
    assert broken[edited["id"]]["number"] == edited["number"]
    assert lines[-1]["summary"]["broken"] >= 3

    code, lines = verify("--case", intact["id"])
    assert code == 0 and lines == [{"summary": {"cases": 1, "events": 3, "broken": 0}}]
