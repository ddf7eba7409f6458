"""BLF change ring against the real Asterisk testbed, real memcached, the real daemon and web process:
a burst of changes arrives at a live stream in order; holes in the ring (overrun while the web process
was frozen, a lost ring key, memcached restarted, daemon restarted = new epoch) are closed from the
snapshot, so an open stream ends up equal to Asterisk's truth without a reload."""
from __future__ import annotations

import json
import os
import signal
import time

import pytest

from asterisk_kit.blf.cache import RING, SEQ, SNAPSHOT, Follower, Gap, delta_key, parse_seq
from asterisk_kit.memcache import client_from_config
from testbed.blf import AmiDriver, Daemon, SseViewer, add_blf_ami_user, blf_config, hints
from testbed.browser import wait_for
from testbed.memcached import Memcached
from testbed.webserver import WebServer

pytestmark = [pytest.mark.asterisk]
EXTENS = [str(5000 + i) for i in range(60)]
CYCLE = [("INUSE", "inuse"), ("BUSY", "busy"), ("RINGING", "ringing"), ("ONHOLD", "hold"),
         ("UNAVAILABLE", "unavailable"), ("NOT_INUSE", "idle")]
PREFIX = "gap-test"


@pytest.fixture(scope="module")
def gap(tmp_path_factory, asterisk):
    d = tmp_path_factory.mktemp("blfgap")
    mc = Memcached().start()
    secret = add_blf_ami_user(asterisk)
    asterisk.add_test_dialplan("blf_gap", hints("blf-gap", EXTENS))
    for x in EXTENS:
        asterisk.cli(f"devstate change Custom:{x} NOT_INUSE")
    cfg = blf_config(d, asterisk, mc.server, secret, blf="contexts = blf-gap\nanonymous_networks = 127.0.0.1/32\n")
    cfg.write_text(cfg.read_text().replace("[memcached]\n", f"[memcached]\nprefix = {PREFIX}\n"))
    daemon = Daemon(cfg).start()
    web = WebServer(cfg).start()
    from asterisk_kit.config import load
    kitcfg = load(str(cfg))

    class Site:
        pass
    s = Site()
    s.cfg, s.asterisk, s.mc, s.daemon, s.web = cfg, asterisk, mc, daemon, web
    s.client = lambda: client_from_config(kitcfg, ignore_exc=False)
    s.driver = AmiDriver(asterisk)
    s.truth = {x: "idle" for x in EXTENS}
    try:
        wait_for(lambda: _meta(s).get("ami") == "up" and len(_follow(s).extensions) == len(EXTENS), 30,
                 what="the daemon's first snapshot")
        yield s
    finally:
        s.driver.close()
        web.stop()
        assert s.daemon.stop() == 0, s.daemon.output()[-3000:]
        mc.stop()


def _meta(s) -> dict:
    raw = s.mc.client().get(f"{PREFIX}:blf:meta")
    return json.loads(raw) if raw else {}


def _follow(s, f: Follower = None) -> Follower:
    f = f or Follower()
    mc = s.client()
    f.follow(mc, mc.get(SEQ))
    return f


def _seq(s):
    head = parse_seq(s.mc.client().get(f"{PREFIX}:{SEQ}"))
    return head[1] if head else None


def _change(s, x: str, i: int) -> None:
    """Ext X to the I-th state of CYCLE (never the state it has now)."""
    dev, slug = CYCLE[i % len(CYCLE)]
    if s.truth[x] == slug:
        dev, slug = CYCLE[(i + 1) % len(CYCLE)]
    s.driver.devstate([(x, dev)])
    s.truth[x] = slug


def _viewer_matches(v: SseViewer, s) -> bool:
    return v.states() == s.truth and v.stale == ""


