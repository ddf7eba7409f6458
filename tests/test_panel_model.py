"""The operator panel's call model (asterisk_kit/blf/calls) replaying the AMI stream recorded from the
real testbed (tests/data/ami/panel.bin, `python -m testbed.panelrecord tests/data/ami`): baresip phones
on PJSIP endpoints behind FreePBX hints, an outside caller, a blind transfer, an internal call, DND and
presence, a queue (waiting, answered, abandoned) and a parked call, seen by the read-only user of
manager/asterisk-kit-panel.conf. The panel's own snapshot lists are in the stream where it asked for
them; each snapshot rebuilds a fresh model that must equal the model that followed the events.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, List

import pytest

from asterisk_kit.amiproto import AmiProtocol, Pending
from asterisk_kit.blf.calls.model import Model
from asterisk_kit.blf.calls.privacy import FULL, Permissions
from asterisk_kit.blf.calls.snapshot import SNAPSHOT_ACTIONS

DATA = Path(__file__).parent / "data" / "ami"
PRIVATE = Permissions(see_numbers=False)
TIMES = ("since", "answered", "answered_known", "counted_since", "timeout_at", "answered", "abandoned")


class Follower:
    """A panel as the daemon will run it: the first snapshot builds the model, events follow, and every
    later snapshot rebuilds a fresh model that must equal the followed one. `at(mark)` keeps the views."""

    def __init__(self) -> None:
        self.model = Model()
        self.last_ts = 0.0
        self.marks: Dict[str, dict] = {}
        self.private: Dict[str, dict] = {}
        self.compared: List[str] = []
        self.group: List[Pending] = []
        self.where = "start"

    def at(self, what: str) -> None:
        self.where = what
        self.marks[what] = self.model.view_for(FULL, self.last_ts)
        self.private[what] = self.model.view_for(PRIVATE, self.last_ts)
        self.marks[what]["ts"] = self.last_ts

    def issued(self, p: Pending) -> None:
        p.on_done = self.list_done
        self.group.append(p)


    def event(self, ev: dict) -> None:
        if "Timestamp" in ev:
            self.last_ts = float(ev["Timestamp"])
        self.model.apply(ev)

    def list_done(self, p: Pending) -> None:
        assert p.error is None, p.error
        if p.action != SNAPSHOT_ACTIONS[-1]:
            return
        assert [g.action for g in self.group] == list(SNAPSHOT_ACTIONS)
        rows = [r for g in self.group for r in g.rows]
        self.group = []
        if not self.model.hints.hint:           # the first snapshot: the model starts from it
            self.model.rebuild(rows, self.last_ts)
            return
        fresh = Model()
        fresh.rebuild(rows, self.last_ts)
        self.compare(fresh.view_for(FULL, self.last_ts), self.model.view_for(FULL, self.last_ts))
        # the followed model rebuilt (as after a reconnect) keeps today's queue counts
        before = [(q["answered"], q["abandoned"]) for q in self.model.view_for(FULL, self.last_ts)["queues"]]
        self.model.rebuild(rows, self.last_ts)
        after = [(q["answered"], q["abandoned"]) for q in self.model.view_for(FULL, self.last_ts)["queues"]]
        assert before == after, self.where
        self.compared.append(self.where)

    def compare(self, rebuilt: dict, followed: dict) -> None:
        assert strip(rebuilt) == strip(followed), self.where
        for key, view in followed["keys"].items():
            for c_re, c_fo in zip(rebuilt["keys"][key]["calls"], view["calls"], strict=True):
                if c_fo["answered"] is not None:
                    # the snapshot knows the channel's age only: the answer can't be later than it says
                    assert c_re["answered"] is not None and c_re["answered"] <= c_fo["answered"] + 1, (self.where, key)


class Replay(Follower):
    """The recorded stream, with the panel's own list actions issued where it issued them."""

    def __init__(self) -> None:
        super().__init__()
        proto = AmiProtocol(self.event)
        stream = (DATA / "panel.bin").read_bytes()
        steps = json.loads((DATA / "panel.json").read_text())["steps"]
        pos = 0
        for step in steps:
            proto.receive(stream[pos:step["offset"]])
            pos = step["offset"]
            if step["call"] == "mark":
                self.at(step["args"]["what"])
            elif step["call"] == "list_action":
                self.issued(proto.list_action(step["args"]["action"]))
            else:
                getattr(proto, step["call"])(**step["args"])
        proto.receive(stream[pos:])


