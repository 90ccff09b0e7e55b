"""Every certificate type under e-certificates/, rendered with its sample data and checked by the
independent verifiers (pdfsig with the root trusted in NSS, pyHanko's validator, zbarimg on a
150 dpi rendering), tampered copies and a revoked issuer key included; the type files against
the matter catalogue; the number schemes."""

from __future__ import annotations

import base64
import datetime as dt
import io
import re
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from services.certificates import pki
from services.certificates.identifiers import parse_identifier
from services.certificates.numbers import (CertificateNumberInvalid, certificate_number, gb11714_check_character,
                                           luhn_check_digit, serial_sequence)
from services.certificates.pipeline import produce_sample_pdf
from services.certificates.rendering import status_url, verify_qr_token
from services.certificates.seals import seal_svg
from services.certificates.types import (CertificateTypeError, load_certificate_type, load_certificate_types,
                                         uscc_is_valid)
from services.config import Settings
from tests.services.certificates import verifiers

TYPES = sorted(load_certificate_types())
ISSUED_AT = dt.date(2026, 11, 26)

needs_tools = pytest.mark.skipif(bool(verifiers.missing_tools()),
                                 reason=f"missing tools: {', '.join(verifiers.missing_tools())}")


def _settings(var_dir: Path) -> Settings:
    return Settings(var_dir=var_dir, issuer_pkcs12_path=None, public_base_url="http://127.0.0.1:8000")


@pytest.fixture(scope="module")
def settings(tmp_path_factory) -> Settings:
    return _settings(tmp_path_factory.mktemp("types-var"))


@pytest.fixture(scope="module")
def issued(settings, tmp_path_factory):
    """code -> (IssuedPdf, path) for every type, signed by its own issuing authority."""
    folder = tmp_path_factory.mktemp("types-pdf")
    result = {}
    for code in TYPES:
        cert_type = load_certificate_types()[code]
        produced = produce_sample_pdf(cert_type, serial="202600000042", issued_at=ISSUED_AT, settings=settings)
        path = folder / f"{code}.pdf"
        path.write_bytes(produced.pdf)
        result[code] = (produced, path)
    return result


def test_the_demo_catalogue_has_the_agreed_types():
    assert set(TYPES) >= {
        "residence-certificate", "business-license-individual", "food-business-license",
        "birth-medical-certificate", "birth-service-card", "disability-certificate",
        "subsistence-allowance-certificate", "homestead-approval", "construction-permit",
    }


@pytest.mark.parametrize("code", TYPES)
def test_type_metadata_is_complete_and_codes_check(code):
    cert_type = load_certificate_types()[code]
    assert uscc_is_valid(cert_type.issuer_code)
    assert uscc_is_valid(cert_type.type_code[:18])  # the defining department's credit code
    assert cert_type.holder_code_type == {"person": "111", "organization": "001"}[cert_type.holder_kind]
    assert re.fullmatch(r"\d{6}(\d{6})?", cert_type.jurisdiction_code)
    assert cert_type.certificate_name and cert_type.sample
    for asset in ("template.html", "style.css", "seal.svg"):
        assert (cert_type.directory / asset).is_file()


def test_one_credit_code_is_one_issuer_and_type_codes_are_unique():
    names: dict[str, str] = {}
    type_codes = set()
    for cert_type in load_certificate_types().values():
        assert names.setdefault(cert_type.issuer_code, cert_type.issuer_name) == cert_type.issuer_name
        assert cert_type.type_code not in type_codes
        type_codes.add(cert_type.type_code)
    assert len(names) >= 6  # several issuing authorities


# ---------------------------------------------------------------------------------------------
# Against the matter catalogue (whatever matters it holds now)


def _catalogue_matters():
    from workflows.catalogue import default_catalogue

    return default_catalogue().matters


