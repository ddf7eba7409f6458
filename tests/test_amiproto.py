"""The AMI protocol core (asterisk_kit/amiproto.py) replaying byte streams recorded from the real
testbed Asterisk 22 (tests/data/ami/, recorded by `python -m testbed.amirecord tests/data/ami`).

Each stream is fed whole, in random chunks and byte by byte; each action is issued at the point of
the stream where the recorder sent it (the `offset` in NAME.json), as a real client would.
"""
from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Callable, Iterator, List, Tuple

import pytest

from asterisk_kit.amiproto import (
    AmiActionError,
    AmiAuthError,
    AmiError,
    AmiProtocol,
    AmiProtocolError,
    Decoder,
    Pending,
    encode_action,
    parse_message,
)

DATA = Path(__file__).parent / "data" / "ami"


def whole(b: bytes) -> Iterator[bytes]:
    if b:
        yield b


def bytewise(b: bytes) -> Iterator[bytes]:
    for i in range(len(b)):
        yield b[i:i + 1]


def random_chunks(seed: int) -> Callable[[bytes], Iterator[bytes]]:
    def split(b: bytes) -> Iterator[bytes]:
        rnd, i = random.Random(seed), 0
        while i < len(b):
            n = rnd.randint(1, 40)
            yield b[i:i + n]
            i += n
    return split


CHUNKINGS = {"whole": whole, "bytewise": bytewise, "random1": random_chunks(1), "random2": random_chunks(2)}


def replay(name: str, chunker) -> Tuple[AmiProtocol, List[Pending], List[dict]]:
    """Issue the recorded steps against the recorded stream; return the finished actions and events."""
    stream = (DATA / f"{name}.bin").read_bytes()
    steps = json.loads((DATA / f"{name}.json").read_text())["steps"]
    events: List[dict] = []
    proto = AmiProtocol(events.append)
    done: List[Pending] = []
    pos = 0
    for step in steps:
        for chunk in chunker(stream[pos:step["offset"]]):
            proto.receive(chunk)
        pos = step["offset"]
        args = dict(step["args"])
        if step["call"] == "login_md5":
            args["challenge"] = done[-1].response["Challenge"]   # the live answer, as a client would
        if step["call"] in ("action", "list_action"):
            p = getattr(proto, step["call"])(args.pop("action"), **args)
        else:
            p = getattr(proto, step["call"])(**args)
        done.append(p)
    for chunk in chunker(stream[pos:]):
        proto.receive(chunk)
    return proto, done, events


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_banner_and_plain_login(chunking):
    proto, (login, ping, logoff), _ = replay("login_ok", CHUNKINGS[chunking])
    assert proto.banner == "Asterisk Call Manager/11.0.0"
    assert login.result()["Message"] == "Authentication accepted"
    assert ping.result()["Ping"] == "Pong"
    assert logoff.result()["Response"] == "Goodbye"        # not an error


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_login_refused_raises_auth_error(chunking):
    _, (login,), _ = replay("login_refused", CHUNKINGS[chunking])
    with pytest.raises(AmiAuthError, match=r"AMI login as 'rec-all' refused: Authentication failed"):
        login.result()


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_md5_challenge_login(chunking):
    _, (challenge, login, ping, _logoff), _ = replay("login_md5", CHUNKINGS[chunking])
    ch = challenge.result()["Challenge"]
    assert ch.isdigit()
    # the secret never crosses the wire, only md5(challenge + secret), which Asterisk accepted
    assert b"rec-all-secret" not in login.wire
    assert f"Key: {hashlib.md5((ch + 'rec-all-secret').encode()).hexdigest()}".encode() in login.wire
    assert login.result()["Message"] == "Authentication accepted"
    assert ping.result()["Ping"] == "Pong"


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_list_actions_with_cyrillic_caller_name(chunking):
    _, (login, originate, channels, states, command, _logoff), _ = replay("lists", CHUNKINGS[chunking])
    rows = channels.result()
    assert [r["Event"] for r in rows] == ["CoreShowChannel", "CoreShowChannel"]   # Complete is not a row
    assert {r["CallerIDName"] for r in rows} == {"Иван Петров", "<unknown>"}
    assert channels.response["EventList"] == "start"
    assert [(r["Exten"], r["StatusText"]) for r in states.result()] == [("101", "Idle"), ("102", "Idle")]
    assert command.result()["Output"] == "Dialplan reloaded.\n"


