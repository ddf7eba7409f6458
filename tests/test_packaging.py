"""The wheel carries everything the kit needs at run time, and hot paths stay light."""
import json
import os
import subprocess
import sys
import zipfile

HEAVY = ("pandas", "pyarrow", "google.cloud", "numpy", "duckdb")


def test_wheel_contains_shipped_files_and_commands(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(tmp_path), "."], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    (whl,) = tmp_path.glob("asterisk_kit-*.whl")
    names = zipfile.ZipFile(whl).namelist()
    assert not [n for n in names if n.startswith(("testbed/", "tests/"))], "testbed and tests are not shipped"
    for expected in ("asterisk_kit/dialplan/avtoobzvon.conf.j2", "asterisk_kit/templates/cron.d.j2",
                     "asterisk_kit/www/templates/base.html", "asterisk_kit/initd/asterisk-kit-web",
                     "asterisk_kit/manager/asterisk-kit-blf.conf", "asterisk_kit/manager/asterisk-kit-dialer.conf",
                     "asterisk_kit/manager/asterisk-kit.conf", "asterisk_kit/manager/asterisk-kit-panel.conf",
                     "asterisk_kit/manager/asterisk-kit-panel-actions.conf",
                     "asterisk_kit/dialplan/panel.conf.j2", "asterisk_kit/www/templates/users.html",
                     "asterisk_kit/www/static/users.css"):
        assert expected in names, expected
    ep = zipfile.ZipFile(whl).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "asterisk-kit = asterisk_kit.cli:main" in ep and "asterisk-kit-agi = asterisk_kit.agi:main" in ep

    # Installed (not from the source tree), the shipped folders are found inside the package.
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target),
                        str(whl)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    code = ("import asterisk_kit, json; from asterisk_kit.resources import shipped; "
            "print(json.dumps([asterisk_kit.__file__] + [str(shipped(n)) for n in "
            "('dialplan', 'www', 'init.d', 'templates', 'manager')]))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=dict(os.environ, PYTHONPATH=str(target)), cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr
    paths = json.loads(r.stdout)
    assert all(p.startswith(str(target)) for p in paths), paths


def test_cli_agi_and_daemon_paths_do_not_import_heavy_libraries():
    code = f"""
import sys, importlib
from asterisk_kit import cli, agi
cli.build_parser()
for target in agi.handlers().values():
    importlib.import_module(target.split(':')[0])
for mod in ('asterisk_kit.blf.daemon', 'asterisk_kit.web.app'):
    try:
        importlib.import_module(mod)
    except ModuleNotFoundError as e:
        if not mod.startswith(e.name):
            raise
heavy = [m for m in sys.modules if m.startswith({HEAVY!r})]
print(heavy)
sys.exit(1 if heavy else 0)
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_nothing_outside_tests_imports_tests():
    """The testbed is its own package: the demo, the benchmarks and the kit never import tests."""
    from pathlib import Path
    repo = Path(__file__).resolve().parents[1]
    offenders = []
    for folder in ("scripts", "benchmarks", "asterisk_kit", "testbed"):
        for path in (repo / folder).rglob("*"):
            if path.suffix in (".py", ".sh") and path.is_file():
                for no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                    if "from tests" in line or "import tests" in line:
                        offenders.append(f"{path.relative_to(repo)}:{no}: {line.strip()}")
    assert not offenders, offenders


def test_agi_path_of_one_handler_imports_no_other_capability_and_no_web_libraries(tmp_path):
    """The classic AGI process loads the config (every capability's descriptor and settings, which
    are cheap) and then ONE handler: nothing else of another capability, no jinja2, bottle,
    requests, paramiko, pymysql, pymemcache, nor the analytics libraries."""
    cfgp = tmp_path / "kit.ini"
    cfgp.write_text("[asterisk]\nami_user = a\nami_secret = b\n[dialer]\n[blf]\n"
                    "[nimbox]\nurl = http://127.0.0.1:1\ntoken = t\n[comagic]\nlogin = a\npassword = b\n")
    code = """
import json, sys
from asterisk_kit import agi, capabilities
from asterisk_kit.config import load
load(sys.argv[1])
agi.resolve(sys.argv[2])
print(json.dumps(sorted(sys.modules)))
"""
    light = ("jinja2", "bottle", "requests", "paramiko", "pymysql", "pymemcache") + HEAVY
    for handler, own in (("dialer-event", "dialer"), ("nimbox-call", "nimbox")):
        r = subprocess.run([sys.executable, "-c", code, str(cfgp), handler], capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, r.stderr
        mods = json.loads(r.stdout)
        assert f"asterisk_kit.{own}" in mods
        others = [m for m in mods if m.startswith("asterisk_kit.") and m.split(".")[1] in
                  ("dialer", "blf", "nimbox", "beeline", "comagic") and m.split(".")[1] != own
                  and m.split(".")[2:] not in ([], ["settings"])]
        assert not others, (handler, others)
        assert not [m for m in mods if m.split(".")[0] in light or m.startswith(light)], handler
        assert "asterisk_kit.web" not in mods and "asterisk_kit.install" not in mods
