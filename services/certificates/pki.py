"""The issuing chains for e-certificates: who signs, who vouches for the signer, what is revoked.

Every issuing authority (颁证单位) signs with its own key; its certificate carries its unified
social credit code (organizationIdentifier "NTRCN-<code>"), so a verifier sees which authority
signed. `load_issuing_chain(settings, issuer_code=...)` returns the chain of one authority.

Three modes:

- **Development / demo** (the default): one root CA under `settings.pki_dir`, and under it one
  issuer certificate per issuing authority, generated on first use (the authority's name comes
  from the certificate types in e-certificates/). The root also issues the CRL (`crl.der`),
  regenerated whenever it is close to its nextUpdate.
- **Production, one key per authority**: `ONESTOP_ISSUER_KEYS_DIR` holds `<credit code>.p12`
  (PKCS#12: key, certificate, chain) or `<credit code>.pem` (PEM: the private key, the
  certificate and the chain up to the root, in any order). Password: `<code>.password` beside the
  file, else `ONESTOP_ISSUER_KEYS_PASSWORD`. Replacing a file rotates that key; certificates
  signed with the old one stay valid (their PDF carries the old certificate).
- **Production, one key** (the older setting): `settings.issuer_pkcs12_path`.

In production the root's key is not ours, so we cannot issue CRLs: drop the CA's current CRL
(DER) at `<pki_dir>/crl.der` (a cron job fetching it is enough) and it is served and embedded;
without it, `current_crl_der` raises `CrlUnavailable` and signatures carry no revocation data.
`revoke_issuer_certificate` and `rotate_issuer_key` only exist for the development chain.

Files of the development chain in `pki_dir` (private keys 0600, every write to a temporary file
then `os.replace`, every change under an exclusive `flock` on `.lock`, reads under a shared one,
so several processes starting at once agree on one chain and nobody reads a key from one
generation and a certificate from another):

    root.key.pem, root.cert.pem                 the development root
    issuers/<code>/issuer.pem                   an authority's current key + certificate (one file)
    issuers/<code>/retired/<serial hex>.cert.pem  its earlier certificates (rotated or revoked)
    revoked.json                                [{"serial", "revoked_at", "reason"}], the CRL's source
    crl.der, crl.number                         the current CRL and its monotonic number
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from services.certificates.settings import CertificateSettings, get_certificate_settings
from services.config import Settings, get_settings
from services.errors import Conflict, ServiceUnavailable

ROOT_COMMON_NAME = "onestop 开发根证书 (演示)"
# The first demo issuing authority (居住证明); the default when no issuer code is given.
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


class IssuerKeyUnavailable(ServiceUnavailable):
    code = "issuer_key_unavailable"
    message = "颁证单位的签章密钥不可用"


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


def known_issuers() -> dict[str, str]:
    """credit code -> name of every issuing authority named by a certificate type."""
    from services.certificates.types import load_certificate_types

    issuers = {DEV_ISSUER_CREDIT_CODE: DEV_ISSUER_NAME}
    for cert_type in load_certificate_types().values():
        issuers[cert_type.issuer_code] = cert_type.issuer_name
    return issuers


# ---------------------------------------------------------------------------------------------
# Public API


def _mode(settings: Settings, cert_settings: CertificateSettings) -> str:
    if cert_settings.issuer_keys_dir:
        return "keys_dir"
    if settings.issuer_pkcs12_path:
        return "pkcs12"
    return "dev"


def is_development_chain(settings: Settings | None = None, cert_settings: CertificateSettings | None = None) -> bool:
    settings = settings or get_settings()
    return _mode(settings, cert_settings or get_certificate_settings()) == "dev"


def load_issuing_chain(
    settings: Settings | None = None,
    *,
    issuer_code: str | None = None,
    cert_settings: CertificateSettings | None = None,
) -> IssuingChain:
    """The chain the authority `issuer_code` signs with (default: the first demo authority),
    generating the development chain on first use; cached, and reloaded when another process
    rotates the key or the operator replaces a key file."""
    settings = settings or get_settings()
    cert_settings = cert_settings or get_certificate_settings()
    code = issuer_code or DEV_ISSUER_CREDIT_CODE
    mode = _mode(settings, cert_settings)
    if mode == "keys_dir":
        return _load_from_keys_dir(Path(cert_settings.issuer_keys_dir), code, cert_settings.issuer_keys_password)
    if mode == "pkcs12":
        return _load_pkcs12(Path(settings.issuer_pkcs12_path), settings.issuer_pkcs12_password)
    name = known_issuers().get(code)
    if name is None:
        raise IssuerKeyUnavailable(detail={"issuer_code": code, "reason": "unknown_issuer"})
    return _DevStore(settings.pki_dir).load(settings, issuer_code=code, issuer_name=name)


def all_issuing_chains(settings: Settings | None = None,
                       cert_settings: CertificateSettings | None = None) -> list[IssuingChain]:
    """Every issuing authority's chain (development: every authority a type names)."""
    settings = settings or get_settings()
    cert_settings = cert_settings or get_certificate_settings()
    mode = _mode(settings, cert_settings)
    if mode == "keys_dir":
        directory = Path(cert_settings.issuer_keys_dir)
        codes = sorted({path.name.split(".")[0] for path in directory.glob("*.p12")}
                       | {path.name.split(".")[0] for path in directory.glob("*.pem")})
        return [load_issuing_chain(settings, issuer_code=code, cert_settings=cert_settings) for code in codes]
    if mode == "pkcs12":
        return [load_issuing_chain(settings, cert_settings=cert_settings)]
    return [load_issuing_chain(settings, issuer_code=code, cert_settings=cert_settings)
            for code in sorted(known_issuers())]


