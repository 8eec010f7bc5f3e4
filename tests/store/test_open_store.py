"""`mailpush_store` chooses the backend: SQLite in mailpush_data_dir, or a PostgreSQL URI."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailpush.config.reader import load_settings
from mailpush.config.settings import Settings
from mailpush.errors import SettingError
from mailpush.store import SqliteStore
from mailpush.store.open_store import configured_store, open_store, store_location
from mailpush.store.pg_store import PostgresStore
from tests.support.postgres import PostgresServer, postgres_server

__all__ = ["postgres_server"]  # the session fixture, imported for pytest to find


def settings(tmp_path: Path, text: str) -> Settings:
    path = tmp_path / "mailpush.conf"
    path.write_text(f"mailpush_data_dir = {tmp_path / 'data'}\n{text}\n")
    return load_settings(path).settings


def test_an_empty_setting_keeps_the_sqlite_file_in_the_data_dir(tmp_path: Path) -> None:
    chosen = settings(tmp_path, "")
    store = configured_store(chosen)
    assert isinstance(store, SqliteStore)
    assert store.path == tmp_path / "data" / "mail.sqlite"
    assert store_location(chosen) == str(store.path)


def test_a_postgresql_uri_chooses_postgresql_and_is_shown_masked(tmp_path: Path) -> None:
    chosen = settings(tmp_path, "mailpush_store = postgresql://mail:s3cret@db.example:5433/mail")
    assert isinstance(configured_store(chosen), PostgresStore)
    assert store_location(chosen) == "postgresql://mail:***@db.example:5433/mail"


def test_a_uri_of_another_database_is_refused_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(SettingError, match="mailpush_store: expected a postgresql://") as caught:
        settings(tmp_path, "mailpush_store = mysql://mail:s3cret@db/mail")
    assert "s3cret" not in str(caught.value)
    assert "mysql://mail:***@db/mail" in str(caught.value)


async def test_open_store_opens_and_migrates_the_configured_database(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    uri = postgres_server.create_database()
    store = open_store(settings(tmp_path, f"mailpush_store = {uri}"))
    try:
        await store.create_mailbox("alice", "INBOX")
        assert [m.name for m in await store.list_mailboxes("alice")] == ["INBOX"]
    finally:
        store.close()
