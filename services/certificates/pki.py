"""The issuing chain for e-certificates: who signs, who vouches for the signer, what is revoked.

Two modes:

- **Development / demo** (the default): a root CA and an issuer certificate for the issuing
  authority are generated under `settings.pki_dir` on first use. The root also issues the CRL
  (`crl.der`), regenerated whenever it is close to its nextUpdate.
- **Production**: `settings.issuer_pkcs12_path` names a PKCS#12 file with the issuer's key, its
  certificate and the chain up to the root (password `settings.issuer_pkcs12_password`). The
  root's key is not ours there, so we cannot issue CRLs: drop the CA's current CRL (DER) at
  `<pki_dir>/crl.der` (a cron job fetching it is enough) and it is served and embedded; without
  it, `current_crl_der` raises `CrlUnavailable` and signatures carry no revocation data.
  `revoke_issuer_certificate` and `rotate_issuer_key` only exist for the development chain.

Files in `pki_dir` (private keys 0600, every write to a temporary file then `os.replace`, every
change under an exclusive `flock` on `.lock`, reads under a shared one, so several processes
starting at once agree on one chain and nobody reads a key from one generation and a
certificate from another):

    root.key.pem, root.cert.pem        the development root
    issuer.pem                         current issuer key + certificate, one file (atomic swap)
    retired/<serial hex>.cert.pem      earlier issuer certificates (rotated or revoked keys)
    revoked.json                       [{"serial", "revoked_at", "reason"}], the CRL's source
    crl.der, crl.number                the current CRL and its monotonic number
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from services.config import Settings, get_settings
from services.errors import Conflict, ServiceUnavailable

ROOT_COMMON_NAME = "onestop 开发根证书 (演示)"
# The demo issuing authority; must match `issuer` in the shipped e-certificates/*/type.yaml.
# The credit code is a made-up value with a valid GB 32100 check character, not the real one.
DEV_ISSUER_NAME = "婺源县政务服务数据管理局"
DEV_ISSUER_CREDIT_CODE = "11361130MB1C20012R"

ROOT_VALIDITY = dt.timedelta(days=3652)
ISSUER_VALIDITY = dt.timedelta(days=730)
CRL_VALIDITY = dt.timedelta(days=7)
CRL_REFRESH_MARGIN = dt.timedelta(days=1)  # regenerate when less than this is left
CLOCK_SKEW = dt.timedelta(minutes=5)

_REVOCATION_REASONS = {reason.name: reason for reason in x509.ReasonFlags}


class CrlUnavailable(ServiceUnavailable):
    code = "crl_unavailable"
    message = "证书吊销列表暂不可用"


class PkiOperationNotSupported(Conflict):
    code = "pki_operation_not_supported"
    message = "该操作仅适用于开发用签发证书链"


@dataclass
class IssuingChain:
    issuer_key: ec.EllipticCurvePrivateKey
    issuer_cert: x509.Certificate
    chain: list[x509.Certificate]  # intermediates up to and including the root
    root_cert: x509.Certificate
    retired_issuer_certs: list[x509.Certificate] = field(default_factory=list)
    dev: bool = True  # generated here (we hold the root key and issue the CRL)

    @property
    def issuer_certificates(self) -> list[x509.Certificate]:
        """The current issuer certificate first, then earlier ones (for QR tokens of old PDFs)."""
        return [self.issuer_cert, *self.retired_issuer_certs]

    @property
    def issuer_credit_code(self) -> str | None:
        """The credit code in the issuer's subject (organizationIdentifier or serialNumber)."""
        return credit_code_of(self.issuer_cert)


def credit_code_of(cert: x509.Certificate) -> str | None:
    for oid in (NameOID.ORGANIZATION_IDENTIFIER, NameOID.SERIAL_NUMBER):
        for attribute in cert.subject.get_attributes_for_oid(oid):
            value = str(attribute.value)
            return value.removeprefix("NTRCN-")
    return None


# ---------------------------------------------------------------------------------------------
# Public API


def load_issuing_chain(settings: Settings | None = None) -> IssuingChain:
    """The chain to sign with, generating the development chain on first use; cached per pki_dir
    and reloaded when another process rotates the key."""
    settings = settings or get_settings()
    if settings.issuer_pkcs12_path:
        return _load_pkcs12(settings)
    store = _DevStore(settings.pki_dir)
    return store.load(settings)


