"""`asterisk-kit install` against a temp Asterisk etc dir, then against the real testbed."""
import stat
import sys
from pathlib import Path

import pytest

from asterisk_kit.install import DIALPLAN_FILE, INCLUDE_LINE
from testbed.asterisk import kit_section
from testbed.kitcli import kit


def write_cfg(tmp_path, asterisk_text, extra=""):
    p = tmp_path / "kit.ini"
    p.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n"
                 + asterisk_text + "[dialer]\ndial_out = Local/${NUMBER}@test-callee\n" + extra)
    return p


@pytest.fixture
def freepbx_etc(tmp_path):
    etc = tmp_path / "etc-asterisk"
    etc.mkdir()
    (etc / "extensions.conf").write_text("[globals]\n#include extensions_custom.conf\n")
    (etc / "extensions_custom.conf").write_text("; local additions\n[from-internal-custom]\n")
    return etc


def test_install_is_idempotent(tmp_path, freepbx_etc):
    cfg = write_cfg(tmp_path, f"[asterisk]\nami_user = x\nami_secret = y\netc_dir = {freepbx_etc}\n")
    initd, cron = tmp_path / "init.d", tmp_path / "cron.d"
    dirs = ["--initd-dir", str(initd), "--cron-dir", str(cron)]

    dry = kit(cfg, "install", "--dry-run", *dirs, check=True)
    assert "would create" in dry.stdout
    assert not (freepbx_etc / DIALPLAN_FILE).exists() and not cron.exists()

    first = kit(cfg, "install", *dirs, check=True)
    assert f"create {freepbx_etc / DIALPLAN_FILE}" in first.stdout
    assert "extensions_custom.conf" in first.stdout
    custom = (freepbx_etc / "extensions_custom.conf").read_text()
    assert custom.count(INCLUDE_LINE) == 1 and custom.startswith("; local additions\n")
    assert "[avtoobzvon]" in (freepbx_etc / DIALPLAN_FILE).read_text()
    assert INCLUDE_LINE not in (freepbx_etc / "extensions.conf").read_text()
    crontab = (cron / "asterisk-kit").read_text()
    assert f"--config {cfg}" in crontab and "dialer tick" in crontab
    scripts = sorted(p.name for p in initd.iterdir())
    assert scripts, "no init.d script installed"
    for p in initd.iterdir():
        assert p.stat().st_mode & stat.S_IXUSR
        assert "@ASTERISK_KIT@" not in p.read_text()
    snapshot = {p: p.read_bytes() for p in [*freepbx_etc.iterdir(), *initd.iterdir(), *cron.iterdir()]}

    second = kit(cfg, "install", *dirs, check=True)
    assert "nothing to change" in second.stdout, second.stdout
    assert {p: p.read_bytes() for p in snapshot} == snapshot

    dry2 = kit(cfg, "install", "--dry-run", *dirs, check=True)
    assert "nothing to change" in dry2.stdout


def test_install_updates_only_what_changed(tmp_path, freepbx_etc):
    base = f"[asterisk]\nami_user = x\nami_secret = y\netc_dir = {freepbx_etc}\n"
    cfg = write_cfg(tmp_path, base)
    kit(cfg, "install", "--no-initd", "--no-cron", check=True)
    cfg.write_text(cfg.read_text().replace("test-callee", "other-route"))
    dry = kit(cfg, "install", "--no-initd", "--no-cron", "--dry-run", check=True)
    assert "would update" in dry.stdout and "+ same => n,Dial(Local/${EXTEN}@other-route" in dry.stdout
    r = kit(cfg, "install", "--no-initd", "--no-cron", check=True)
    assert r.stdout.strip().splitlines()[0] == f"update {freepbx_etc / DIALPLAN_FILE}"
    assert (freepbx_etc / "extensions_custom.conf").read_text().count(INCLUDE_LINE) == 1


def test_plain_asterisk_gets_include_in_extensions_conf(tmp_path):
    etc = tmp_path / "etc"
    etc.mkdir()
    (etc / "extensions.conf").write_text("[default]")  # no trailing newline
    cfg = write_cfg(tmp_path, f"[asterisk]\nami_user = x\nami_secret = y\netc_dir = {etc}\n")
    kit(cfg, "install", "--no-initd", "--no-cron", check=True)
    assert (etc / "extensions.conf").read_text() == f"[default]\n{INCLUDE_LINE}\n"


def test_install_refuses_a_dir_without_dialplan(tmp_path):
    cfg = write_cfg(tmp_path, f"[asterisk]\nami_user = x\nami_secret = y\netc_dir = {tmp_path}\n")
    r = kit(cfg, "install", "--no-initd", "--no-cron")
    assert r.returncode == 1
    assert "neither extensions_custom.conf nor extensions.conf" in r.stderr


