"""LMTP delivery over real loopback sockets (RFC 2033)."""

from __future__ import annotations

import asyncio
import smtplib
import socket

import pytest

from mailpush.delivery import DeliveryAgent
from mailpush.errors import MailboxNotFoundError
from mailpush.lmtp import LmtpOptions, LmtpServer
from mailpush.server import MailpushServer
from tests.conftest import lmtp_port

MESSAGE = (
    b"From: Sender <sender@example.net>\r\n"
    b"To: alice@example.org\r\n"
    b"Subject: Hello\r\n"
    b"\r\n"
    b"Body line one.\r\n"
)


def lmtp_client(server: MailpushServer) -> smtplib.LMTP:
    client = smtplib.LMTP("127.0.0.1", lmtp_port(server))
    client.ehlo("client.example")
    return client


async def in_thread(fn, *args):  # type: ignore[no-untyped-def]
    return await asyncio.to_thread(fn, *args)


def lmtp_transaction(
    client: smtplib.LMTP, rcpts: list[str], raw: bytes
) -> dict[str, tuple[int, bytes]]:
    """MAIL, RCPT each, DATA; then one reply per accepted recipient (smtplib reads only one)."""
    client.mail("sender@example.net")
    replies = {rcpt: client.rcpt(rcpt) for rcpt in rcpts}
    accepted = [rcpt for rcpt, (code, _) in replies.items() if code == 250]
    if accepted:
        code, _ = client.docmd("DATA")
        assert code == 354
        client.send(raw.replace(b"\r\n.", b"\r\n..") + b".\r\n")
        for rcpt in accepted:
            replies[rcpt] = client.getreply()
    return replies


def deliver_raw(
    server: MailpushServer, rcpts: list[str], raw: bytes
) -> dict[str, tuple[int, bytes]]:
    """Deliver and return the recipients whose final reply was not 250 (like sendmail)."""
    with lmtp_client(server) as client:
        replies = lmtp_transaction(client, rcpts, raw)
    return {rcpt: reply for rcpt, reply in replies.items() if reply[0] != 250}


async def test_lhlo_advertises_the_lmtp_extensions(server: MailpushServer) -> None:
    def lhlo() -> set[str]:
        with lmtp_client(server) as client:
            return set(client.esmtp_features)

    features = await in_thread(lhlo)
    assert {"pipelining", "enhancedstatuscodes", "8bitmime", "size"} <= features


async def test_each_accepted_recipient_gets_its_own_reply(server: MailpushServer) -> None:
    def transaction() -> list[tuple[int, bytes]]:
        with socket.create_connection(("127.0.0.1", lmtp_port(server))) as sock:
            stream = sock.makefile("rwb")
            stream.readline()
            commands = [
                b"LHLO client.example",
                b"MAIL FROM:<sender@example.net>",
                b"RCPT TO:<alice@example.org>",
                b"RCPT TO:<nobody@example.org>",
                b"RCPT TO:<bob>",
                b"DATA",
            ]
            stream.write(b"".join(c + b"\r\n" for c in commands))  # pipelined
            stream.flush()
            replies = []
            while len(replies) < 6:
                line = stream.readline()
                if line[3:4] == b"-":
                    continue
                replies.append((int(line[:3]), line.rstrip()))
            stream.write(MESSAGE + b".\r\n")
            stream.flush()
            for _ in range(2):
                line = stream.readline()
                replies.append((int(line[:3]), line.rstrip()))
            stream.write(b"QUIT\r\n")
            stream.flush()
            return replies

    replies = await in_thread(transaction)
    codes = [code for code, _ in replies]
    assert codes == [250, 250, 250, 550, 250, 354, 250, 250]
    assert replies[3][1].startswith(b"550 5.1.1 <nobody@example.org>")
    assert replies[6][1].startswith(b"250 2.0.0 <alice@example.org>")
    assert replies[7][1].startswith(b"250 2.0.0 <bob>")
    store = server.store
    assert store is not None
    assert await store.raw_message("alice", "INBOX", 1) == MESSAGE
    assert await store.raw_message("bob", "INBOX", 1) == MESSAGE


