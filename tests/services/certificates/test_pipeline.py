"""The certificate pipeline end to end, checked by independent verifiers (poppler's pdfsig with
an NSS trust store, pyHanko's validator, zbarimg on a rendered page). Nothing is mocked."""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from services.certificates import pki
from services.certificates.identifiers import build_identifier, parse_identifier
from services.certificates.pipeline import produce_certificate_pdf
from services.certificates.rendering import (
    InvalidQrToken,
    content_sha256,
    make_qr_token,
    status_url,
    verify_qr_token,
)
from services.certificates.types import (
    CertificateTypeError,
    MissingFieldSource,
    load_certificate_type,
    load_certificate_types,
    resolve_fields,
)
from services.config import Settings
from tests.services.certificates import verifiers

pytestmark = pytest.mark.skipif(
    bool(verifiers.missing_tools()), reason=f"missing tools: {', '.join(verifiers.missing_tools())}"
)

APPLICANT_NAME = "汪春花"
CLEAR_ID_NUMBER = "361130199003070028"  # never given to the pipeline; must appear nowhere
HOLDER_MASKED = "3611**********0028"
ISSUED_AT = dt.date(2026, 1, 15)
SAMPLE_CONTEXT = {
    "applicant": {"name": APPLICANT_NAME, "gender": "女"},
    "form": {"address": "江西省上饶市婺源县紫阳镇城西村十二组 18 号", "since": "2019-03", "purpose": "子女入学"},
    "handling_point": {"name": "婺源县紫阳镇城西村便民服务站"},
    "operator": {"name": "程立新"},
}


def _settings(var_dir: Path) -> Settings:
    return Settings(var_dir=var_dir, issuer_pkcs12_path=None, public_base_url="http://127.0.0.1:8000")


def _produce(settings: Settings, serial: str = "2026000123"):
    cert_type = load_certificate_types()["residence-certificate"]
    identifier = build_identifier(type_code=cert_type.type_code, issuer_code=cert_type.issuer_code, serial=serial)
    issued = produce_certificate_pdf(
        cert_type=cert_type,
        identifier=identifier,
        context=SAMPLE_CONTEXT,
        holder_masked=HOLDER_MASKED,
        issued_at=ISSUED_AT,
        valid_until=cert_type.valid_until(ISSUED_AT),
        settings=settings,
    )
    return cert_type, identifier, issued


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return _settings(tmp_path_factory.mktemp("cert-var"))


@pytest.fixture(scope="module")
def produced(settings):
    return _produce(settings)


