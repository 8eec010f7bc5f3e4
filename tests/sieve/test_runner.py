"""Running scripts: every test, action and control command, and script sequences."""

from __future__ import annotations

import logging

import pytest

from mailpush.errors import SieveRuntimeError, SieveScriptError
from mailpush.sieve import Envelope, SieveMessage, compile_script, run_script, run_sequence, runner
from mailpush.sieve.runner import FileIntoAction, KeepAction, RedirectAction, ScriptOutcome
from mailpush.sieve.script import Command

REQUIRE = (
    'require ["fileinto", "envelope", "mailbox", "copy", "imap4flags", "body",'
    ' "comparator-i;octet"];\n'
)

MESSAGE = (
    b"From: =?UTF-8?Q?Ren=C3=A9e?= <renee@Example.ORG>\r\n"
    b"To: Bob <bob@example.net>, undisclosed:;, carol@lists.example.com\r\n"
    b"Cc: dave\r\n"
    b"Subject: [dev] =?UTF-8?B?w6ljb2xl?= news\r\n"
    b"X-Spam-Score: 7\r\n"
    b"X-Spam-Score: 1\r\n"
    b"List-Id: Developers\r\n"
    b" <dev.lists.example.com>\r\n"
    b"\r\n"
    b"Plain body, mentions the meeting.\r\n"
)

MULTIPART = (
    b"From: a@example.org\r\n"
    b"Subject: mixed\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="b"\r\n'
    b"\r\n"
    b"--b\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Caf=C3=A9 opens at nine\r\n"
    b"--b\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>Lunch <b>menu</b> &amp; drinks</p>\r\n"
    b"--b\r\n"
    b"Content-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"c2VjcmV0IHBheWxvYWQ=\r\n"
    b"--b--\r\n"
)


def message(
    raw: bytes = MESSAGE, sender: str = "renee@example.org", to: str = "bob+work@example.net"
) -> SieveMessage:
    return SieveMessage(raw, Envelope(sender, to))


def run(body: str, msg: SieveMessage | None = None, *, max_actions: int = 32) -> ScriptOutcome:
    script = compile_script((REQUIRE + body).encode(), "/sieve/test.sieve")
    return run_script(script, msg or message(), max_actions=max_actions)


def filed(outcome: ScriptOutcome) -> list[str]:
    return [a.mailbox for a in outcome.actions if isinstance(a, FileIntoAction)]


def holds(test: str, msg: SieveMessage | None = None) -> bool:
    """Whether `test` is true for the message (it files into "yes" when it is)."""
    return filed(run(f'if {test} {{ fileinto "yes"; }}', msg)) == ["yes"]


# --- actions ----------------------------------------------------------------------------


def test_empty_script_keeps_implicitly() -> None:
    outcome = run("")
    assert outcome == ScriptOutcome((), True, ())


def test_fileinto_cancels_the_implicit_keep() -> None:
    outcome = run('fileinto "Archive";')
    assert filed(outcome) == ["Archive"]
    assert outcome.implicit_keep is False


def test_fileinto_copy_leaves_the_implicit_keep() -> None:
    outcome = run('fileinto :copy "Archive";')
    assert filed(outcome) == ["Archive"]
    assert outcome.implicit_keep is True


def test_fileinto_create_is_passed_on() -> None:
    (action,) = run('fileinto :create "New/Folder";').actions
    assert isinstance(action, FileIntoAction) and action.create is True


def test_explicit_keep_is_an_action_and_cancels_the_implicit_one() -> None:
    outcome = run("keep;")
    assert outcome.actions == (KeepAction((), "/sieve/test.sieve", 2),)
    assert outcome.implicit_keep is False


def test_discard_cancels_the_implicit_keep_without_an_action() -> None:
    assert run("discard;") == ScriptOutcome((), False, ())


def test_discard_after_fileinto_keeps_the_fileinto() -> None:
    outcome = run('fileinto "A"; discard;')
    assert filed(outcome) == ["A"] and outcome.implicit_keep is False


def test_stop_ends_the_script_even_inside_blocks() -> None:
    outcome = run('if true { fileinto :copy "A"; if true { stop; } fileinto "B"; }\ndiscard;')
    assert filed(outcome) == ["A"]
    assert outcome.implicit_keep is True


def test_redirect_is_recorded_but_never_cancels_the_keep() -> None:
    outcome = run('redirect "elsewhere@example.com";')
    assert outcome.actions == (RedirectAction("elsewhere@example.com", "/sieve/test.sieve", 2),)
    assert outcome.implicit_keep is True


def test_too_many_actions_is_a_runtime_error_at_the_offending_line() -> None:
    body = "".join(f'fileinto "F{i}";\n' for i in range(5))
    with pytest.raises(SieveRuntimeError) as caught:
        run(body, max_actions=4)
    assert caught.value.line == 6
    assert "sieve_max_actions" in caught.value.reason
    assert filed(run(body, max_actions=0)) == [f"F{i}" for i in range(5)]


