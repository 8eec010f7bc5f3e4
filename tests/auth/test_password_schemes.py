"""Password schemes verify what Dovecot and standard tools write, and hash what they read.

The fixed vectors come from outside mailpush: `openssl passwd`, glibc `crypt()`,
`openssl dgst` and argon2-cffi with a fixed salt, all for the password "secret".
"""

from __future__ import annotations

import asyncio
import hashlib
import threading

import pytest
from passlib.hash import bcrypt, sha512_crypt

from mailpush.auth import password_schemes
from mailpush.auth.password_schemes import (
    hash_password,
    stored_scheme,
    supported_schemes,
    verify_password,
    verify_password_async,
)
from mailpush.errors import InvalidPasswordError, UnknownPasswordSchemeError

# openssl passwd -6 -salt saltsalt secret
OPENSSL_SHA512_CRYPT = (
    "$6$saltsalt$TVLlQcbpFVof5W3Yz4DTP6gRstiNuHwwTt6GLc1E5n0U0aDehy0S5knV8wiOQSpT0Y77vwPZN"
    ".Pq.H91p5hVO1"
)
# glibc crypt("secret", "$6$rounds=10000$saltsalt$")
GLIBC_SHA512_CRYPT_10000_ROUNDS = (
    "$6$rounds=10000$saltsalt$WowrPBpEDVlCoruBosYlrZycTCx3//TyDHYqEhX9DUHHt0XTztUqzQDDUuvUGRA8"
    "aUe9p55hcAxeGcu58sm3u."
)
# openssl passwd -5 -salt saltsalt secret
OPENSSL_SHA256_CRYPT = "$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA"
# openssl passwd -1 -salt saltsalt secret
OPENSSL_MD5_CRYPT = "$1$saltsalt$9xy1btjgzLYfb7hivXtC//"
# glibc crypt("secret", "sa")
GLIBC_DES_CRYPT = "saHW9GdxihkGQ"
# glibc crypt("secret", "$2y$05$abcdefghijklmnopqrstuu")
GLIBC_BCRYPT = "$2y$05$abcdefghijklmnopqrstuuOQiyCxlgf/oeuTqixKmWdcYUh4Hjl0a"
# argon2-cffi, t=3 m=65536 p=1 (Dovecot's parameters), salt b"saltsaltsaltsalt"
ARGON2ID = (
    "$argon2id$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA"
    "$pkbZJzB7YF+Dit76cIMiu5JI+Lz9bC8L06rSXjorlSA"
)
ARGON2I = (
    "$argon2i$v=19$m=65536,t=3,p=1$c2FsdHNhbHRzYWx0c2FsdA"
    "$aFvZcbuvxzVBaG2cRzp6l325t4y7DrI+rUlvXi98sqw"
)

FIXED_VECTORS = [
    "{PLAIN}secret",
    "{CLEAR}secret",
    "{CLEARTEXT}secret",
    "{plain}secret",
    f"{{SHA512-CRYPT}}{OPENSSL_SHA512_CRYPT}",
    f"{{SHA512-CRYPT}}{GLIBC_SHA512_CRYPT_10000_ROUNDS}",
    f"{{SHA256-CRYPT}}{OPENSSL_SHA256_CRYPT}",
    f"{{MD5-CRYPT}}{OPENSSL_MD5_CRYPT}",
    f"{{MD5}}{OPENSSL_MD5_CRYPT}",
    f"{{CRYPT}}{GLIBC_DES_CRYPT}",
    f"{{CRYPT}}{OPENSSL_SHA512_CRYPT}",
    f"{{ARGON2ID}}{ARGON2ID}",
    f"{{ARGON2I}}{ARGON2I}",
    # printf secret | openssl dgst -sha1|-sha256|-sha512 -binary | base64
    "{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=",
    "{SHA256}K7gNU3sdo+OL0wNhqoVWhr3g6s1xYv72ol/pe/Unols=",
    "{SHA512}vSsar3708Jvp9Szi2NWZZ02Bqp1qRCFpbcTZPdBhnWgs5WtNZKnvCXdhztmeD2cmW192CF5bDufKRpayrW/isg==",
    # printf secret | openssl dgst -md5
    "{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69",
    "{LDAP-MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==",
    # (digest("secret" + "NaCl") + "NaCl") | base64, digests from openssl dgst
    "{SSHA}dj2lH1ocucmj5OQsjP6mQrVx6FhOYUNs",
    "{SSHA256}MiBKWPJ1JQtCfn9IyOCVrjIVaDjvjq7QEJ2338bLy6lOYUNs",
    "{SSHA512}iRjXxi6rhPYpuxX1j9XfoMia+YOZ6MBLltGn46bREX+b3os6Fh/Dl8WNN5YGrc4n7fSBhWch1IoYiLBEukHNAE5hQ2w=",
]


