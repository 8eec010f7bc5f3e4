"""Dovecot passwd-files: reading them for logins and deliveries, editing them for `user`.

A line is `user:password:uid:gid:gecos:home:shell:extra_fields`; every field after the
user name may be omitted. Extra fields are space-separated `key=value` (or bare `key`)
items: `userdb_KEY=VALUE` are per-user userdb/plugin settings, the rest are passdb
fields such as `nopassword` or `allow_nets=...`, kept as written for the caller to act on.

Parsing follows Dovecot's `db-passwd-file.c`, including its leniency: whitespace-only
lines and `#` comments are skipped, a repeated user name keeps its first line (and is
logged), and the old `user:pass:uid:gid:gecos:home:shell::mail` layout still yields a
`mail` userdb field. Two mistakes Dovecot would hide are reported with file and line
instead, because each silently locks a user out: a line with an empty user name and an
extra field with an empty name.

The management functions rewrite the whole file atomically under an `flock` on
`<file>.lock`, leaving comments and the text of every untouched line as they were, so a
server reading the file concurrently sees either the old or the new version.
"""

from __future__ import annotations

import fcntl
import logging
import os
import stat
import tempfile
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from mailpush.auth.password_schemes import hash_cost, hash_password
from mailpush.errors import (
    AuthError,
    InvalidPasswordError,
    NoSuchUserError,
    PasswdFileError,
    UserExistsError,
)

__all__ = [
    "PasswdFile",
    "UserRecord",
    "add_user",
    "delete_user",
    "list_users",
    "set_password",
]

logger = logging.getLogger(__name__)

_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True)
class UserRecord:
    """One user as the passwd-file defines them.

    `password` keeps its `{SCHEME}` prefix exactly as stored (hand it to
    `verify_password`); it is left out of the repr so it never reaches a log.
    `userdb_fields` are the `userdb_` extra fields with the prefix removed: they
    override the global `plugin {}` settings for this user. `extra_fields` holds the
    other extra fields, a bare `key` mapping to "".
    """

    username: str
    password: str = field(default="", repr=False)
    uid: str = ""
    gid: str = ""
    home: str = ""
    extra_fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    userdb_fields: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def __post_init__(self) -> None:
        # Read-only copies, so a record handed around the server cannot be changed
        # behind the cache that shares it.
        for name in ("extra_fields", "userdb_fields"):
            value = getattr(self, name)
            object.__setattr__(self, name, MappingProxyType(dict(value)) if value else _EMPTY)

    def __reduce__(
        self,
    ) -> tuple[type[UserRecord], tuple[str, str, str, str, str, dict[str, str], dict[str, str]]]:
        # mappingproxy cannot be pickled; records cross process boundaries as plain dicts.
        return (
            UserRecord,
            (
                self.username,
                self.password,
                self.uid,
                self.gid,
                self.home,
                dict(self.extra_fields),
                dict(self.userdb_fields),
            ),
        )


