"""Reading Dovecot passwd-files, and editing them safely for the `mailpush user` commands."""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import stat
from pathlib import Path

import pytest

from mailpush.auth import passwd_file
from mailpush.auth.passwd_file import (
    PasswdFile,
    UserRecord,
    add_user,
    delete_user,
    list_users,
    set_password,
)
from mailpush.auth.password_schemes import verify_password
from mailpush.errors import (
    InvalidPasswordError,
    NoSuchUserError,
    PasswdFileError,
    UserExistsError,
)

SAMPLE = """\
# mailpush users
alice:{PLAIN}wonderland:1000:1000::/home/alice::userdb_quota_rule=*:storage=1G nopassword

   # an indented comment
bob@example.org:{SHA256-CRYPT}$5$saltsalt$0IyaXrmV7.sGNS6tirgqHLqX/G.FBvgkYA.lpPdS5sA
carol:{PLAIN}c
dave
erin:{PLAIN}e:::::: allow_nets=127.0.0.1/8,::1 userdb_push_notification_driver=dlog
frank:{PLAIN}f:5000:5000:Frank:/home/frank:/bin/sh::maildir:~/Maildir
"""


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    path = tmp_path / "users"
    path.write_text(SAMPLE)
    return path


# --- reading ---------------------------------------------------------------------------


def test_parses_all_fields_and_splits_userdb_extra_fields(sample: Path) -> None:
    alice = PasswdFile(sample).lookup("alice")
    assert alice == UserRecord(
        username="alice",
        password="{PLAIN}wonderland",
        uid="1000",
        gid="1000",
        home="/home/alice",
        extra_fields={"nopassword": ""},
        userdb_fields={"quota_rule": "*:storage=1G"},
    )


def test_fields_after_the_password_are_optional(sample: Path) -> None:
    passwd = PasswdFile(sample)
    assert passwd.lookup("carol") == UserRecord("carol", "{PLAIN}c")
    assert passwd.lookup("dave") == UserRecord("dave", "")
    bob = passwd.lookup("bob@example.org")
    assert bob is not None and bob.password.startswith("{SHA256-CRYPT}$5$")


def test_extra_field_values_may_contain_colons(sample: Path) -> None:
    erin = PasswdFile(sample).lookup("erin")
    assert erin is not None
    assert erin.extra_fields == {"allow_nets": "127.0.0.1/8,::1"}
    assert erin.userdb_fields == {"push_notification_driver": "dlog"}


def test_old_format_empty_field_then_mail_location_becomes_userdb_mail(sample: Path) -> None:
    frank = PasswdFile(sample).lookup("frank")
    assert frank is not None
    assert frank.home == "/home/frank"
    assert frank.userdb_fields == {"mail": "maildir:~/Maildir"}
    assert frank.extra_fields == {}


def test_comments_and_blank_lines_are_not_users(sample: Path) -> None:
    names = [user.username for user in PasswdFile(sample).users()]
    assert names == ["alice", "bob@example.org", "carol", "dave", "erin", "frank"]