def strip(v):
    if isinstance(v, dict):
        return {k: strip(x) for k, x in v.items() if k not in TIMES}
    if isinstance(v, list):
        return [strip(x) for x in v]
    return v


@pytest.fixture(scope="module")
def replay() -> Replay:
    return Replay()


def calls(replay: Replay, mark: str, key: str) -> List[dict]:
    return replay.marks[mark]["keys"][key]["calls"]


def test_every_snapshot_rebuilds_what_the_events_built(replay):
    assert replay.compared == ["outside caller rings 101", "101 talks to the outside caller",
                               "102 talks to the outside caller", "103 talks to 101", "101 DND, 102 away",
                               "queue caller waits, 102 rings, 103 paused", "102 talks to the queue caller",
                               "outside caller parked", "parked caller gave up"]


def test_idle_keys_from_freepbx_hints(replay):
    keys = replay.marks["idle"]["keys"]
    assert sorted(keys) == ["101", "102", "103"]
    for k in keys.values():
        assert k["calls"] == [] and k["dnd"] is False and k["phone"] == "idle" and k["presence"] == ""


def test_caller_id_on_the_ringing_key_then_connected_line_after_answer(replay):
    (c,) = calls(replay, "outside caller rings 101", "101")
    assert (c["state"], c["direction"], c["number"], c["name"]) == ("ringing", "in", "79161234567", "Иван Клиент")
    assert c["answered"] is None
    (c,) = calls(replay, "101 talks to the outside caller", "101")
    assert (c["state"], c["number"], c["name"]) == ("up", "79161234567", "Иван Клиент")
    assert c["answered_known"] and c["since"] <= c["answered"] <= replay.marks["101 talks to the outside caller"]["ts"]
    assert calls(replay, "outside caller rings 101", "102") == []


def test_blind_transfer_moves_the_caller_to_the_new_key(replay):
    assert calls(replay, "blind transfer: 102 rings with the outside caller", "101") == []
    (c,) = calls(replay, "blind transfer: 102 rings with the outside caller", "102")
    assert (c["state"], c["direction"], c["number"], c["name"]) == ("ringing", "in", "79161234567", "Иван Клиент")
    (c,) = calls(replay, "102 talks to the outside caller", "102")
    assert (c["state"], c["number"]) == ("up", "79161234567")
    assert all(k["calls"] == [] for k in replay.marks["all hung up"]["keys"].values())


def test_internal_call_directions_and_parties(replay):
    (out,) = calls(replay, "103 calls 101", "103")
    (inc,) = calls(replay, "103 calls 101", "101")
    assert (out["direction"], out["state"], out["number"], out["name"]) == ("out", "dialing", "101", "Phone 101")
    assert (inc["direction"], inc["state"], inc["number"], inc["name"]) == ("in", "ringing", "103", "Phone 103")
    assert [c["state"] for k in ("101", "103") for c in calls(replay, "103 talks to 101", k)] == ["up", "up"]


def test_dnd_is_shown_as_dnd_not_as_a_call_and_presence_apart(replay):
    keys = replay.marks["101 DND, 102 away"]["keys"]
    assert keys["101"]["dnd"] is True and keys["101"]["calls"] == [] and keys["101"]["phone"] == "idle"
    assert keys["102"]["dnd"] is False
    assert (keys["102"]["presence"], keys["102"]["presence_message"]) == ("away", "lunch")
    assert keys["103"]["presence"] == "" and keys["103"]["dnd"] is False