# --- control ----------------------------------------------------------------------------


def test_if_elsif_else_runs_the_first_true_branch_only() -> None:
    script = (
        'if false { fileinto "one"; }\n'
        'elsif true { fileinto "two"; }\n'
        'elsif true { fileinto "three"; }\n'
        'else { fileinto "four"; }\n'
    )
    assert filed(run(script)) == ["two"]
    assert filed(run('if false { fileinto "one"; } else { fileinto "four"; }')) == ["four"]


# --- tests ------------------------------------------------------------------------------


def test_header_is_contains_matches() -> None:
    assert holds('header :is "List-Id" "Developers <dev.lists.example.com>"')
    assert holds('header :contains "subject" "[DEV]"')
    assert holds('header :matches "Subject" "[dev]*news"')
    assert not holds('header :is "Subject" "[dev]"')


def test_header_values_are_rfc2047_decoded() -> None:
    assert holds('header :contains "Subject" "école"')
    assert holds('header :contains "From" "Renée"')


def test_header_checks_every_occurrence_and_every_name() -> None:
    assert holds('header :is "X-Spam-Score" "1"')
    assert holds('header :is ["X-Missing", "X-Spam-Score"] ["9", "7"]')
    assert not holds('header :is "X-Missing" ""')


def test_header_octet_comparator_is_case_sensitive() -> None:
    assert not holds('header :comparator "i;octet" :contains "Subject" "NEWS"')
    assert holds('header :comparator "i;octet" :contains "Subject" "news"')


def test_address_parts() -> None:
    assert holds('address :is "From" "renee@example.org"')
    assert holds('address :localpart :is "To" "carol"')
    assert holds('address :domain :is "To" "example.net"')
    assert holds('address :all :matches "To" "*@lists.*"')
    assert not holds('address :is "To" "undisclosed"')
    assert holds('address :localpart :is "Cc" "dave"')
    assert not holds('address :domain :contains "Cc" "example"')


def test_envelope_from_and_to() -> None:
    assert holds('envelope :is "from" "renee@example.org"')
    assert holds('envelope :domain :is "from" "EXAMPLE.org"')
    assert holds('envelope :localpart :is "to" "bob+work"')
    assert holds('envelope :is "to" "bob+work@example.net"')
    assert not holds('envelope :is "from" "someone@else"')


def test_envelope_null_sender_is_the_empty_string() -> None:
    bounce = message(sender="")
    assert holds('envelope :is "from" ""', bounce)
    assert holds('envelope :domain :is "from" ""', bounce)


def test_size_over_and_under() -> None:
    size = len(MESSAGE)
    assert holds(f"size :over {size - 1}")
    assert not holds(f"size :over {size}")
    assert holds(f"size :under {size + 1}")
    assert not holds(f"size :under {size}")
    assert holds("size :under 1K")


def test_exists_needs_every_header() -> None:
    assert holds('exists "list-id"')
    assert holds('exists ["From", "X-Spam-Score"]')
    assert not holds('exists ["From", "X-Nope"]')


def test_true_false_not_allof_anyof() -> None:
    assert holds("true")
    assert not holds("false")
    assert holds("not false")
    assert holds('allof (true, exists "From")')
    assert not holds("allof (true, false)")
    assert holds("anyof (false, true)")
    assert not holds("anyof (false, not true)")


def test_body_text_reads_decoded_text_parts_including_html() -> None:
    mixed = message(MULTIPART)
    assert holds('body :contains "café"', mixed)
    assert holds('body :text :contains "& drinks"', mixed)
    assert holds('body :text :matches "*Lunch menu*"', mixed)
    assert not holds('body :contains "<b>"', mixed)
    assert not holds('body :contains "secret payload"', mixed)
    assert holds('body :contains "meeting"')


def test_body_content_selects_parts_by_type() -> None:
    mixed = message(MULTIPART)
    assert holds('body :content "text/html" :contains "<b>menu</b>"', mixed)
    assert not holds('body :content "text/html" :contains "nine"', mixed)
    assert holds('body :content "application" :contains "secret payload"', mixed)
    assert holds('body :content "" :contains "secret payload"', mixed)


def test_body_raw_is_the_undecoded_body() -> None:
    mixed = message(MULTIPART)
    assert holds('body :raw :contains "Caf=C3=A9"', mixed)
    assert holds('body :raw :contains "c2VjcmV0IHBheWxvYWQ="', mixed)
    assert not holds('body :raw :contains "Subject: mixed"', mixed)


# --- imap4flags -------------------------------------------------------------------------


