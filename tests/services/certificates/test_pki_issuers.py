"""Several issuing authorities under one development root; production keys from a directory
(PKCS#12 or PEM, one per authority, named by its credit code); an older single-issuer pki_dir
adopted; the migration of the registry up and down."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import BestAvailableEncryption, pkcs12

from services.certificates import pki
from services.certificates.pipeline import produce_sample_pdf
from services.certificates.rendering import verify_qr_token
from services.certificates.settings import CertificateSettings
from services.certificates.types import load_certificate_types
from services.config import Settings
from tests.services.certificates import verifiers

ISSUED_AT = dt.date(2026, 11, 26)


def _settings(var_dir: Path) -> Settings:
    return Settings(var_dir=var_dir, issuer_pkcs12_path=None, public_base_url="http://127.0.0.1:8000")


def test_every_authority_gets_its_own_certificate_under_the_one_root(tmp_path):
    settings = _settings(tmp_path / "var")
    chains = pki.all_issuing_chains(settings, CertificateSettings(issuer_keys_dir=None))
    codes = {chain.issuer_credit_code for chain in chains}
    assert codes == {t.issuer_code for t in load_certificate_types().values()} | {pki.DEV_ISSUER_CREDIT_CODE}
    roots = {chain.root_cert.fingerprint(hashes.SHA256()) for chain in chains}
    assert len(roots) == 1
    names = {chain.issuer_credit_code: chain.issuer_cert.subject.get_attributes_for_oid(x509.oid.NameOID.ORGANIZATION_NAME)[0].value
             for chain in chains}
    assert names["11361130MB1C20020L"] == "婺源县市场监督管理局"
    assert len({chain.issuer_cert.serial_number for chain in chains}) == len(chains)
    bundle = x509.load_pem_x509_certificates(pki.ca_bundle_pem(settings, CertificateSettings(issuer_keys_dir=None)))
    assert bundle == [chains[0].root_cert]
    with pytest.raises(pki.IssuerKeyUnavailable):
        pki.load_issuing_chain(settings, issuer_code="91361130MA3A2B3C4Q")  # not an issuing authority


def test_rotating_one_authority_leaves_the_others_and_old_tokens_verify(tmp_path):
    settings = _settings(tmp_path / "var")
    types = load_certificate_types()
    market, health = types["food-business-license"], types["birth-medical-certificate"]
    before = produce_sample_pdf(market, serial="1", issued_at=ISSUED_AT, settings=settings)
    health_cert = pki.load_issuing_chain(settings, issuer_code=health.issuer_code).issuer_cert
    pki.rotate_issuer_key(settings, issuer_code=market.issuer_code)
    chain = pki.load_issuing_chain(settings, issuer_code=market.issuer_code)
    assert len(chain.retired_issuer_certs) == 1
    assert pki.load_issuing_chain(settings, issuer_code=health.issuer_code).issuer_cert == health_cert
    verify_qr_token(before.qr_token, certificates=chain.issuer_certificates)  # the old kid is still known
    status = verifiers.pyhanko_validate(before.pdf, chain.root_cert, extra_crls=[pki.current_crl_der(settings)])
    assert status.bottom_line  # rotation is not revocation


def test_an_older_single_issuer_pki_dir_is_adopted(tmp_path):
    settings = _settings(tmp_path / "var")
    chain = pki.load_issuing_chain(settings)
    folder = settings.pki_dir / "issuers" / pki.DEV_ISSUER_CREDIT_CODE
    shutil.move(str(folder / "issuer.pem"), str(settings.pki_dir / "issuer.pem"))  # the old layout
    shutil.rmtree(settings.pki_dir / "issuers")
    pki._chain_cache.clear()
    again = pki.load_issuing_chain(settings)
    assert again.issuer_cert == chain.issuer_cert and not (settings.pki_dir / "issuer.pem").exists()


def _export(chain: pki.IssuingChain, directory: Path, code: str, *, kind: str, password: bytes | None) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    if kind == "p12":
        encryption = BestAvailableEncryption(password) if password else serialization.NoEncryption()
        (directory / f"{code}.p12").write_bytes(pkcs12.serialize_key_and_certificates(
            b"issuer", chain.issuer_key, chain.issuer_cert, chain.chain, encryption))
    else:
        encryption = BestAvailableEncryption(password) if password else serialization.NoEncryption()
        key = chain.issuer_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
        certs = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in [*chain.chain, chain.issuer_cert])
        (directory / f"{code}.pem").write_bytes(certs + key)  # any order


def test_production_keys_per_authority_from_a_directory(tmp_path):
    dev = _settings(tmp_path / "dev")
    types = load_certificate_types()
    residence, food = types["residence-certificate"], types["food-business-license"]
    keys = tmp_path / "keys"
    _export(pki.load_issuing_chain(dev, issuer_code=residence.issuer_code), keys, residence.issuer_code, kind="pem",
            password=b"s3cret")
    _export(pki.load_issuing_chain(dev, issuer_code=food.issuer_code), keys, food.issuer_code, kind="p12",
            password=b"other")
    (keys / f"{food.issuer_code}.password").write_text("other\n")
    production = Settings(var_dir=tmp_path / "prod", issuer_pkcs12_path=None)
    production.pki_dir.mkdir(parents=True)
    (production.pki_dir / "crl.der").write_bytes(pki.current_crl_der(dev))
    cert_settings = CertificateSettings(issuer_keys_dir=keys, issuer_keys_password="s3cret")

    for cert_type in (residence, food):
        chain = pki.load_issuing_chain(production, issuer_code=cert_type.issuer_code, cert_settings=cert_settings)
        assert not chain.dev and chain.issuer_credit_code == cert_type.issuer_code
        assert chain.root_cert == pki.load_issuing_chain(dev).root_cert
    assert {c.issuer_credit_code for c in pki.all_issuing_chains(production, cert_settings)} == {
        residence.issuer_code, food.issuer_code}
    with pytest.raises(pki.IssuerKeyUnavailable) as error:
        pki.load_issuing_chain(production, issuer_code=types["construction-permit"].issuer_code,
                               cert_settings=cert_settings)
    assert error.value.detail["reason"] == "no_key_file"
    with pytest.raises(pki.PkiOperationNotSupported):
        pki.rotate_issuer_key(production, issuer_code=residence.issuer_code, cert_settings=cert_settings)

    wrong = CertificateSettings(issuer_keys_dir=keys, issuer_keys_password="wrong")
    pki._file_cache.clear()
    with pytest.raises(pki.IssuerKeyUnavailable):
        pki.load_issuing_chain(production, issuer_code=residence.issuer_code, cert_settings=wrong)

    # a key file named for another authority is refused
    shutil.copy(keys / f"{residence.issuer_code}.pem", keys / f"{types['construction-permit'].issuer_code}.pem")
    with pytest.raises(pki.IssuerKeyUnavailable) as error:
        pki.load_issuing_chain(production, issuer_code=types["construction-permit"].issuer_code,
                               cert_settings=cert_settings)
    assert error.value.detail["certificate_code"] == residence.issuer_code


@pytest.mark.skipif(bool(verifiers.missing_tools()), reason="pdfsig and friends missing")
def test_a_certificate_signed_with_a_production_pem_key_verifies(tmp_path, monkeypatch):
    from services.certificates import settings as certificate_settings

    dev = _settings(tmp_path / "dev")
    cert_type = load_certificate_types()["residence-certificate"]
    keys = tmp_path / "keys"
    _export(pki.load_issuing_chain(dev, issuer_code=cert_type.issuer_code), keys, cert_type.issuer_code, kind="pem",
            password=None)
    production = Settings(var_dir=tmp_path / "prod", issuer_pkcs12_path=None, public_base_url="http://127.0.0.1:8000")
    production.pki_dir.mkdir(parents=True)
    (production.pki_dir / "crl.der").write_bytes(pki.current_crl_der(dev))
    monkeypatch.setattr(certificate_settings, "get_certificate_settings",
                        lambda: CertificateSettings(issuer_keys_dir=keys))
    monkeypatch.setattr(pki, "get_certificate_settings", lambda: CertificateSettings(issuer_keys_dir=keys))
    issued = produce_sample_pdf(cert_type, serial="9", issued_at=ISSUED_AT, settings=production)
    path = tmp_path / "prod.pdf"
    path.write_bytes(issued.pdf)
    root = pki.load_issuing_chain(dev).root_cert
    report = verifiers.pdfsig_report(path, root)
    assert "Signature is Valid." in report and "Certificate is Trusted." in report and "Total document signed" in report
    assert verifiers.pyhanko_validate(issued.pdf, root).bottom_line


def test_the_registry_migration_goes_down_and_up_again(tmp_path):
    """On a database of its own: up to this revision (its branch only), down to its parent,
    up again."""
    import sqlalchemy as sa
    from alembic import command

    from services.migrate import alembic_config

    url = f"sqlite:///{tmp_path / 'migration.db'}"
    config = alembic_config(url)
    command.upgrade(config, "20261126_0005")
    engine = sa.create_engine(url)
    columns = {column["name"] for column in sa.inspect(engine).get_columns("certificates")}
    assert {"number", "holder_code_type", "jurisdiction_code", "status_changed_at"} <= columns
    assert {"certificate_status_events", "certificate_usages", "certificate_grants",
            "certificate_public_checks"} <= set(sa.inspect(engine).get_table_names())
    command.downgrade(config, "20261126_0002")
    engine = sa.create_engine(url)
    assert "certificate_usages" not in sa.inspect(engine).get_table_names()
    assert "number" not in {column["name"] for column in sa.inspect(engine).get_columns("certificates")}
    command.upgrade(config, "20261126_0005")
    engine = sa.create_engine(url)
    assert "certificate_grants" in sa.inspect(engine).get_table_names()
