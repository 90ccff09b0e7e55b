"""PAdES signature with a visible seal (pyHanko).

One signature, one incremental revision, nothing after it: the CRL for the issuer certificate
goes into the document security store (DSS) *in the same revision as the signature*
(`SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE`, which requires `include_vri=False`).
pyHanko's default would write the DSS in a second revision after the signature, and then
poppler's `pdfsig` no longer reports "Total document signed". The result is a PAdES-B-LT-style
file that validators needing no incremental-update analysis accept as is.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
import uuid
from dataclasses import dataclass

from asn1crypto import crl as asn1_crl
from asn1crypto import keys as asn1_keys
from asn1crypto import x509 as asn1_x509
from cryptography.hazmat.primitives import hashes, serialization
from pyhanko.pdf_utils import content, layout
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.reader import PdfFileReader
from pyhanko.sign import fields, signers
from pyhanko.sign.fields import SigSeedSubFilter
from pyhanko.sign.signers.pdf_signer import DSSContentSettings, SigDSSPlacementPreference
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from services.certificates.pki import CrlUnavailable, IssuingChain, current_crl_der
from services.certificates.types import CertificateType
from services.config import Settings

SIGNATURE_FIELD_NAME = "IssuerSeal"
# Slightly translucent, like stamp ink: the name and date under the seal stay legible.
SEAL_OPACITY = 0.85


class _DropFetchingWarning(logging.Filter):
    """pyHanko warns on every signature that revocation data is embedded without fetching;
    that is deliberate here (we pass the CRL ourselves), so keep it out of the logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "fetching is not allowed" not in record.getMessage()


logging.getLogger("pyhanko.sign.signers.pdf_signer").addFilter(_DropFetchingWarning())


def to_asn1_cert(cert) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


class _ImportedPdfBytes(content.PdfContent):
    """First page of an in-memory PDF as a form XObject (pyHanko's ImportedPdfPage wants a file)."""

    def __init__(self, data: bytes):
        super().__init__()
        self.data = data

    def render(self) -> bytes:
        writer = self._ensure_writer
        xobject = writer.import_page_as_xobject(PdfFileReader(io.BytesIO(self.data)), page_ix=0)
        name = "/Seal" + uuid.uuid4().hex
        self.resources.xobject[name] = xobject
        x1, y1, x2, y2 = xobject.get_object()["/BBox"]
        self.box = layout.BoxConstraints(width=abs(x2 - x1), height=abs(y2 - y1))
        return name.encode("ascii") + b" Do"


@dataclass(frozen=True)
class _SignerSetup:
    signer: signers.SimpleSigner
    validation_context_args: dict


_setup_cache: dict[tuple[bytes, bytes], _SignerSetup] = {}
_setup_lock = threading.Lock()


def _signer_setup(chain: IssuingChain, crl_der: bytes | None) -> _SignerSetup:
    """The pyHanko signer and validation inputs for this key and CRL (cached: converting the
    key and certificates and parsing the CRL costs more than the signature itself)."""
    cache_key = (
        chain.issuer_cert.fingerprint(hashes.SHA256()),
        hashlib.sha256(crl_der or b"").digest(),
    )
    with _setup_lock:
        cached = _setup_cache.get(cache_key)
        if cached is not None:
            return cached
    signing_cert = to_asn1_cert(chain.issuer_cert)
    others = [to_asn1_cert(cert) for cert in chain.chain]
    key_info = asn1_keys.PrivateKeyInfo.load(
        chain.issuer_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    signer = signers.SimpleSigner(
        signing_cert=signing_cert,
        signing_key=key_info,
        cert_registry=SimpleCertificateStore.from_certs([signing_cert, *others]),
    )
    context_args = {
        "trust_roots": [to_asn1_cert(chain.root_cert)],
        "other_certs": others,
        "crls": [asn1_crl.CertificateList.load(crl_der)] if crl_der else [],
        "allow_fetching": False,
    }
    setup = _SignerSetup(signer=signer, validation_context_args=context_args)
    with _setup_lock:
        if len(_setup_cache) > 16:  # old keys / stale CRLs
            _setup_cache.clear()
        _setup_cache[cache_key] = setup
    return setup


def sign_pdf(
    pdf: bytes,
    *,
    chain: IssuingChain,
    cert_type: CertificateType,
    reason: str = "电子证照签发",
    location: str = "",
    settings: Settings | None = None,
    seal_pdf: bytes | None = None,
) -> bytes:
    """Sign `pdf` as the issuing authority: PAdES, visible seal at the type's seal box on page 1,
    the issuer's CRL embedded in the same revision. Returns the signed file."""
    try:
        crl_der = current_crl_der(settings)
    except CrlUnavailable:
        crl_der = None  # production chain without a CRL on disk: sign without revocation data
    setup = _signer_setup(chain, crl_der)
    if seal_pdf is None:
        from services.certificates.rendering import shared_renderer

        seal_pdf = shared_renderer().seal_pdf(cert_type)

    # A fresh ValidationContext per signature: it caches validation results and fetched data
    # internally, and is not meant to be shared between threads.
    validation_context = ValidationContext(**setup.validation_context_args)
    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD_NAME,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        location=location or None,
        name=cert_type.issuer_name,
        embed_validation_info=True,
        validation_context=validation_context,
        signer_key_usage={"non_repudiation"},
        dss_settings=DSSContentSettings(
            placement=SigDSSPlacementPreference.TOGETHER_WITH_SIGNATURE, include_vri=False
        ),
    )
    stamp_style = StaticStampStyle(
        background=_ImportedPdfBytes(seal_pdf),
        background_opacity=SEAL_OPACITY,
        border_width=0,
        background_layout=layout.SimpleBoxLayoutRule(
            x_align=layout.AxisAlignment.ALIGN_MID,
            y_align=layout.AxisAlignment.ALIGN_MID,
            margins=layout.Margins.uniform(0),
        ),
    )
    x1, y1, x2, y2 = cert_type.seal_box
    field_spec = fields.SigFieldSpec(sig_field_name=SIGNATURE_FIELD_NAME, on_page=0, box=(x1, y1, x2, y2))
    pdf_signer = signers.PdfSigner(metadata, signer=setup.signer, stamp_style=stamp_style, new_field_spec=field_spec)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf))
    output = io.BytesIO()
    pdf_signer.sign_pdf(writer, output=output)
    return output.getvalue()