def ca_bundle_pem(settings: Settings | None = None) -> bytes:
    """Root and intermediate certificates (PEM), root last: what a verifier must trust."""
    chain = load_issuing_chain(settings)
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain.chain)


def current_crl_der(settings: Settings | None = None) -> bytes:
    """The root's current CRL (DER), regenerated when it is close to its nextUpdate."""
    settings = settings or get_settings()
    if settings.issuer_pkcs12_path:
        path = settings.pki_dir / "crl.der"
        if not path.exists():
            raise CrlUnavailable(detail={"expected_path": "pki_dir/crl.der"})
        return path.read_bytes()
    store = _DevStore(settings.pki_dir)
    store.load(settings)  # make sure the chain (and so a CRL) exists
    return store.crl(settings)


def revoke_issuer_certificate(settings: Settings | None = None, *, reason: str = "key_compromise") -> None:
    """Put the current issuer certificate on the CRL and switch to a new issuer key."""
    settings = settings or get_settings()
    if reason not in _REVOCATION_REASONS:
        raise ValueError(f"unknown revocation reason {reason!r}; one of {sorted(_REVOCATION_REASONS)}")
    _dev_only(settings)
    _DevStore(settings.pki_dir).rotate(settings, revoke_reason=reason)


def rotate_issuer_key(settings: Settings | None = None) -> None:
    """Switch to a new issuer key; certificates signed with the old one stay valid."""
    settings = settings or get_settings()
    _dev_only(settings)
    _DevStore(settings.pki_dir).rotate(settings, revoke_reason=None)


def _dev_only(settings: Settings) -> None:
    if settings.issuer_pkcs12_path:
        raise PkiOperationNotSupported()


# ---------------------------------------------------------------------------------------------
# PKCS#12 (production)

_pkcs12_cache: dict[tuple[str, int], IssuingChain] = {}


def _load_pkcs12(settings: Settings) -> IssuingChain:
    path = Path(settings.issuer_pkcs12_path)
    key_id = (str(path.resolve()), path.stat().st_mtime_ns)
    cached = _pkcs12_cache.get(key_id)
    if cached is not None:
        return cached
    password = settings.issuer_pkcs12_password.encode() or None
    key, cert, additional = pkcs12.load_key_and_certificates(path.read_bytes(), password)
    if key is None or cert is None:
        raise ServiceUnavailable("签发证书文件缺少私钥或证书", code="issuer_pkcs12_incomplete")
    chain = _order_chain(cert, list(additional))
    root = chain[-1] if chain else cert
    loaded = IssuingChain(issuer_key=key, issuer_cert=cert, chain=chain, root_cert=root, dev=False)
    _pkcs12_cache.clear()
    _pkcs12_cache[key_id] = loaded
    return loaded


def _order_chain(leaf: x509.Certificate, others: list[x509.Certificate]) -> list[x509.Certificate]:
    """Walk issuer links from the leaf: intermediates first, root last."""
    ordered: list[x509.Certificate] = []
    current = leaf
    remaining = list(others)
    while current.issuer != current.subject:
        parent = next((c for c in remaining if c.subject == current.issuer), None)
        if parent is None:
            break
        ordered.append(parent)
        remaining.remove(parent)
        current = parent
    return ordered


# ---------------------------------------------------------------------------------------------
# The development chain


_cache_lock = threading.Lock()
# pki_dir -> (stamp of issuer.pem, chain); stamp = (mtime_ns, size, inode)
_chain_cache: dict[Path, tuple[tuple[int, int, int], IssuingChain]] = {}
# pki_dir -> (stamp of crl.der, next_update, der)
_crl_cache: dict[Path, tuple[tuple[int, int, int], dt.datetime, bytes]] = {}