def trust_roots(settings: Settings | None = None, cert_settings: CertificateSettings | None = None
                ) -> list[x509.Certificate]:
    """The root certificates a verifier of our certificates must trust (deduplicated)."""
    roots: dict[bytes, x509.Certificate] = {}
    for chain in all_issuing_chains(settings, cert_settings):
        roots.setdefault(chain.root_cert.fingerprint(hashes.SHA256()), chain.root_cert)
    return list(roots.values())


def ca_bundle_pem(settings: Settings | None = None, cert_settings: CertificateSettings | None = None) -> bytes:
    """Root and intermediate certificates (PEM), roots last: what a verifier must trust."""
    seen: dict[bytes, x509.Certificate] = {}
    for chain in all_issuing_chains(settings, cert_settings):
        for cert in chain.chain:
            seen.setdefault(cert.fingerprint(hashes.SHA256()), cert)
    ordered = sorted(seen.values(), key=lambda cert: cert.issuer == cert.subject)  # roots last
    return b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in ordered)


def issuer_certificates(settings: Settings | None = None, cert_settings: CertificateSettings | None = None
                        ) -> list[x509.Certificate]:
    """Every issuer certificate we know, current and retired (to verify QR tokens by `kid`)."""
    certificates: list[x509.Certificate] = []
    for chain in all_issuing_chains(settings, cert_settings):
        certificates.extend(chain.issuer_certificates)
    return certificates


def current_crl_der(settings: Settings | None = None, cert_settings: CertificateSettings | None = None) -> bytes:
    """The root's current CRL (DER), regenerated when it is close to its nextUpdate."""
    settings = settings or get_settings()
    cert_settings = cert_settings or get_certificate_settings()
    if _mode(settings, cert_settings) != "dev":
        path = settings.pki_dir / "crl.der"
        if not path.exists():
            raise CrlUnavailable(detail={"expected_path": "pki_dir/crl.der"})
        return path.read_bytes()
    store = _DevStore(settings.pki_dir)
    store.ensure_root()  # make sure the root (and so a CRL) exists
    return store.crl(settings)


