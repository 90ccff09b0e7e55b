"""`onestop certificates ...` commands: the registry's periodic job, types and previews, the
issuing chains (development: rotate, revoke), verification of a file, housekeeping."""

from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Certificate registry and PKI operations.", no_args_is_help=True,
                  pretty_exceptions_show_locals=False)
pki_app = typer.Typer(help="The issuing chains: show, rotate or revoke an issuing authority's key.",
                      no_args_is_help=True, pretty_exceptions_show_locals=False)
app.add_typer(pki_app, name="pki")
err = Console(stderr=True)


def _fail(message: str, code: int = 1) -> None:
    err.print(f"[red]{message}[/]")
    raise typer.Exit(code=code)


@app.command()
def expire(today: str = typer.Option(None, help="the day to expire against (YYYY-MM-DD; default: today in "
                                                "Asia/Shanghai)")) -> None:
    """Mark every certificate whose validity has ended as expired (失效). The same job runs nightly
    through the outbox; this is for cron or a manual catch-up. Idempotent."""
    from services.certificates.service import run_expiry, today_in_china
    from services.db import session_scope

    try:
        day = dt.date.fromisoformat(today) if today else today_in_china()
    except ValueError:
        _fail(f"not a date: {today!r} (YYYY-MM-DD)", code=2)
    with session_scope() as session:
        count = run_expiry(session, day)
    err.print(f"[green]{count} certificate(s) expired[/] (validity ended before {day:%Y-%m-%d})")


@app.command("types")
def list_types(as_json: bool = typer.Option(False, "--json", help="JSON on stdout")) -> None:
    """List the certificate types under e-certificates/ (loading them checks every file)."""
    from services.certificates.types import CertificateTypeError, load_certificate_types

    try:
        types = load_certificate_types()
    except CertificateTypeError as error:
        _fail(str(error))
    if as_json:
        sys.stdout.write(json.dumps([{"code": t.code, "name": t.name, "type_code": t.type_code,
                                      "issuer_name": t.issuer_name, "issuer_code": t.issuer_code,
                                      "holder_code_type": t.holder_code_type,
                                      "validity": t.validity.model_dump(exclude_none=True) if t.validity else None}
                                     for t in types.values()], ensure_ascii=False, indent=2) + "\n")
        return
    table = Table("code", "name", "type code", "issuer", "holder", "validity")
    for t in types.values():
        validity = ", ".join(f"{v} {k}" for k, v in t.validity.model_dump(exclude_none=True).items()) if t.validity else "长期"
        table.add_row(t.code, t.name, t.type_code, f"{t.issuer_name} {t.issuer_code}", t.holder_code_type, validity)
    Console().print(table)


@app.command("render-sample")
def render_sample(type_code: str = typer.Argument(..., help="type slug, e.g. residence-certificate"),
                  out: Path = typer.Option(None, "--out", help="PDF file to write (default: <type>.pdf)"),
                  png: bool = typer.Option(False, "--png", help="also write a 100 dpi PNG of the page (pdftoppm)")) -> None:
    """Render and sign a certificate of a type with the made-up `sample:` data of its type.yaml,
    to check a template or a seal. Signed with the development chain (or the configured keys)."""
    import subprocess

    from services.certificates.pipeline import produce_sample_pdf
    from services.certificates.types import find_certificate_type

    cert_type = find_certificate_type(type_code)
    if cert_type is None:
        _fail(f"unknown certificate type {type_code!r}; see `onestop certificates types`", code=2)
    produced = produce_sample_pdf(cert_type)
    out = out or Path(f"{cert_type.code}.pdf")
    out.write_bytes(produced.pdf)
    err.print(f"[green]wrote[/] {out} ({len(produced.pdf) // 1024} KiB, number {produced.number})")
    if png:
        subprocess.run(["pdftoppm", "-r", "100", "-png", "-singlefile", str(out), str(out.with_suffix(""))],
                       check=True)
        err.print(f"[green]wrote[/] {out.with_suffix('.png')}")


@app.command()
def status(identifier: str = typer.Argument(..., help="the e-certificate identifier")) -> None:
    """Show a certificate's registry status and its history (JSON on stdout)."""
    from sqlmodel import select

    from services.certificates.identifiers import InvalidCertificateIdentifier, parse_identifier
    from services.certificates.models import Certificate
    from services.certificates.service import certificate_view, status_history
    from services.db import session_scope

    try:
        parse_identifier(identifier)
    except InvalidCertificateIdentifier as error:
        _fail(f"{error.message} ({error.reason})", code=2)
    with session_scope() as session:
        certificate = session.exec(select(Certificate).where(Certificate.identifier == identifier)).first()
        if certificate is None:
            _fail("no such certificate")
        view = certificate_view(certificate)
        view["history"] = status_history(session, certificate_id=certificate.id)
    sys.stdout.write(json.dumps(view, ensure_ascii=False, indent=2) + "\n")