def test_burst_of_changes_arrives_in_order(gap):
    s = gap
    v = SseViewer(s.web.url)
    try:
        wait_for(lambda: _viewer_matches(v, s), 20, what="the stream's first snapshot")
        sent = {x: [] for x in EXTENS}
        batch = []
        for i in range(600):                     # 10 changes per extension, sent in bulk, 50 per write
            x = EXTENS[i % len(EXTENS)]
            dev, slug = CYCLE[(i // len(EXTENS)) % len(CYCLE)]
            batch.append((x, dev))
            sent[x].append(slug)
            s.truth[x] = slug
            if len(batch) == 50:
                s.driver.devstate(batch)
                batch = []
        s.driver.wait_answered()
        wait_for(lambda: _viewer_matches(v, s), 30,
                 what=f"every final state on the stream (differ: "
                      f"{ {x: (st, s.truth[x]) for x, st in v.states().items() if st != s.truth[x]} })")
        assert v.error is None and v.snapshots == 1, "one snapshot, then only updates"
        assert v.seqs == sorted(v.seqs) and len(set(v.seqs)) == len(v.seqs), "messages in order, none twice"
        for x in EXTENS:
            # every state the page showed was sent, in the order it was sent (the daemon may fold a
            # burst into one change, so some intermediate states can be skipped, never reordered)
            shown, it = v.history[x][1:], iter(sent[x])
            assert all(st in it for st in shown), (x, shown, sent[x])
    finally:
        v.close()


def test_ring_overrun_while_web_frozen_is_closed_from_the_snapshot(gap):
    s = gap
    v = SseViewer(s.web.url)
    try:
        wait_for(lambda: _viewer_matches(v, s), 20, what="the stream's first snapshot")
        f = _follow(s)
        first = _seq(s)
        os.kill(s.web.proc.pid, signal.SIGSTOP)
        try:
            # more single changes than the ring holds, each waited for so each is its own record
            for i in range(RING + 40):
                before = _seq(s)
                _change(s, EXTENS[i % len(EXTENS)], i)
                wait_for(lambda b=before: _seq(s) != b, 10, interval=0.001, what=f"change {i} written")
        finally:
            os.kill(s.web.proc.pid, signal.SIGCONT)
        assert _seq(s) - first > RING
        mc = s.client()
        assert parse_seq(mc.get(SEQ))[0] == f.epoch
        raw = mc.get(delta_key(f.seq + 1))
        assert raw is None or json.loads(raw)["seq"] != f.seq + 1, "the ring has been overrun"
        wait_for(lambda: _viewer_matches(v, s), 30, what="the open stream equal to Asterisk after the overrun")
        assert v.error is None
        f.follow(mc, mc.get(SEQ))        # a plain reader too: through the snapshot, not the lost records
        assert {x: e["state"] for x, e in f.extensions.items()} == s.truth and f.resyncs == 2
    finally:
        v.close()


def test_lost_ring_record_asks_the_daemon_for_a_snapshot(gap):
    """A ring key gone (evicted, or on the one of several memcached servers that restarted): the
    reader cannot bridge the hole from the older snapshot, asks through blf:resync, and the daemon
    writes a fresh snapshot within a heartbeat."""
    s = gap
    v = SseViewer(s.web.url)
    f = _follow(s)
    mc = s.client()
    try:
        for i in range(3):
            before = _seq(s)
            _change(s, EXTENS[i], i + 2)
            wait_for(lambda b=before: _seq(s) != b, 10, what="change written")
        snap_seq = json.loads(mc.get(SNAPSHOT))["seq"]
        cur = _seq(s)
        assert snap_seq < cur, "the snapshot is older than the last change (written every 256)"
        os.kill(s.web.proc.pid, signal.SIGSTOP)
        try:
            mc.delete(delta_key(cur))
            with pytest.raises(Gap):
                f.follow(mc, mc.get(SEQ))
            wait_for(lambda: "a reader missed BLF changes" in s.daemon.output(), 10, what="the daemon's answer")
        finally:
            os.kill(s.web.proc.pid, signal.SIGCONT)
        wait_for(lambda: f.follow(mc, mc.get(SEQ)) is not None or f.seq >= cur, 10, what="the reader caught up")
        assert {x: e["state"] for x, e in f.extensions.items()} == s.truth
        wait_for(lambda: _viewer_matches(v, s), 15, what="the open stream right after the hole")
    finally:
        v.close()


def test_memcached_restart_with_changes_meanwhile(gap):
    s = gap
    v = SseViewer(s.web.url)
    try:
        wait_for(lambda: _viewer_matches(v, s), 20, what="the stream's first snapshot")
        s.mc.stop()
        for i, x in enumerate(EXTENS[:10]):       # changes while memcached is down: lost for the ring
            _change(s, x, i + 1)
        s.driver.wait_answered()
        wait_for(lambda: v.stale == "cache", 15, what="the stream says memcached is unreachable")
        s.mc.start()
        wait_for(lambda: _viewer_matches(v, s), 30, what="the open stream right again once memcached is back")
        assert v.error is None
        f = _follow(s)
        assert {x: e["state"] for x, e in f.extensions.items()} == s.truth
        assert "memcached write failed" in s.daemon.output()
    finally:
        v.close()


def test_daemon_restart_is_a_new_epoch(gap):
    s = gap
    v = SseViewer(s.web.url)
    try:
        wait_for(lambda: _viewer_matches(v, s), 20, what="the stream's first snapshot")
        old_epoch = _follow(s).epoch
        s.daemon.proc.kill()
        s.daemon.proc.wait(10)
        s.daemon.stop()
        for i, x in enumerate(EXTENS[20:30]):     # changes no daemon saw
            _change(s, x, i + 3)
        s.driver.wait_answered()
        # and a hint gone while the daemon was down
        s.asterisk.add_test_dialplan("blf_gap", hints("blf-gap", EXTENS[:-1]))
        gone = s.truth.pop(EXTENS[-1])
        assert gone
        wait_for(lambda: v.stale == "nodaemon", 15, what="the stream says the daemon is not running")
        s.daemon = Daemon(s.cfg).start()
        wait_for(lambda: _viewer_matches(v, s), 30, what="the open stream right after the daemon's restart "
                 f"(differ: { {x: (v.states().get(x), st) for x, st in s.truth.items() if v.states().get(x) != st} })")
        assert EXTENS[-1] not in v.board, "the removed hint left the page"
        assert _follow(s).epoch != old_epoch
        assert v.error is None and v.snapshots == 1, "no reload: still the first stream"
    finally:
        v.close()
        s.asterisk.add_test_dialplan("blf_gap", hints("blf-gap", EXTENS))
        s.truth[EXTENS[-1]] = "idle"
        s.driver.devstate([(EXTENS[-1], "NOT_INUSE")])
        time.sleep(0)
