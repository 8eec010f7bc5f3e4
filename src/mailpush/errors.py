"""Every failure mailpush raises on purpose, in one tree.

Callers catch the narrowest class they can act on; the top-level command
catches `MailpushError` and prints its message, which is written to tell an
admin what was wrong and what to do about it.

    MailpushError
    ├── ConfigError                  the configuration cannot be used
    │   ├── ConfigFileError          the main configuration file cannot be read
    │   ├── ConfigSyntaxError        malformed file: carries file and line
    │   ├── SettingError             a setting's value is wrong: carries its name
    │   ├── LuaScriptError           a Lua push script does not compile: carries file and line
    │   ├── SyslogUnavailableError   a log setting says `syslog` and /dev/log takes no lines
    │   └── InvalidValueError        a value is not a size/duration/...; also a ValueError,
    │                                raised without a setting name for the caller to wrap
    ├── AuthError                    users and passwords
    │   ├── PasswdFileError          a passwd-file line cannot be read or written
    │   ├── UnknownPasswordSchemeError  unknown or unusable here (BLF-CRYPT without bcrypt)
    │   ├── InvalidPasswordError     a new password the chosen scheme cannot store
    │   ├── UserExistsError / NoSuchUserError (management commands)
    │   └── TooManyLoginsWaitingError  a penalised IP already has its queue of logins full
    ├── StoreError                   the mail store refused an operation
    │   ├── UnknownUserError         the user has no mail account
    │   ├── MailboxNotFoundError
    │   ├── MailboxExistsError
    │   ├── InvalidMailboxNameError
    │   ├── TooManyMailboxesError    the user already has `quota_mailbox_count` mailboxes
    │   ├── MailboxNotSelectableError
    │   ├── MessageTooLargeError
    │   ├── StoreFullError           the disk under the store is full: writes fail, reads work
    │   ├── MessageNotFoundError     no such UID (expunged before a push read it)
    │   ├── InvalidMetadataEntryError   not an RFC 5464 entry name (/private/... or /shared/...)
    │   ├── MetadataValueTooLargeError  a METADATA value over the store's size limit
    │   └── TooManyMetadataEntriesError the user already holds the most entries allowed
    ├── ServiceError                 a listener could not be started
    ├── SieveError                   a Sieve script could not be used for a delivery
    │   ├── SieveScriptError         the script does not compile: carries file and line
    │   └── SieveRuntimeError        the script failed while running (action limit...)
    └── DriverError                  a push driver could not deliver a transaction
        ├── RetryableDriverError     try again later (network error, 5xx, 429, timeout)
        │   ├── EndpointCertificateError  an HTTPS endpoint's certificate was not accepted
        │   └── EndpointTimeoutError  no answer in time: the request may have arrived
        └── PermanentDriverError     retrying cannot help (4xx, broken script): dead letter
"""

from __future__ import annotations


class MailpushError(Exception):
    """Base of every error mailpush raises deliberately."""


# --- configuration -----------------------------------------------------------


class ConfigError(MailpushError):
    """The configuration cannot be used as written."""


class SyslogUnavailableError(ConfigError):
    """`log_path` (or `info_log_path`, `debug_log_path`) is `syslog` and no syslog socket."""


class ConfigSyntaxError(ConfigError):
    """A configuration file is malformed at a known place."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        super().__init__(f"{file}:{line}: {reason}")


class ConfigFileError(ConfigError):
    """The configuration file named on the command line cannot be read."""

    def __init__(self, file: str, reason: str) -> None:
        self.file = file
        self.reason = reason
        super().__init__(f"{file}: {reason}")


class SettingError(ConfigError):
    """A setting holds a value mailpush cannot use."""

    def __init__(self, setting: str, reason: str, where: str | None = None) -> None:
        self.setting = setting
        self.reason = reason
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{setting}: {reason}")


class LuaScriptError(ConfigError):
    """A Lua push script cannot be loaded (syntax error, unreadable file): start-up stops."""

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        where = f"{file}:{line}" if line else file
        super().__init__(f"Lua script {where}: {reason}")


class InvalidValueError(ConfigError, ValueError):
    """A text is not a valid size, duration, boolean...; the caller knows which setting.

    Raised by the value parsers in `mailpush.config.values`, which drivers also use for
    their own options (`msg_max_size=500kb`); the caller wraps it in a `SettingError`
    naming the setting and where it was written.
    """


# --- users and authentication --------------------------------------------------


class AuthError(MailpushError):
    """Users and passwords."""


class PasswdFileError(AuthError):
    """A passwd-file cannot be read or written."""


class UnknownPasswordSchemeError(AuthError):
    """A password names a scheme mailpush does not implement or cannot use on this host."""


class InvalidPasswordError(AuthError):
    """A new password cannot be hashed or stored (NUL bytes, too long, ':' in PLAIN)."""


class UserExistsError(AuthError):
    """`user add` for a name the passwd-file already holds."""


class NoSuchUserError(AuthError):
    """`user del`/`user passwd` for a name the passwd-file does not hold."""


class TooManyLoginsWaitingError(AuthError):
    """A login from an IP with a failure penalty, while enough of its logins already wait.

    Refused at once rather than queued, so that a guesser's connections cannot
    pile up behind the penalty; carries the remote IP.
    """

    def __init__(self, remote_ip: str) -> None:
        super().__init__(f"too many logins waiting from {remote_ip}")
        self.remote_ip = remote_ip


# --- the mail store --------------------------------------------------------------


class StoreError(MailpushError):
    """The mail store refused an operation; nothing was changed."""


class UnknownUserError(StoreError):
    """The store holds no account for this user."""


class MailboxNotFoundError(StoreError):
    """The named mailbox does not exist."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Mailbox doesn't exist: {name}")