def revoke_issuer_certificate(
    settings: Settings | None = None,
    *,
    reason: str = "key_compromise",
    issuer_code: str | None = None,
    cert_settings: CertificateSettings | None = None,
) -> None:
    """Put an authority's current issuer certificate on the CRL and switch it to a new key."""
    settings = settings or get_settings()
    if reason not in _REVOCATION_REASONS:
        raise ValueError(f"unknown revocation reason {reason!r}; one of {sorted(_REVOCATION_REASONS)}")
    _dev_only(settings, cert_settings)
    code = issuer_code or DEV_ISSUER_CREDIT_CODE
    load_issuing_chain(settings, issuer_code=code, cert_settings=cert_settings)
    _DevStore(settings.pki_dir).rotate(settings, issuer_code=code, issuer_name=known_issuers()[code],
                                       revoke_reason=reason)


def rotate_issuer_key(
    settings: Settings | None = None,
    *,
    issuer_code: str | None = None,
    cert_settings: CertificateSettings | None = None,
) -> None:
    """Switch an authority to a new key; certificates signed with the old one stay valid."""
    settings = settings or get_settings()
    _dev_only(settings, cert_settings)
    code = issuer_code or DEV_ISSUER_CREDIT_CODE
    load_issuing_chain(settings, issuer_code=code, cert_settings=cert_settings)
    _DevStore(settings.pki_dir).rotate(settings, issuer_code=code, issuer_name=known_issuers()[code],
                                       revoke_reason=None)


def _dev_only(settings: Settings, cert_settings: CertificateSettings | None) -> None:
    if _mode(settings, cert_settings or get_certificate_settings()) != "dev":
        raise PkiOperationNotSupported()


# ---------------------------------------------------------------------------------------------
# Production: PKCS#12 or PEM files

_file_cache: dict[tuple[str, int, int], IssuingChain] = {}
_file_cache_lock = threading.Lock()


def _cached_file_chain(path: Path, loader) -> IssuingChain:
    stat = path.stat()
    key_id = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    with _file_cache_lock:
        cached = _file_cache.get(key_id)
    if cached is not None:
        return cached
    loaded = loader()
    with _file_cache_lock:
        for stale in [key for key in _file_cache if key[0] == key_id[0]]:
            del _file_cache[stale]
        _file_cache[key_id] = loaded
    return loaded


def _load_pkcs12(path: Path, password: str) -> IssuingChain:
    def load() -> IssuingChain:
        try:
            key, cert, additional = pkcs12.load_key_and_certificates(path.read_bytes(), password.encode() or None)
        except (ValueError, OSError) as error:
            raise IssuerKeyUnavailable("签章密钥文件无法读取（格式或口令错误）",
                                       detail={"file": path.name}) from error
        return _assemble(key, cert, list(additional), path)

    return _cached_file_chain(path, load)


