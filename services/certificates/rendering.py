"""HTML -> PDF for certificates (WeasyPrint), the QR code and its signed token.

The QR code carries `{status_url}#{token}`: the public status URL of the certificate and a
compact ES256 JWS signed with the issuer key whose claims are only codes and hashes

    {"id": identifier, "t": type code, "i": issuer credit code, "h": content hash, "iat": ...}

so a verifier offline can check that a paper print-out says what was issued (recompute `h`)
without the code ever holding a name or an ID number. The header's `kid` is the base64url
SHA-256 thumbprint of the issuer certificate (as in JOSE's `x5t#S256`), so tokens signed
before a key rotation still find their certificate.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import html
import json
import string
import struct
import threading
import zlib
from typing import Any

import qrcode
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, utils
from qrcode.constants import ERROR_CORRECT_M

from services.certificates.pki import IssuingChain
from services.certificates.types import HOLDER_CODE_TYPE_NAMES, CertificateType, format_date
from services.errors import InvalidInput

QR_ALGORITHM = "ES256"
_CHINA_TZ = dt.timezone(dt.timedelta(hours=8))


class InvalidQrToken(InvalidInput):
    code = "invalid_qr_token"
    message = "二维码核验信息无效"


# ---------------------------------------------------------------------------------------------
# Rendering


class CertificateRenderer:
    """Create ONE and reuse it: it holds the single FontConfiguration (a new one per render
    grows memory to ~800 MiB) and the parsed templates and style sheets of each type."""

    def __init__(self) -> None:
        from weasyprint.text.fonts import FontConfiguration

        self.font_config = FontConfiguration()
        self._lock = threading.Lock()
        self._assets: dict[str, tuple[string.Template, Any]] = {}
        self._seals: dict[tuple[str, tuple[float, ...]], bytes] = {}  # keyed by type folder

    def _type_assets(self, cert_type: CertificateType) -> tuple[string.Template, Any]:
        cached = self._assets.get(str(cert_type.directory))
        if cached is None:
            from weasyprint import CSS

            template = string.Template(cert_type.template_path.read_text(encoding="utf-8"))
            css = CSS(
                string=cert_type.style_path.read_text(encoding="utf-8"),
                base_url=str(cert_type.directory) + "/",
                font_config=self.font_config,
            )
            cached = self._assets[str(cert_type.directory)] = (template, css)
        return cached

    def render(
        self,
        *,
        cert_type: CertificateType,
        fields: list[tuple[str, str]],
        identifier: str,
        issued_at: dt.date,
        valid_until: dt.date | None,
        holder_masked: str,
        qr_png: bytes,
        number: str = "",
    ) -> bytes:
        """The unsigned one-page PDF."""
        from weasyprint import HTML

        with self._lock:  # WeasyPrint shares font state; one render at a time per renderer
            template, css = self._type_assets(cert_type)
            x1, y1, x2, y2 = cert_type.seal_box
            page_height = cert_type.page_size[1]
            values = {
                "title": html.escape(cert_type.name),
                "certificate_name": html.escape(cert_type.certificate_name),
                "type_code": html.escape(cert_type.type_code),
                "issuer_name": html.escape(cert_type.issuer_name),
                "issuer_code": html.escape(cert_type.issuer_code),
                "jurisdiction_code": html.escape(cert_type.jurisdiction_code),
                "holder_code_type_name": html.escape(HOLDER_CODE_TYPE_NAMES[cert_type.holder_code_type]),
                "number": html.escape(number),
                "identifier": html.escape(identifier),
                "issued_at": html.escape(format_date(issued_at)),
                "valid_until": html.escape(format_date(valid_until) if valid_until else "长期"),
                "holder_masked": html.escape(holder_masked),
                "qr_src": "data:image/png;base64," + base64.b64encode(qr_png).decode("ascii"),
                "rows": "\n".join(
                    f"      <tr><th>{html.escape(label)}</th><td>{html.escape(value)}</td></tr>"
                    for label, value in fields
                ),
                "seal_left": f"{x1:.2f}",
                "seal_top": f"{page_height - y2:.2f}",
                "seal_width": f"{x2 - x1:.2f}",
                "seal_height": f"{y2 - y1:.2f}",
            }
            if len(fields) == len(cert_type.fields):
                for spec, (_, value) in zip(cert_type.fields, fields, strict=True):
                    values[f"f_{spec.key}"] = html.escape(value)
            try:
                document = template.substitute(values)
            except KeyError as error:
                raise ValueError(f"{cert_type.code}/template.html: no value for ${error.args[0]}") from error
            return HTML(string=document, base_url=str(cert_type.directory) + "/").write_pdf(
                stylesheets=[css], font_config=self.font_config
            )

    def seal_pdf(self, cert_type: CertificateType) -> bytes:
        """The seal artwork as a one-page PDF the size of the type's seal box (cached): the
        background of the visible signature."""
        x1, y1, x2, y2 = cert_type.seal_box
        key = (str(cert_type.directory), cert_type.seal_box)
        with self._lock:
            cached = self._seals.get(key)
            if cached is None:
                from weasyprint import HTML

                width, height = x2 - x1, y2 - y1
                document = (
                    "<!DOCTYPE html><html><head><style>"
                    f"@page {{ size: {width}pt {height}pt; margin: 0 }}"
                    "html, body { margin: 0 }"
                    f"img {{ display: block; width: {width}pt; height: {height}pt }}"
                    '</style></head><body><img src="seal.svg"></body></html>'
                )
                cached = HTML(string=document, base_url=str(cert_type.directory) + "/").write_pdf(
                    font_config=self.font_config
                )
                self._seals[key] = cached
            return cached


_shared: CertificateRenderer | None = None
_shared_lock = threading.Lock()


def shared_renderer() -> CertificateRenderer:
    """The process-wide renderer (created on first use)."""
    global _shared
    if _shared is None:
        with _shared_lock:
            if _shared is None:
                _shared = CertificateRenderer()
    return _shared


# ---------------------------------------------------------------------------------------------
# Content hash and QR


def content_sha256(fields: list[tuple[str, str]], identifier: str) -> str:
    """SHA-256 (hex) of canonical JSON of what the certificate says: its identifier and its
    (label, value) pairs in order. Recomputable from a print-out."""
    canonical = json.dumps(
        {"id": identifier, "fields": [[label, value] for label, value in fields]},
        ensure_ascii=False,
        separators=(",", ":"),
        sort_keys=True,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


# A fixed mask pattern: choosing the best of the eight (qrcode's default) scores every mask in
# pure Python and costs ~4x the rest of the QR code (40 ms vs 10 ms for a version 16-19 code);
# any mask decodes, and the test suite reads every type's code from a 150 dpi rendering.
QR_MASK_PATTERN = 2


QR_PIXELS_PER_MODULE = 4


def qr_png(data: str) -> bytes:
    """A QR code (error correction M, 4-module quiet zone) as an 8-bit grayscale PNG, 4 pixels
    per module. Written directly (zlib, no Pillow): a 1-bit or palette PNG is converted to RGB
    and re-encoded by WeasyPrint when it loads the image (~25 ms per certificate); a grayscale
    one is taken as it is."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, border=4, mask_pattern=QR_MASK_PATTERN)
    code.add_data(data.encode("utf-8"))
    code.make(fit=True)
    matrix = code.get_matrix()  # rows of booleans (True: dark), quiet zone included
    scale = QR_PIXELS_PER_MODULE
    dark, light = b"\x00" * scale, b"\xff" * scale
    rows = []
    for modules in matrix:
        row = b"\x00" + b"".join(dark if module else light for module in modules)  # filter byte 0: None
        rows.extend([row] * scale)
    size = len(matrix) * scale

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0)  # 8-bit grayscale, no interlace
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"".join(rows), 6))
            + chunk(b"IEND", b""))


