"""Dovecot configuration syntax: what parses, into what, and how malformed files are reported."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from mailpush.config.syntax import ConfigSection, parse_file, parse_text
from mailpush.errors import ConfigFileError, ConfigSyntaxError


def parse(text: str) -> ConfigSection:
    return parse_text(textwrap.dedent(text), "test.conf")


def values(section: ConfigSection) -> dict[str, str]:
    return {entry.key: entry.value for entry in section.settings}


# --- snippets from Dovecot's Lua and Chronos push documentation -------------------------


def test_seed_lua_driver_with_mail_plugins_expansion_parses() -> None:
    tree = parse(
        """\
        mail_plugins = $mail_plugins mail_lua notify push_notification push_notification_lua

        plugin {
          push_notification_driver = lua:file=/path/to/lua/script
        }
        """
    )
    assert tree.value("mail_plugins") == "mail_lua notify push_notification push_notification_lua"
    plugin = tree.section("plugin")
    assert plugin is not None
    assert values(plugin) == {"push_notification_driver": "lua:file=/path/to/lua/script"}


def test_seed_chronos_24_blocks_parse() -> None:
    tree = parse(
        """\
        mail_plugins {
        notify = yes
        push_notification = yes
        push_notification_chronos = yes
        }
        push_notification chronos {
        driver = chronos
        url = http://login:pass@node1.domain.tld:8009/chronos/v1/itip/pushmail
        msg_max_size = 500kb
        }
        """
    )
    plugins = tree.section("mail_plugins")
    assert plugins is not None and plugins.name is None
    assert values(plugins) == {
        "notify": "yes",
        "push_notification": "yes",
        "push_notification_chronos": "yes",
    }
    chronos = tree.section("push_notification", "chronos")
    assert chronos is not None
    assert values(chronos) == {
        "driver": "chronos",
        "url": "http://login:pass@node1.domain.tld:8009/chronos/v1/itip/pushmail",
        "msg_max_size": "500kb",
    }


def test_seed_23_plugin_drivers_and_24_lua_block_parse() -> None:
    tree = parse(
        """\
        plugin {
          push_notification_driver  = lua:file=/etc/dovecot/push.lua
          push_notification_driver2 = ox:url=https://u:p@ox:8009/preliminary/http-notify/v1/notify user_from_metadata cache_lifetime=30s
          push_notification_driver3 = dlog
          push_lua_url = https://push.example/hook   # read by the script via user:plugin_getenv()
        }
        push_notification lua {
          lua_file = /etc/dovecot/push.lua
          lua_settings {
            push_lua_url = https://push.example/hook
          }
        }
        """  # noqa: E501
    )
    plugin = tree.section("plugin")
    assert plugin is not None
    assert values(plugin) == {
        "push_notification_driver": "lua:file=/etc/dovecot/push.lua",
        "push_notification_driver2": "ox:url=https://u:p@ox:8009/preliminary/http-notify/v1/notify"
        " user_from_metadata cache_lifetime=30s",
        "push_notification_driver3": "dlog",
        "push_lua_url": "https://push.example/hook",
    }
    lua = tree.section("push_notification", "lua")
    assert lua is not None
    assert values(lua) == {"lua_file": "/etc/dovecot/push.lua"}
    lua_settings = lua.section("lua_settings")
    assert lua_settings is not None
    assert values(lua_settings) == {"push_lua_url": "https://push.example/hook"}


def test_one_line_nested_service_block_parses() -> None:
    tree = parse("service lmtp { inet_listener lmtp { address = 127.0.0.1  port = 24 } }\n")
    service = tree.section("service", "lmtp")
    assert service is not None
    listener = service.section("inet_listener", "lmtp")
    assert listener is not None
    assert values(listener) == {"address": "127.0.0.1", "port": "24"}


def test_one_line_block_with_two_sibling_subsections_parses() -> None:
    tree = parse(
        "service imap-login { inet_listener imap { port = 143 } "
        "inet_listener imaps { port = 993  ssl = yes } }\n"
    )
    service = tree.section("service", "imap-login")
    assert service is not None
    assert [s.label for s in service.sections] == ["inet_listener imap", "inet_listener imaps"]
    imaps = service.section("inet_listener", "imaps")
    assert imaps is not None
    assert values(imaps) == {"port": "993", "ssl": "yes"}


def test_one_line_unnamed_block_with_url_value() -> None:
    tree = parse("lua_settings { push_lua_url = https://x }\n")
    block = tree.section("lua_settings")
    assert block is not None
    assert values(block) == {"push_lua_url": "https://x"}


def test_one_line_value_keeps_balanced_braces() -> None:
    tree = parse("userdb { home = /var/vmail/%{user} }\n")
    block = tree.section("userdb")
    assert block is not None
    assert block.value("home") == "/var/vmail/%{user}"


def test_one_line_block_may_stay_open_for_following_lines() -> None:
    tree = parse(
        """\
        service lmtp { inet_listener lmtp {
            port = 24
          }
        }
        """
    )
    service = tree.section("service", "lmtp")
    assert service is not None
    listener = service.section("inet_listener", "lmtp")
    assert listener is not None and listener.value("port") == "24"


# --- values -------------------------------------------------------------------------


def test_multi_line_value_is_rest_of_line_with_spaces() -> None:
    tree = parse("protocols = imap   lmtp\n")
    assert tree.value("protocols") == "imap   lmtp"


def test_spaces_around_equals_are_optional() -> None:
    tree = parse("a=1\nb =2\nc= 3\n")
    assert values(tree) == {"a": "1", "b": "2", "c": "3"}


def test_empty_value_is_allowed() -> None:
    tree = parse("log_path =\nother = # just a comment\n")
    assert values(tree) == {"log_path": "", "other": ""}


def test_trailing_comment_after_whitespace_is_stripped() -> None:
    tree = parse("key = value   # note\n")
    assert tree.value("key") == "value"


def test_hash_inside_a_word_is_not_a_comment() -> None:
    tree = parse("url = https://example.com/page#frag\n")
    assert tree.value("url") == "https://example.com/page#frag"


def test_double_quoted_value_keeps_hash_and_escapes() -> None:
    tree = parse('password = "se cret # not a comment \\" quote"  # a comment\n')
    assert tree.value("password") == 'se cret # not a comment " quote'


def test_single_quoted_value_is_literal() -> None:
    tree = parse("key = '$mail_plugins # x'\n")
    assert tree.value("key") == "$mail_plugins # x"


def test_quoted_values_inside_one_line_block() -> None:
    tree = parse('block { a = "x y }"  b = 2 }\n')
    block = tree.section("block")
    assert block is not None
    assert values(block) == {"a": "x y }", "b": "2"}


def test_quoted_section_name() -> None:
    tree = parse('namespace "my inbox" {\n  prefix = x\n}\n')
    section = tree.section("namespace")
    assert section is not None and section.name == "my inbox"


def test_file_value_is_kept_as_marker_not_read() -> None:
    tree = parse("ssl_cert = </etc/ssl/missing-cert.pem\nssl_key = < /etc/ssl/key.pem\n")
    cert = tree.get("ssl_cert")
    key = tree.get("ssl_key")
    assert cert is not None and cert.from_file and cert.value == "/etc/ssl/missing-cert.pem"
    assert key is not None and key.from_file and key.value == "/etc/ssl/key.pem"


def test_file_value_path_may_be_quoted() -> None:
    tree = parse('ssl_cert = <"/etc/ssl/my cert.pem"\n')
    cert = tree.get("ssl_cert")
    assert cert is not None and cert.from_file and cert.value == "/etc/ssl/my cert.pem"


def test_repeated_key_last_wins_but_all_are_kept() -> None:
    tree = parse("port = 1\nport = 2\n")
    assert tree.value("port") == "2"
    assert [entry.value for entry in tree.settings] == ["1", "2"]


def test_entries_and_sections_remember_file_and_line() -> None:
    tree = parse("\n# comment\nkey = v\nplugin {\n  x = 1\n}\n")
    entry = tree.get("key")
    assert entry is not None and entry.where == "test.conf:3"
    plugin = tree.section("plugin")
    assert plugin is not None and plugin.where == "test.conf:4"
    inner = plugin.get("x")
    assert inner is not None and inner.line == 5


# --- $variable expansion ------------------------------------------------------------


def test_self_reference_before_first_assignment_expands_to_empty() -> None:
    tree = parse("mail_plugins = $mail_plugins quota\n")
    assert tree.value("mail_plugins") == "quota"


def test_variable_expands_to_value_set_earlier() -> None:
    tree = parse("mail_plugins = quota\nmail_plugins = $mail_plugins notify\n")
    assert tree.value("mail_plugins") == "quota notify"


def test_variable_in_section_sees_enclosing_scope() -> None:
    tree = parse(
        """\
        mail_plugins = notify
        protocol lmtp {
          mail_plugins = $mail_plugins sieve
        }
        """
    )
    protocol = tree.section("protocol", "lmtp")
    assert protocol is not None and protocol.value("mail_plugins") == "notify sieve"
    assert tree.value("mail_plugins") == "notify"


def test_unknown_dollar_words_are_left_alone() -> None:
    tree = parse("url = https://x/?a=$6$salt&b=$unset_thing\n")
    assert tree.value("url") == "https://x/?a=$6$salt&b=$unset_thing"


# --- includes -----------------------------------------------------------------------


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_include_is_relative_to_including_file(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "10-mail.conf", "mail_debug = yes\n")
    main = write(tmp_path / "dovecot.conf", "!include conf.d/10-mail.conf\nprotocols = imap\n")
    tree = parse_file(main)
    debug = tree.get("mail_debug")
    assert debug is not None
    assert debug.file == str(tmp_path / "conf.d" / "10-mail.conf") and debug.line == 1
    assert tree.value("protocols") == "imap"


def test_include_glob_reads_files_in_sorted_order(tmp_path: Path) -> None:
    write(tmp_path / "conf.d" / "20-b.conf", "order = $order b\n")
    write(tmp_path / "conf.d" / "10-a.conf", "order = $order a\n")
    main = write(tmp_path / "main.conf", "!include conf.d/*.conf\n")
    assert parse_file(main).value("order") == "a b"


def test_include_inside_section_adds_to_that_section(tmp_path: Path) -> None:
    write(tmp_path / "drivers.conf", "push_notification_driver = dlog\n")
    main = write(tmp_path / "main.conf", "plugin {\n  !include drivers.conf\n}\n")
    plugin = parse_file(main).section("plugin")
    assert plugin is not None and plugin.value("push_notification_driver") == "dlog"


def test_include_try_ignores_missing_file_and_empty_glob(tmp_path: Path) -> None:
    main = write(
        tmp_path / "main.conf",
        "!include_try missing.conf\n!include_try nothing/*.conf\nkey = v\n",
    )
    assert parse_file(main).value("key") == "v"


def test_missing_include_is_an_error_at_the_include_line(tmp_path: Path) -> None:
    main = write(tmp_path / "main.conf", "key = v\n!include missing.conf\n")
    with pytest.raises(ConfigSyntaxError) as caught:
        parse_file(main)
    assert caught.value.line == 2 and caught.value.file == str(main)
    assert "missing.conf" in caught.value.reason


def test_include_loop_is_detected(tmp_path: Path) -> None:
    write(tmp_path / "a.conf", "!include b.conf\n")
    write(tmp_path / "b.conf", "x = 1\n!include a.conf\n")
    with pytest.raises(ConfigSyntaxError) as caught:
        parse_file(tmp_path / "a.conf")
    assert "include loop" in caught.value.reason
    assert caught.value.file == str(tmp_path / "b.conf") and caught.value.line == 2


def test_included_file_cannot_close_the_including_section(tmp_path: Path) -> None:
    write(tmp_path / "bad.conf", "x = 1\n}\n")
    main = write(tmp_path / "main.conf", "plugin {\n!include bad.conf\n}\n")
    with pytest.raises(ConfigSyntaxError) as caught:
        parse_file(main)
    assert caught.value.file == str(tmp_path / "bad.conf") and caught.value.line == 2


def test_unreadable_main_file_is_a_config_file_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigFileError, match="cannot read"):
        parse_file(tmp_path / "nope.conf")


# --- malformed files ----------------------------------------------------------------


def test_unclosed_section_reports_line_it_opened_on() -> None:
    with pytest.raises(ConfigSyntaxError) as caught:
        parse("a = 1\nplugin {\n  x = 1\n\n")
    assert caught.value.line == 2
    assert "never closed" in caught.value.reason
    assert str(caught.value).startswith("test.conf:2: ")


def test_unexpected_closing_brace_is_an_error() -> None:
    with pytest.raises(ConfigSyntaxError) as caught:
        parse("plugin {\n}\n}\n")
    assert caught.value.line == 3 and "unexpected '}'" in caught.value.reason


def test_line_that_is_neither_setting_nor_section_is_an_error() -> None:
    with pytest.raises(ConfigSyntaxError) as caught:
        parse("ok = 1\njust some words\n")
    assert caught.value.line == 2 and "expected 'key = value'" in caught.value.reason


def test_unterminated_quote_is_an_error() -> None:
    with pytest.raises(ConfigSyntaxError) as caught:
        parse('key = "unterminated\n')
    assert caught.value.line == 1 and "unterminated" in caught.value.reason


def test_text_after_quoted_value_is_an_error() -> None:
    with pytest.raises(ConfigSyntaxError, match="after the quoted value"):
        parse('key = "a" b\n')