def _stamp(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class _DevStore:
    def __init__(self, directory: Path):
        self.dir = Path(directory)
        self.root_key_path = self.dir / "root.key.pem"
        self.root_cert_path = self.dir / "root.cert.pem"
        self.issuer_path = self.dir / "issuer.pem"
        self.retired_dir = self.dir / "retired"
        self.revoked_path = self.dir / "revoked.json"
        self.crl_path = self.dir / "crl.der"
        self.crl_number_path = self.dir / "crl.number"

    # -- locking -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, exclusive: bool) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- chain ---------------------------------------------------------------------------------

    def load(self, settings: Settings) -> IssuingChain:
        stamp = _stamp(self.issuer_path)
        with _cache_lock:
            cached = _chain_cache.get(self.dir)
        if cached is not None and stamp is not None and cached[0] == stamp:
            return cached[1]
        if stamp is None or not self.root_cert_path.exists():
            with self._locked(exclusive=True):
                if not self.issuer_path.exists() or not self.root_cert_path.exists():
                    self._generate(settings)
        with self._locked(exclusive=False):
            stamp = _stamp(self.issuer_path)
            chain = self._read_chain()
        assert stamp is not None
        with _cache_lock:
            _chain_cache[self.dir] = (stamp, chain)
        return chain

    def _read_chain(self) -> IssuingChain:
        root_cert = x509.load_pem_x509_certificate(self.root_cert_path.read_bytes())
        issuer_pem = self.issuer_path.read_bytes()
        issuer_key = serialization.load_pem_private_key(issuer_pem, password=None)
        issuer_cert = x509.load_pem_x509_certificate(issuer_pem)
        retired = []
        if self.retired_dir.is_dir():
            for path in sorted(self.retired_dir.glob("*.cert.pem"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
                retired.append(x509.load_pem_x509_certificate(path.read_bytes()))
        assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
        return IssuingChain(
            issuer_key=issuer_key,
            issuer_cert=issuer_cert,
            chain=[root_cert],
            root_cert=root_cert,
            retired_issuer_certs=retired,
            dev=True,
        )

    def _generate(self, settings: Settings) -> None:
        """Create whatever is missing. Called with the exclusive lock held."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if self.root_key_path.exists() and self.root_cert_path.exists():
            root_key = self._root_key()
            root_cert = x509.load_pem_x509_certificate(self.root_cert_path.read_bytes())
        else:
            root_key = ec.generate_private_key(ec.SECP256R1())
            root_cert = _make_root_cert(root_key)
            _atomic_write(self.root_key_path, _key_pem(root_key), private=True)
            _atomic_write(self.root_cert_path, root_cert.public_bytes(serialization.Encoding.PEM))
        if not self.issuer_path.exists():
            self._write_new_issuer(settings, root_key, root_cert)
        self._write_crl(root_key, root_cert)

    def _root_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.root_key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def _write_new_issuer(self, settings: Settings, root_key, root_cert: x509.Certificate) -> None:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer_cert = _make_issuer_cert(settings, issuer_key, root_key, root_cert)
        pem = _key_pem(issuer_key) + issuer_cert.public_bytes(serialization.Encoding.PEM)
        _atomic_write(self.issuer_path, pem, private=True)

    def rotate(self, settings: Settings, *, revoke_reason: str | None) -> None:
        self.load(settings)
        with self._locked(exclusive=True):
            old_cert = x509.load_pem_x509_certificate(self.issuer_path.read_bytes())
            self.retired_dir.mkdir(exist_ok=True)
            _atomic_write(
                self.retired_dir / f"{old_cert.serial_number:x}.cert.pem",
                old_cert.public_bytes(serialization.Encoding.PEM),
            )
            if revoke_reason is not None:
                revoked = self._revoked()
                revoked.append(
                    {
                        "serial": old_cert.serial_number,
                        "revoked_at": _now().isoformat(),
                        "reason": revoke_reason,
                    }
                )
                _atomic_write(self.revoked_path, json.dumps(revoked, indent=2).encode())
            root_key = self._root_key()
            root_cert = x509.load_pem_x509_certificate(self.root_cert_path.read_bytes())
            self._write_new_issuer(settings, root_key, root_cert)
            self._write_crl(root_key, root_cert)

    # -- CRL -----------------------------------------------------------------------------------

    def _revoked(self) -> list[dict]:
        if not self.revoked_path.exists():
            return []
        return json.loads(self.revoked_path.read_text())

    def crl(self, settings: Settings) -> bytes:
        stamp = _stamp(self.crl_path)
        now = _now()
        with _cache_lock:
            cached = _crl_cache.get(self.dir)
        if cached is not None and cached[0] == stamp and cached[1] - now > CRL_REFRESH_MARGIN:
            return cached[2]
        with self._locked(exclusive=False):
            stamp = _stamp(self.crl_path)
            der = self.crl_path.read_bytes() if stamp else b""
        next_update = x509.load_der_x509_crl(der).next_update_utc if der else None
        if next_update is None or next_update - now <= CRL_REFRESH_MARGIN:
            with self._locked(exclusive=True):
                der = self.crl_path.read_bytes() if self.crl_path.exists() else b""
                next_update = x509.load_der_x509_crl(der).next_update_utc if der else None
                if next_update is None or next_update - now <= CRL_REFRESH_MARGIN:
                    root_cert = x509.load_pem_x509_certificate(self.root_cert_path.read_bytes())
                    self._write_crl(self._root_key(), root_cert)
                    der = self.crl_path.read_bytes()
                    next_update = x509.load_der_x509_crl(der).next_update_utc
                stamp = _stamp(self.crl_path)
        assert stamp is not None and next_update is not None
        with _cache_lock:
            _crl_cache[self.dir] = (stamp, next_update, der)
        return der

    def _write_crl(self, root_key, root_cert: x509.Certificate) -> None:
        """Issue a new CRL from revoked.json. Called with the exclusive lock held."""
        number = 1
        if self.crl_number_path.exists():
            number = int(self.crl_number_path.read_text().strip() or 0) + 1
        now = _now()
        builder = (
            x509.CertificateRevocationListBuilder()
            .issuer_name(root_cert.subject)
            .last_update(now - CLOCK_SKEW)
            .next_update(now + CRL_VALIDITY)
            .add_extension(x509.CRLNumber(number), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
            )
        )
        for entry in self._revoked():
            revoked = (
                x509.RevokedCertificateBuilder()
                .serial_number(int(entry["serial"]))
                .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"]))
                .add_extension(x509.CRLReason(_REVOCATION_REASONS[entry["reason"]]), critical=False)
                .build()
            )
            builder = builder.add_revoked_certificate(revoked)
        crl = builder.sign(root_key, hashes.SHA256())
        _atomic_write(self.crl_number_path, str(number).encode())
        _atomic_write(self.crl_path, crl.public_bytes(serialization.Encoding.DER))


# ---------------------------------------------------------------------------------------------
# Certificate construction


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _make_root_cert(root_key: ec.EllipticCurvePrivateKey) -> x509.Certificate:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "onestop (开发演示)"),
            x509.NameAttribute(NameOID.COMMON_NAME, ROOT_COMMON_NAME),
        ]
    )
    now = _now()
    public_key = root_key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + ROOT_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(root_key, hashes.SHA256())
    )


def _make_issuer_cert(settings: Settings, issuer_key, root_key, root_cert: x509.Certificate) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "江西省"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "婺源县"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, DEV_ISSUER_NAME),
            # ETSI EN 319 412-1 legal-person identifier: "NTR" + country + "-" + registration number
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{DEV_ISSUER_CREDIT_CODE}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{DEV_ISSUER_NAME} 电子证照签章"),
        ]
    )
    now = _now()
    crl_url = f"{settings.public_base_url.rstrip('/')}/api/v1/public/pki/crl"
    not_after = min(now + ISSUER_VALIDITY, root_cert.not_valid_after_utc)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(root_cert.subject)
        .public_key(issuer_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(hours=1))
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            # No ExtendedKeyUsage on purpose: NSS (pdfsig) rejects a signer whose EKU lacks
            # emailProtection, and PAdES needs none.
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=True,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(issuer_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()), critical=False
        )
        .add_extension(
            x509.CRLDistributionPoints(
                [
                    x509.DistributionPoint(
                        full_name=[x509.UniformResourceIdentifier(crl_url)],
                        relative_name=None,
                        reasons=None,
                        crl_issuer=None,
                    )
                ]
            ),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )


def _atomic_write(path: Path, data: bytes, *, private: bool = False) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