def qr_payload(*, public_base_url: str, identifier: str, token: str) -> str:
    return f"{status_url(public_base_url=public_base_url, identifier=identifier)}#{token}"


def status_url(*, public_base_url: str, identifier: str) -> str:
    return f"{public_base_url.rstrip('/')}/api/v1/public/certificates/{identifier}/status"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_id(cert: x509.Certificate) -> str:
    """base64url SHA-256 thumbprint of the DER certificate (the token header's `kid`)."""
    return _b64url(cert.fingerprint(hashes.SHA256()))


def make_qr_token(
    *,
    chain: IssuingChain,
    identifier: str,
    type_code: str,
    issuer_code: str,
    content_sha256: str,
    issued_at: dt.date,
) -> str:
    """Compact ES256 JWS over codes and hashes only, signed with the issuer key."""
    header = {"alg": QR_ALGORITHM, "kid": key_id(chain.issuer_cert)}
    iat = int(dt.datetime.combine(issued_at, dt.time(), tzinfo=_CHINA_TZ).timestamp())
    claims = {"id": identifier, "t": type_code, "i": issuer_code, "h": content_sha256, "iat": iat}
    signing_input = ".".join(
        _b64url(json.dumps(part, separators=(",", ":")).encode("utf-8")) for part in (header, claims)
    )
    der = chain.issuer_key.sign(signing_input.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"


def verify_qr_token(token: str, *, certificates: list[x509.Certificate]) -> dict:
    """Verify a QR token against whichever of `certificates` its `kid` names; ES256 only.
    Returns the claims; raises InvalidQrToken."""
    try:
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(_b64url_decode(header_b64))
        claims = json.loads(_b64url_decode(claims_b64))
        signature = _b64url_decode(signature_b64)
    except (ValueError, TypeError) as error:
        raise InvalidQrToken(detail={"reason": "malformed"}) from error
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise InvalidQrToken(detail={"reason": "malformed"})
    if header.get("alg") != QR_ALGORITHM:  # pinned: never "none", never HS*
        raise InvalidQrToken(detail={"reason": "algorithm"})
    cert = next((c for c in certificates if key_id(c) == header.get("kid")), None)
    if cert is None:
        raise InvalidQrToken(detail={"reason": "unknown_key"})
    public_key = cert.public_key()
    if len(signature) != 64 or not isinstance(public_key, ec.EllipticCurvePublicKey):
        raise InvalidQrToken(detail={"reason": "signature"})
    der = utils.encode_dss_signature(int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:], "big"))
    try:
        public_key.verify(der, f"{header_b64}.{claims_b64}".encode("ascii"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as error:
        raise InvalidQrToken(detail={"reason": "signature"}) from error
    return claims