def test_every_matter_that_produces_a_certificate_has_its_type():
    for code, matter in _catalogue_matters().items():
        wanted = matter.definition.certificate_type
        if wanted is not None:
            assert wanted in load_certificate_types(), f"matter {code} produces unknown type {wanted}"
        for material in matter.definition.materials:
            if material.certificate_type is not None:
                assert material.certificate_type in load_certificate_types(), (code, material.code)


def test_type_fields_read_only_what_the_matter_form_has_and_the_sample_fits_the_form():
    """`form.<key>` sources name properties of the matter's form; a field the form may leave out
    is optional in the type; the type's sample form is a valid application of the matter."""
    checked = 0
    for code, matter in _catalogue_matters().items():
        slug = matter.definition.certificate_type
        if slug is None:
            continue
        cert_type = load_certificate_types()[slug]
        schema = matter.definition.form_schema
        properties, required = schema.get("properties", {}), set(schema.get("required", []))
        for field in cert_type.fields:
            if field.source.startswith("form."):
                key = field.source.split(".", 1)[1]
                assert key in properties, f"{slug}: {field.source} is not a field of matter {code}"
                assert key in required or field.optional, f"{slug}: {field.source} may be missing in {code}"
        for source in (cert_type.number.category_source, cert_type.number.grade_source,
                       cert_type.number.business_type_source):
            if source and source.startswith("form."):
                assert source.split(".", 1)[1] in required, f"{slug}: number needs {source}"
        errors = list(Draft202012Validator(schema).iter_errors(cert_type.sample["form"]))
        assert not errors, f"{slug}: sample form does not fit matter {code}: {[e.message for e in errors]}"
        expected_holder = {"person": "person", "organization": "organization"}.get(matter.definition.subject_kind)
        if expected_holder:
            assert cert_type.holder_kind == expected_holder, (slug, code)
        checked += 1
    assert checked >= 1


# ---------------------------------------------------------------------------------------------
# Every type, independently verified


def _assert_pdfsig_accepts(report: str) -> None:
    assert "Total document signed" in report, report
    assert "Signature is Valid." in report, report
    assert "Certificate is Trusted." in report, report


def _assert_pyhanko_accepts(status) -> None:
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    assert status.intact and status.valid and status.trusted and status.bottom_line, status.pretty_print_details()
    assert status.coverage == SignatureCoverageLevel.ENTIRE_FILE


@needs_tools
@pytest.mark.parametrize("code", TYPES)
def test_every_type_is_accepted_by_pdfsig_and_pyhanko(code, issued, settings):
    produced, path = issued[code]
    cert_type = load_certificate_types()[code]
    chain = pki.load_issuing_chain(settings, issuer_code=cert_type.issuer_code)
    report = verifiers.pdfsig_report(path, chain.root_cert)
    _assert_pdfsig_accepts(report)
    assert cert_type.issuer_name in report  # signed by its own authority
    assert chain.issuer_credit_code == cert_type.issuer_code
    _assert_pyhanko_accepts(verifiers.pyhanko_validate(produced.pdf, chain.root_cert))
    assert len(produced.pdf) < 200 * 1024


@needs_tools
@pytest.mark.parametrize("code", TYPES)
def test_every_type_prints_its_fields_and_no_clear_id_number(code, issued):
    produced, path = issued[code]
    text = re.sub(r"\s+", "", verifiers.pdftotext(path, raw=True))
    for label, value in produced.fields:
        assert re.sub(r"\s+", "", value) in text, (label, value)
    assert produced.number and re.sub(r"\s+", "", produced.number) in text
    assert not re.search(r"(?<!\d)\d{17}[\dX](?!\d)", text.replace(produced.number, "")), "a clear ID number?"