def _load_pem(path: Path, password: str) -> IssuingChain:
    def load() -> IssuingChain:
        data = path.read_bytes()
        try:
            key = serialization.load_pem_private_key(data, password=password.encode() or None)
            certificates = x509.load_pem_x509_certificates(data)
        except (ValueError, TypeError) as error:
            raise IssuerKeyUnavailable("签章密钥文件无法读取（格式或口令错误）",
                                       detail={"file": path.name}) from error
        public = key.public_key().public_bytes(serialization.Encoding.DER,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
        leaf = next((cert for cert in certificates
                     if cert.public_key().public_bytes(serialization.Encoding.DER,
                                                       serialization.PublicFormat.SubjectPublicKeyInfo) == public),
                    None)
        if leaf is None:
            raise IssuerKeyUnavailable("签章密钥文件中没有与私钥匹配的证书", detail={"file": path.name})
        return _assemble(key, leaf, [cert for cert in certificates if cert is not leaf], path)

    return _cached_file_chain(path, load)


def _assemble(key, cert, others: list[x509.Certificate], path: Path) -> IssuingChain:
    if key is None or cert is None:
        raise IssuerKeyUnavailable("签章密钥文件缺少私钥或证书", detail={"file": path.name})
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise IssuerKeyUnavailable("签章密钥须为椭圆曲线 (P-256) 密钥", detail={"file": path.name})
    chain = _order_chain(cert, others)
    root = chain[-1] if chain else cert
    return IssuingChain(issuer_key=key, issuer_cert=cert, chain=chain or [cert], root_cert=root, dev=False)


def _load_from_keys_dir(directory: Path, code: str, password: str) -> IssuingChain:
    password_file = directory / f"{code}.password"
    if password_file.exists():
        password = password_file.read_text(encoding="utf-8").strip()
    for suffix, loader in ((".p12", _load_pkcs12), (".pfx", _load_pkcs12), (".pem", _load_pem)):
        path = directory / f"{code}{suffix}"
        if path.exists():
            chain = loader(path, password)
            if chain.issuer_credit_code not in (None, code):
                raise IssuerKeyUnavailable("签章证书中的统一社会信用代码与文件名不符",
                                           detail={"file": path.name, "certificate_code": chain.issuer_credit_code})
            return chain
    raise IssuerKeyUnavailable(detail={"issuer_code": code, "reason": "no_key_file",
                                       "expected": [f"{code}.p12", f"{code}.pem"]})


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
# (pki_dir, issuer code) -> (stamp of issuer.pem, stamp of root.cert.pem, chain)
_chain_cache: dict[tuple[Path, str], tuple[tuple, tuple, IssuingChain]] = {}
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
        self.issuers_dir = self.dir / "issuers"
        self.revoked_path = self.dir / "revoked.json"
        self.crl_path = self.dir / "crl.der"
        self.crl_number_path = self.dir / "crl.number"

    def issuer_path(self, code: str) -> Path:
        return self.issuers_dir / code / "issuer.pem"

    def retired_dir(self, code: str) -> Path:
        return self.issuers_dir / code / "retired"

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

    def ensure_root(self) -> None:
        if self.root_cert_path.exists() and self.crl_path.exists():
            return
        with self._locked(exclusive=True):
            self._generate_root()

    def load(self, settings: Settings, *, issuer_code: str, issuer_name: str) -> IssuingChain:
        issuer_path = self.issuer_path(issuer_code)
        stamp, root_stamp = _stamp(issuer_path), _stamp(self.root_cert_path)
        with _cache_lock:
            cached = _chain_cache.get((self.dir, issuer_code))
        if cached is not None and stamp is not None and cached[0] == stamp and cached[1] == root_stamp:
            return cached[2]
        if stamp is None or root_stamp is None:
            with self._locked(exclusive=True):
                self._generate_root()
                self._adopt_legacy_layout()
                if not issuer_path.exists():
                    self._write_new_issuer(settings, issuer_code=issuer_code, issuer_name=issuer_name)
        with self._locked(exclusive=False):
            stamp, root_stamp = _stamp(issuer_path), _stamp(self.root_cert_path)
            chain = self._read_chain(issuer_code)
        assert stamp is not None
        with _cache_lock:
            _chain_cache[(self.dir, issuer_code)] = (stamp, root_stamp, chain)
        return chain

    def _read_chain(self, code: str) -> IssuingChain:
        root_cert = x509.load_pem_x509_certificate(self.root_cert_path.read_bytes())
        issuer_pem = self.issuer_path(code).read_bytes()
        issuer_key = serialization.load_pem_private_key(issuer_pem, password=None)
        issuer_cert = x509.load_pem_x509_certificate(issuer_pem)
        retired = []
        retired_dir = self.retired_dir(code)
        if retired_dir.is_dir():
            for path in sorted(retired_dir.glob("*.cert.pem"), key=lambda p: p.stat().st_mtime_ns, reverse=True):
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

    def _generate_root(self) -> None:
        """Create the root and a first CRL if missing. Called with the exclusive lock held."""
        self.dir.mkdir(parents=True, exist_ok=True)
        if not (self.root_key_path.exists() and self.root_cert_path.exists()):
            root_key = ec.generate_private_key(ec.SECP256R1())
            root_cert = _make_root_cert(root_key)
            _atomic_write(self.root_key_path, _key_pem(root_key), private=True)
            _atomic_write(self.root_cert_path, root_cert.public_bytes(serialization.Encoding.PEM))
            self._write_crl(root_key, root_cert)
        elif not self.crl_path.exists():
            self._write_crl(self._root_key(), self._root_cert())

    def _adopt_legacy_layout(self) -> None:
        """A pki_dir from before several authorities (issuer.pem at the top) becomes the first
        authority's folder, so its certificates keep verifying. Exclusive lock held."""
        legacy = self.dir / "issuer.pem"
        if not legacy.exists():
            return
        target = self.issuer_path(DEV_ISSUER_CREDIT_CODE)
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            os.replace(legacy, target)
            legacy_retired = self.dir / "retired"
            if legacy_retired.is_dir():
                shutil.move(str(legacy_retired), str(self.retired_dir(DEV_ISSUER_CREDIT_CODE)))
        else:
            legacy.unlink()

    def _root_key(self) -> ec.EllipticCurvePrivateKey:
        key = serialization.load_pem_private_key(self.root_key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key

    def _root_cert(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.root_cert_path.read_bytes())

    def _write_new_issuer(self, settings: Settings, *, issuer_code: str, issuer_name: str) -> None:
        issuer_key = ec.generate_private_key(ec.SECP256R1())
        issuer_cert = _make_issuer_cert(settings, issuer_key, self._root_key(), self._root_cert(),
                                        issuer_name=issuer_name, issuer_code=issuer_code)
        pem = _key_pem(issuer_key) + issuer_cert.public_bytes(serialization.Encoding.PEM)
        path = self.issuer_path(issuer_code)
        path.parent.mkdir(parents=True, exist_ok=True)
        _atomic_write(path, pem, private=True)

    def rotate(self, settings: Settings, *, issuer_code: str, issuer_name: str, revoke_reason: str | None) -> None:
        with self._locked(exclusive=True):
            old_cert = x509.load_pem_x509_certificate(self.issuer_path(issuer_code).read_bytes())
            retired_dir = self.retired_dir(issuer_code)
            retired_dir.mkdir(parents=True, exist_ok=True)
            _atomic_write(
                retired_dir / f"{old_cert.serial_number:x}.cert.pem",
                old_cert.public_bytes(serialization.Encoding.PEM),
            )
            if revoke_reason is not None:
                revoked = self._revoked()
                revoked.append(
                    {
                        "serial": old_cert.serial_number,
                        "issuer_code": issuer_code,
                        "revoked_at": _now().isoformat(),
                        "reason": revoke_reason,
                    }
                )
                _atomic_write(self.revoked_path, json.dumps(revoked, indent=2).encode())
            self._write_new_issuer(settings, issuer_code=issuer_code, issuer_name=issuer_name)
            self._write_crl(self._root_key(), self._root_cert())

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
                    self._write_crl(self._root_key(), self._root_cert())
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


def _make_issuer_cert(settings: Settings, issuer_key, root_key, root_cert: x509.Certificate, *,
                      issuer_name: str, issuer_code: str) -> x509.Certificate:
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "CN"),
            x509.NameAttribute(NameOID.STATE_OR_PROVINCE_NAME, "江西省"),
            x509.NameAttribute(NameOID.LOCALITY_NAME, "婺源县"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, issuer_name),
            # ETSI EN 319 412-1 legal-person identifier: "NTR" + country + "-" + registration number
            x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, f"NTRCN-{issuer_code}"),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{issuer_name} 电子证照签章"),
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
