"""Config loading: every problem names file, section and key; env overrides; the example is valid."""
import subprocess
import sys
from pathlib import Path

import pytest

from asterisk_kit import config

MIN = """[asterisk]
ami_user = kit
ami_secret = s3cret
"""


def parse(text, env=None):
    return config.parse_text(text, Path("/etc/asterisk-kit/asterisk-kit.ini"), environ=env or {})


def problems(text, env=None):
    with pytest.raises(config.ConfigError) as ei:
        parse(text, env)
    return ei.value.problems


def test_minimal_config_gets_typed_defaults():
    cfg = parse(MIN)
    assert cfg["asterisk"]["ami_port"] == 5038
    assert cfg["web"]["language"] == "ru"
    assert str(cfg.data_dir) == "/var/lib/asterisk-kit"
    assert not cfg.has("mysql") and cfg.has("asterisk")


def test_bad_value_names_file_section_key_and_expectation():
    (p,) = problems(MIN + "[web]\nport = eighty\n")
    assert p.startswith("/etc/asterisk-kit/asterisk-kit.ini: [web] port: expected an integer from 1 to 65535")
    assert "'eighty'" in p


def test_every_problem_is_reported_at_once():
    ps = problems("[asterisk]\nami_port = 0\n[log]\nlevel = loud\nfoo = 1\n[nonsense]\n")
    text = "\n".join(ps)
    assert "[asterisk] ami_user: missing" in text
    assert "[asterisk] ami_secret: missing" in text
    assert "[asterisk] ami_port: expected an integer from 1 to 65535" in text
    assert "[log] level: expected one of DEBUG, INFO, WARNING, ERROR" in text
    assert "[log] foo: unknown key" in text
    assert "[nonsense]: unknown section" in text


def test_missing_required_section():
    (p,) = problems("[log]\nlevel = INFO\n")
    assert "[asterisk]: section missing" in p


def test_secret_values_are_not_echoed():
    ps = problems("[asterisk]\nami_user = kit\nami_secret = \n")
    assert all("s3cret" not in p for p in ps)
    assert any("[asterisk] ami_secret" in p for p in ps)


def test_environment_overrides_secrets_and_is_named_in_errors():
    cfg = parse("[asterisk]\nami_user = kit\n", env={"ASTERISK_KIT_ASTERISK_AMI_SECRET": "from-env"})
    assert cfg["asterisk"]["ami_secret"] == "from-env"
    (p,) = problems(MIN, env={"ASTERISK_KIT_ASTERISK_AMI_PORT": "x"})
    assert "(from environment ASTERISK_KIT_ASTERISK_AMI_PORT)" in p


def test_multiline_values_are_refused():
    # An indented line continues an ini value; it must never reach a dialplan or call file.
    ps = problems(MIN + "[dialer]\nsound = hello\n  world\n")
    assert any("[dialer] sound: expected a single line" in p for p in ps)


def test_not_an_ini_file():
    (p,) = problems("ami_user = kit\n")
    assert "not a valid ini file" in p


def test_example_is_valid_and_complete():
    text = config.example_text()
    cfg = parse(text)
    for name, sec in config.SCHEMA.items():
        if sec.example and not sec.multi:
            assert f"[{name}]" in text
            for key in sec.keys:
                assert f"\n{key} = " in text, (name, key)
    assert cfg.has("asterisk")


def run_cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "asterisk_kit", *args], capture_output=True, text=True,
                          timeout=60, env=env)


def test_config_check_command(tmp_path):
    good = tmp_path / "good.ini"
    good.write_text(MIN)
    r = run_cli("--config", str(good), "config", "check")
    assert r.returncode == 0, r.stderr
    assert "ok" in r.stdout

    bad = tmp_path / "bad.ini"
    bad.write_text(MIN + "[memcached]\nservers = localhost\n")
    r = run_cli("--config", str(bad), "config", "check")
    assert r.returncode == 2
    assert f"{bad}: [memcached] servers: expected host:port entries" in r.stderr


def test_config_path_from_environment_and_missing_file(tmp_path):
    import os
    env = dict(os.environ, ASTERISK_KIT_CONFIG=str(tmp_path / "nope.ini"))
    r = run_cli("config", "check", env=env)
    assert r.returncode == 2
    assert f"{tmp_path / 'nope.ini'}: config file not found" in r.stderr


def test_config_example_command_round_trips(tmp_path):
    r = run_cli("config", "example")
    assert r.returncode == 0
    p = tmp_path / "ex.ini"
    p.write_text(r.stdout)
    r = run_cli("--config", str(p), "config", "check")
    # Valid syntax, but the example's placeholders are not a working file: each is named.
    assert r.returncode == 2 and "ok" not in r.stdout, r.stdout + r.stderr
    for where in ("[asterisk] ami_secret: still the example's placeholder 'change-me'",
                  "[nimbox] url: still the example's placeholder 'example.com'",
                  "[beeline:main] token: still the example's placeholder '00000000-0000-0000-0000-000000000000'"):
        assert f"{p}: {where}" in r.stderr, r.stderr
    p.write_text(config.example_text().replace("change-me", "s3cret").replace("example.", "acme.")
                 .replace("00000000-0000-0000-0000-000000000000", "6f1c2b7e-1d2a-4c1b-9a57-3f1e2d4c5b6a"))
    r = run_cli("--config", str(p), "config", "check")
    assert r.returncode == 0, r.stderr