def test_crlf_line_endings_are_stripped(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes(b"alice:{PLAIN}a\r\nbob:{PLAIN}b:1:1::/home/bob\r\n")
    passwd = PasswdFile(path)
    assert passwd.lookup("alice") == UserRecord("alice", "{PLAIN}a")
    bob = passwd.lookup("bob")
    assert bob is not None and bob.home == "/home/bob"


def test_lookup_falls_back_to_a_case_insensitive_match(sample: Path) -> None:
    passwd = PasswdFile(sample)
    alice = passwd.lookup("ALICE")
    assert alice is not None and alice.username == "alice"
    bob = passwd.lookup("Bob@Example.ORG")
    assert bob is not None and bob.username == "bob@example.org"
    assert passwd.lookup("nobody") is None


def test_exact_match_wins_and_ambiguous_case_is_not_guessed(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("Alice:{PLAIN}1\nalice:{PLAIN}2\n")
    passwd = PasswdFile(path)
    assert _password(passwd, "Alice") == "{PLAIN}1"
    assert _password(passwd, "alice") == "{PLAIN}2"
    assert passwd.lookup("ALICE") is None


def test_repeated_user_keeps_first_line_and_logs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}first\nalice:{PLAIN}second\n")
    with caplog.at_level(logging.ERROR, logger="mailpush.auth.passwd_file"):
        assert _password(PasswdFile(path), "alice") == "{PLAIN}first"
    assert f"{path}:2" in caplog.text and "line 1" in caplog.text


def test_password_is_left_out_of_the_repr(sample: Path) -> None:
    assert "wonderland" not in repr(PasswdFile(sample).lookup("alice"))


def test_user_record_is_read_only_and_picklable() -> None:
    extra = {"nopassword": ""}
    record = UserRecord("alice", "{PLAIN}a", extra_fields=extra, userdb_fields={"k": "v"})
    extra["nologin"] = ""
    assert record.extra_fields == {"nopassword": ""}
    with pytest.raises(TypeError):
        record.userdb_fields["k"] = "changed"  # type: ignore[index]
    assert pickle.loads(pickle.dumps(record)) == record


def test_missing_file_holds_no_users(tmp_path: Path) -> None:
    passwd = PasswdFile(tmp_path / "absent")
    assert passwd.lookup("alice") is None
    assert passwd.users() == []
    assert list_users(tmp_path / "absent") == []


def test_line_with_empty_user_name_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# header\nalice:{PLAIN}a\n:{PLAIN}orphan\n")
    with pytest.raises(PasswdFileError, match=rf"^{path}:3: .*names no user"):
        PasswdFile(path).lookup("alice")


def test_extra_field_without_name_is_an_error_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}a::::::nopassword =oops\n")
    with pytest.raises(PasswdFileError, match=rf"^{path}:1: extra field '=oops'"):
        PasswdFile(path).lookup("alice")


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can read any file")
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}a\n")
    path.chmod(0)
    with pytest.raises(PasswdFileError, match="cannot read"):
        PasswdFile(path).lookup("alice")


# --- following changes -----------------------------------------------------------------


def test_file_created_after_start_is_picked_up(tmp_path: Path) -> None:
    path = tmp_path / "users"
    passwd = PasswdFile(path)
    assert passwd.lookup("alice") is None
    path.write_text("alice:{PLAIN}a\n")
    assert passwd.lookup("alice") is not None


def test_reloads_after_management_commands_change_the_file(sample: Path) -> None:
    passwd = PasswdFile(sample)
    assert passwd.lookup("zoe") is None
    add_user(sample, "zoe", "z", scheme="PLAIN")
    assert _password(passwd, "zoe") == "{PLAIN}z"
    set_password(sample, "zoe", "y", scheme="PLAIN")
    assert _password(passwd, "zoe") == "{PLAIN}y"
    delete_user(sample, "zoe")
    assert passwd.lookup("zoe") is None


def test_reloads_after_an_in_place_edit_of_the_same_size(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}aaaa\n")
    passwd = PasswdFile(path)
    assert _password(passwd, "alice") == "{PLAIN}aaaa"
    inode = path.stat().st_ino
    with open(path, "r+") as f:
        f.write("alice:{PLAIN}bbbb\n")
    os.utime(path, ns=(0, path.stat().st_mtime_ns + 1_000_000_000))
    assert path.stat().st_ino == inode
    assert _password(passwd, "alice") == "{PLAIN}bbbb"


