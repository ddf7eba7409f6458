"""The operator panel's call model LIVE on the real testbed (testbed/panelbed.py): three baresip phones
registered to PJSIP endpoints behind FreePBX hints (`PJSIP/101&Custom:DND101,CustomPresence:101`), an
outside caller, a blind transfer done with AMI BlindTransfer, an internal call, DND set FreePBX-style
(`devstate change Custom:DND101 BUSY`), presence, an app_queue queue with a waiting caller, members and
a paused member, an abandoned caller, and a call parked with Park(). The model follows the events of the
read-only user exactly as shipped (manager/asterisk-kit-panel.conf, event filter included); at every
snapshot a fresh model rebuilt from it must equal the followed one.

The same checks as the replay of the recorded stream (tests/test_panel_model.py) run on the live views.
"""
from __future__ import annotations

import pytest

from testbed.panelbed import PanelBed, reader_block
from testbed.panelrecord import READER_SECRET, PanelRecorder, scenario
from tests.test_panel_model import (  # noqa: F401
    Follower,
    test_blind_transfer_moves_the_caller_to_the_new_key,
    test_caller_id_on_the_ringing_key_then_connected_line_after_answer,
    test_dnd_is_shown_as_dnd_not_as_a_call_and_presence_apart,
    test_every_snapshot_rebuilds_what_the_events_built,
    test_idle_keys_from_freepbx_hints,
    test_internal_call_directions_and_parties,
    test_parked_call,
    test_privacy_projection_never_carries_outside_numbers,
    test_queue_waiting_caller_members_and_counts,
)

pytestmark = pytest.mark.asterisk


class Live(Follower, PanelRecorder):
    """The recorder's socket and scenario, with the model following what arrives."""

    def __init__(self, port: int):
        Follower.__init__(self)
        PanelRecorder.__init__(self, port)
        self.proto.on_event = self.event

    def mark(self, what: str) -> None:
        self.at(what)

    def step(self, call: str, **args):
        if call != "list_action":
            return super().step(call, **args)
        p = self.proto.list_action(**args)
        self.issued(p)
        self.sock.sendall(p.wire)
        self.linger_until(lambda: p.done)
        assert p.error is None, p.error
        return p

    def linger_until(self, done, seconds: float = 10) -> None:
        import time
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            self._read(deadline)


@pytest.fixture(scope="module")
def replay(tmp_path_factory):
    if not PanelBed.available():
        pytest.skip("baresip is not installed (scripts/install-system-deps.sh installs it)")
    bed = PanelBed(tmp_path_factory.mktemp("panel")).start(extra_manager=reader_block(READER_SECRET))
    try:
        live = Live(bed.asterisk.ami_port)
        live.banner()
        live.step("login", user="asterisk-kit-panel", secret=READER_SECRET, events=True)
        scenario(bed, live)
        # the talk time counts from the answer, not from the first ring
        (c,) = live.marks["101 talks to the outside caller"]["keys"]["101"]["calls"]
        assert c["answered"] - c["since"] > 0.2
        yield live
    finally:
        bed.stop()
