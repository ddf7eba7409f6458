"""Shared fixtures: one real Asterisk per test session (see testbed/asterisk.py)."""
from __future__ import annotations

import pytest

from testbed.asterisk import Asterisk
from testbed.browser import browser  # noqa: F401 - the headless Chromium fixture, for every test module


@pytest.fixture(scope="session")
def asterisk(tmp_path_factory):
    """A running private Asterisk 22. Tests install the kit's dialplan into asterisk.etc_dir
    (`asterisk-kit install --asterisk-etc ... --reload`) and add test contexts with
    asterisk.add_test_dialplan(name, text)."""
    a = Asterisk(tmp_path_factory.mktemp("asterisk")).setup()
    a.start()
    yield a
    a.stop()


@pytest.fixture(scope="session")
def mariadb(tmp_path_factory):
    """A running private MariaDB with the FreePBX tables (asteriskcdrdb.cdr, asterisk.users,
    asterisk.devices) and a SELECT-only kit user; see testbed/mariadb.py. Tests clean the
    tables they fill."""
    from testbed.mariadb import MariaDB
    m = MariaDB(tmp_path_factory.mktemp("mariadb")).start()
    m.load_freepbx_schema()
    yield m
    m.stop()


@pytest.fixture()
def dialer(tmp_path, asterisk):
    """The autodialer on the testbed Asterisk: installs the test callee (testbed/dialer.py) logging to
    dialer.callee_log; dialer(**keys) writes a kit config with those [dialer] keys, installs the kit's
    dialplan and returns the config path."""
    from testbed.dialer import dialer_config, install_callee
    from testbed.kitcli import kit
    log = tmp_path / "callee.log"
    install_callee(asterisk, log)

    def make(**dialer_keys):
        cfg = dialer_config(tmp_path, asterisk, **dialer_keys)
        kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload",
            check=True)
        return cfg
    make.callee_log = log
    make.tmp = tmp_path
    return make
