"""Compiling Sieve source: our tree, and errors that name the line and the reason."""

from __future__ import annotations

import pytest

from mailpush.errors import SieveScriptError
from mailpush.sieve import compile_script
from mailpush.sieve.script import (
    BodyTest,
    FileIntoCommand,
    FlagCommand,
    HeaderTest,
    IfCommand,
    KeepCommand,
    Match,
    SizeTest,
)


def compile_error(source: str) -> SieveScriptError:
    with pytest.raises(SieveScriptError) as caught:
        compile_script(source.encode(), "/etc/sieve/test.sieve")
    return caught.value


def test_compile_builds_if_elsif_else_as_one_command_with_lines() -> None:
    script = compile_script(
        b'require "fileinto";\n'
        b'if header :contains "Subject" "a" {\n'
        b'  fileinto "A";\n'
        b'} elsif header :is "Subject" "b" {\n'
        b"  keep;\n"
        b"} else {\n"
        b"  discard;\n"
        b"}\n",
        "s.sieve",
    )
    assert script.extensions == frozenset({"fileinto"})
    (chain,) = script.commands
    assert isinstance(chain, IfCommand)
    assert [branch.line for branch in chain.branches] == [2, 4, 6]
    first, second, last = chain.branches
    assert first.test == HeaderTest(("Subject",), ("a",), Match("contains"), 2)
    assert first.block == (FileIntoCommand("A", False, False, None, 3),)
    assert second.block == (KeepCommand(None, 5),)
    assert last.test is None


def test_compile_reads_tags_of_fileinto_and_flag_commands() -> None:
    script = compile_script(
        b'require ["fileinto", "copy", "mailbox", "imap4flags"];\n'
        b'fileinto :copy :create :flags ["\\\\Seen", "$Label1 Work"] "Lists/dev";\n'
        b'removeflag "Work";\n',
        "s.sieve",
    )
    fileinto, flags = script.commands
    assert fileinto == FileIntoCommand("Lists/dev", True, True, ("\\Seen", "$Label1 Work"), 2)
    assert flags == FlagCommand("remove", ("Work",), 3)


def test_compile_decodes_quoted_and_multiline_strings() -> None:
    script = compile_script(
        b'require "fileinto";\n'
        b'fileinto "a\\"b\\\\c";\n'
        b"fileinto text: # the folder\n"
        b"line one\n"
        b"..dotted\n"
        b".\n"
        b";\n",
        "s.sieve",
    )
    quoted, multiline = script.commands
    assert isinstance(quoted, FileIntoCommand) and quoted.mailbox == 'a"b\\c'
    assert isinstance(multiline, FileIntoCommand)
    assert multiline.mailbox == "line one\n.dotted\n"


def test_compile_scales_size_quantifiers() -> None:
    script = compile_script(b"if size :over 2K { keep; }\nif size :under 3M { keep; }", "s")
    over, under = (command.branches[0].test for command in script.commands)  # type: ignore[union-attr]
    assert over == SizeTest(True, 2048, 1)
    assert under == SizeTest(False, 3 * 1024 * 1024, 2)


def test_compile_reads_body_transforms_and_comparators() -> None:
    script = compile_script(
        b'require "body";\n'
        b'if body :content ["text/html", "Image"] :comparator "i;octet" :matches "x*" { keep; }',
        "s",
    )
    test = script.commands[0].branches[0].test  # type: ignore[union-attr]
    octet_matches = Match("matches", "i;octet")
    assert test == BodyTest("content", ("text/html", "image"), ("x*",), octet_matches, 2)


def test_syntax_error_names_file_and_line() -> None:
    error = compile_error('require "fileinto";\n\nif true {\n  fileinto "x"\n}\n')
    assert error.file == "/etc/sieve/test.sieve"
    assert error.line == 5
    assert str(error).startswith("/etc/sieve/test.sieve:5: ")


def test_unknown_command_is_an_error_at_its_line() -> None:
    error = compile_error("keep;\n\nvacation_please;\n")
    assert (error.line, error.reason) == (3, "unknown command 'vacation_please'")


def test_extension_used_without_require_is_an_error() -> None:
    error = compile_error('keep;\nfileinto "Spam";\n')
    assert error.line == 2
    assert 'without require "fileinto"' in error.reason


def test_require_of_an_unsupported_extension_is_an_error() -> None:
    error = compile_error('require ["fileinto", "vacation"];\n')
    assert error.line == 1
    assert '"vacation" is not supported' in error.reason


def test_require_after_another_command_is_an_error() -> None:
    error = compile_error('keep;\nrequire "fileinto";\n')
    assert (error.line, error.reason) == (2, "require must come before any other command")


def test_unknown_envelope_part_is_an_error() -> None:
    error = compile_error('require "envelope";\nif envelope "auth" "x" { keep; }\n')
    assert error.line == 2
    assert 'unknown envelope part "auth"' in error.reason


def test_flag_commands_with_variable_names_are_refused() -> None:
    error = compile_error('require "imap4flags";\naddflag "MyFlags" "\\\\Seen";\n')
    assert error.line == 2
    assert "variables extension" in error.reason


def test_unterminated_string_is_an_error() -> None:
    error = compile_error('keep;\nif header :is "Subject" "open { keep; }\n')
    assert error.line == 2


# --- nesting limits (Pigeonhole: 32 blocks, 32 tests) -------------------------------------


def nested_blocks(depth: int) -> str:
    return "if true {\n" * depth + "keep;\n" + "}\n" * depth


def nested_tests(depth: int) -> str:
    """`depth` tests, each the sub-test of the previous: `not` and `anyof` lists alternate."""
    chain = "".join("not " if level % 2 else "anyof(false, " for level in range(depth - 1))
    closing = ")" * ((depth - 1) // 2 + (depth - 1) % 2)
    return f"if {chain}true{closing} {{ keep; }}"


def test_blocks_and_tests_may_nest_32_levels() -> None:
    blocks = compile_script(nested_blocks(32).encode(), "s.sieve")
    assert isinstance(blocks.commands[0], IfCommand)
    tests = compile_script(nested_tests(32).encode(), "s.sieve")
    assert isinstance(tests.commands[0], IfCommand)


@pytest.mark.parametrize("depth", [33, 1000, 5000, 100_000])
def test_deeper_blocks_are_an_error_at_the_33rd_level(depth: int) -> None:
    error = compile_error('require "fileinto";\n' + nested_blocks(depth))
    assert error.line == 34
    assert error.reason == "cannot nest command blocks deeper than 32 levels"


@pytest.mark.parametrize("depth", [33, 1000, 5000, 100_000])
def test_deeper_tests_are_an_error(depth: int) -> None:
    error = compile_error(nested_tests(depth))
    assert (error.line, error.reason) == (1, "cannot nest tests deeper than 32 levels")


def test_deep_tests_inside_string_lists_and_test_lists_are_counted_per_chain() -> None:
    # Commas in string lists and siblings in a test list do not add depth.
    wide = "anyof(" + ", ".join(['header ["a", "b", "c"] "x"'] * 200) + ")"
    script = compile_script(f"if {wide} {{ keep; }}".encode(), "s.sieve")
    assert isinstance(script.commands[0], IfCommand)