class PasswdFile:
    """A passwd-file that follows edits to it without a restart.

    Each lookup costs one `stat`; the file is parsed again only when its inode, size,
    mtime or ctime changed. A missing file holds no users, so a server can start before
    its first `mailpush user add`. A file that cannot be parsed raises `PasswdFileError`
    on every lookup until it is fixed, rather than serving a stale copy, so the admin
    sees the error and deliveries are deferred instead of bounced.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._snapshot = _Snapshot.empty()
        #: (snapshot, default scheme) → `typical_password`'s answer for it.
        self._typical: tuple[_Snapshot, str, str | None] | None = None

    def lookup(self, username: str) -> UserRecord | None:
        """The user named exactly `username`, else the one entry equal ignoring case.

        A name that matches several entries only when case is ignored is not guessed at.
        """
        snapshot = self._current()
        record = snapshot.by_name.get(username)
        if record is None:
            record = snapshot.by_lower_name.get(username.lower())
        return record

    def users(self) -> list[UserRecord]:
        """Every user, in file order."""
        return list(self._current().records)

    def typical_password(self, default_scheme: str) -> str | None:
        """The stored password whose scheme and cost (`hash_cost`) most users share.

        A login for an unknown user is checked against a dummy hash made like this
        one, so that it takes as long as a real user's failed login. None when no
        user has a usable password. Computed once per version of the file; it reads
        every entry, so call it off the event loop.
        """
        snapshot = self._current()
        cached = self._typical
        if cached is not None and cached[0] is snapshot and cached[1] == default_scheme:
            return cached[2]
        costs: Counter[tuple[str, str]] = Counter()
        example: dict[tuple[str, str], str] = {}
        for record in snapshot.records:
            try:
                cost = hash_cost(record.password, default_scheme)
            except AuthError:
                continue
            costs[cost] += 1
            example.setdefault(cost, record.password)
        typical = example[costs.most_common(1)[0][0]] if costs else None
        self._typical = (snapshot, default_scheme, typical)
        return typical

    def _current(self) -> _Snapshot:
        key = _stat_key(self.path)
        with self._lock:
            if key != self._snapshot.key:
                self._snapshot = _Snapshot.load(self.path)
            snapshot = self._snapshot
        if snapshot.error is not None:
            raise PasswdFileError(snapshot.error)
        return snapshot


def list_users(path: str | os.PathLike[str]) -> list[UserRecord]:
    """Every user in the file, in file order; a missing file has none."""
    return PasswdFile(path).users()


def add_user(
    path: str | os.PathLike[str],
    username: str,
    password_plain: str,
    scheme: str = "ARGON2ID",
    uid: str = "",
    gid: str = "",
    home: str = "",
    extra_fields: Mapping[str, str] | None = None,
) -> UserRecord:
    """Append a user, creating the file (mode 0600) if needed.

    `extra_fields` are written as given, so per-user settings take their `userdb_`
    prefix here (`{"userdb_quota_rule": "*:storage=1G"}`); a "" value is written as a
    bare key. Raises `UserExistsError` also for a name differing only in case, since
    the case-insensitive lookup could no longer tell the two apart.
    """
    _check_username(username)
    for name, value in (("uid", uid), ("gid", gid), ("home", home)):
        _check_field(name, value)
    extras = _format_extra_fields(extra_fields or {})
    stored = _hash_for_file(password_plain, scheme)
    fields = [username, stored, uid, gid, "", home, "", extras]
    while fields[-1] == "":
        fields.pop()
    line = ":".join(fields)
    target = _resolve(path)
    with _exclusive_lock(target):
        text, mode = _read_text(target)
        for _, existing in _parse(text, target):
            if existing.username.lower() == username.lower():
                raise UserExistsError(f"{target}: user '{existing.username}' already exists")
        if text and not text.endswith("\n"):
            text += "\n"
        _write_atomically(target, f"{text}{line}\n", mode)
    added = _parse_line(line, str(target), 0)
    assert added is not None  # a validated user name makes the line a user line
    return added


def delete_user(path: str | os.PathLike[str], username: str) -> None:
    """Remove every line for exactly `username`; raises `NoSuchUserError` if none."""
    target = _resolve(path)
    with _exclusive_lock(target):
        text, mode = _read_text(target)
        entries = _parse(text, target)
        doomed = {index for index, record in entries if record.username == username}
        if not doomed:
            raise NoSuchUserError(_no_such_user(target, username, entries))
        lines = text.split("\n")
        kept = [line for index, line in enumerate(lines) if index not in doomed]
        _write_atomically(target, "\n".join(kept), mode)


def set_password(
    path: str | os.PathLike[str], username: str, password_plain: str, scheme: str = "ARGON2ID"
) -> None:
    """Replace the password field of `username`'s line(s), leaving every other field."""
    stored = _hash_for_file(password_plain, scheme)
    target = _resolve(path)
    with _exclusive_lock(target):
        text, mode = _read_text(target)
        entries = _parse(text, target)
        indexes = [index for index, record in entries if record.username == username]
        if not indexes:
            raise NoSuchUserError(_no_such_user(target, username, entries))
        lines = text.split("\n")
        for index in indexes:
            body = lines[index].removesuffix("\r")
            line_end = lines[index][len(body) :]
            fields = body.split(":")
            if len(fields) == 1:
                fields.append(stored)
            else:
                fields[1] = stored
            lines[index] = ":".join(fields) + line_end
        _write_atomically(target, "\n".join(lines), mode)


