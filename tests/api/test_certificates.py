"""Certificates over HTTP: the holder's list, detail, download and usage; the issuing
department's status changes; the public status (masked, logged, rate limited, cached in Redis
when configured and correct right after a revocation); grants to third parties; the clerk's
免证办 search; the CLI."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from sqlmodel import Session, select

from services.certificates import checklog
from services.certificates.models import CertificatePublicCheck
from tests.services.certificates.support import TOWN_OF_STATION, issued_residence_certificate, staff_token
from tests.support import WITH_STATION, auth, forget_rate_limits, suite_redis, verified_citizen

STATUS = "/api/v1/public/certificates/{}/status"


@pytest.fixture(autouse=True)
def _fresh_rate_limits():
    forget_rate_limits()
    yield
    forget_rate_limits()


@pytest.fixture
def holder(client):
    """(token, id number, certificate) of a freshly issued residence certificate."""
    return issued_residence_certificate(client, name="李四")


def _error(response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "message", "detail"}
    if code:
        assert body["error"] == code, body
    return body


def _checks(engine, identifier: str) -> list[CertificatePublicCheck]:
    checklog.flush()
    with Session(engine) as session:
        return list(session.exec(select(CertificatePublicCheck).where(CertificatePublicCheck.identifier == identifier)
                                 .order_by(CertificatePublicCheck.id)))


# ---------------------------------------------------------------------------------------------
# The holder


def test_the_holder_lists_reads_and_downloads_and_nobody_else_does(client, holder):
    token, id_number, certificate = holder
    listed = client.get("/api/v1/certificates", headers=auth(token)).json()
    assert certificate["id"] in [item["id"] for item in listed["items"]] and listed["next_cursor"] is None
    assert {"id", "identifier", "type_code", "type_name", "status", "issued_at", "valid_until", "case_id"} <= set(certificate)

    detail = client.get(f"/api/v1/certificates/{certificate['id']}", headers=auth(token)).json()
    metadata = detail["metadata"]
    assert metadata["certificate_name"] == "居住证明" and metadata["holder_name"] == "李四"
    assert metadata["holder_code_type"] == "111" and metadata["holder_code_type_name"] == "公民身份号码"
    assert metadata["issuer_code"] == "11361130MB1C20012R" and metadata["jurisdiction_code"] == "361130"
    assert metadata["number"] and metadata["identifier"] == certificate["identifier"]
    assert metadata["valid_from"] == detail["valid_from"] and metadata["valid_until"] == detail["valid_until"]
    assert [step["to_status"] for step in detail["status_history"]] == ["valid"]
    assert id_number not in json.dumps(detail, ensure_ascii=False)

    pdf = client.get(f"/api/v1/certificates/{certificate['id']}/pdf", headers=auth(token))
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")

    stranger, _ = verified_citizen(client)
    for path in ("", "/pdf", "/usage", "/grants"):
        _error(client.get(f"/api/v1/certificates/{certificate['id']}{path}", headers=auth(stranger)), 404,
               "certificate_not_found")
    other_town_clerk = staff_token(client, "clerk-361130103")
    _error(client.get(f"/api/v1/certificates/{certificate['id']}", headers=auth(other_town_clerk)), 404)
    _error(client.get(f"/api/v1/certificates/{certificate['id']}"), 401)
    assert client.get("/api/v1/certificates", headers=auth(stranger)).json()["items"] == []


def test_a_staff_download_is_a_use_the_holder_sees(client, holder):
    token, _, certificate = holder
    clerk = staff_token(client, f"clerk-{WITH_STATION}")
    assert client.get(f"/api/v1/certificates/{certificate['id']}/pdf", headers=auth(clerk)).status_code == 200
    usage = client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(token)).json()["items"]
    assert usage[0]["actor_kind"] == "staff" and "秋口村便民服务站" in usage[0]["actor_name"]
    assert usage[0]["purpose"] == "工作人员查看证照文件" and usage[0]["case_id"] == certificate["case_id"]
    _error(client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(clerk)), 403,
           "certificate_holder_only")


# ---------------------------------------------------------------------------------------------
# Status


def test_the_issuing_department_suspends_restores_and_revokes(client, holder, engine):
    token, _, certificate = holder
    supervisor = staff_token(client, f"supervisor-{TOWN_OF_STATION}")
    path = f"/api/v1/certificates/{certificate['id']}/status"

    _error(client.post(path, json={"status": "suspended", "reason": "核查"}, headers=auth(token)), 403)
    _error(client.post(path, json={"status": "suspended", "reason": "核查"},
                       headers=auth(staff_token(client, f"clerk-{WITH_STATION}"))), 403, "certificate_status_forbidden")
    _error(client.post(path, json={"status": "suspended", "reason": "核查"},
                       headers=auth(staff_token(client, "supervisor-361130103"))), 404)
    _error(client.post(path, json={"status": "suspended"}, headers=auth(supervisor)), 422)
    _error(client.post(path, json={"status": "expired", "reason": "x"}, headers=auth(supervisor)), 422)

    suspended = client.post(path, json={"status": "suspended", "reason": "涉嫌虚假材料，暂扣核查"}, headers=auth(supervisor))
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "suspended" and suspended.json()["status_reason"] == "涉嫌虚假材料，暂扣核查"
    public = client.get(STATUS.format(certificate["identifier"])).json()
    assert public["status"] == "suspended" and public["status_label"] == "暂扣"
    assert client.post(path, json={"status": "valid", "reason": "核查无误"}, headers=auth(supervisor)).json()["status"] == "valid"
    revoked = client.post(path, json={"status": "revoked", "reason": "依法吊销"}, headers=auth(supervisor)).json()
    assert revoked["status"] == "revoked" and revoked["status_label"] == "吊销"
    again = _error(client.post(path, json={"status": "valid", "reason": "x"}, headers=auth(supervisor)), 409,
                   "status_transition_not_allowed")
    assert again["detail"]["status"] == "revoked"
    history = client.get(f"/api/v1/certificates/{certificate['id']}", headers=auth(token)).json()["status_history"]
    assert [(h["from_status"], h["to_status"]) for h in history] == [
        (None, "valid"), ("valid", "suspended"), ("suspended", "valid"), ("valid", "revoked")]
    assert all(h["actor_name"] and h["at"] for h in history[1:])


def test_a_revocation_is_visible_at_once_even_when_the_status_was_cached(client, holder):
    token, _, certificate = holder
    url = STATUS.format(certificate["identifier"])
    for _ in range(3):  # the first answer is cached in Redis (when configured); the next come from it
        assert client.get(url).json()["status"] == "valid"
    supervisor = staff_token(client, f"supervisor-{TOWN_OF_STATION}")
    response = client.post(f"/api/v1/certificates/{certificate['id']}/status",
                           json={"status": "revoked", "reason": "依法吊销"}, headers=auth(supervisor))
    assert response.status_code == 200
    assert client.get(url).json()["status"] == "revoked"
    assert client.get(url).json()["status"] == "revoked"


@pytest.fixture(scope="module")
def second_instance(engine):
    """Another API process (uvicorn, as in production) on the same database and, when the suite
    has one, the same Redis: what a second machine behind the load balancer would answer."""
    import socket
    import time

    import httpx

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "api.asgi:app", "--host", "127.0.0.1", "--port",
                                str(port), "--log-level", "warning"], cwd=root, env=os.environ.copy(),
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                raise AssertionError(process.stderr.read().decode(errors="replace")[-3000:])
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the second instance did not start")
            time.sleep(0.2)
        with httpx.Client(base_url=base, timeout=10) as other:
            yield other
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()


def test_a_status_change_in_one_process_is_seen_at_once_by_another(client, holder, second_instance):
    """Each change is made through this process; the other process, which answered (and so
    cached, with Redis) the old status just before, answers the new one on the very next request."""
    from services.certificates import cache

    _, _, certificate = holder
    url = STATUS.format(certificate["identifier"])
    supervisor = staff_token(client, f"supervisor-{TOWN_OF_STATION}")
    redis = suite_redis()
    previous = "valid"
    for status in ("suspended", "valid", "revoked"):
        for _ in range(3):
            assert second_instance.get(url).json()["status"] == previous
        if redis is not None:  # the other process cached it, where this one must invalidate it
            assert redis.get(cache.status_key(certificate["identifier"])) is not None
        response = client.post(f"/api/v1/certificates/{certificate['id']}/status",
                               json={"status": status, "reason": "依法处理"}, headers=auth(supervisor))
        assert response.status_code == 200, response.text
        assert [second_instance.get(url).json()["status"] for _ in range(3)] == [status] * 3
        previous = status


def test_the_status_cache_holds_no_holder_data(client, holder):
    from services.certificates import cache

    redis = suite_redis()
    if redis is None:
        pytest.skip("no Redis configured (ONESTOP_TEST_REDIS_URL)")
    _, id_number, certificate = holder
    client.get(STATUS.format(certificate["identifier"]))
    key = cache.status_key(certificate["identifier"])
    assert certificate["identifier"] not in key and redis.get(key) is not None
    assert id_number.encode() not in redis.get(key) and "李四".encode() not in redis.get(key)


# ---------------------------------------------------------------------------------------------
# The public status


def test_public_status_is_masked_and_every_check_is_logged(client, holder, engine):
    _, id_number, certificate = holder
    answer = client.get(STATUS.format(certificate["identifier"]))
    assert answer.status_code == 200
    body = answer.json()
    assert {"identifier", "type_code", "type_name", "status", "issued_at", "valid_until", "issuer_name",
            "holder_masked", "pdf_sha256"} <= set(body)
    assert body["holder_masked"].startswith(id_number[:4]) and "*" in body["holder_masked"]
    assert body["holder_name_masked"] == "李*" and id_number not in answer.text and "李四" not in answer.text
    assert "number" not in body  # a disability number says more than a verifier needs
    checks = _checks(engine, certificate["identifier"])
    assert checks and checks[-1].result == "valid" and checks[-1].certificate_id == certificate["id"]
    assert checks[-1].kind == "status" and len(checks[-1].client_hash) == 64 and "testclient" not in checks[-1].client_hash


def test_unknown_and_malformed_identifiers(client, holder, engine):
    identifier = holder[2]["identifier"]
    head, serial, version, check = identifier.rsplit(".", 3)
    unknown_serial = str(int(serial) + 10_000_000)
    from services.certificates.identifiers import build_identifier, parse_identifier

    parsed = parse_identifier(identifier)
    unknown = build_identifier(type_code=parsed.type_code, issuer_code=parsed.issuer_code, serial=unknown_serial)
    _error(client.get(STATUS.format(unknown)), 404, "certificate_not_found")
    wrong_check = identifier[:-1] + ("0" if identifier[-1] != "0" else "1")
    body = _error(client.get(STATUS.format(wrong_check)), 404, "invalid_certificate_identifier")
    assert body["detail"]["reason"] == "check_character" and "校验位" in body["message"]
    for malformed in ("1.2.156.3005.2.X", "not-an-identifier", "1.2.156.3005.2." + "A" * 200):
        assert client.get(STATUS.format(malformed)).status_code == 404
    assert _checks(engine, unknown)[-1].result == "not_found"
    assert _checks(engine, wrong_check)[-1].result == "invalid_identifier"


def test_public_status_is_rate_limited_per_client_with_retry_after(client, holder, monkeypatch):
    from services.ratelimit import get_rate_limit_settings

    monkeypatch.setattr(get_rate_limit_settings(), "public_status", "3/minute")
    url = STATUS.format(holder[2]["identifier"])
    assert [client.get(url).status_code for _ in range(3)] == [200, 200, 200]
    limited = client.get(url)
    body = _error(limited, 429, "rate_limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 and body["detail"]["limit"] == "public-status"
    assert client.get(STATUS.format("not-an-identifier")).status_code == 429  # a malformed one counts too
    from services.config import get_settings

    monkeypatch.setattr(get_settings(), "rate_limits", "off")
    assert client.get(url).status_code == 200


# ---------------------------------------------------------------------------------------------
# Grants


def _in(days: float) -> str:
    return (dt.datetime.now(dt.timezone(dt.timedelta(hours=8))) + dt.timedelta(days=days)).isoformat()


def test_a_holder_grants_a_bank_a_time_limited_view_and_takes_it_back(client, holder):
    token, id_number, certificate = holder
    path = f"/api/v1/certificates/{certificate['id']}/grants"
    created = client.post(path, json={"grantee": "中国农业银行婺源县支行", "purpose": "办理个人住房贷款",
                                      "expires_at": _in(7)}, headers=auth(token))
    assert created.status_code == 201, created.text
    grant = created.json()
    assert grant["state"] == "active" and grant["url"].endswith(grant["token"])
    shared_path = f"/api/v1/public/shared-certificates/{grant['token']}"

    seen = client.get(shared_path)
    assert seen.status_code == 200, seen.text
    assert seen.json()["identifier"] == certificate["identifier"] and seen.json()["status"] == "valid"
    assert seen.json()["grant"]["purpose"] == "办理个人住房贷款" and id_number not in seen.text
    pdf = client.get(shared_path + "/pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF-")

    listed = client.get(path, headers=auth(token)).json()["items"]
    assert listed[0]["id"] == grant["id"] and listed[0]["use_count"] == 2 and "token" not in listed[0]
    usage = client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(token)).json()["items"]
    third = [item for item in usage if item["actor_kind"] == "third_party"]
    assert len(third) == 2 and third[0]["actor_name"] == "中国农业银行婺源县支行" and "住房贷款" in third[0]["purpose"]

    assert client.delete(f"{path}/{grant['id']}", headers=auth(token)).status_code == 204
    _error(client.get(shared_path), 410, "grant_expired")
    assert client.delete(f"{path}/{grant['id']}", headers=auth(token)).status_code == 204  # idempotent
    _error(client.get("/api/v1/public/shared-certificates/not-a-token"), 404, "grant_not_found")


def test_bad_grants_are_refused_with_reasons(client, holder):
    token, id_number, certificate = holder
    path = f"/api/v1/certificates/{certificate['id']}/grants"

    def reasons(body: dict) -> set[str]:
        response = client.post(path, json=body, headers=auth(token))
        return {item["reason"] for item in _error(response, 422)["detail"]}

    base = {"grantee": "婺源县人力资源和社会保障局", "purpose": "就业登记", "expires_at": _in(3)}
    assert reasons({**base, "expires_at": _in(-1)}) == {"in_the_past"}
    assert reasons({**base, "expires_at": _in(400)}) == {"too_far"}
    assert reasons({**base, "grantee": "李四"}) == {"self"}
    assert reasons({**base, "grantee": "本人"}) == {"self"}
    assert reasons({**base, "grantee": id_number}) == {"self"}
    assert reasons({**base, "grantee_code": "91361130MA3A2B3C4F"}) == {"invalid_credit_code"}
    _error(client.post(path, json={**base, "purpose": ""}, headers=auth(token)), 422)
    _error(client.post(path, json={**base, "expires_at": "next tuesday"}, headers=auth(token)), 422)
    clerk = staff_token(client, f"clerk-{WITH_STATION}")
    _error(client.post(path, json=base, headers=auth(clerk)), 403, "certificate_holder_only")


def test_an_expired_grant_is_gone(client, holder, engine):
    from services.certificates.models import CertificateGrant
    from services.db import utcnow

    token, _, certificate = holder
    grant = client.post(f"/api/v1/certificates/{certificate['id']}/grants",
                        json={"grantee": "某用人单位", "purpose": "入职核验", "expires_at": _in(1)},
                        headers=auth(token)).json()
    with Session(engine) as session:
        row = session.get(CertificateGrant, grant["id"])
        row.expires_at = utcnow() - dt.timedelta(seconds=1)
        session.add(row)
        session.commit()
    body = _error(client.get(f"/api/v1/public/shared-certificates/{grant['token']}"), 410, "grant_expired")
    assert body["detail"]["state"] == "expired"


# ---------------------------------------------------------------------------------------------
# 免证办: the clerk looks a holder's certificates up for a case


def test_a_clerk_finds_a_holders_valid_certificates_for_a_case_and_the_holder_sees_it(client, holder):
    token, id_number, certificate = holder
    from tests.support import residence_application, submit, upload_pdf

    new_case = submit(client, token, residence_application(id_number, upload_pdf(client, token), name="李四")).json()
    clerk = staff_token(client, f"clerk-{WITH_STATION}")
    found = client.post("/api/v1/certificates/search",
                        json={"holder_number": id_number, "type_code": "residence-certificate", "case_id": new_case["id"]},
                        headers=auth(clerk))
    assert found.status_code == 200, found.text
    items = found.json()["items"]
    assert certificate["id"] in [item["id"] for item in items] and all(item["status"] == "valid" for item in items)
    assert id_number not in found.text
    by_type_code = client.post("/api/v1/certificates/search", json={"holder_number": id_number,
                                                                    "type_code": certificate["type_code"],
                                                                    "case_id": new_case["id"]}, headers=auth(clerk))
    assert by_type_code.json()["items"] == items

    usage = client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(token)).json()["items"]
    mine = [item for item in usage if item["case_id"] == new_case["id"]]
    assert mine and mine[0]["actor_kind"] == "staff" and new_case["number"] in mine[0]["purpose"]

    _error(client.post("/api/v1/certificates/search", json={"holder_number": "361130198803150517",
                                                           "case_id": new_case["id"]}, headers=auth(clerk)), 422,
           "invalid_holder_number")
    _error(client.post("/api/v1/certificates/search", json={"holder_number": id_number, "case_id": new_case["id"]},
                       headers=auth(staff_token(client, "clerk-361130103"))), 404)
    _error(client.post("/api/v1/certificates/search", json={"holder_number": id_number, "case_id": new_case["id"]},
                       headers=auth(token)), 403)
    _error(client.post("/api/v1/certificates/search", json={"holder_number": id_number, "type_code": "no-such-type",
                                                           "case_id": new_case["id"]}, headers=auth(clerk)), 422)


def test_the_usage_log_lists_public_checks_anonymously(client, holder):
    token, _, certificate = holder
    client.get(STATUS.format(certificate["identifier"]))
    usage = client.get(f"/api/v1/certificates/{certificate['id']}/usage", headers=auth(token)).json()["items"]
    public = [item for item in usage if item["actor_kind"] == "public"]
    assert public and public[0]["actor_name"] == "匿名核验者" and public[0]["purpose"] == "通过证照标识查询状态"


# ---------------------------------------------------------------------------------------------
# Trust chain and types


def test_the_ca_bundle_and_the_crl_are_public(client):
    from cryptography import x509

    bundle = x509.load_pem_x509_certificates(client.get("/api/v1/public/pki/ca").content)
    assert bundle and bundle[-1].issuer == bundle[-1].subject
    crl = x509.load_der_x509_crl(client.get("/api/v1/public/pki/crl").content)
    assert crl.is_signature_valid(bundle[-1].public_key())


def test_certificate_types_are_listed(client):
    items = client.get("/api/v1/certificate-types").json()["items"]
    assert {"residence-certificate", "food-business-license"} <= {item["code"] for item in items}
    food = next(item for item in items if item["code"] == "food-business-license")
    assert food["holder_code_type"] == "001" and food["validity"] == {"years": 5}


# ---------------------------------------------------------------------------------------------
# CLI


def _onestop(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "api.cli", "certificates", *args], capture_output=True, text=True,
                          env=os.environ.copy(), timeout=300)


def test_cli_status_verify_expire_types_and_render_sample(client, holder, tmp_path):
    token, _, certificate = holder
    shown = _onestop("status", certificate["identifier"])
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["history"][0]["to_status"] == "valid"
    assert _onestop("status", certificate["identifier"][:-1] + "0").returncode in (1, 2)

    pdf = tmp_path / "certificate.pdf"
    pdf.write_bytes(client.get(f"/api/v1/certificates/{certificate['id']}/pdf", headers=auth(token)).content)
    verified = _onestop("verify", str(pdf))
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert json.loads(verified.stdout)["valid"] is True

    expired = _onestop("expire", "--today", "2000-01-01")
    assert expired.returncode == 0 and "0 certificate(s) expired" in expired.stderr
    assert _onestop("expire", "--today", "soon").returncode == 2

    types = _onestop("types", "--json")
    assert types.returncode == 0 and len(json.loads(types.stdout)) >= 9

    sample = tmp_path / "sample.pdf"
    rendered = _onestop("render-sample", "homestead-approval", "--out", str(sample))
    assert rendered.returncode == 0, rendered.stderr
    assert sample.read_bytes().startswith(b"%PDF-")
    seal = _onestop("draw-seal", "婺源县民政局")
    assert seal.returncode == 0 and seal.stdout.startswith("<?xml")
    assert _onestop("pki", "show").returncode == 0


def test_cli_help():
    for command in ("expire", "types", "render-sample", "status", "verify", "draw-seal", "orphans", "flush-checks",
                    "pki"):
        result = _onestop(command, "--help")
        assert result.returncode == 0 and "Usage" in result.stdout, command


def test_an_api_process_does_not_load_the_signing_stack():
    """WeasyPrint and pyHanko (~60,000 objects with asn1crypto and friends) belong to the worker;
    an API process importing them pays for them in every full garbage collection (a stalled event
    loop, the public status endpoint's p99). They load on first use (issuing, verifying)."""
    script = ("import sys, api.asgi; loaded = sorted({m.split('.')[0] for m in sys.modules} & "
              "{'pyhanko', 'pyhanko_certvalidator', 'weasyprint', 'qrcode'}); print(loaded); sys.exit(bool(loaded))")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=os.environ.copy(),
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr[-2000:]


def test_a_slow_or_absent_redis_is_answered_from_the_database(client, holder, monkeypatch):
    """The status endpoint bounds its Redis use with timeouts of its own (redis-py's per-command
    one costs a task per command): a Redis that hangs or refuses costs at most those (the rate
    limit's script, then the cache read), never a 500."""
    import asyncio

    from services.certificates import cache
    from services.ratelimit import limiter

    class Hanging:
        def __init__(self):
            self.hung = self.cut_off = 0

        async def _hang(self, *args, **kwargs):
            self.hung += 1
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                self.cut_off += 1
                raise

        evalsha = eval = mget = _hang

    class Refusing(Hanging):
        async def _hang(self, *args, **kwargs):
            raise ConnectionError("connection refused")

        evalsha = eval = mget = _hang

    url = STATUS.format(holder[2]["identifier"])
    monkeypatch.setattr(cache, "ASYNC_TIMEOUT_SECONDS", 0.3)
    monkeypatch.setattr(limiter, "ASYNC_TIMEOUT_SECONDS", 0.3)
    for fake in (Hanging(), Refusing()):
        monkeypatch.setattr(cache, "async_client", lambda fake=fake: fake)
        monkeypatch.setattr(limiter, "async_redis_client", lambda fake=fake: fake)
        answer = client.get(url)
        assert answer.status_code == 200 and answer.json()["status"] == "valid", answer.text
        # a hanging Redis was given up on by the endpoint's timeouts, not waited out: the limit's
        # script (with Redis configured), then the cache read
        expected = (2 if suite_redis() else 1) if type(fake) is Hanging else 0
        assert fake.cut_off == fake.hung == expected