def test_flag_variable_feeds_keep_and_fileinto() -> None:
    outcome = run(
        'addflag ["\\\\Flagged", "Work"];\n'
        'addflag "work urgent";\n'
        'fileinto :copy "A";\n'
        'removeflag "WORK";\n'
        "keep;\n"
    )
    first, second = outcome.actions
    assert isinstance(first, FileIntoAction)
    assert first.flags == ("\\Flagged", "Work", "urgent")
    assert isinstance(second, KeepAction)
    assert second.flags == ("\\Flagged", "urgent")


def test_setflag_replaces_and_flags_tag_overrides_the_variable() -> None:
    outcome = run('addflag "a"; setflag "\\\\Seen b";\nfileinto :flags "only" "A";\nkeep;')
    fileinto, keep = outcome.actions
    assert isinstance(fileinto, FileIntoAction) and fileinto.flags == ("only",)
    assert isinstance(keep, KeepAction) and keep.flags == ("\\Seen", "b")


def test_implicit_keep_carries_the_final_flag_variable() -> None:
    assert run('addflag "\\\\Seen";').flags == ("\\Seen",)


def test_hasflag_tests_the_variable() -> None:
    outcome = run(
        'addflag "Junk \\\\Flagged";\n'
        'if hasflag :is "junk" { fileinto :copy "is"; }\n'
        'if hasflag :contains "lag" { fileinto :copy "contains"; }\n'
        'if hasflag "\\\\Seen" { fileinto :copy "seen"; }\n'
    )
    assert filed(outcome) == ["is", "contains"]


# --- sequences of scripts ---------------------------------------------------------------


def test_sequence_runs_on_while_the_implicit_keep_holds() -> None:
    before = compile_script(b'require "imap4flags"; addflag "x"; stop;', "before")
    user = compile_script(b'require ["fileinto", "copy"]; fileinto :copy "Copy";', "user")
    after = compile_script(b'require "fileinto"; fileinto "After";', "after")
    result = run_sequence([before, user, after], message())
    assert [getattr(a, "mailbox", None) for a in result.actions] == ["Copy", "After"]
    assert result.implicit_keep is False
    assert result.failure is None


def test_sequence_stops_at_the_first_script_that_cancels_the_keep() -> None:
    before = compile_script(b'require "fileinto"; fileinto "Spam";', "before")
    user = compile_script(b'require "fileinto"; fileinto "User";', "user")
    result = run_sequence([before, user], message())
    assert [getattr(a, "mailbox", None) for a in result.actions] == ["Spam"]


def test_sequence_keeps_with_the_last_scripts_flags() -> None:
    before = compile_script(b'require "imap4flags"; addflag "before";', "before")
    user = compile_script(b'require "imap4flags"; addflag "user";', "user")
    result = run_sequence([before, user], message())
    assert (result.implicit_keep, result.keep_flags) == (True, ("user",))


def test_broken_script_ends_the_sequence_with_the_keep() -> None:
    before = compile_script(
        b'require ["fileinto", "copy"]; fileinto :copy "Seen-by-before";', "before"
    )
    broken = SieveScriptError("user.sieve", 3, "unknown command 'fileint'")
    after = compile_script(b"discard;", "after")
    result = run_sequence([before, broken, after], message())
    assert [getattr(a, "mailbox", None) for a in result.actions] == ["Seen-by-before"]
    assert result.implicit_keep is True and result.keep_flags == ()
    assert result.failure is broken
    assert result.discarded is False


def test_runtime_failure_drops_that_scripts_actions_and_keeps() -> None:
    greedy = compile_script(b'require "fileinto"; fileinto "A"; fileinto "B";', "greedy")
    result = run_sequence([greedy], message(), max_actions=1)
    assert result.actions == ()
    assert result.implicit_keep is True
    assert isinstance(result.failure, SieveRuntimeError)


def test_discard_everywhere_means_nothing_is_stored() -> None:
    result = run_sequence([compile_script(b"discard;", "only")], message())
    assert result.discarded is True


def test_unexpected_error_in_a_script_is_logged_with_its_path_and_keeps(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    before = compile_script(
        b'require ["fileinto", "copy"]; fileinto :copy "Before";', "/sieve/before"
    )
    user = compile_script(b"discard;", "/home/alice/.dovecot.sieve")
    real_run = runner._Execution.run

    def run_or_fail(execution: runner._Execution, command: Command) -> None:
        if execution.script is user:
            raise ZeroDivisionError("a bug")
        real_run(execution, command)

    monkeypatch.setattr(runner._Execution, "run", run_or_fail)
    with caplog.at_level(logging.ERROR, logger="mailpush.sieve"):
        result = run_sequence([before, user], message())
    assert [getattr(a, "mailbox", None) for a in result.actions] == ["Before"]
    assert result.implicit_keep is True
    assert isinstance(result.failure, SieveRuntimeError)
    assert "/home/alice/.dovecot.sieve: unexpected error" in caplog.text
    assert "ZeroDivisionError: a bug" in caplog.text  # the traceback is logged