# --- parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Snapshot:
    """One parse of the file, valid while `key` (from `_stat_key`) is unchanged."""

    key: tuple[int, ...] | None
    records: tuple[UserRecord, ...]
    by_name: Mapping[str, UserRecord]
    by_lower_name: Mapping[str, UserRecord]
    error: str | None = None

    @classmethod
    def empty(cls, key: tuple[int, ...] | None = None, error: str | None = None) -> _Snapshot:
        return cls(key, (), {}, {}, error)

    @classmethod
    def load(cls, path: Path) -> _Snapshot:
        try:
            with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
                # The key comes from the open file, so a replace between the caller's
                # stat and this open costs one extra parse, never a stale cache.
                key = _key_of(os.fstat(f.fileno()))
                text = f.read()
        except FileNotFoundError:
            return cls.empty()
        except OSError as exc:
            return cls.empty(_stat_key(path), f"{path}: cannot read passwd-file: {exc.strerror}")
        try:
            entries = _parse(text, path)
        except PasswdFileError as exc:
            return cls.empty(key, str(exc))
        by_name: dict[str, UserRecord] = {}
        first_line: dict[str, int] = {}
        for index, record in entries:
            if record.username in by_name:
                logger.error(
                    "%s:%d: user %r is already defined on line %d; this line is ignored",
                    path,
                    index + 1,
                    record.username,
                    first_line[record.username] + 1,
                )
                continue
            by_name[record.username] = record
            first_line[record.username] = index
        by_lower: dict[str, UserRecord | None] = {}
        for record in by_name.values():
            lower = record.username.lower()
            by_lower[lower] = None if lower in by_lower else record
        return cls(
            key,
            tuple(by_name.values()),
            by_name,
            {name: record for name, record in by_lower.items() if record is not None},
        )


def _stat_key(path: Path) -> tuple[int, ...] | None:
    try:
        return _key_of(os.stat(path))
    except FileNotFoundError:
        return None
    except OSError:
        # Unreadable for another reason: a key that never matches makes `load` report it.
        return (-1,)


def _key_of(st: os.stat_result) -> tuple[int, ...]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _parse(text: str, path: Path) -> list[tuple[int, UserRecord]]:
    """(0-based line index, record) for every user line, duplicates included.

    Lines are split on "\\n" alone, as Dovecot does; `str.splitlines` would also split
    on form feeds and Unicode separators and so renumber and rewrite lines.
    """
    entries = []
    for index, line in enumerate(text.split("\n")):
        record = _parse_line(line, str(path), index + 1)
        if record is not None:
            entries.append((index, record))
    return entries


def _parse_line(line: str, path: str, number: int) -> UserRecord | None:
    if line.endswith("\r"):
        line = line[:-1]
    if not line.strip() or line.lstrip().startswith("#"):
        return None
    fields = line.split(":")
    username = fields[0]
    if not username:
        raise PasswdFileError(f"{path}:{number}: the line starts with ':', so it names no user")
    password = fields[1] if len(fields) > 1 else ""
    uid, gid, _gecos, home, _shell = (fields[2:7] + [""] * 5)[:5]
    rest = fields[7:]
    extra: dict[str, str] = {}
    userdb: dict[str, str] = {}
    if rest and rest[0] == "":
        # Old layout `...:shell::mail`: an empty field, then the mail location.
        mail = ":".join(rest[1:])
        if mail:
            userdb["mail"] = mail
    elif rest:
        for item in ":".join(rest).split():
            key, _, value = item.partition("=")
            name = key.removeprefix("userdb_")
            if not name:
                raise PasswdFileError(
                    f"{path}:{number}: extra field '{item}' has no name before '='"
                )
            (userdb if key.startswith("userdb_") else extra)[name] = value
    return UserRecord(
        username=username,
        password=password,
        uid=uid,
        gid=gid,
        home=home,
        extra_fields=extra,
        userdb_fields=userdb,
    )


# --- writing ---------------------------------------------------------------------------