@pytest.mark.asterisk
def test_rendered_dialplan_loads_in_real_asterisk(tmp_path, asterisk):
    cfg = write_cfg(tmp_path, kit_section(asterisk))
    before = len(asterisk.messages())
    r = kit(cfg, "install", "--asterisk-etc", str(asterisk.etc_dir), "--no-initd", "--no-cron", "--reload",
            check=True)
    assert "dialplan reloaded" in r.stdout
    for context in ("avtoobzvon", "avtoobzvon-ivr"):
        shown = asterisk.cli(f"dialplan show {context}")
        assert f"[ Context '{context}' created by 'pbx_config' ]" in shown
        assert "'play' =>" in shown
    new_log = asterisk.messages()[before:]
    bad = [ln for ln in new_log.splitlines() if "WARNING[" in ln or "ERROR[" in ln]
    assert not bad, bad


def test_services_follow_the_configured_capabilities_and_the_config_path(tmp_path, freepbx_etc):
    """init.d scripts come from the descriptors: the FastAGI server only with [nimbox], the BLF
    daemon only with [blf]; the scripts (and units) run the config install was given."""
    initd, units = tmp_path / "init.d", tmp_path / "systemd"
    base = f"[asterisk]\nami_user = x\nami_secret = y\netc_dir = {freepbx_etc}\n"
    cfg = write_cfg(tmp_path, base)
    r = kit(cfg, "install", "--initd-dir", str(initd), "--no-cron", check=True)
    assert sorted(p.name for p in initd.iterdir()) == ["asterisk-kit-web"]
    assert "update-rc.d $s defaults" in r.stdout and "systemctl enable asterisk-kit-web" in r.stdout
    assert f"{initd}/asterisk-kit-web start" in r.stdout
    assert f"\nCONFIG={cfg}\n" in (initd / "asterisk-kit-web").read_text()

    cfg.write_text(cfg.read_text() + "[blf]\n[nimbox]\nurl = http://127.0.0.1:1\ntoken = t\n")
    r = kit(cfg, "install", "--initd-dir", str(initd), "--systemd-dir", str(units), "--no-cron", check=True)
    assert sorted(p.name for p in initd.iterdir()) == ["asterisk-kit-blf", "asterisk-kit-fastagi", "asterisk-kit-web"]
    assert sorted(p.name for p in units.iterdir()) == [f"{n}.service" for n in sorted(p.name for p in initd.iterdir())]
    assert ("systemctl daemon-reload && systemctl enable --now asterisk-kit-web asterisk-kit-blf asterisk-kit-fastagi"
            in r.stdout)
    for p in initd.iterdir():
        text = p.read_text()
        assert f"\nCONFIG={cfg}\n" in text and "@ASTERISK_KIT@" not in text
    for p in units.iterdir():
        (exec_start,) = [x for x in p.read_text().splitlines() if x.startswith("ExecStart=")]
        assert exec_start.startswith(f"ExecStart={Path(sys.executable).parent / 'asterisk-kit'} --config {cfg} ")


def test_default_config_path_leaves_the_scripts_default(tmp_path, freepbx_etc):
    from asterisk_kit import config
    from asterisk_kit.install import render_initd, render_unit
    cfg = config.parse_text("[asterisk]\nami_user = x\nami_secret = y\n", Path(config.DEFAULT_PATH), {})
    assert f"\nCONFIG={config.DEFAULT_PATH}\n" in render_initd("asterisk-kit-blf", cfg)
    assert f" --config {config.DEFAULT_PATH} blf run" in render_unit("asterisk-kit-blf", cfg)


def test_systemd_units_pass_systemd_analyze_verify(tmp_path, freepbx_etc):
    """The shipped units, as install writes them, are valid for systemd (no warning at all)."""
    import shutil
    import subprocess
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze missing: apt-get install systemd (scripts/install-system-deps.sh)"
    units = tmp_path / "units"
    cfg = write_cfg(tmp_path, f"[asterisk]\nami_user = x\nami_secret = y\netc_dir = {freepbx_etc}\n",
                    "[blf]\n[nimbox]\nurl = http://127.0.0.1:1\ntoken = t\n")
    kit(cfg, "install", "--no-initd", "--no-cron", "--systemd-dir", str(units), check=True)
    files = sorted(units.glob("*.service"))
    assert len(files) == 3
    r = subprocess.run([analyze, "verify", *map(str, files)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and not r.stderr.strip() and not r.stdout.strip(), r.stdout + r.stderr
    broken = units / "asterisk-kit-broken.service"
    broken.write_text(files[0].read_text().replace("Restart=", "Restart=sometimes\nBogusKey=1\n#"))
    r = subprocess.run([analyze, "verify", str(broken)], capture_output=True, text=True, timeout=120)
    assert "BogusKey" in r.stderr, "the check would see a broken unit"