def test_utf8_split_exactly_inside_a_cyrillic_letter():
    stream = (DATA / "lists.bin").read_bytes()
    cut = stream.index("Иван".encode()) + 1          # between the two bytes of "И"
    # the stream cut inside the letter: nothing lost or replaced
    d = Decoder()
    msgs = d.feed(stream[:cut]) + d.feed(stream[cut:])
    names = [m.get("CallerIDName") for m in msgs if m.get("Event") == "CoreShowChannel"]
    assert "Иван Петров" in names and not any("\ufffd" in (n or "") for n in names)


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_events_split_across_reads_arrive_whole_and_in_order(chunking):
    _, (login, originate, _logoff), events = replay("events", CHUNKINGS[chunking])
    reference = replay("events", whole)[2]
    assert events == reference                        # however the stream is cut
    assert originate.result()["Message"] == "Originate successfully queued"
    names = [e["Event"] for e in events]
    assert "Newchannel" in names and "Hangup" in names
    assert any(e.get("CallerIDName") == "Иван Петров" for e in events if e["Event"] == "NewCallerid")


@pytest.mark.parametrize("chunking", CHUNKINGS)
def test_refused_actions_raise_naming_action_and_message(chunking):
    _, (login, command, channels, states, ping, _logoff), _ = replay("refused", CHUNKINGS[chunking])
    login.result()
    for p, action in ((command, "Command"), (channels, "CoreShowChannels"), (states, "ExtensionStateList")):
        with pytest.raises(AmiActionError) as e:
            p.result()
        assert str(e.value) == f"Asterisk refused {action}: Permission denied"
        assert e.value.action == action and e.value.permission_denied
    assert ping.result()["Ping"] == "Pong"            # Ping needs no class


def test_list_applied_before_the_events_after_it():
    """The BLF daemon relies on it: a snapshot is applied before any event read after it."""
    seen = []
    proto = AmiProtocol(lambda ev: seen.append(("event", ev["Event"])))
    p = proto.list_action("ExtensionStateList")
    p.on_done = lambda p: seen.append(("list", len(p.rows)))
    proto.receive(b"Asterisk Call Manager/11.0.0\r\n"
                  b"Response: Success\r\nActionID: akit-1\r\nEventList: start\r\n\r\n"
                  b"Event: ExtensionStatus\r\nActionID: akit-1\r\nExten: 1\r\nStatus: 0\r\n\r\n"
                  b"Event: ExtensionStateListComplete\r\nActionID: akit-1\r\nEventList: Complete\r\n\r\n"
                  b"Event: ExtensionStatus\r\nExten: 1\r\nStatus: 1\r\n\r\n")
    assert seen == [("list", 1), ("event", "ExtensionStatus")]


def test_not_ami_is_refused():
    with pytest.raises(AmiProtocolError, match="not AMI"):
        Decoder().feed(b"SSH-2.0-OpenSSH_9.2\r\n")


def test_values_with_line_breaks_cannot_add_headers():
    with pytest.raises(AmiError):
        encode_action("Command", "akit-1", {"Command": "core show version\r\nAction: Originate"})
    assert encode_action("Setvar", "a-1", {"Variable": ["A=1", "B=2"]}) == \
        b"Action: Setvar\r\nActionID: a-1\r\nVariable: A=1\r\nVariable: B=2\r\n\r\n"


def test_late_answer_of_a_forgotten_action_is_ignored_and_lost_link_fails_waiters():
    proto = AmiProtocol()
    proto.receive(b"Asterisk Call Manager/11.0.0\r\n")
    p = proto.action("Ping")
    proto.forget(p)
    proto.receive(b"Response: Success\r\nActionID: akit-1\r\nPing: Pong\r\n\r\n")
    assert not p.done
    q = proto.action("Ping")
    proto.fail_all(AmiError("AMI connection lost"))
    with pytest.raises(AmiError, match="lost"):
        q.result()


def test_parse_output_lines():
    m = parse_message(b"Response: Success\r\nMessage: Command output follows\r\nOutput: a: b\r\nOutput: c")
    assert m["Output"] == "a: b\nc\n" and m["Message"] == "Command output follows"
