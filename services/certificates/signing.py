"""PAdES signature with a visible seal (pyHanko).

One signature, one incremental revision, nothing after it: the issuer's certificates and the
CRL go into the document security store (DSS) *in the same revision as the signature*. (pyHanko's
default would write the DSS in a second revision after the signature, and then poppler's
`pdfsig` no longer reports "Total document signed".) The result is a PAdES-B-LT-style file that
validators needing no incremental-update analysis accept as is.

Speed (a certificate is rendered and signed in a worker, ~200 ms budget in all): pyHanko's own
way to embed validation data (`embed_validation_info=True`) validates the signer's chain against
the CRL *for every signature*, and sizing the signature container costs a second, dry-run
signature. Both depend only on the key and the CRL, so both are done once per (key, CRL) in
`_signer_setup`: the chain is validated there (a revoked or expired signing certificate refuses
to sign, as pyHanko's check did), the DSS content is prepared there, and the container size is
derived from the certificates it carries. Re-validated at least hourly.
"""

from __future__ import annotations

import hashlib
import io
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
from pyhanko.sign.validation.dss import DocumentSecurityStore
from pyhanko.stamp import StaticStampStyle
from pyhanko_certvalidator import ValidationContext
from pyhanko_certvalidator.registry import SimpleCertificateStore

from services.certificates.pki import CrlUnavailable, IssuerKeyUnavailable, IssuingChain, current_crl_der
from services.certificates.types import CertificateType
from services.config import Settings

SIGNATURE_FIELD_NAME = "IssuerSeal"
# Slightly translucent, like stamp ink: the name and date under the seal stay legible.
SEAL_OPACITY = 0.85


def to_asn1_cert(cert) -> asn1_x509.Certificate:
    return asn1_x509.Certificate.load(cert.public_bytes(serialization.Encoding.DER))


_seal_readers = threading.local()


def _seal_reader(data: bytes) -> PdfFileReader:
    """A parsed reader of the seal PDF, kept per thread (a reader caches the objects it has
    parsed, so importing the seal into the next certificate costs a copy, not a parse; readers
    seek in their stream, so they are not shared between threads)."""
    readers = getattr(_seal_readers, "by_digest", None)
    if readers is None:
        readers = _seal_readers.by_digest = {}
    digest = hashlib.sha256(data).digest()
    reader = readers.get(digest)
    if reader is None:
        if len(readers) > 32:  # seals of types no longer issued
            readers.clear()
        reader = readers[digest] = PdfFileReader(io.BytesIO(data))
    return reader


class _ImportedPdfBytes(content.PdfContent):
    """First page of an in-memory PDF as a form XObject (pyHanko's ImportedPdfPage wants a file)."""

    def __init__(self, data: bytes):
        super().__init__()
        self.data = data

    def render(self) -> bytes:
        writer = self._ensure_writer
        xobject = writer.import_page_as_xobject(_seal_reader(self.data), page_ix=0)
        name = "/Seal" + uuid.uuid4().hex
        self.resources.xobject[name] = xobject
        x1, y1, x2, y2 = xobject.get_object()["/BBox"]
        self.box = layout.BoxConstraints(width=abs(x2 - x1), height=abs(y2 - y1))
        return name.encode("ascii") + b" Do"


@dataclass(frozen=True)
class _SignerSetup:
    signer: signers.SimpleSigner
    dss_certs: tuple  # asn1crypto certificates: the issuer and its chain up to the root
    dss_crls: tuple  # asn1crypto CRLs
    bytes_reserved: int  # hex digits reserved for the signature container
    checked_at: float  # time.monotonic() of the chain validation


SETUP_REVALIDATE_SECONDS = 3600.0
_setup_cache: dict[tuple[bytes, bytes], _SignerSetup] = {}
_setup_lock = threading.Lock()


class SigningCertificateInvalid(IssuerKeyUnavailable):
    code = "issuer_certificate_invalid"
    message = "颁证单位的签章证书无效（已过期、已吊销或证书链不完整），不能签发"


def _validate_signing_certificate(signing_cert, others: list, root, crls: list) -> None:
    """The chain check pyHanko would do before every signature, done once: a path to the root,
    within validity, not on the CRL, usable for non-repudiation. Raises SigningCertificateInvalid."""
    import asyncio

    from pyhanko_certvalidator import CertificateValidator
    from pyhanko_certvalidator.errors import PathBuildingError, PathValidationError, ValidationError

    context = ValidationContext(trust_roots=[root], other_certs=others, crls=crls, allow_fetching=False,
                                revocation_mode="soft-fail")
    validator = CertificateValidator(signing_cert, intermediate_certs=others, validation_context=context)
    try:
        asyncio.run(validator.async_validate_usage({"non_repudiation"}))
    except (PathBuildingError, PathValidationError, ValidationError) as error:
        raise SigningCertificateInvalid(detail={"reason": type(error).__name__, "message": str(error)[:300]}) from error


def _reserve_for(certs) -> int:
    """Hex digits for the CMS container: the certificates it embeds, plus room for the signed
    attributes and the ECDSA signature (~600 bytes), with margin."""
    return 2 * (sum(len(cert.dump()) for cert in certs) + 3072)


def _signer_setup(chain: IssuingChain, crl_der: bytes | None) -> _SignerSetup:
    """The pyHanko signer, the DSS content and the container size for this key and CRL, with
    the signing certificate validated against them (cached: converting the key, parsing the CRL
    and validating the chain cost more than the signature itself)."""
    import time

    cache_key = (
        chain.issuer_cert.fingerprint(hashes.SHA256()),
        hashlib.sha256(crl_der or b"").digest(),
    )
    with _setup_lock:
        cached = _setup_cache.get(cache_key)
    if cached is not None and time.monotonic() - cached.checked_at < SETUP_REVALIDATE_SECONDS:
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
    crls = [asn1_crl.CertificateList.load(crl_der)] if crl_der else []
    _validate_signing_certificate(signing_cert, others, to_asn1_cert(chain.root_cert), crls)
    setup = _SignerSetup(signer=signer, dss_certs=(signing_cert, *others), dss_crls=tuple(crls),
                         bytes_reserved=_reserve_for([signing_cert, *others]), checked_at=time.monotonic())
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

    metadata = signers.PdfSignatureMetadata(
        field_name=SIGNATURE_FIELD_NAME,
        md_algorithm="sha256",
        subfilter=SigSeedSubFilter.PADES,
        reason=reason,
        location=location or None,
        name=cert_type.issuer_name,
        embed_validation_info=False,  # done here, once per key and CRL: see the module docstring
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
    # the validation data, written by this same incremental update: the signature's revision
    DocumentSecurityStore.supply_dss_in_writer(writer, None, certs=setup.dss_certs, crls=setup.dss_crls)
    output = io.BytesIO()
    pdf_signer.sign_pdf(writer, output=output, bytes_reserved=setup.bytes_reserved)
    return output.getvalue()
