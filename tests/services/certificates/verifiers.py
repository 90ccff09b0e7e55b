"""Independent verifiers for signed certificate PDFs, for any test that needs them.

- `pdfsig_report`: poppler's pdfsig with the root trusted in a throw-away NSS database (and
  optionally a CRL imported into it). pdfsig exits 0 even when a signature is broken, so the
  report text is what tests assert on.
- `pyhanko_validate`: pyHanko's validator trusting the root, revocation data from the
  document's DSS (plus any extra CRLs), no network, hard-fail on missing revocation data.
- small helpers: `pdftotext`, `read_qr` (pdftoppm + zbarimg), `page_png`.
"""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

from asn1crypto import crl as asn1_crl
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.hazmat.primitives import serialization

TOOLS = ("pdfsig", "certutil", "crlutil", "pdftoppm", "pdftotext", "zbarimg")


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None]


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=60, **kwargs)


RootLike = bytes | x509.Certificate | Path | str


def _root_certificates(root: RootLike) -> list[x509.Certificate]:
    """The root as PEM bytes, a certificate, or a path to a PEM file (GET /public/pki/ca)."""
    if isinstance(root, x509.Certificate):
        return [root]
    data = Path(root).read_bytes() if isinstance(root, (Path, str)) else root
    return x509.load_pem_x509_certificates(data)


def pdfsig_report(pdf_path: Path | str, root_pem: RootLike, *, crl_der: bytes | None = None) -> str:
    """pdfsig's stdout + stderr for `pdf_path`, trusting only `root_pem` (PEM bytes, a
    certificate, or a PEM file; every certificate in it is added as a trusted CA) and knowing
    `crl_der`, if given (NSS checks certificates against CRLs in its database)."""
    with tempfile.TemporaryDirectory(prefix="nss-") as tmp:
        nssdir = f"sql:{tmp}"
        steps = [["certutil", "-N", "--empty-password", "-d", nssdir]]
        for index, cert in enumerate(_root_certificates(root_pem)):
            cert_file = Path(tmp) / f"ca-{index}.pem"
            cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            nickname = "onestop-root" if index == 0 else f"onestop-ca-{index}"
            steps.append(["certutil", "-A", "-n", nickname, "-t", "CT,C,C", "-i", str(cert_file), "-d", nssdir])
        for args in steps:
            step = _run(args)
            if step.returncode != 0:
                raise RuntimeError(f"{' '.join(args)} failed: {step.stdout}{step.stderr}")
        if crl_der is not None:
            crl_file = Path(tmp) / "crl.der"
            crl_file.write_bytes(crl_der)
            step = _run(["crlutil", "-I", "-i", str(crl_file), "-t", "1", "-d", nssdir])
            if step.returncode != 0:
                raise RuntimeError(f"crlutil -I failed: {step.stdout}{step.stderr}")
        result = _run(["pdfsig", "-nssdir", nssdir, str(pdf_path)])
        return result.stdout + result.stderr


def pyhanko_validate(
    pdf_bytes: bytes,
    root_cert: RootLike,
    *,
    extra_crls: list[bytes] = (),
    use_document_revinfo: bool = True,
):
    """pyHanko's PdfSignatureStatus for the (only) signature in `pdf_bytes`: trust `root_cert`
    (as for pdfsig_report), revocation data from the document's DSS and `extra_crls`, no
    fetching, hard-fail on missing revocation data."""
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko.sign.validation.dss import DocumentSecurityStore, NoDSSFoundError
    from pyhanko_certvalidator import ValidationContext

    reader = PdfFileReader(io.BytesIO(pdf_bytes))
    signatures = reader.embedded_signatures
    if len(signatures) != 1:
        raise AssertionError(f"expected one signature, found {len(signatures)}")
    kwargs = {
        "trust_roots": [
            asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))
            for cert in _root_certificates(root_cert)
        ],
        "crls": [asn1_crl.CertificateList.load(der) for der in extra_crls],
        "allow_fetching": False,
        "revocation_mode": "hard-fail",
    }
    context = None
    if use_document_revinfo:
        try:
            context = DocumentSecurityStore.read_dss(reader).as_validation_context(kwargs)
        except NoDSSFoundError:
            context = None
    if context is None:
        context = ValidationContext(**kwargs)
    return validate_pdf_signature(signatures[0], signer_validation_context=context)


def pdftotext(pdf_path: Path | str, *, raw: bool = False) -> str:
    """The page text; `raw` keeps content-stream order (WeasyPrint writes it in document order,
    so two-column layouts do not interleave)."""
    result = _run(["pdftotext", *(["-raw"] if raw else []), "-enc", "UTF-8", str(pdf_path), "-"])
    if result.returncode != 0:
        raise RuntimeError(f"pdftotext failed: {result.stderr}")
    return result.stdout


def page_png(pdf_path: Path | str, out_prefix: Path | str, *, dpi: int = 150, page: int = 1) -> Path:
    """Render one page with pdftoppm; returns the PNG path."""
    out_prefix = Path(out_prefix)
    pages = ["-f", str(page), "-l", str(page)]
    result = _run(["pdftoppm", "-r", str(dpi), "-png", *pages, "-singlefile", str(pdf_path), str(out_prefix)])
    if result.returncode != 0:
        raise RuntimeError(f"pdftoppm failed: {result.stderr}")
    return out_prefix.with_suffix(".png")


def read_qr(png_path: Path | str) -> list[str]:
    """Every QR/barcode text zbarimg finds in the image (one per line of its --raw output)."""
    result = _run(["zbarimg", "--raw", "-q", "-Sdisable", "-Sqrcode.enable", str(png_path)])
    return [line for line in result.stdout.splitlines() if line]