class MailboxExistsError(StoreError):
    """CREATE or RENAME onto a name that is taken."""

    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"Mailbox already exists: {name}")


class InvalidMailboxNameError(StoreError):
    """A mailbox name the store will not accept (empty levels, control characters...)."""


class TooManyMailboxesError(StoreError):
    """Creating a mailbox would give the user more than `quota_mailbox_count` of them.

    IMAP answers `NO [LIMIT]` with Dovecot's text; a delivery that would have
    created the mailbox saves into INBOX instead, as Dovecot's LDA falls back.
    """

    def __init__(self, user: str, limit: int) -> None:
        self.user = user
        self.limit = limit
        super().__init__(
            f"{user} already has the most mailboxes allowed ({limit}, quota_mailbox_count);"
            " delete some before creating new ones"
        )


class MailboxNotSelectableError(StoreError):
    """The mailbox exists only as a \\Noselect parent of other mailboxes."""


class MessageTooLargeError(StoreError):
    """A message is larger than the configured limit."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"message of {size} bytes exceeds the limit of {limit} bytes")


class StoreFullError(StoreError):
    """A write failed because the disk (or filesystem quota) under the store is full.

    Nothing was changed; reads still work. IMAP answers `NO [OVERQUOTA]` as
    Dovecot does for ENOSPC, LMTP a temporary failure: retrying after space
    was freed succeeds.
    """


class MessageNotFoundError(StoreError):
    """No message with this UID: never saved, or expunged since (a late push finds this)."""

    def __init__(self, mailbox: str, uid: int) -> None:
        self.mailbox = mailbox
        self.uid = uid
        super().__init__(f"no message with UID {uid} in {mailbox}")


class InvalidMetadataEntryError(StoreError):
    """A METADATA entry name that RFC 5464 does not allow (IMAP answers BAD)."""

    def __init__(self, entry: str, reason: str) -> None:
        self.entry = entry
        self.reason = reason
        super().__init__(
            f"invalid metadata entry name {entry!r}: {reason}"
            " (write /private/NAME or /shared/NAME, e.g. /private/comment)"
        )


class MetadataValueTooLargeError(StoreError):
    """A METADATA value larger than the store accepts: IMAP `[METADATA MAXSIZE n]`."""

    def __init__(self, entry: str, size: int, limit: int) -> None:
        self.entry = entry
        self.size = size
        self.limit = limit
        super().__init__(
            f"metadata value of {entry} is {size} bytes, more than the limit of {limit} bytes"
        )


class TooManyMetadataEntriesError(StoreError):
    """Setting would give the user more METADATA entries than allowed: `[METADATA TOOMANY]`."""

    def __init__(self, user: str, limit: int) -> None:
        self.user = user
        self.limit = limit
        super().__init__(
            f"{user} already has the most metadata entries allowed ({limit});"
            " unset some before setting new ones"
        )


# --- services ------------------------------------------------------------------------


class ServiceError(MailpushError):
    """A network service could not be started (address in use, bad certificate...)."""


# --- Sieve filtering at delivery ---------------------------------------------------------


class SieveError(MailpushError):
    """A Sieve script could not be used; the delivery falls back to keeping the message."""


class SieveScriptError(SieveError):
    """A script that cannot be compiled (syntax, unknown command, unsupported extension).

    `line` is 0 when the problem is the file as a whole (unreadable, too large).
    """

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        super().__init__(f"{file}:{line}: {reason}" if line else f"{file}: {reason}")


class SieveRuntimeError(SieveError):
    """A compiled script failed while running, e.g. it exceeded `sieve_max_actions`.

    `line` is 0 when no line is to blame (an unexpected error of mailpush's own).
    """

    def __init__(self, file: str, line: int, reason: str) -> None:
        self.file = file
        self.line = line
        self.reason = reason
        super().__init__(f"{file}:{line}: {reason}" if line else f"{file}: {reason}")


# --- push drivers ----------------------------------------------------------------------


class DriverError(MailpushError):
    """A push driver could not deliver a transaction."""


class RetryableDriverError(DriverError):
    """A temporary failure: the dispatcher retries with backoff until the maximum age."""


class EndpointCertificateError(RetryableDriverError):
    """TLS verification of a push endpoint failed; the message names URL and CA problem.

    Retried like any outage (the endpoint's certificate may be fixed), but never
    again within the same attempt: the same certificate fails the same way.
    """


class EndpointTimeoutError(RetryableDriverError):
    """An endpoint did not answer within the driver's timeout.

    The request may have arrived and been acted on (an invitation imported), so
    it is not repeated within the same attempt; the dispatcher's retry counts it
    against the driver's `delivery_attempts`.
    """


class PermanentDriverError(DriverError):
    """Retrying cannot help: the transaction becomes a dead letter at once."""