def test_unchanged_file_is_not_parsed_again(sample: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parses = 0
    original = passwd_file._parse

    def counting(text: str, path: Path) -> list[tuple[int, UserRecord]]:
        nonlocal parses
        parses += 1
        return original(text, path)

    monkeypatch.setattr(passwd_file, "_parse", counting)
    passwd = PasswdFile(sample)
    for _ in range(5):
        assert passwd.lookup("alice") is not None
    passwd.users()
    assert parses == 1


def test_broken_file_keeps_failing_until_fixed_then_recovers(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}a\n")
    passwd = PasswdFile(path)
    assert passwd.lookup("alice") is not None
    path.write_text("alice:{PLAIN}a\n:broken\n")
    for _ in range(2):
        with pytest.raises(PasswdFileError, match=":2:"):
            passwd.lookup("alice")
    path.write_text("alice:{PLAIN}a\n")
    assert passwd.lookup("alice") is not None


# --- management ------------------------------------------------------------------------


def test_add_user_creates_a_private_file_with_a_verifiable_hash(tmp_path: Path) -> None:
    path = tmp_path / "users"
    record = add_user(path, "alice@example.org", "s3cret", scheme="SHA512-CRYPT")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert record.username == "alice@example.org"
    assert path.read_text() == f"alice@example.org:{record.password}\n"
    assert record.password.startswith("{SHA512-CRYPT}$6$")
    assert verify_password(record.password, "s3cret")


def test_add_user_hashes_with_argon2id_by_default(tmp_path: Path) -> None:
    record = add_user(tmp_path / "users", "alice", "s3cret")
    assert record.password.startswith("{ARGON2ID}$argon2id$")


def test_add_user_writes_optional_fields_that_read_back(tmp_path: Path) -> None:
    path = tmp_path / "users"
    add_user(
        path,
        "alice",
        "pw",
        scheme="PLAIN",
        uid="1000",
        gid="100",
        home="/home/alice",
        extra_fields={"userdb_quota_rule": "*:storage=1G", "nologin": ""},
    )
    assert path.read_text() == (
        "alice:{PLAIN}pw:1000:100::/home/alice::userdb_quota_rule=*:storage=1G nologin\n"
    )
    alice = PasswdFile(path).lookup("alice")
    assert alice is not None
    assert (alice.uid, alice.gid, alice.home) == ("1000", "100", "/home/alice")
    assert alice.userdb_fields == {"quota_rule": "*:storage=1G"}
    assert alice.extra_fields == {"nologin": ""}


def test_add_user_preserves_comments_and_the_text_of_other_lines(sample: Path) -> None:
    add_user(sample, "zoe", "z", scheme="PLAIN")
    assert sample.read_text() == SAMPLE + "zoe:{PLAIN}z\n"


def test_add_user_to_a_file_without_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}a")
    add_user(path, "bob", "b", scheme="PLAIN")
    assert path.read_text() == "alice:{PLAIN}a\nbob:{PLAIN}b\n"


def test_add_existing_user_raises_user_exists_and_leaves_file_alone(sample: Path) -> None:
    with pytest.raises(UserExistsError, match="'alice' already exists"):
        add_user(sample, "alice", "x", scheme="PLAIN")
    with pytest.raises(UserExistsError, match="'alice' already exists"):
        add_user(sample, "Alice", "x", scheme="PLAIN")
    assert sample.read_text() == SAMPLE


@pytest.mark.parametrize(
    "username", ["", "al:ice", "al ice", "alice\n", "al\tice", "al\x00ice", "#alice"]
)
def test_add_user_rejects_names_a_passwd_file_cannot_hold(tmp_path: Path, username: str) -> None:
    with pytest.raises(PasswdFileError, match="user name"):
        add_user(tmp_path / "users", username, "pw", scheme="PLAIN")
    assert not (tmp_path / "users").exists()


def test_add_user_rejects_fields_that_would_break_the_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    with pytest.raises(PasswdFileError, match="home"):
        add_user(path, "alice", "pw", scheme="PLAIN", home="/a:b")
    with pytest.raises(PasswdFileError, match="extra field"):
        add_user(path, "alice", "pw", scheme="PLAIN", extra_fields={"quota": "1 G"})
    with pytest.raises(PasswdFileError, match="extra field name"):
        add_user(path, "alice", "pw", scheme="PLAIN", extra_fields={"a=b": "c"})


def test_plain_password_with_colon_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidPasswordError, match="hashing scheme"):
        add_user(tmp_path / "users", "alice", "pa:ss", scheme="PLAIN")
    # Hashed, the same password is fine.
    record = add_user(tmp_path / "users", "alice", "pa:ss", scheme="SSHA512")
    assert verify_password(_password(PasswdFile(tmp_path / "users"), "alice"), "pa:ss")
    assert record.password.startswith("{SSHA512}")