@needs_tools
@pytest.mark.parametrize("code", TYPES)
def test_every_types_qr_code_reads_at_150_dpi_and_its_token_verifies(code, issued, settings, tmp_path):
    produced, path = issued[code]
    cert_type = load_certificate_types()[code]
    texts = verifiers.read_qr(verifiers.page_png(path, tmp_path / "page", dpi=150))
    assert len(texts) == 1, texts
    identifier = str(parse_identifier(texts[0].split("/certificates/")[1].split("/status")[0]))
    url = status_url(public_base_url=settings.public_base_url, identifier=identifier)
    assert texts[0].startswith(url + "#")
    token = texts[0][len(url) + 1:]
    chain = pki.load_issuing_chain(settings, issuer_code=cert_type.issuer_code)
    claims = verify_qr_token(token, certificates=chain.issuer_certificates)
    assert claims == {**claims, "t": cert_type.type_code, "i": cert_type.issuer_code, "h": produced.content_sha256}
    decoded = texts[0] + "".join(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")
                                 for part in token.split(".")[:2])
    applicant = cert_type.sample["applicant"]
    for personal in (applicant.get("name"), applicant.get("number_masked"), applicant.get("credit_code")):
        assert personal is None or personal not in decoded


@needs_tools
@pytest.mark.parametrize("code", TYPES)
def test_every_type_detects_a_changed_byte_and_an_appended_update(code, issued, settings, tmp_path):
    from tests.services.certificates.test_pipeline import _append_update, _content_stream_offset

    produced, _ = issued[code]
    root = pki.load_issuing_chain(settings, issuer_code=load_certificate_types()[code].issuer_code).root_cert
    flipped = bytearray(produced.pdf)
    flipped[_content_stream_offset(produced.pdf)] ^= 0x01
    path = tmp_path / "flipped.pdf"
    path.write_bytes(bytes(flipped))
    assert "Signature is Valid." not in verifiers.pdfsig_report(path, root)
    assert not verifiers.pyhanko_validate(bytes(flipped), root).bottom_line

    appended = _append_update(produced.pdf, overlay=True)
    path = tmp_path / "appended.pdf"
    path.write_bytes(appended)
    assert "Total document signed" not in verifiers.pdfsig_report(path, root)
    status = verifiers.pyhanko_validate(appended, root)
    from pyhanko.sign.validation.status import SignatureCoverageLevel

    assert status.coverage != SignatureCoverageLevel.ENTIRE_FILE and not status.bottom_line


@needs_tools
def test_revoking_one_authoritys_key_invalidates_its_certificates_only(tmp_path):
    settings = _settings(tmp_path / "var")
    types = load_certificate_types()
    before = {code: produce_sample_pdf(types[code], serial="7", issued_at=ISSUED_AT, settings=settings)
              for code in ("residence-certificate", "food-business-license", "disability-certificate")}
    revoked_issuer = types["food-business-license"].issuer_code
    pki.revoke_issuer_certificate(settings, issuer_code=revoked_issuer, reason="key_compromise")
    crl = pki.current_crl_der(settings)
    root = pki.load_issuing_chain(settings).root_cert
    for code, produced in before.items():
        path = tmp_path / f"{code}.pdf"
        path.write_bytes(produced.pdf)
        report = verifiers.pdfsig_report(path, root, crl_der=crl)
        status = verifiers.pyhanko_validate(produced.pdf, root, extra_crls=[crl], use_document_revinfo=False)
        if types[code].issuer_code == revoked_issuer:
            assert "Certificate is Trusted." not in report and "Revoked" in report, report
            assert status.revoked and not status.bottom_line
        else:
            _assert_pdfsig_accepts(report)
            _assert_pyhanko_accepts(status)
    # the authority signs with its new key from now on
    again = produce_sample_pdf(types["food-business-license"], serial="8", issued_at=ISSUED_AT, settings=settings)
    _assert_pyhanko_accepts(verifiers.pyhanko_validate(again.pdf, root, extra_crls=[pki.current_crl_der(settings)]))


# ---------------------------------------------------------------------------------------------
# Numbers


