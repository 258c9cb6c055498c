"""Message signatures, so SNS message validators can check what Sabio delivers.

Sabio signs with its own RSA key and serves the self-signed certificate at `SigningCertURL`
on its own port. Validators that fetch the certificate from that URL and check the signature
accept the messages; validators that also insist on an `sns.<region>.amazonaws.com` host do
not (that host is Amazon's). The key is made once per home and kept there (mode 0600), on
first use, so a server that never sends a message never loads a cryptography library."""

from __future__ import annotations

import base64
import datetime
import hashlib
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

_KEY_FILE = "signing-key.pem"
_CERT_FILE = "signing-cert.pem"

# Which fields are signed, in order, by message type (SNS's canonical string).
SIGNED_FIELDS = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
    "UnsubscribeConfirmation": (
        "Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type",
    ),
}  # fmt: skip


def canonical(message: dict[str, str]) -> bytes:
    """`Name\\nvalue\\n` for each signed field present, the string SNS signs."""
    lines = []
    for name in SIGNED_FIELDS[message["Type"]]:
        if name in message:
            lines.append(f"{name}\n{message[name]}\n")
    return "".join(lines).encode()


class Signer:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._lock = threading.Lock()
        self._key: RSAPrivateKey | None = None
        self._certificate = b""
        self._name = ""

    @property
    def certificate_pem(self) -> bytes:
        self._load()
        return self._certificate

    @property
    def certificate_name(self) -> str:
        """`SimpleNotificationService-<hash>.pem`, the last part of `SigningCertURL`."""
        self._load()
        return self._name

    def sign(self, message: dict[str, str]) -> str:
        """Base64 SHA1withRSA (`SignatureVersion` 1) or SHA256withRSA (2) of the message."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        key = self._load()
        algorithm = hashes.SHA256() if message["SignatureVersion"] == "2" else hashes.SHA1()  # noqa: S303
        signature = key.sign(canonical(message), padding.PKCS1v15(), algorithm)
        return base64.b64encode(signature).decode()

    def _load(self) -> RSAPrivateKey:
        """The key, read (or first made) once; blocking, so callers run it off the loop."""
        with self._lock:
            if self._key is None:
                from cryptography.hazmat.primitives import serialization
                from cryptography.hazmat.primitives.asymmetric import rsa

                key_path, cert_path = self.directory / _KEY_FILE, self.directory / _CERT_FILE
                if not key_path.exists() or not cert_path.exists():
                    self._create(key_path, cert_path)
                key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
                if not isinstance(key, rsa.RSAPrivateKey):
                    raise TypeError(f"{key_path} does not hold an RSA key")
                self._certificate = cert_path.read_bytes()
                digest = hashlib.sha256(self._certificate).hexdigest()[:32]
                self._name = f"SimpleNotificationService-{digest}.pem"
                self._key = key
            return self._key

    def _create(self, key_path: Path, cert_path: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
        from cryptography.x509.oid import NameOID

        self.directory.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sabio-notifications")])
        now = datetime.datetime.now(datetime.UTC)
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .sign(key, hashes.SHA256())
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        _write(key_path, key_pem, 0o600)
        _write(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: Path, data: bytes, mode: int) -> None:
    """Atomically, so a crash never leaves a half-written key."""
    temporary = path.with_suffix(f".{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
