"""Private keys: the algorithms the kit offers, generation, and PEM in and out."""

from __future__ import annotations

from enum import StrEnum

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PublicKeyTypes

from base.errors import InvalidInputError, KeyMismatchError, MalformedError, WrongPassphraseError

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
MIN_RSA_BITS = 2048


class KeyType(StrEnum):
    """Key algorithms AWS IoT accepts for CA and device certificates."""

    EC_P256 = "ec-p256"
    EC_P384 = "ec-p384"
    RSA_2048 = "rsa-2048"
    RSA_3072 = "rsa-3072"
    RSA_4096 = "rsa-4096"


_CURVES = {KeyType.EC_P256: ec.SECP256R1, KeyType.EC_P384: ec.SECP384R1}


def generate_key(key_type: KeyType | str) -> PrivateKey:
    """A new private key of ``key_type``."""
    key_type = KeyType(key_type)
    if key_type in _CURVES:
        return ec.generate_private_key(_CURVES[key_type]())
    return rsa.generate_private_key(public_exponent=65537, key_size=int(key_type.split("-")[1]))


def key_type_of(key: PrivateKey | PublicKeyTypes) -> str:
    """A short description of a key, such as ``ec-p256`` or ``rsa-2048``."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, ec.EllipticCurvePublicKey):
        return {"secp256r1": "ec-p256", "secp384r1": "ec-p384"}.get(public.curve.name, f"ec-{public.curve.name}")
    if isinstance(public, rsa.RSAPublicKey):
        return f"rsa-{public.key_size}"
    return type(public).__name__


def signature_hash(key: CertificateIssuerPrivateKeyTypes) -> hashes.SHA256 | hashes.SHA384:
    """The digest to sign with: SHA-384 for P-384, SHA-256 otherwise."""
    if isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.key_size >= 384:
        return hashes.SHA384()
    return hashes.SHA256()


def check_key_strength(key: PrivateKey | PublicKeyTypes) -> None:
    """Refuse RSA keys shorter than 2048 bits and key types AWS IoT does not take."""
    public = key.public_key() if hasattr(key, "public_key") else key
    if isinstance(public, rsa.RSAPublicKey):
        if public.key_size < MIN_RSA_BITS:
            raise InvalidInputError(f"RSA keys of {public.key_size} bits are too weak; use at least {MIN_RSA_BITS}.")
        return
    if isinstance(public, ec.EllipticCurvePublicKey):
        if public.curve.name not in ("secp256r1", "secp384r1", "secp521r1"):
            raise InvalidInputError(
                f"Elliptic curve {public.curve.name} is not accepted by AWS IoT; use P-256 or P-384."
            )
        return
    raise InvalidInputError(f"Key type {type(public).__name__} is not accepted by AWS IoT; use EC or RSA.")


def private_key_pem(key: PrivateKey, passphrase: bytes | None = None) -> bytes:
    """PKCS#8 PEM of ``key``, encrypted when a passphrase is given."""
    encryption = serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


def load_private_key(
    data: bytes, passphrase: bytes | None = None, source: str = "the key", passphrase_var: str | None = None
) -> PrivateKey:
    """Parse a PEM private key; a clear error for encrypted keys without or with a wrong passphrase."""
    encrypted = b"ENCRYPTED" in data[:100]
    if encrypted and not passphrase:
        where = (
            f"set {passphrase_var} to its passphrase"
            if passphrase_var
            else "name the variable that holds its passphrase with --passphrase-env"
        )
        raise WrongPassphraseError(f"{source} is encrypted: {where}.")
    try:
        key = serialization.load_pem_private_key(data, password=passphrase if encrypted else None)
    except (ValueError, TypeError) as exc:
        if encrypted:
            inline = "t" + source[1:] if source.startswith("The ") else source  # "for the CA key", not "for The"
            raise WrongPassphraseError(f"Wrong passphrase for {inline}.") from exc
        raise MalformedError(f"{source} is not a PEM private key.") from exc
    except Exception as exc:  # cryptography raises UnsupportedAlgorithm for some garbage
        raise MalformedError(f"{source} is not a PEM private key.") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise InvalidInputError(f"{source} is a {type(key).__name__}; the kit uses EC or RSA keys.")
    return key


def public_bytes(key: PrivateKey | PublicKeyTypes) -> bytes:
    """The SubjectPublicKeyInfo DER of a key, to compare keys."""
    public = key.public_key() if hasattr(key, "public_key") else key
    return public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def check_key_matches(key: PrivateKey, public: PublicKeyTypes, what: str) -> None:
    """Raise unless ``key`` is the private half of ``public``."""
    if public_bytes(key) != public_bytes(public):
        raise KeyMismatchError(f"The private key does not match {what}.")
