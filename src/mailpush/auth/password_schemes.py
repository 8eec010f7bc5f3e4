"""Dovecot password schemes: `{SCHEME}data` strings as passwd-files store them.

Hashes written by `doveadm pw` must verify here and hashes written here must verify in
Dovecot, so that a passwd-file can move between the two unchanged. Every primitive comes
from a maintained library (passlib for crypt(3) formats, argon2-cffi for Argon2, hashlib
for the plain salted digests); this module only knows Dovecot's framing.

Verifying answers a yes/no question: a stored value that cannot be parsed (truncated
base64, a mangled crypt string) never matches and raises nothing, because an attacker's
password must not be able to tell a broken entry from a wrong password. A scheme name
mailpush does not know is a configuration problem and raises
`UnknownPasswordSchemeError` instead, so the admin hears about it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

import argon2
from passlib.hash import bcrypt, des_crypt, md5_crypt, sha256_crypt, sha512_crypt

from mailpush.errors import InvalidPasswordError, UnknownPasswordSchemeError

__all__ = [
    "dummy_hash_like",
    "hash_cost",
    "hash_password",
    "stored_scheme",
    "supported_schemes",
    "verify_password",
    "verify_password_async",
]


def verify_password(stored: str, password: str, default_scheme: str = "PLAIN") -> bool:
    """True if `password` matches `stored`; False for a mismatch or an unparsable hash.

    `default_scheme` is Dovecot's `scheme=` passwd-file argument: it applies to a stored
    value that carries no `{SCHEME}` prefix.
    """
    name, data = _split_scheme(stored, default_scheme)
    scheme, encoding = _lookup_scheme(name)
    secret = _secret_bytes(password)
    if secret is None:
        return False
    return scheme.verify(secret, data, encoding)


async def verify_password_async(stored: str, password: str, default_scheme: str = "PLAIN") -> bool:
    """`verify_password` that never blocks the event loop.

    Argon2 and the crypt(3) schemes take tens of milliseconds of CPU each, so they run on
    a small dedicated thread pool: sized to the CPU count because more threads only queue
    for the same cores, and separate from the default executor so that a burst of logins
    cannot starve other `to_thread` work nor allocate Argon2's 64 MiB per thread without
    bound. The cheap schemes run inline, where a thread hop would cost more than the hash.
    """
    name, _ = _split_scheme(stored, default_scheme)
    scheme, _ = _lookup_scheme(name)
    if not scheme.expensive:
        return verify_password(stored, password, default_scheme)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(
        _verify_executor(), verify_password, stored, password, default_scheme
    )


def hash_password(password: str, scheme: str = "ARGON2ID") -> str:
    """`{SCHEME}hash` of `password` with a fresh salt, in the format Dovecot writes.

    The scheme name is kept as given (upper-cased), so `CLEAR` stays `{CLEAR}`; an
    encoding suffix (`SHA256.HEX`) selects hex output as in `doveadm pw -s SHA256.HEX`.
    """
    name = scheme.strip().upper()
    impl, encoding = _lookup_scheme(name)
    secret = _secret_bytes(password)
    if secret is None:
        raise InvalidPasswordError("password is not valid text (lone surrogate characters)")
    try:
        data = impl.hash(secret, encoding)
    except ValueError as exc:  # passlib: NUL bytes, longer than 4096 bytes
        raise InvalidPasswordError(f"{name} cannot hash this password: {exc}") from exc
    return f"{{{name}}}{data}"


def hash_cost(stored: str, default_scheme: str = "PLAIN") -> tuple[str, str]:
    """What verifying against `stored` costs: its scheme and cost parameters, no salt.

    `{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$...` → `("ARGON2ID", "m=65536,t=3,p=1")`,
    a SHA512-CRYPT hash → `("SHA512-CRYPT", "rounds=5000")`. Two stored values with
    the same answer take the same time to verify. Raises `UnknownPasswordSchemeError`
    as `verify_password` would.
    """
    name, data = _split_scheme(stored, default_scheme)
    scheme, _ = _lookup_scheme(name)
    return scheme.name, ",".join(f"{k}={v}" for k, v in sorted(_cost_settings(data).items()))


def dummy_hash_like(stored: str, default_scheme: str = "PLAIN") -> str:
    """A hash of a random password with the scheme and cost of `stored`.

    A login for a user who does not exist verifies against this, so that it takes
    as long as a wrong password for one who does: otherwise the answer's timing
    tells an attacker which user names are real. The random password is never
    kept, so nothing can match the result.
    """
    name, data = _split_scheme(stored, default_scheme)
    scheme, encoding = _lookup_scheme(name)
    secret = secrets.token_urlsafe(16).encode("ascii")
    cost = _cost_settings(data)
    if scheme.name in _ARGON2_HASHERS and cost:
        hasher = argon2.PasswordHasher.from_parameters(argon2.extract_parameters(data))
        return f"{{{scheme.name}}}{hasher.hash(secret)}"
    handler = _crypt_handler(data) if scheme.expensive else None
    if handler is not None and cost:
        return f"{{{scheme.name}}}{handler.using(**cost).hash(secret)}"
    return f"{{{scheme.name}}}{scheme.hash(secret, encoding)}"


def stored_scheme(stored: str, default_scheme: str = "PLAIN") -> str:
    """Canonical name of the scheme `stored` uses, e.g. for `user list` or a rehash policy.

    Raises `UnknownPasswordSchemeError` exactly when `verify_password` would.
    """
    name, _ = _split_scheme(stored, default_scheme)
    scheme, _ = _lookup_scheme(name)
    return scheme.name


def supported_schemes() -> tuple[str, ...]:
    """Scheme names usable on this host, aliases included, sorted."""
    return tuple(sorted(name for name, s in _SCHEMES.items() if s.available()))


# --- Dovecot framing ---------------------------------------------------------------


class _Encoding(Enum):
    """How a binary digest is written after the `}`."""

    BASE64 = "base64"
    HEX = "hex"


_ENCODING_SUFFIXES = {"B64": _Encoding.BASE64, "BASE64": _Encoding.BASE64, "HEX": _Encoding.HEX}


@dataclass(frozen=True)
class _Scheme:
    """One password scheme: how to verify and hash, and whether that costs real CPU.

    `encoding` is the default encoding for digest schemes, which accept a `.HEX`/`.B64`
    suffix on the name, and None for schemes whose data is a text format. The functions
    receive the suffix's encoding, or None when the name carried none.
    """

    name: str
    verify: Callable[[bytes, str, _Encoding | None], bool]
    hash: Callable[[bytes, _Encoding | None], str]
    expensive: bool = False
    encoding: _Encoding | None = None
    available: Callable[[], bool] = lambda: True
    unavailable_reason: str = ""


def _split_scheme(stored: str, default_scheme: str) -> tuple[str, str]:
    """Separate `{SCHEME}` from the data, following Dovecot's `password_get_scheme`.

    Dovecot recognises a bare `$1$salt$hash` as MD5-CRYPT whatever the default scheme,
    and treats a `{` without a closing `}` as part of the data, not as an error.
    """
    if stored.startswith("$1$") and stored.find("$", 3) != -1:
        return "MD5-CRYPT", stored
    if stored.startswith("{"):
        end = stored.find("}")
        if end != -1:
            return stored[1:end], stored[end + 1 :]
    return default_scheme, stored


def _lookup_scheme(name: str) -> tuple[_Scheme, _Encoding | None]:
    """The scheme and data encoding a (case-insensitive) name such as `sha256.hex` selects."""
    upper = name.strip().upper()
    base, dot, suffix = upper.partition(".")
    scheme = _SCHEMES.get(base)
    if scheme is None:
        raise UnknownPasswordSchemeError(
            f"unknown password scheme '{name}' (supported: {', '.join(supported_schemes())})"
        )
    if not scheme.available():
        raise UnknownPasswordSchemeError(
            f"password scheme '{name}' is not usable on this host: {scheme.unavailable_reason}"
        )
    if not dot:
        return scheme, None
    if scheme.encoding is None or suffix not in _ENCODING_SUFFIXES:
        raise UnknownPasswordSchemeError(
            f"unknown password scheme '{name}': only digest schemes take an encoding "
            f"suffix, and it must be .HEX, .B64 or .BASE64"
        )
    return scheme, _ENCODING_SUFFIXES[suffix]


def _secret_bytes(password: str) -> bytes | None:
    """UTF-8 bytes of the password; surrogateescape keeps raw 8-bit bytes a front end
    decoded that way, so a non-UTF-8 password still hashes to what Dovecot would."""
    try:
        return password.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def _encode(raw: bytes, encoding: _Encoding) -> str:
    if encoding is _Encoding.HEX:
        return raw.hex()
    return base64.b64encode(raw).decode("ascii")


def _decode(data: str, encoding: _Encoding) -> bytes | None:
    try:
        if encoding is _Encoding.HEX:
            return bytes.fromhex(data)
        return base64.b64decode(data.encode("ascii"), validate=True)
    except (ValueError, binascii.Error):  # UnicodeEncodeError is a ValueError too
        return None


# --- plain text --------------------------------------------------------------------------


def _plain_verify(secret: bytes, data: str, _encoding: _Encoding | None) -> bool:
    expected = _secret_bytes(data)
    return expected is not None and hmac.compare_digest(secret, expected)


def _plain_hash(secret: bytes, _encoding: _Encoding | None) -> str:
    return secret.decode("utf-8", "surrogateescape")


# --- unsalted and salted digests ----------------------------------------------------------


def _digest_scheme(name: str, algorithm: str, default: _Encoding) -> _Scheme:
    """A `{SHA256}`-style scheme: the encoded digest of the password, no salt."""
    size = hashlib.new(algorithm).digest_size

    def verify(secret: bytes, data: str, encoding: _Encoding | None) -> bool:
        if encoding is None:
            # Like Dovecot, guess between hex and base64 by length when the name carries
            # no suffix: both are common in the wild for the same scheme.
            encoding = _Encoding.HEX if len(data) == size * 2 else _Encoding.BASE64
        raw = _decode(data, encoding)
        if raw is None or len(raw) != size:
            return False
        return hmac.compare_digest(hashlib.new(algorithm, secret).digest(), raw)

    def hash_(secret: bytes, encoding: _Encoding | None) -> str:
        return _encode(hashlib.new(algorithm, secret).digest(), encoding or default)

    return _Scheme(name, verify, hash_, encoding=default)


def _salted_digest_scheme(name: str, algorithm: str) -> _Scheme:
    """A `{SSHA256}`-style scheme: encoded digest(password + salt) followed by the salt.

    Any salt length verifies, as in Dovecot; new hashes get 16 random bytes rather than
    Dovecot's 4 because the format allows it and a longer salt costs nothing.
    """
    size = hashlib.new(algorithm).digest_size

    def verify(secret: bytes, data: str, encoding: _Encoding | None) -> bool:
        raw = _decode(data, encoding or _Encoding.BASE64)
        if raw is None or len(raw) <= size:
            return False
        digest, salt = raw[:size], raw[size:]
        return hmac.compare_digest(hashlib.new(algorithm, secret + salt).digest(), digest)

    def hash_(secret: bytes, encoding: _Encoding | None) -> str:
        salt = secrets.token_bytes(16)
        digest = hashlib.new(algorithm, secret + salt).digest()
        return _encode(digest + salt, encoding or _Encoding.BASE64)

    return _Scheme(name, verify, hash_, encoding=_Encoding.BASE64)


# --- crypt(3) formats -------------------------------------------------------------------


def _bcrypt_available() -> bool:
    return bool(bcrypt.has_backend())


_BCRYPT_MISSING = (
    "BLF-CRYPT needs the 'bcrypt' Python package, which is not installed; "
    "install it (pip install bcrypt) or have the user set a new password with another scheme"
)

# Order matters only for speed: des_crypt's identify() accepts any 13-character string,
# so it goes last.
_CRYPT_HANDLERS: tuple[Any, ...] = (sha512_crypt, sha256_crypt, md5_crypt, bcrypt, des_crypt)


def _crypt_verify(secret: bytes, data: str, _encoding: _Encoding | None) -> bool:
    """Verify any crypt(3) string, whatever the `{...-CRYPT}` name said.

    Dovecot hands every crypt scheme's data to libc `crypt()`, which dispatches on the
    `$id$` prefix, so `{SHA512-CRYPT}$1$...` verifies there; mailpush accepts the same.
    """
    for handler in _CRYPT_HANDLERS:
        try:
            if not handler.identify(data):
                continue
        except (ValueError, TypeError):
            return False
        if handler is bcrypt and not _bcrypt_available():
            raise UnknownPasswordSchemeError(_BCRYPT_MISSING)
        try:
            return bool(handler.verify(secret, data))
        except (ValueError, TypeError):
            return False
    return False


def _crypt_handler(data: str) -> Any:
    """The passlib handler for a crypt(3) string, or None."""
    for handler in _CRYPT_HANDLERS:
        try:
            if handler.identify(data):
                return handler
        except (ValueError, TypeError):
            return None
    return None


def _cost_settings(data: str) -> dict[str, Any]:
    """The cost parameters a stored hash carries (Argon2's m, t, p; crypt rounds),
    as keyword settings for its hasher; empty for schemes without any or on garbage."""
    if data.startswith("$argon2"):
        try:
            params = argon2.extract_parameters(data)
        except (argon2.exceptions.InvalidHashError, ValueError):
            return {}
        return {"m": params.memory_cost, "t": params.time_cost, "p": params.parallelism}
    handler = _crypt_handler(data)
    if handler is None or "rounds" not in handler.setting_kwds:
        return {}
    if handler is bcrypt and not _bcrypt_available():
        return {}
    try:
        return {"rounds": handler.from_string(data).rounds}
    except (ValueError, TypeError):
        return {}


def _crypt_scheme(name: str, handler: Any, **settings: Any) -> _Scheme:
    configured = handler.using(**settings) if settings else handler

    def hash_(secret: bytes, _encoding: _Encoding | None) -> str:
        return str(configured.hash(secret))

    if handler is bcrypt:
        return _Scheme(
            name,
            _crypt_verify,
            hash_,
            expensive=True,
            available=_bcrypt_available,
            unavailable_reason=_BCRYPT_MISSING,
        )
    return _Scheme(name, _crypt_verify, hash_, expensive=True)


# --- Argon2 ----------------------------------------------------------------------------


# Dovecot hashes Argon2 through libsodium, which only computes a single lane: p must be 1
# or Dovecot cannot verify what mailpush writes. m and t match `doveadm pw -s ARGON2ID`.
def _argon2_hasher(variant: argon2.Type) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=3, memory_cost=65536, parallelism=1, hash_len=32, salt_len=16, type=variant
    )


_ARGON2_HASHERS = {
    "ARGON2I": _argon2_hasher(argon2.Type.I),
    "ARGON2ID": _argon2_hasher(argon2.Type.ID),
}


def _argon2_verify(secret: bytes, data: str, _encoding: _Encoding | None) -> bool:
    """Verify by the variant the hash itself names, as libsodium does for Dovecot."""
    try:
        return _ARGON2_HASHERS["ARGON2ID"].verify(data, secret)
    except (argon2.exceptions.VerificationError, argon2.exceptions.InvalidHashError):
        return False
    except ValueError:  # a non-ASCII hash string
        return False


def _argon2_scheme(name: str) -> _Scheme:
    hasher = _ARGON2_HASHERS[name]

    def hash_(secret: bytes, _encoding: _Encoding | None) -> str:
        return hasher.hash(secret)

    return _Scheme(name, _argon2_verify, hash_, expensive=True)


# --- the table ------------------------------------------------------------------------


def _build_schemes() -> dict[str, _Scheme]:
    plain = _Scheme("PLAIN", _plain_verify, _plain_hash)
    sha1 = _digest_scheme("SHA", "sha1", _Encoding.BASE64)
    md5_crypt_scheme = _crypt_scheme("MD5-CRYPT", md5_crypt)
    return {
        "PLAIN": plain,
        "CLEAR": plain,
        "CLEARTEXT": plain,
        "PLAIN-MD5": _digest_scheme("PLAIN-MD5", "md5", _Encoding.HEX),
        "LDAP-MD5": _digest_scheme("LDAP-MD5", "md5", _Encoding.BASE64),
        "SHA": sha1,
        "SHA1": sha1,
        "SHA256": _digest_scheme("SHA256", "sha256", _Encoding.BASE64),
        "SHA512": _digest_scheme("SHA512", "sha512", _Encoding.BASE64),
        "SMD5": _salted_digest_scheme("SMD5", "md5"),
        "SSHA": _salted_digest_scheme("SSHA", "sha1"),
        "SSHA256": _salted_digest_scheme("SSHA256", "sha256"),
        "SSHA512": _salted_digest_scheme("SSHA512", "sha512"),
        # Dovecot's own CRYPT writes 8-character-truncating DES; libc crypt() verifies a
        # `$6$` string under {CRYPT} just as well, so new CRYPT hashes use SHA512-CRYPT.
        "CRYPT": _crypt_scheme("CRYPT", sha512_crypt, rounds=5000),
        "MD5-CRYPT": md5_crypt_scheme,
        "MD5": md5_crypt_scheme,  # Dovecot's MD5 is MD5-CRYPT, not a bare digest
        # rounds=5000 is the SHA-crypt default, which both Dovecot and passlib then omit
        # from the string; any rounds= value in a stored hash verifies.
        "SHA256-CRYPT": _crypt_scheme("SHA256-CRYPT", sha256_crypt, rounds=5000),
        "SHA512-CRYPT": _crypt_scheme("SHA512-CRYPT", sha512_crypt, rounds=5000),
        "BLF-CRYPT": _crypt_scheme("BLF-CRYPT", bcrypt, ident="2y"),
        "ARGON2I": _argon2_scheme("ARGON2I"),
        "ARGON2ID": _argon2_scheme("ARGON2ID"),
    }


_SCHEMES = _build_schemes()

_executor: ThreadPoolExecutor | None = None


def _verify_executor() -> ThreadPoolExecutor:
    global _executor
    if _executor is None:
        _executor = ThreadPoolExecutor(
            max_workers=os.cpu_count() or 2, thread_name_prefix="mailpush-passwd"
        )
    return _executor