def _check_username(username: str) -> None:
    if not username:
        raise PasswdFileError("user name is empty")
    bad = [c for c in username if c == ":" or c.isspace() or not c.isprintable()]
    if bad:
        raise PasswdFileError(
            f"user name {username!r} contains {bad[0]!r}; a passwd-file user name cannot "
            f"contain ':', spaces or control characters"
        )
    if username.startswith("#"):
        raise PasswdFileError(
            f"user name {username!r} starts with '#', which would make its line a comment"
        )


def _check_field(name: str, value: str) -> None:
    if ":" in value or not value.isprintable():
        raise PasswdFileError(
            f"{name} {value!r} cannot be stored in a passwd-file: it contains ':' or a "
            f"control character"
        )


def _format_extra_fields(fields: Mapping[str, str]) -> str:
    items = []
    for key, value in fields.items():
        if not key or any(c in ":=" or c.isspace() or not c.isprintable() for c in key):
            raise PasswdFileError(
                f"extra field name {key!r} must be non-empty, without ':', '=', spaces "
                f"or control characters"
            )
        if any(c.isspace() or not c.isprintable() for c in value):
            raise PasswdFileError(
                f"extra field {key}: value {value!r} cannot contain spaces or control "
                f"characters (the passwd-file separates extra fields with spaces)"
            )
        items.append(f"{key}={value}" if value else key)
    return " ".join(items)


def _hash_for_file(password_plain: str, scheme: str) -> str:
    stored = hash_password(password_plain, scheme)
    if ":" in stored or not stored.isprintable():
        raise InvalidPasswordError(
            f"a {scheme.upper()} password containing ':' or a control character cannot be "
            f"stored in a passwd-file; choose a hashing scheme such as ARGON2ID"
        )
    return stored


def _no_such_user(path: Path, username: str, entries: list[tuple[int, UserRecord]]) -> str:
    near = [r.username for _, r in entries if r.username.lower() == username.lower()]
    hint = f" (did you mean '{near[0]}'?)" if near else ""
    return f"{path}: no user '{username}'{hint}"


def _resolve(path: str | os.PathLike[str]) -> Path:
    """The real file behind `path`, so that a symlinked passwd-file stays a symlink."""
    return Path(os.path.realpath(path))


@contextmanager
def _exclusive_lock(path: Path) -> Iterator[None]:
    """Serialise writers across processes.

    The lock is on a separate file because each write replaces the passwd-file's inode:
    a lock on the passwd-file itself would be held on a file that no longer exists.
    The lock file is left in place, since removing it would race with the next writer.
    """
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise PasswdFileError(f"{lock_path}: cannot create lock file: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _read_text(path: Path) -> tuple[str, int | None]:
    """The file's text and permission bits; ("", None) for a missing file.

    surrogateescape carries bytes that are not UTF-8 through a rewrite unchanged.
    """
    try:
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            return f.read(), stat.S_IMODE(os.fstat(f.fileno()).st_mode)
    except FileNotFoundError:
        return "", None
    except OSError as exc:
        raise PasswdFileError(f"{path}: cannot read passwd-file: {exc.strerror}") from exc


def _write_atomically(path: Path, text: str, mode: int | None) -> None:
    """Replace `path` with `text` so that readers see the old or the new file, whole.

    The temporary file lives in the same directory, because `os.replace` is atomic only
    within one file system; it is fsynced before the rename and the directory after, so
    a crash cannot leave an empty or half-written passwd-file behind.
    """
    try:
        fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise PasswdFileError(f"{path}: cannot write passwd-file: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), 0o600 if mode is None else mode)
            _keep_owner(f.fileno(), path)
            os.fsync(f.fileno())
        os.replace(tmp_name, path)
    except BaseException as exc:
        with suppress(FileNotFoundError):
            os.unlink(tmp_name)
        if isinstance(exc, OSError):
            raise PasswdFileError(f"{path}: cannot write passwd-file: {exc.strerror}") from exc
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _keep_owner(fd: int, path: Path) -> None:
    """When root edits a file owned by the mail user, give the new file the same owner,
    or the server could no longer read it after the rename."""
    if os.geteuid() != 0:
        return
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    os.fchown(fd, st.st_uid, st.st_gid)