async def test_smtplib_reports_refused_recipients_and_delivers_the_rest(
    server: MailpushServer,
) -> None:
    refused = await in_thread(
        deliver_raw, server, ["alice@example.org", "ghost@example.org", "carol@example.org"],
        MESSAGE,
    )
    assert list(refused) == ["ghost@example.org"]
    assert refused["ghost@example.org"][0] == 550
    assert server.store is not None
    assert (await server.store.status("carol", "INBOX")).messages == 1


async def test_message_content_round_trips_byte_exact(server: MailpushServer) -> None:
    raw = (
        b"Subject: binary\r\n"
        b"X-Bare: line one\nline two with bare LF\n"
        b"\r\n"
        b"CRLF line\r\n"
        b"bare LF line\n"
        b"8-bit: \xc3\xa4\xc3\xb6\xe2\x82\xac and latin-1 \xe4\xf6\r\n"
        b".leading dot survives dot-stuffing\r\n"
        + bytes(range(1, 256)).replace(b"\r", b"").replace(b"\n", b"") + b"\r\n"
    )
    refused = await in_thread(deliver_raw, server, ["alice"], raw)
    assert refused == {}
    assert server.store is not None
    assert await server.store.raw_message("alice", "INBOX", 1) == raw


async def test_oversized_message_gets_552_and_nothing_is_stored(make_server) -> None:  # type: ignore[no-untyped-def]
    server = await make_server("mailpush_max_message_size = 10k\n")

    def send() -> tuple[int, bytes]:
        with lmtp_client(server) as client:
            client.mail("sender@example.net")
            client.rcpt("alice")
            client.putcmd("data")
            assert client.getreply()[0] == 354
            client.send(b"Subject: big\r\n\r\n" + b"x" * 998 + b"\r\n")
            for _ in range(20):
                client.send(b"y" * 998 + b"\r\n")
            client.send(b".\r\n")
            return client.getreply()

    code, text = await in_thread(send)
    assert code == 552
    assert text.startswith(b"5.3.4")
    assert server.store is not None
    with pytest.raises(MailboxNotFoundError):
        await server.store.status("alice", "INBOX")


async def test_size_parameter_above_the_limit_is_refused_at_mail_from(make_server) -> None:  # type: ignore[no-untyped-def]
    server = await make_server("mailpush_max_message_size = 10k\n")

    def send() -> tuple[int, bytes]:
        with lmtp_client(server) as client:
            return client.mail("sender@example.net", ["SIZE=50000"])

    code, _ = await in_thread(send)
    assert code == 552


async def test_commands_out_of_order_get_503_and_the_session_goes_on(
    server: MailpushServer,
) -> None:
    def session() -> list[int]:
        with socket.create_connection(("127.0.0.1", lmtp_port(server))) as sock:
            stream = sock.makefile("rwb")
            stream.readline()
            codes = []
            for command in [b"MAIL FROM:<a@b>", b"LHLO x", b"RCPT TO:<alice>", b"DATA",
                            b"MAIL FROM:<a@b>", b"DATA", b"RSET", b"NOOP", b"HELO x", b"QUIT"]:
                stream.write(command + b"\r\n")
                stream.flush()
                while True:
                    line = stream.readline()
                    if line[3:4] != b"-":
                        break
                codes.append(int(line[:3]))
            return codes

    codes = await in_thread(session)
    # MAIL before LHLO, RCPT before MAIL, DATA before RCPT, DATA without RCPT, HELO is not LMTP
    assert codes == [503, 250, 503, 503, 250, 503, 250, 250, 500, 221]