@app.command()
def verify(file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True)) -> None:
    """Verify a certificate PDF as POST /public/certificates/verify does (JSON on stdout); exit
    status 1 when it is not valid."""
    from services.certificates.verification import verify_pdf
    from services.db import session_scope
    from services.errors import OnestopError

    try:
        with session_scope() as session:
            answer = verify_pdf(session, file.read_bytes())
    except OnestopError as error:
        _fail(f"{error.message} ({error.code})", code=2)
    answer.pop("_certificate_id", None)
    sys.stdout.write(json.dumps(answer, ensure_ascii=False, indent=2) + "\n")
    if not answer["valid"]:
        raise typer.Exit(code=1)


@app.command("draw-seal")
def draw_seal(name: str = typer.Argument(..., help="the issuing authority's name"),
              purpose: str = typer.Option("电子证照专用章", help="the text across the bottom")) -> None:
    """Write seal artwork (SVG) for an issuing authority to stdout, for a new type folder."""
    from services.certificates.seals import seal_svg

    sys.stdout.write(seal_svg(name, purpose=purpose))


@app.command("flush-checks")
def flush_checks() -> None:
    """Write this process's buffered public-check log rows (nothing to do in a fresh process;
    servers flush every second and at exit)."""
    from services.certificates import checklog

    err.print(f"{checklog.flush()} row(s) written")


@app.command()
def orphans(delete: bool = typer.Option(False, "--delete", help="delete them")) -> None:
    """List certificate PDFs in storage that no registry entry points at (left by an issuing
    attempt that crashed before its commit; harmless, never served)."""
    from services.certificates.service import orphaned_pdfs
    from services.files.storage import get_storage

    keys = orphaned_pdfs()
    for key in keys:
        typer.echo(key)
        if delete:
            get_storage().delete(key)
    err.print(f"{len(keys)} orphaned PDF(s){' deleted' if delete and keys else ''}")


# ---------------------------------------------------------------------------------------------
# pki


@pki_app.command("show")
def pki_show() -> None:
    """Every issuing authority's current signing certificate (JSON on stdout)."""
    from cryptography.hazmat.primitives import hashes

    from services.certificates import pki

    rows = []
    for chain in pki.all_issuing_chains():
        cert = chain.issuer_cert
        rows.append({"issuer_code": chain.issuer_credit_code, "subject": cert.subject.rfc4514_string(),
                     "serial": f"{cert.serial_number:x}", "not_after": cert.not_valid_after_utc.isoformat(),
                     "sha256": cert.fingerprint(hashes.SHA256()).hex(), "retired": len(chain.retired_issuer_certs),
                     "development": chain.dev})
    sys.stdout.write(json.dumps(rows, ensure_ascii=False, indent=2) + "\n")


@pki_app.command("rotate")
def pki_rotate(issuer: str = typer.Option(..., "--issuer", help="the issuing authority's credit code")) -> None:
    """Switch an issuing authority to a new key (development chain). Certificates signed with the
    old key stay valid."""
    from services.certificates import pki
    from services.errors import OnestopError

    try:
        pki.rotate_issuer_key(issuer_code=issuer)
    except OnestopError as error:
        _fail(f"{error.message} ({error.code})")
    err.print(f"[green]rotated[/] the key of {issuer}")


@pki_app.command("revoke")
def pki_revoke(issuer: str = typer.Option(..., "--issuer", help="the issuing authority's credit code"),
               reason: str = typer.Option("key_compromise", help="CRL reason, e.g. key_compromise, superseded")) -> None:
    """Revoke an issuing authority's current key (put it on the CRL) and switch to a new one
    (development chain). Certificates it signed no longer verify; re-issue them."""
    from services.certificates import pki
    from services.errors import OnestopError

    try:
        pki.revoke_issuer_certificate(issuer_code=issuer, reason=reason)
    except ValueError as error:
        _fail(str(error), code=2)
    except OnestopError as error:
        _fail(f"{error.message} ({error.code})")
    err.print(f"[yellow]revoked[/] the key of {issuer}; the CRL lists it")


@pki_app.command("export-ca")
def pki_export_ca(out: Path = typer.Option(None, "--out", help="file to write (default: stdout)")) -> None:
    """The roots and intermediates a verifier must trust (PEM), as GET /public/pki/ca serves them."""
    from services.certificates import pki

    bundle = pki.ca_bundle_pem()
    if out:
        out.write_bytes(bundle)
        err.print(f"[green]wrote[/] {out}")
    else:
        sys.stdout.buffer.write(bundle)