def test_serial_sequences():
    assert serial_sequence("202600000042") == ("2026", 42)
    assert serial_sequence("P1") == (None, 1)
    assert serial_sequence("ABC") == (None, 0)


def test_food_licence_number_is_jy_and_14_digits_with_the_business_type():
    cert_type = load_certificate_types()["food-business-license"]
    context = {"form": {"main_format": "餐饮服务经营者"}}
    number = certificate_number(cert_type, serial="202600000042", issued_at=ISSUED_AT, holder_masked="x",
                                context=context)
    assert re.fullmatch(r"JY\d{14}", number)
    assert number[2] == "2" and number[3:9] == "361130" and number[9:15] == "000042"
    assert luhn_check_digit(number[2:15]) == number[15]
    sales = certificate_number(cert_type, serial="202600000042", issued_at=ISSUED_AT, holder_masked="x",
                               context={"form": {"main_format": "食品销售经营者"}})
    assert sales[2] == "1"


def test_luhn():
    assert luhn_check_digit("7992739871") == "3"  # the textbook example


def test_individual_business_number_is_a_valid_credit_code():
    cert_type = load_certificate_types()["business-license-individual"]
    for sequence in (1, 42, 999_999, 1_000_001):
        number = certificate_number(cert_type, serial=f"2026{sequence:08d}", issued_at=ISSUED_AT,
                                    holder_masked="x", context={})
        assert uscc_is_valid(number), number
        assert number.startswith("92361130")
        assert gb11714_check_character(number[8:16]) == number[16]


@pytest.mark.parametrize(("category", "grade", "suffix"), [("肢体", "三级", "43"), ("视力残疾", "一级", "11"),
                                                           ("7", "4", "74")])
def test_disability_number_is_the_masked_id_number_category_and_grade(category, grade, suffix):
    cert_type = load_certificate_types()["disability-certificate"]
    number = certificate_number(cert_type, serial="202600000001", issued_at=ISSUED_AT,
                                holder_masked="3611**********0013",
                                context={"form": {"disability_category": category, "disability_grade": grade}})
    assert number == "3611**********0013" + suffix


def test_an_unknown_disability_category_is_a_clear_error():
    cert_type = load_certificate_types()["disability-certificate"]
    with pytest.raises(CertificateNumberInvalid) as error:
        certificate_number(cert_type, serial="1", issued_at=ISSUED_AT, holder_masked="x",
                           context={"form": {"disability_category": "其他", "disability_grade": "一级"}})
    assert error.value.detail["field"] == "残疾类别"


def test_pattern_numbers():
    types = load_certificate_types()
    assert certificate_number(types["homestead-approval"], serial="202600000012", issued_at=ISSUED_AT,
                              holder_masked="x", context={}) == "婺农宅批〔2026〕0012号"
    assert certificate_number(types["construction-permit"], serial="202600000003", issued_at=ISSUED_AT,
                              holder_masked="x", context={}) == "36113020261126000301"


def test_a_pattern_with_unknown_fields_is_refused(tmp_path):
    source = load_certificate_types()["homestead-approval"].directory
    broken = tmp_path / "homestead-approval"
    broken.mkdir()
    for asset in ("template.html", "style.css", "seal.svg"):
        (broken / asset).write_bytes((source / asset).read_bytes())
    text = (source / "type.yaml").read_text(encoding="utf-8")
    (broken / "type.yaml").write_text(text.replace("{seq:04d}", "{seq.__class__}"), encoding="utf-8")
    with pytest.raises(CertificateTypeError, match="number"):
        load_certificate_type(broken)


def test_a_seal_is_well_formed_svg_with_the_name_on_the_arc():
    import xml.etree.ElementTree as ET

    svg = seal_svg("婺源县民政局")
    root = ET.fromstring(svg.encode())
    texts = [element.text for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "".join(texts[:-1]) == "婺源县民政局" and texts[-1] == "电子证照专用章"
    io.BytesIO(svg.encode())  # noqa: B018