async def test_two_megabyte_header_line_is_refused_clearly_and_the_server_survives(
    server: MailpushServer,
) -> None:
    def send_huge() -> tuple[int, bytes]:
        with lmtp_client(server) as client:
            client.mail("sender@example.net")
            client.rcpt("alice")
            client.putcmd("data")
            client.getreply()
            client.send(b"X-Huge: " + b"a" * (2 * 1024 * 1024) + b"\r\n\r\nbody\r\n.\r\n")
            return client.getreply()

    code, text = await in_thread(send_huge)
    assert code == 500
    assert b"Line too long" in text
    assert (await in_thread(deliver_raw, server, ["alice"], MESSAGE)) == {}
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 1


async def test_invalid_utf8_in_headers_is_stored_as_is(server: MailpushServer) -> None:
    raw = b"Subject: caf\xe9 \xff\xfe broken\r\nFrom: \xc3\x28 <x@example.org>\r\n\r\nbody\r\n"
    assert (await in_thread(deliver_raw, server, ["alice"], raw)) == {}
    assert server.store is not None
    assert await server.store.raw_message("alice", "INBOX", 1) == raw


async def test_recipient_with_domain_finds_the_bare_user(server: MailpushServer) -> None:
    assert (await in_thread(deliver_raw, server, ["Alice@Example.ORG"], MESSAGE)) == {}
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 1


async def test_detail_mailbox_is_used_only_when_enabled_and_existing(make_server) -> None:  # type: ignore[no-untyped-def]
    server = await make_server("lmtp_save_to_detail_mailbox = yes\n")
    store = server.store
    await store.create_mailbox("alice", "work")
    await in_thread(deliver_raw, server, ["alice+work@example.org"], MESSAGE)
    await in_thread(deliver_raw, server, ["alice+nothere@example.org"], MESSAGE)
    assert (await store.status("alice", "work")).messages == 1
    assert (await store.status("alice", "INBOX")).messages == 1


async def test_eight_concurrent_connections_get_unique_increasing_uids(
    server: MailpushServer,
) -> None:
    def connection(index: int) -> list[int]:
        uids = []
        with lmtp_client(server) as client:
            for n in range(15):
                body = MESSAGE + b"connection %d message %d\r\n" % (index, n)
                reply = lmtp_transaction(client, ["alice"], body)["alice"]
                assert reply[0] == 250
                uids.append(int(reply[1].rsplit(b"uid ", 1)[1].rstrip(b")")))
        return uids

    results = await asyncio.gather(*(in_thread(connection, i) for i in range(8)))
    every = [uid for uids in results for uid in uids]
    assert sorted(every) == list(range(1, 121))
    assert all(uids == sorted(uids) for uids in results)
    assert server.store is not None
    assert [m.uid for m in await server.store.messages("alice", "INBOX")] == list(range(1, 121))


class _BrokenPlanner:
    """A filing planner with a bug: the server must not turn it into a bounce."""

    async def plan(self, request: object) -> list[object]:
        raise RuntimeError("planner bug")


async def test_an_unexpected_error_is_a_temporary_failure_not_a_bounce(
    server: MailpushServer, caplog: pytest.LogCaptureFixture
) -> None:
    assert server.store is not None
    broken = LmtpServer(
        DeliveryAgent(server.store, _BrokenPlanner()),  # type: ignore[arg-type]
        lambda address: address.partition("@")[0],
        LmtpOptions(address="127.0.0.1", port=0),
    )
    host, port = await broken.start()
    try:

        def send() -> tuple[int, bytes]:
            with smtplib.LMTP(host, port) as client:
                client.ehlo("client.example")
                return lmtp_transaction(client, ["alice"], MESSAGE)["alice"]

        code, text = await in_thread(send)
    finally:
        await broken.stop(5)
    assert code == 451 and b"4.3.0" in text
    assert "failed unexpectedly" in caplog.text and "planner bug" in caplog.text


