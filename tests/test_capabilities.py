"""Capability descriptors: the core walks capabilities.CAPABILITIES and never names a capability;
descriptors stay cheap; doctor lines of the capabilities say what is really the case."""
import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from asterisk_kit import capabilities, config
from asterisk_kit.capability import Capability
from asterisk_kit.resources import shipped
from testbed.memcached import Memcached

REPO = Path(__file__).resolve().parents[1]
PKG = REPO / "asterisk_kit"
CAP_NAMES = [p.rsplit(".", 1)[1] for p in capabilities.CAPABILITIES]


def _imported_capabilities(path: Path):
    """Capability packages PATH imports, by any spelling (absolute or relative, import or from)."""
    rel_pkg = path.relative_to(REPO).with_suffix("").parts[:-1]    # e.g. ("asterisk_kit", "web")
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = list(rel_pkg[:len(rel_pkg) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for n in names:
            parts = n.split(".")
            if len(parts) >= 2 and parts[0] == "asterisk_kit" and parts[1] in CAP_NAMES:
                found.append(f"{path.relative_to(REPO)}:{node.lineno}: {n}")
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and path.name != "capabilities.py":
            for cap in CAP_NAMES:
                if f"asterisk_kit.{cap}" in node.value and "getLogger" not in node.value:
                    found.append(f"{path.relative_to(REPO)}:{node.lineno}: string {node.value!r}")
    return found


def test_the_core_never_names_a_capability_package():
    core = [p for p in PKG.rglob("*.py") if p.relative_to(PKG).parts[0] not in CAP_NAMES]
    assert PKG / "cli.py" in core and PKG / "web" / "app.py" in core
    offenders = [hit for p in core for hit in _imported_capabilities(p)]
    assert not offenders, offenders


def test_the_import_scan_catches_every_spelling(tmp_path):
    """The scan above would see a capability import however it is written."""
    probe = PKG / "web" / "_probe_scan.py"
    probe.write_text("from ..blf import web\nimport asterisk_kit.dialer.cli\nfrom . import app\n"
                     "from .. import nimbox\nX = 'asterisk_kit.beeline.cli'\n")
    try:
        hits = _imported_capabilities(probe)
    finally:
        probe.unlink()
    text = "\n".join(hits)
    assert "asterisk_kit.blf" in text and "asterisk_kit.dialer.cli" in text
    assert "asterisk_kit.nimbox" in text and "asterisk_kit.beeline.cli" in text
    assert "asterisk_kit.web" not in text


def test_descriptors_are_complete_and_their_targets_exist():
    caps = capabilities.all_capabilities()
    assert [c.name for c in caps] == CAP_NAMES
    init_d, dialplan = shipped("init.d"), shipped("dialplan")
    for c in caps:
        assert isinstance(c, Capability)
        assert c.name in config.schema() and c.settings.endswith(f"{c.name}.settings")
        for target in [c.doctor, c.pages, *c.agi_handlers.values()]:
            if target:
                assert callable(capabilities.resolve(target)), target
        assert hasattr(__import__(c.commands, fromlist=["register"]), "register")
        for tpl in c.dialplan:
            assert (dialplan / tpl).is_file(), tpl
        for svc in c.services:
            assert (init_d / svc).is_file() and (init_d / f"{svc}.service").is_file(), svc
        for job in c.cron:
            assert bool(job.schedule) != bool(job.schedule_key), job
            if job.schedule_key:
                assert job.schedule_key in config.schema()[c.name].keys
    # every shipped template and service belongs to someone (no orphan left behind by a move)
    declared = {t for c in caps for t in c.dialplan}
    assert declared == {p.name for p in dialplan.glob("*.conf.j2")}
    svcs = {s for c in caps for s in c.services} | set(capabilities.CORE_SERVICES)
    assert svcs == {p.name for p in init_d.iterdir() if p.suffix == ""}


def test_descriptors_import_nothing_but_the_descriptor_type():
    code = ("import sys; before = set(sys.modules); "
            "from asterisk_kit.capabilities import all_capabilities; all_capabilities(); "
            "print(sorted(m for m in set(sys.modules) - before if m.startswith('asterisk_kit')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    loaded = set(json.loads(r.stdout.replace("'", '"')))
    allowed = {"asterisk_kit", "asterisk_kit.capabilities", "asterisk_kit.capability"} | {
        f"asterisk_kit.{c}" for c in CAP_NAMES}
    assert loaded == allowed, loaded - allowed


# ---- doctor lines that lied ------------------------------------------------------------------------

@pytest.fixture
def mc():
    m = Memcached().start()
    yield m
    m.stop()


def test_doctor_says_not_running_for_a_stopped_blf_daemon(mc, tmp_path):
    """After `init.d/asterisk-kit-blf stop` the daemon marks the cache `stopped`; doctor said
    "running but AMI is stopped"."""
    from asterisk_kit.blf import doctor_checks
    cfg = config.parse_text(f"[asterisk]\nami_user = a\nami_secret = b\n[memcached]\nservers = {mc.server}\n"
                            f"prefix = doc\n[blf]\n", None, {})
    client = mc.client()
    client.set("doc:blf:meta", json.dumps({"ami": "stopped", "ami_since": time.time(), "heartbeat": time.time(),
                                          "extensions": 3}).encode(), noreply=False)   # stored before doctor reads
    (line,) = [c for c in doctor_checks(cfg) if c[0] == "blf daemon"]
    assert line[1] is False and line[2].startswith("not running (stopped"), line
    client.set("doc:blf:meta", json.dumps({"ami": "up", "ami_since": time.time(), "heartbeat": time.time(),
                                          "extensions": 3}).encode(), noreply=False)   # stored before doctor reads
    (line,) = [c for c in doctor_checks(cfg) if c[0] == "blf daemon"]
    assert line == ("blf daemon", True, "running, AMI up, 3 extensions")


def test_doctor_fails_the_local_comagic_destination_without_the_analytics_extra(tmp_path):
    cfgp = tmp_path / "kit.ini"
    cfgp.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n"
                    "[asterisk]\nami_user = a\nami_secret = b\nami_port = 1\nami_timeout = 0.5\n"
                    "[comagic]\napi_url = http://127.0.0.1:1/v2.0\nlogin = x\npassword = y\n")
    code = ("import sys\n{block}from asterisk_kit.cli import main\n"
            f"sys.exit(main(['--config', {str(cfgp)!r}, 'doctor']))\n")
    r = subprocess.run([sys.executable, "-c", code.format(block="sys.modules['duckdb'] = None\n")],
                       capture_output=True, text=True, timeout=120)
    (line,) = [x for x in r.stdout.splitlines() if "comagic destination" in x]
    assert line.startswith("FAILED  comagic destination: local DuckDB"), line
    assert "pip install 'asterisk-kit[analytics]'" in line
    r = subprocess.run([sys.executable, "-c", code.format(block="")], capture_output=True, text=True, timeout=120)
    (line,) = [x for x in r.stdout.splitlines() if "comagic destination" in x]
    assert line == f"ok      comagic destination: local DuckDB {tmp_path}/data/comagic.duckdb", line


SIXTH = {
    "__init__.py": '''"""Call statistics (a sixth capability, for the test)."""
from asterisk_kit.capability import Capability, CronJob

CAPABILITY = Capability(
    name="callstats",
    summary="Daily call statistics.",
    settings="callstats.settings",
    commands="callstats.cli",
    agi_handlers={"callstats-mark": "callstats.agi:mark"},
    doctor="callstats:doctor_checks",
    cron=(CronJob("callstats report", "daily call statistics", schedule="5 0 * * *"),),
    ami=True,
)


def doctor_checks(cfg):
    yield "callstats", True, "to " + cfg["callstats"]["mail_to"]
''',
    "settings.py": '''from asterisk_kit.configtypes import Key, Section, nonempty

SECTIONS = {"callstats": Section("Daily call statistics by mail.", {
    "mail_to": Key(nonempty, None, "Who gets the report.", example="boss@example.com"),
})}
''',
    "cli.py": '''def register(sub):
    p = sub.add_parser("callstats", help="call statistics")
    p.set_defaults(func=lambda ctx: print("report for", ctx.cfg["callstats"]["mail_to"]) or 0)
''',
    "agi.py": '''def mark(agi, cfg, args, log):
    agi.marked = args
''',
}


def test_a_sixth_capability_is_one_package_and_one_line(tmp_path):
    """Everything the core offers reaches a new package listed in CAPABILITIES, nothing else edited."""
    pkg = tmp_path / "callstats"
    pkg.mkdir()
    for name, text in SIXTH.items():
        (pkg / name).write_text(text)
    cfgp = tmp_path / "kit.ini"
    cfgp.write_text(f"[general]\ndata_dir = {tmp_path}/data\n[log]\ndir = {tmp_path}/log\n"
                    f"[asterisk]\nami_user = a\nami_secret = b\n[callstats]\nmail_to = x@example.com\n"
                    f"ami_user = stats\nami_secret = s\n")
    code = f"""
import sys, types
sys.path.insert(0, {str(tmp_path)!r})
from asterisk_kit import capabilities
capabilities.CAPABILITIES += ("callstats",)          # the one line
from asterisk_kit import agi, config, doctor, install
from asterisk_kit.cli import main
cfg = config.load({str(cfgp)!r})
assert cfg.ami_credentials("callstats") == ("stats", "s")
assert "#[callstats]" in config.example_text()
from asterisk_kit.configdoc import markdown
assert "## `[callstats]`" in markdown()
assert "5 0 * * * root" in install.render_cron(cfg) and "callstats report" in install.render_cron(cfg)
fake = types.SimpleNamespace()
agi.resolve("callstats-mark")(fake, cfg, ["1"], None)
assert fake.marked == ["1"]
assert ("callstats", True, "to x@example.com") in list(doctor.all_checks(cfg))
sys.exit(main(["--config", {str(cfgp)!r}, "callstats"]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("report for x@example.com")