@pytest.mark.parametrize("stored", FIXED_VECTORS)
def test_fixed_vectors_from_other_tools_verify(stored: str) -> None:
    assert verify_password(stored, "secret")
    assert not verify_password(stored, "Secret")
    assert not verify_password(stored, "")


def test_scheme_names_are_case_insensitive() -> None:
    assert verify_password(f"{{sha512-crypt}}{OPENSSL_SHA512_CRYPT}", "secret")
    assert verify_password(f"{{Argon2Id}}{ARGON2ID}", "secret")


def test_sha512_crypt_made_by_passlib_verifies() -> None:
    stored = "{SHA512-CRYPT}" + sha512_crypt.using(rounds=20000).hash("pässword")
    assert verify_password(stored, "pässword")
    assert not verify_password(stored, "password")


def test_digest_schemes_accept_hex_and_base64_like_dovecot() -> None:
    # Without a suffix Dovecot guesses the encoding from the length.
    assert verify_password("{SHA256}" + _sha256_hex("secret"), "secret")
    assert verify_password("{PLAIN-MD5}Xr4ilOzQ4PCOq3aQ0qbuaQ==", "secret")
    assert verify_password("{SHA256.HEX}" + _sha256_hex("secret"), "secret")
    assert verify_password("{SSHA.HEX}763da51f5a1cb9c9a3e4e42c8cfea642b571e8584e61436c", "secret")


def test_stored_value_without_prefix_uses_the_default_scheme() -> None:
    assert verify_password("secret", "secret")
    assert verify_password(OPENSSL_SHA512_CRYPT, "secret", default_scheme="SHA512-CRYPT")
    assert verify_password(OPENSSL_SHA512_CRYPT, "secret", default_scheme="CRYPT")
    assert not verify_password(OPENSSL_SHA512_CRYPT, "secret", default_scheme="PLAIN")


def test_bare_md5_crypt_string_is_recognised_whatever_the_default() -> None:
    assert verify_password(OPENSSL_MD5_CRYPT, "secret", default_scheme="PLAIN")


def test_open_brace_without_close_is_data_not_a_scheme() -> None:
    assert verify_password("{secret", "{secret")


def test_crypt_schemes_verify_any_crypt_format_as_libc_does() -> None:
    assert verify_password(f"{{SHA512-CRYPT}}{OPENSSL_MD5_CRYPT}", "secret")


@pytest.mark.parametrize(
    "stored",
    [
        "{SHA512-CRYPT}$6$saltsalt$truncated",
        "{SHA512-CRYPT}",
        "{SHA512-CRYPT}$6$",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$broken",
        "{ARGON2ID}not-argon2",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$c2FsdA$é",
        "{SHA256}not base64!",
        "{SHA256}c2hvcnQ=",
        "{SSHA}c2hvcnQ=",
        "{SSHA256.HEX}zz",
        "{CRYPT}$9$unknown$format",
    ],
)
def test_malformed_stored_value_never_matches_and_raises_nothing(stored: str) -> None:
    assert verify_password(stored, "secret") is False


def test_unknown_scheme_is_a_configuration_error_listing_supported_schemes() -> None:
    with pytest.raises(UnknownPasswordSchemeError, match=r"'ROT13'.*SHA512-CRYPT"):
        verify_password("{ROT13}frperg", "secret")
    with pytest.raises(UnknownPasswordSchemeError):
        verify_password("secret", "secret", default_scheme="NOPE")
    with pytest.raises(UnknownPasswordSchemeError):
        hash_password("secret", "NOPE")


def test_encoding_suffix_only_applies_to_digest_schemes() -> None:
    with pytest.raises(UnknownPasswordSchemeError, match="suffix"):
        verify_password(f"{{SHA512-CRYPT.HEX}}{OPENSSL_SHA512_CRYPT}", "secret")
    with pytest.raises(UnknownPasswordSchemeError, match="suffix"):
        verify_password("{SHA256.ROT13}x", "secret")


@pytest.mark.skipif(bcrypt.has_backend(), reason="a bcrypt backend is installed")
def test_blf_crypt_without_bcrypt_package_says_what_to_install() -> None:
    with pytest.raises(UnknownPasswordSchemeError, match="pip install bcrypt"):
        verify_password(f"{{BLF-CRYPT}}{GLIBC_BCRYPT}", "secret")
    with pytest.raises(UnknownPasswordSchemeError, match="pip install bcrypt"):
        verify_password(f"{{CRYPT}}{GLIBC_BCRYPT}", "secret")
    assert "BLF-CRYPT" not in supported_schemes()