def test_queue_waiting_caller_members_and_counts(replay):
    (q,) = replay.marks["queue caller waits, 102 rings, 103 paused"]["queues"]
    assert q["queue"] == "sales"
    assert [(w["position"], w["number"], w["name"]) for w in q["waiting"]] == [(1, "79035551122", "Пётр Очередь")]
    members = {m["interface"]: m for m in q["members"]}
    assert members["PJSIP/103"]["paused"] and members["PJSIP/103"]["paused_reason"] == "break"
    assert members["PJSIP/102"]["status"] == "ringing" and not members["PJSIP/102"]["paused"]
    (c,) = calls(replay, "queue caller waits, 102 rings, 103 paused", "102")
    assert (c["state"], c["queue"], c["number"]) == ("ringing", "sales", "79035551122")

    (q,) = replay.marks["102 talks to the queue caller"]["queues"]
    assert q["waiting"] == []
    assert {m["interface"]: m["in_queue_call"] for m in q["members"]} == {"PJSIP/102": True, "PJSIP/103": False}
    (c,) = calls(replay, "102 talks to the queue caller", "102")
    assert (c["state"], c["queue"]) == ("up", "sales")

    (q,) = replay.marks["queue call done"]["queues"]
    assert (q["answered"], q["abandoned"]) == (1, 0)
    (q,) = replay.marks["queue caller abandoned"]["queues"]
    assert (q["answered"], q["abandoned"], q["waiting"]) == (1, 1, [])
    assert (q["answered_total"], q["abandoned_total"]) == (1, 1)


def test_parked_call(replay):
    (p,) = replay.marks["outside caller parked"]["parked"]
    assert (p["lot"], p["space"], p["number"], p["name"]) == ("default", "701", "79990001122", "Parked Guest")
    assert p["since"] <= replay.marks["outside caller parked"]["ts"]
    assert replay.marks["parked caller gave up"]["parked"] == []


def test_privacy_projection_never_carries_outside_numbers(replay):
    outside = ["79161234567", "79035551122", "79990001122"]
    for mark, view in replay.private.items():
        text = json.dumps(view, ensure_ascii=False)
        assert not any(n in text for n in outside), mark
    (c,) = replay.private["outside caller rings 101"]["keys"]["101"]["calls"]
    assert (c["number"], c["name"]) == (None, "Иван Клиент")
    (w,) = replay.private["queue caller waits, 102 rings, 103 paused"]["queues"][0]["waiting"]
    assert (w["number"], w["name"]) == (None, "Пётр Очередь")
    (p,) = replay.private["outside caller parked"]["parked"]
    assert (p["number"], p["name"]) == (None, "Parked Guest")
    # colleagues' extensions are on the panel anyway: kept
    (c,) = replay.private["103 calls 101"]["keys"]["101"]["calls"]
    assert c["number"] == "103"


def test_privacy_drops_a_name_that_is_only_a_number_and_filters_queues():
    from asterisk_kit.blf.calls.privacy import party
    assert party("79161234567", "+7 916 123-45-67", PRIVATE, set()) == (None, "")
    assert party("79161234567", "79161234567", PRIVATE, set()) == (None, "")
    assert party("79161234567", "Ivan", FULL, set()) == ("79161234567", "Ivan")
    m = Model()
    m.apply({"Event": "QueueCallerJoin", "Queue": "sales", "Uniqueid": "1", "Position": "1", "CallerIDNum": "5"})
    m.apply({"Event": "QueueCallerJoin", "Queue": "vip", "Uniqueid": "2", "Position": "1", "CallerIDNum": "6"})
    assert [q["queue"] for q in m.view_for(Permissions(queues={"sales"}))["queues"]] == ["sales"]
    assert m.view_of(("queue", "vip"), Permissions(queues={"sales"})) is None


def test_apply_reports_what_changed():
    m = Model()
    hint = {"Event": "ExtensionStatus", "Exten": "101", "Context": "ext-local",
            "Hint": "PJSIP/101&Custom:DND101,CustomPresence:101", "Status": "0"}
    assert m.apply(hint) == [("key", "101")]
    assert m.apply(hint) == []
    assert m.apply({"Event": "DeviceStateChange", "Device": "Custom:DND101", "State": "BUSY"}) == [("key", "101")]
    assert m.key_view("101")["dnd"] is True
    assert m.apply({"Event": "DeviceStateChange", "Device": "Queue:sales_avail", "State": "INUSE"}) == []
    assert m.apply({"Event": "VarSet", "Uniqueid": "x"}) == []
    assert m.apply({"Event": "ExtensionStatus", "Exten": "101", "Context": "ext-local", "Hint": "", "Status": "-2"}) \
        == [("key", "101")]
    assert m.view_of(("key", "101")) is None