def test_delete_user_removes_only_that_line(sample: Path) -> None:
    delete_user(sample, "carol")
    assert sample.read_text() == SAMPLE.replace("carol:{PLAIN}c\n", "")


def test_delete_missing_user_raises_no_such_user_with_a_hint(sample: Path) -> None:
    with pytest.raises(NoSuchUserError, match="no user 'zoe'"):
        delete_user(sample, "zoe")
    with pytest.raises(NoSuchUserError, match="did you mean 'alice'"):
        delete_user(sample, "ALICE")
    with pytest.raises(NoSuchUserError):
        delete_user(sample.with_name("absent"), "alice")
    assert sample.read_text() == SAMPLE


def test_set_password_changes_only_the_password_field(sample: Path) -> None:
    set_password(sample, "alice", "new", scheme="SSHA256")
    lines = sample.read_text().split("\n")
    fields = lines[1].split(":")
    assert fields[0] == "alice" and fields[1].startswith("{SSHA256}")
    assert (
        ":".join(fields[2:]) == "1000:1000::/home/alice::userdb_quota_rule=*:storage=1G nopassword"
    )
    assert lines[:1] + lines[2:] == SAMPLE.split("\n")[:1] + SAMPLE.split("\n")[2:]
    assert verify_password(_password(PasswdFile(sample), "alice"), "new")


def test_set_password_on_a_name_only_line_and_a_crlf_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes(b"dave\r\nerin:{PLAIN}old\r\n")
    set_password(path, "dave", "d", scheme="PLAIN")
    set_password(path, "erin", "e", scheme="PLAIN")
    assert path.read_bytes() == b"dave:{PLAIN}d\r\nerin:{PLAIN}e\r\n"


def test_set_password_of_missing_user_raises_no_such_user(sample: Path) -> None:
    with pytest.raises(NoSuchUserError):
        set_password(sample, "zoe", "x", scheme="PLAIN")


def test_rewrite_keeps_the_file_mode(sample: Path) -> None:
    sample.chmod(0o640)
    add_user(sample, "zoe", "z", scheme="PLAIN")
    assert stat.S_IMODE(sample.stat().st_mode) == 0o640


def test_rewrite_through_a_symlink_keeps_the_symlink(sample: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(sample)
    add_user(link, "zoe", "z", scheme="PLAIN")
    assert link.is_symlink()
    assert sample.read_text().endswith("zoe:{PLAIN}z\n")


def test_bytes_that_are_not_utf8_survive_a_rewrite(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_bytes(b"# caf\xe9\nalice:{PLAIN}a\n")
    delete_user(path, "alice")
    assert path.read_bytes() == b"# caf\xe9\n"


def test_failed_write_leaves_the_old_file_and_no_temporary_file(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(PasswdFileError, match="No space left"):
        add_user(sample, "zoe", "z", scheme="PLAIN")
    assert sample.read_text() == SAMPLE
    assert sorted(p.name for p in sample.parent.iterdir()) == ["users", "users.lock"]


def test_management_refuses_a_malformed_file_naming_the_line(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("alice:{PLAIN}a\n:broken\n")
    with pytest.raises(PasswdFileError, match=":2:"):
        add_user(path, "bob", "b", scheme="PLAIN")


def test_list_users_in_file_order(sample: Path) -> None:
    assert [u.username for u in list_users(sample)][:2] == ["alice", "bob@example.org"]


def test_concurrent_adds_from_several_processes_all_survive(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# shared file\n")
    jobs = [(str(path), f"user{i}", "pw", "SSHA512") for i in range(80)]
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        pool.starmap(add_user, jobs, chunksize=1)
    names = {user.username for user in list_users(path)}
    assert names == {f"user{i}" for i in range(80)}
    assert path.read_text().startswith("# shared file\n")
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def _password(passwd: PasswdFile, username: str) -> str:
    record = passwd.lookup(username)
    assert record is not None, username
    return record.password