@pytest.mark.skipif(not bcrypt.has_backend(), reason="no bcrypt backend installed")
def test_blf_crypt_verifies_when_bcrypt_is_installed() -> None:
    assert verify_password(f"{{BLF-CRYPT}}{GLIBC_BCRYPT}", "secret")
    assert hash_password("secret", "BLF-CRYPT").startswith("{BLF-CRYPT}$2y$")


@pytest.mark.parametrize("scheme", [s for s in supported_schemes() if not s.startswith("ARGON")])
def test_every_scheme_roundtrips(scheme: str) -> None:
    stored = hash_password("correct horse ☃", scheme)
    assert stored.startswith(f"{{{scheme}}}")
    assert verify_password(stored, "correct horse ☃")
    assert not verify_password(stored, "correct horse")


def test_argon2id_is_the_default_and_uses_dovecot_parameters() -> None:
    stored = hash_password("secret")
    assert stored.startswith("{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$")
    assert verify_password(stored, "secret")
    assert not verify_password(stored, "secreT")


def test_argon2i_roundtrips() -> None:
    stored = hash_password("secret", "argon2i")
    assert stored.startswith("{ARGON2I}$argon2i$")
    assert verify_password(stored, "secret")


def test_sha_crypt_hashes_use_dovecot_default_rounds() -> None:
    # 5000 rounds is implicit, so the string has no rounds= field, like doveadm pw.
    assert hash_password("secret", "SHA512-CRYPT").startswith("{SHA512-CRYPT}$6$")
    assert "rounds=" not in hash_password("secret", "SHA512-CRYPT")
    assert hash_password("secret", "SHA256-CRYPT").startswith("{SHA256-CRYPT}$5$")


def test_crypt_hashes_are_sha512_crypt_not_truncating_des() -> None:
    stored = hash_password("longer than eight", "CRYPT")
    assert stored.startswith("{CRYPT}$6$")
    assert not verify_password(stored, "longer t")


def test_hashes_are_salted() -> None:
    assert hash_password("secret", "SSHA256") != hash_password("secret", "SSHA256")
    assert hash_password("secret", "SHA512-CRYPT") != hash_password("secret", "SHA512-CRYPT")


def test_hex_suffix_selects_hex_output() -> None:
    assert hash_password("secret", "sha256.hex") == "{SHA256.HEX}" + _sha256_hex("secret")
    assert hash_password("secret", "PLAIN-MD5") == "{PLAIN-MD5}5ebe2294ecd0e0f08eab7690d2a6ee69"


def test_password_a_scheme_cannot_hash_raises_invalid_password() -> None:
    with pytest.raises(InvalidPasswordError):
        hash_password("nul\0byte", "SHA512-CRYPT")


def test_stored_scheme_names_the_canonical_scheme() -> None:
    assert stored_scheme("{clear}x") == "PLAIN"
    assert stored_scheme(OPENSSL_SHA512_CRYPT, "SHA512-CRYPT") == "SHA512-CRYPT"
    assert stored_scheme(OPENSSL_MD5_CRYPT) == "MD5-CRYPT"


async def test_async_verification_runs_expensive_schemes_off_the_event_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loop_thread = threading.get_ident()
    verifying_threads: list[int] = []
    original = password_schemes.verify_password

    def recording(stored: str, password: str, default_scheme: str = "PLAIN") -> bool:
        verifying_threads.append(threading.get_ident())
        return original(stored, password, default_scheme)

    monkeypatch.setattr(password_schemes, "verify_password", recording)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.001)

    task = asyncio.create_task(ticker())
    assert await verify_password_async(f"{{ARGON2ID}}{ARGON2ID}", "secret")
    task.cancel()
    assert verifying_threads and loop_thread not in verifying_threads
    assert ticks > 1, "the event loop kept running while Argon2 verified"


async def test_async_verification_matches_sync_results() -> None:
    assert await verify_password_async("{PLAIN}secret", "secret")
    assert not await verify_password_async(f"{{SHA512-CRYPT}}{OPENSSL_SHA512_CRYPT}", "nope")
    results = await asyncio.gather(
        *(verify_password_async(f"{{ARGON2ID}}{ARGON2ID}", p) for p in ("secret", "bad"))
    )
    assert results == [True, False]
    with pytest.raises(UnknownPasswordSchemeError):
        await verify_password_async("{NOPE}x", "x")


def _sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()