def _pipelined_session(server: MailpushServer, exchange):  # type: ignore[no-untyped-def]
    """A raw connection past LHLO, with a 5 s timeout: a reply held back hangs no test."""
    sock = socket.create_connection(("127.0.0.1", lmtp_port(server)), timeout=5)
    stream = sock.makefile("rb")
    stream.readline()
    sock.sendall(b"LHLO client.example\r\n")
    while stream.readline()[3:4] == b"-":
        pass
    try:
        return exchange(sock, stream)
    finally:
        stream.close()
        sock.close()


async def test_a_pipelined_group_is_answered_in_one_write(server: MailpushServer) -> None:
    """RFC 2920: the replies to MAIL, RCPT and DATA sent together go back in one write,
    so an MTA's client wakes once for them, not once per command."""
    loop = asyncio.get_running_loop()
    writes: list[bytes] = []

    def counted(sock: socket.socket, stream: object) -> bytes:
        async def watch() -> None:  # on the server's loop: its side of this connection
            (connection,) = server.lmtp[0].handler.connections
            transport = connection._writer.transport
            write = transport.write

            def write_counted(data: bytes) -> None:
                writes.append(bytes(data))
                write(data)

            transport.write = write_counted

        asyncio.run_coroutine_threadsafe(watch(), loop).result()
        sock.sendall(
            b"MAIL FROM:<sender@example.net>\r\nRCPT TO:<alice>\r\nRCPT TO:<bob>\r\nDATA\r\n"
        )
        data = b""
        while data.count(b"\r\n") < 4:
            data += sock.recv(65536)
        return data

    data = await in_thread(_pipelined_session, server, counted)
    assert [line[:3] for line in data.split(b"\r\n") if line] == [b"250", b"250", b"250", b"354"]
    assert writes == [data]


async def test_a_reply_is_not_held_for_a_command_line_not_yet_complete(
    server: MailpushServer,
) -> None:
    """Only a whole command line read already holds a reply back: a client that sent
    MAIL and half of RCPT, and waits, gets MAIL's reply."""

    def half(sock: socket.socket, stream: object) -> list[bytes]:
        assert hasattr(stream, "readline")
        sock.sendall(b"MAIL FROM:<sender@example.net>\r\nRCPT TO:<ali")
        replies = [stream.readline()]
        sock.sendall(b"ce>\r\n")
        replies.append(stream.readline())
        return replies

    replies = await in_thread(_pipelined_session, server, half)
    assert [reply[:3] for reply in replies] == [b"250", b"250"]


async def test_354_goes_out_even_when_the_message_follows_in_the_same_write(
    server: MailpushServer,
) -> None:
    """A client that sends the message without waiting for 354 still gets it first,
    then the delivery's reply once the message is complete."""

    def early(sock: socket.socket, stream: object) -> list[bytes]:
        assert hasattr(stream, "readline")
        sock.sendall(
            b"MAIL FROM:<sender@example.net>\r\nRCPT TO:<alice>\r\nDATA\r\n"
            b"Subject: early\r\n"
        )
        replies = [stream.readline() for _ in range(3)]
        sock.sendall(b"\r\nbody\r\n.\r\n")
        replies.append(stream.readline())
        return replies

    replies = await in_thread(_pipelined_session, server, early)
    assert [reply[:3] for reply in replies] == [b"250", b"250", b"354", b"250"]
    assert server.store is not None
    assert (await server.store.status("alice", "INBOX")).messages == 1


async def test_replies_held_for_a_pipelined_group_are_not_lost_when_the_server_closes(
    server: MailpushServer,
) -> None:
    """QUIT (or too many unknown commands) closes the connection even while more
    commands wait: the replies before it still reach the client."""

    def until_closed(sock: socket.socket, stream: object) -> list[bytes]:
        assert hasattr(stream, "readline")
        sock.sendall(b"MAIL FROM:<sender@example.net>\r\nRCPT TO:<alice>\r\nQUIT\r\nNOOP\r\n")
        return list(iter(stream.readline, b""))

    replies = await in_thread(_pipelined_session, server, until_closed)
    assert [reply[:3] for reply in replies] == [b"250", b"250", b"221"]