@pytest.fixture(scope="module")
def pdf_path(produced, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cert-pdf") / "certificate.pdf"
    path.write_bytes(produced[2].pdf)
    return path


@pytest.fixture(scope="module")
def root_cert(settings) -> x509.Certificate:
    return pki.load_issuing_chain(settings).root_cert


def _assert_pdfsig_accepts(report: str) -> None:
    assert "Total document signed" in report, report
    assert "Signature is Valid." in report, report
    assert "Certificate is Trusted." in report, report


def _assert_pyhanko_accepts(status) -> None:
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    assert status.intact, status.pretty_print_details()
    assert status.valid, status.pretty_print_details()
    assert status.trusted, status.pretty_print_details()
    assert status.bottom_line, status.pretty_print_details()
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE


# ---------------------------------------------------------------------------------------------
# The genuine certificate


def test_pdfsig_accepts_the_signed_certificate(pdf_path, root_cert):
    report = verifiers.pdfsig_report(pdf_path, root_cert)
    _assert_pdfsig_accepts(report)
    assert "ETSI.CAdES.detached" in report  # PAdES
    assert "婺源县政务服务数据管理局" in report


def test_pyhanko_accepts_the_signed_certificate(produced, root_cert):
    status = verifiers.pyhanko_validate(produced[2].pdf, root_cert)
    _assert_pyhanko_accepts(status)
    assert not status.revoked


def test_signature_and_its_crl_are_one_revision(produced):
    """Validation data in the signature's own revision: nothing after the signature."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(produced[2].pdf))
    assert "/DSS" in reader.root
    assert len(reader.root["/DSS"]["/CRLs"]) == 1
    (signature,) = reader.embedded_signatures
    assert signature.signed_revision == reader.xrefs.total_revisions - 1
    start, length = signature.byte_range[2], signature.byte_range[3]
    assert start + length == len(produced[2].pdf)


def test_text_fonts_and_size(produced, pdf_path):
    cert_type, identifier, issued = produced
    text = verifiers.pdftotext(pdf_path)
    compact = re.sub(r"\s+", "", text)  # the title is letter-spaced
    assert "居住证明" in compact
    for value in (
        APPLICANT_NAME,
        "女",
        HOLDER_MASKED,
        "江西省上饶市婺源县紫阳镇城西村十二组18号",
        "2019年3月",
        "子女入学",
        "婺源县紫阳镇城西村便民服务站",
        "程立新",
        "2026年1月15日",
        "2026年7月15日",
        "扫码核验",
    ):
        assert value in compact, value
    assert CLEAR_ID_NUMBER not in compact
    assert len(issued.pdf) < 200 * 1024


def test_the_cjk_font_is_embedded_as_a_subset(pdf_path):
    """pdffonts: every font embedded (emb), subset (sub, and the ABCDEF+ name prefix), with a
    ToUnicode map (uni: text can be copied and searched), and the CJK face among them."""
    import subprocess

    lines = subprocess.run(["pdffonts", str(pdf_path)], capture_output=True, text=True, check=True).stdout.splitlines()
    fonts = [line.split() for line in lines[2:] if line.strip()]
    assert fonts, lines
    for font in fonts:
        name, emb, sub, uni = font[0], font[-5], font[-4], font[-3]
        assert (emb, sub, uni) == ("yes", "yes", "yes"), font
        assert re.fullmatch(r"[A-Z]{6}\+.+", name), font
    assert any(re.search(r"WenQuanYi|Noto.*CJK|Source.*Han", font[0]) for font in fonts), fonts


def test_one_renderer_and_one_font_configuration_for_every_render(settings, monkeypatch):
    """The worker's renderer is shared, and so is its FontConfiguration: renders create no new
    one (a new one per render grew memory to ~800 MiB; tests/bench/certificates.py measures RSS)."""
    from weasyprint.text import fonts

    from services.certificates.rendering import shared_renderer

    renderer = shared_renderer()
    font_config = renderer.font_config
    created = []
    real_init = fonts.FontConfiguration.__init__

    def counting_init(self, *args, **kwargs):
        created.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(fonts.FontConfiguration, "__init__", counting_init)
    _produce(settings, serial="2026000124")
    _produce(settings, serial="2026000125")
    assert created == []
    assert shared_renderer() is renderer and renderer.font_config is font_config


def test_identifier_embedded_in_the_document_parses(produced):
    from pyhanko.pdf_utils.reader import PdfFileReader

    cert_type, identifier, issued = produced
    reader = PdfFileReader(io.BytesIO(issued.pdf))
    embedded = str(reader.trailer["/Info"]["/Subject"])
    parsed = parse_identifier(embedded)
    assert embedded == identifier
    assert (parsed.type_code, parsed.issuer_code, parsed.serial, parsed.version) == (
        cert_type.type_code,
        cert_type.issuer_code,
        "2026000123",
        1,
    )


def test_qr_code_reads_and_its_token_verifies(produced, pdf_path, settings, tmp_path):
    cert_type, identifier, issued = produced
    png = verifiers.page_png(pdf_path, tmp_path / "page1", dpi=150)
    texts = verifiers.read_qr(png)
    assert len(texts) == 1, texts
    (text,) = texts
    url = status_url(public_base_url=settings.public_base_url, identifier=identifier)
    assert text.startswith(url + "#")
    token = text[len(url) + 1 :]
    assert token == issued.qr_token

    chain = pki.load_issuing_chain(settings)
    claims = verify_qr_token(token, certificates=chain.issuer_certificates)
    assert claims["id"] == identifier
    assert claims["t"] == cert_type.type_code
    assert claims["i"] == cert_type.issuer_code
    assert claims["h"] == issued.content_sha256
    assert set(claims) == {"id", "t", "i", "h", "iat"}
    # h is recomputable from what the certificate says
    assert content_sha256(list(issued.fields), identifier) == issued.content_sha256

    # no personal data, in clear or inside the token's base64
    decoded = text + "".join(
        base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")
        for part in token.split(".")[:2]
    )
    for personal in (APPLICANT_NAME, HOLDER_MASKED, CLEAR_ID_NUMBER, SAMPLE_CONTEXT["form"]["address"], "女", "程立新"):
        assert personal not in decoded


# ---------------------------------------------------------------------------------------------
# Tampering


def _content_stream_offset(pdf: bytes) -> int:
    """Offset of a byte in page 1's content stream (inside the signed range)."""
    from pyhanko.pdf_utils.reader import PdfFileReader

    reader = PdfFileReader(io.BytesIO(pdf))
    page = reader.root["/Pages"]["/Kids"][0].get_object()
    contents = page.raw_get("/Contents")
    if isinstance(contents, list):
        contents = contents[0]
    match = re.search(rb"(?:^|[\r\n])%d 0 obj\b" % contents.idnum, pdf)
    assert match, "content stream object not found"
    start = pdf.index(b"stream", match.end()) + len(b"stream")
    start += 2 if pdf[start : start + 2] == b"\r\n" else 1
    return start + 20


def test_a_changed_byte_in_the_signed_content_is_detected(produced, root_cert, tmp_path):
    pdf = bytearray(produced[2].pdf)
    offset = _content_stream_offset(bytes(pdf))
    (signature_start, signature_end) = _signature_contents_span(bytes(pdf))
    assert not signature_start <= offset < signature_end
    pdf[offset] ^= 0x01
    tampered = tmp_path / "flipped.pdf"
    tampered.write_bytes(bytes(pdf))

    report = verifiers.pdfsig_report(tampered, root_cert)
    assert "Signature is Valid." not in report, report
    assert "Signature is Invalid." in report or "Digest Mismatch." in report, report

    status = verifiers.pyhanko_validate(bytes(pdf), root_cert)
    assert not status.intact
    assert not status.bottom_line


def _signature_contents_span(pdf: bytes) -> tuple[int, int]:
    from pyhanko.pdf_utils.reader import PdfFileReader

    (signature,) = PdfFileReader(io.BytesIO(pdf)).embedded_signatures
    first_start, first_length, second_start, _ = signature.byte_range
    return first_start + first_length, second_start


def _append_update(pdf: bytes, *, overlay: bool) -> bytes:
    from pyhanko.pdf_utils import generic
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter

    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    title = generic.TextStringObject("居住证明（已改）")
    writer.set_info(generic.DictionaryObject({generic.pdf_name("/Title"): title}))
    if overlay:
        # draw a white box over the validity date: the kind of change a forger wants
        page_ref = writer.root["/Pages"]["/Kids"][0]
        page = page_ref.get_object()
        stream = generic.StreamObject(stream_data=b"q 1 1 1 rg 160 300 200 20 re f Q")
        contents = page.raw_get("/Contents")
        existing = list(contents) if isinstance(contents, generic.ArrayObject) else [contents]
        page["/Contents"] = generic.ArrayObject([*existing, writer.add_object(stream)])
        writer.update_container(page_ref)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


@pytest.mark.parametrize("overlay", [False, True], ids=["info-title", "page-overlay"])
def test_an_appended_incremental_update_is_detected(produced, root_cert, tmp_path, overlay):
    from pyhanko.sign.diff_analysis import ModificationLevel
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    updated = _append_update(produced[2].pdf, overlay=overlay)
    path = tmp_path / "updated.pdf"
    path.write_bytes(updated)

    report = verifiers.pdfsig_report(path, root_cert)
    assert "Total document signed" not in report, report
    assert "Signature Field Name: IssuerSeal" in report

    status = verifiers.pyhanko_validate(updated, root_cert)
    assert status.coverage != SignatureCoverageLevel.ENTIRE_FILE
    assert status.coverage == SignatureCoverageLevel.ENTIRE_REVISION
    if overlay:
        assert status.modification_level == ModificationLevel.OTHER
        assert not status.docmdp_ok
        assert not status.bottom_line


# ---------------------------------------------------------------------------------------------
# Key rotation and revocation


def test_rotation_keeps_old_certificates_valid_and_revocation_invalidates(tmp_path):
    settings = _settings(tmp_path / "var")
    _, _, before_rotation = _produce(settings, serial="1")
    first_issuer = pki.load_issuing_chain(settings).issuer_cert

    pki.rotate_issuer_key(settings)
    chain = pki.load_issuing_chain(settings)
    assert chain.issuer_cert.serial_number != first_issuer.serial_number
    _, _, after_rotation = _produce(settings, serial="2")
    crl = pki.current_crl_der(settings)
    root = chain.root_cert
    for issued in (before_rotation, after_rotation):
        _assert_pyhanko_accepts(verifiers.pyhanko_validate(issued.pdf, root, extra_crls=[crl]))
        verify_qr_token(issued.qr_token, certificates=chain.issuer_certificates)  # old kid still known

    # revoke the key that signed `after_rotation`
    pki.revoke_issuer_certificate(settings, reason="key_compromise")
    new_crl = pki.current_crl_der(settings)
    assert new_crl != crl
    revoked_entry = x509.load_der_x509_crl(new_crl).get_revoked_certificate_by_serial_number(
        chain.issuer_cert.serial_number
    )
    assert revoked_entry is not None

    path = tmp_path / "revoked.pdf"
    path.write_bytes(after_rotation.pdf)
    report = verifiers.pdfsig_report(path, root, crl_der=new_crl)
    assert "Certificate is Trusted." not in report, report
    assert "Revoked" in report, report

    status = verifiers.pyhanko_validate(after_rotation.pdf, root, extra_crls=[new_crl], use_document_revinfo=False)
    assert status.intact  # the bytes are untouched ...
    assert not status.bottom_line  # ... but the signer's key is revoked
    assert status.revoked

    # the certificate signed before the rotation is not affected; new ones use the new key
    _assert_pyhanko_accepts(
        verifiers.pyhanko_validate(before_rotation.pdf, root, extra_crls=[new_crl], use_document_revinfo=False)
    )
    _, _, after_revocation = _produce(settings, serial="3")
    _assert_pyhanko_accepts(verifiers.pyhanko_validate(after_revocation.pdf, root))
    path = tmp_path / "after.pdf"
    path.write_bytes(after_revocation.pdf)
    _assert_pdfsig_accepts(verifiers.pdfsig_report(path, root, crl_der=new_crl))


def test_a_revoked_signing_certificate_refuses_to_sign(tmp_path):
    """The chain is validated once per key and CRL (not per signature): a signing certificate
    on the CRL is refused there, before anything is signed with it."""
    from services.certificates import signing

    settings = _settings(tmp_path / "var")
    old_chain = pki.load_issuing_chain(settings)
    signing._signer_setup(old_chain, pki.current_crl_der(settings))  # valid: fine
    pki.revoke_issuer_certificate(settings, reason="key_compromise")
    cert_type = load_certificate_types()["residence-certificate"]
    with pytest.raises(signing.SigningCertificateInvalid) as error:
        signing.sign_pdf(b"%PDF-1.7", chain=old_chain, cert_type=cert_type, settings=settings)
    assert error.value.detail["reason"] == "RevokedError" and error.value.status_code == 503
    # the authority's new key signs
    _, _, issued = _produce(settings, serial="4")
    _assert_pyhanko_accepts(verifiers.pyhanko_validate(issued.pdf, old_chain.root_cert))


def test_chain_files_and_crl(tmp_path):
    settings = _settings(tmp_path / "var")
    chain = pki.load_issuing_chain(settings)
    assert pki.load_issuing_chain(settings) is chain  # cached
    for name in ("root.key.pem", "issuers/11361130MB1C20012R/issuer.pem"):
        assert (settings.pki_dir / name).stat().st_mode & 0o777 == 0o600
    issuer = chain.issuer_cert
    assert issuer.issuer == chain.root_cert.subject
    usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and usage.content_commitment
    with pytest.raises(x509.ExtensionNotFound):
        issuer.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    points = issuer.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert points[0].full_name[0].value == "http://127.0.0.1:8000/api/v1/public/pki/crl"
    assert chain.issuer_credit_code == "11361130MB1C20012R"

    bundle = x509.load_pem_x509_certificates(pki.ca_bundle_pem(settings))
    assert bundle == [chain.root_cert]
    crl = x509.load_der_x509_crl(pki.current_crl_der(settings))
    assert crl.is_signature_valid(chain.root_cert.public_key())
    assert len(crl) == 0
    assert crl.next_update_utc - crl.last_update_utc > dt.timedelta(days=6)


# ---------------------------------------------------------------------------------------------
# QR tokens


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_qr_token_rejects_forgeries(settings):
    chain = pki.load_issuing_chain(settings)
    token = make_qr_token(
        chain=chain,
        identifier="X",
        type_code="T",
        issuer_code="I",
        content_sha256="0" * 64,
        issued_at=ISSUED_AT,
    )
    assert verify_qr_token(token, certificates=[chain.issuer_cert])["h"] == "0" * 64
    header, claims, signature = token.split(".")
    forged_claims = _b64({"id": "X", "t": "T", "i": "I", "h": "1" * 64, "iat": 0})
    none_header = _b64({"alg": "none", "kid": json.loads(base64.urlsafe_b64decode(header + "=="))["kid"]})
    for bad, reason in (
        (f"{header}.{forged_claims}.{signature}", "signature"),
        (f"{none_header}.{claims}.", "algorithm"),
        (f"{header}.{claims}", "malformed"),
        ("not a token", "malformed"),
    ):
        with pytest.raises(InvalidQrToken) as error:
            verify_qr_token(bad, certificates=[chain.issuer_cert])
        assert error.value.detail == {"reason": reason}
    with pytest.raises(InvalidQrToken) as error:
        verify_qr_token(token, certificates=[chain.root_cert])
    assert error.value.detail == {"reason": "unknown_key"}


# ---------------------------------------------------------------------------------------------
# Types


def test_missing_field_source_is_a_clear_error():
    cert_type = load_certificate_types()["residence-certificate"]
    context = {"applicant": {"name": "张三"}, "form": {}}
    with pytest.raises(MissingFieldSource) as error:
        resolve_fields(cert_type, context)
    missing = {item["source"] for item in error.value.detail["missing"]}
    assert {"applicant.gender", "form.address", "handling_point.name", "certificate.serial"} <= missing
    assert "applicant.name" not in missing


def test_broken_type_file_names_file_and_field(tmp_path):
    source = load_certificate_types()["residence-certificate"].directory
    broken = tmp_path / "residence-certificate"
    broken.mkdir()
    for asset in ("template.html", "style.css", "seal.svg"):
        (broken / asset).write_bytes((source / asset).read_bytes())
    text = (source / "type.yaml").read_text(encoding="utf-8")
    (broken / "type.yaml").write_text(text.replace("11361130MB1C20012R", "11361130MB1C20012A"), encoding="utf-8")
    with pytest.raises(CertificateTypeError, match=r"residence-certificate/type\.yaml: issuer\.credit_code"):
        load_certificate_type(broken)
    (broken / "type.yaml").write_text(text.replace("months: 6", "weeks: 6"), encoding="utf-8")
    with pytest.raises(CertificateTypeError, match=r"type\.yaml: validity"):
        load_certificate_type(broken)


def test_validity_period():
    cert_type = load_certificate_types()["residence-certificate"]
    assert cert_type.valid_until(dt.date(2026, 1, 15)) == dt.date(2026, 7, 15)
    assert cert_type.valid_until(dt.date(2026, 8, 31)) == dt.date(2027, 2, 28)
    assert cert_type.valid_until(dt.date(2027, 8, 31)) == dt.date(2028, 2, 29)


# ---------------------------------------------------------------------------------------------
# The chain: concurrent first start, stale CRLs, PKCS#12


def test_processes_starting_at_once_agree_on_one_chain(tmp_path):
    import subprocess
    import sys

    var_dir = tmp_path / "var"
    code = (
        "import sys; from pathlib import Path; from services.config import Settings;"
        "from services.certificates import pki;"
        "chain = pki.load_issuing_chain(Settings(var_dir=Path(sys.argv[1]), issuer_pkcs12_path=None));"
        "print(chain.issuer_cert.serial_number, chain.root_cert.serial_number)"
    )
    root = Path(__file__).resolve().parents[3]
    processes = [
        subprocess.Popen([sys.executable, "-c", code, str(var_dir)], cwd=root, stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    outputs = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert all(process.returncode == 0 for process in processes)
    assert len(outputs) == 1, outputs
    chain = pki.load_issuing_chain(_settings(var_dir))
    assert outputs == {f"{chain.issuer_cert.serial_number} {chain.root_cert.serial_number}"}
    assert not list((var_dir / "pki").glob(".*.tmp"))


def test_a_stale_crl_is_reissued(tmp_path, monkeypatch):
    settings = _settings(tmp_path / "var")
    first = x509.load_der_x509_crl(pki.current_crl_der(settings))
    assert x509.load_der_x509_crl(pki.current_crl_der(settings)).public_bytes(
        serialization.Encoding.DER
    ) == first.public_bytes(serialization.Encoding.DER)  # fresh: reused
    monkeypatch.setattr(pki, "CRL_REFRESH_MARGIN", dt.timedelta(days=8))  # now every CRL is "stale"
    second = x509.load_der_x509_crl(pki.current_crl_der(settings))
    number = lambda crl: crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number  # noqa: E731
    assert number(second) > number(first)


def test_production_chain_from_pkcs12(tmp_path):
    from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

    dev = _settings(tmp_path / "dev")
    dev_chain = pki.load_issuing_chain(dev)
    p12_path = tmp_path / "issuer.p12"
    p12_path.write_bytes(
        pkcs12.serialize_key_and_certificates(
            b"issuer",
            dev_chain.issuer_key,
            dev_chain.issuer_cert,
            [dev_chain.root_cert],
            BestAvailableEncryption(b"s3cret"),
        )
    )
    production = Settings(var_dir=tmp_path / "prod", issuer_pkcs12_path=p12_path, issuer_pkcs12_password="s3cret")
    chain = pki.load_issuing_chain(production)
    assert chain.issuer_cert == dev_chain.issuer_cert and chain.root_cert == dev_chain.root_cert
    assert chain.chain == [dev_chain.root_cert] and not chain.dev
    with pytest.raises(pki.CrlUnavailable):
        pki.current_crl_der(production)
    with pytest.raises(pki.PkiOperationNotSupported):
        pki.rotate_issuer_key(production)

    # the operator drops the CA's CRL in place: it is served and embedded
    (production.pki_dir).mkdir(parents=True)
    (production.pki_dir / "crl.der").write_bytes(pki.current_crl_der(dev))
    _, _, issued = _produce(production, serial="P1")
    _assert_pyhanko_accepts(verifiers.pyhanko_validate(issued.pdf, chain.root_cert))


def test_a_clear_id_number_is_refused(settings):
    from services.errors import InvalidInput

    cert_type = load_certificate_types()["residence-certificate"]
    identifier = build_identifier(type_code=cert_type.type_code, issuer_code=cert_type.issuer_code, serial="9")
    with pytest.raises(InvalidInput) as error:
        produce_certificate_pdf(
            cert_type=cert_type,
            identifier=identifier,
            context=SAMPLE_CONTEXT,
            holder_masked=CLEAR_ID_NUMBER,
            issued_at=ISSUED_AT,
            valid_until=None,
            settings=settings,
        )
    assert error.value.code == "holder_number_not_masked"
