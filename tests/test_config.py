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


def uncomment(example, header):
    """The example with section HEADER uncommented the way the file tells an admin to: one `#`
    off every line of the section (its help lines stay comments)."""
    out, inside = [], False
    for line in example.splitlines():
        if line.startswith("#["):
            inside = line[1:] == header
        elif not line.startswith("#") or line.startswith("# "):
            inside = False
        out.append(line[1:] if inside and line.startswith("#") else line)
    return "\n".join(out) + "\n"


def test_example_has_only_asterisk_active_and_every_section_documented():
    text = config.example_text()
    cfg = parse(text)
    assert cfg.sections() == ["asterisk"]
    active = [x for x in text.splitlines() if x.startswith("[")]
    assert active == ["[asterisk]"]
    for name, sec in config.SCHEMA.items():
        header = f"[{name}:main]" if sec.multi else f"[{name}]"
        if name != "asterisk":
            assert f"\n#{header}\n" in text, name
        assert f"# {header} {sec.help}\n" in text, name       # one line on what it does
        for key in sec.keys:
            assert f"\n{'' if sec.required else '#'}{key} = " in text, (name, key)


@pytest.mark.parametrize("name", list(config.SCHEMA))
def test_uncommenting_any_example_section_gives_a_valid_config(name):
    sec = config.SCHEMA[name]
    header = f"[{name}:main]" if sec.multi else f"[{name}]"
    text = uncomment(config.example_text(), header)
    assert f"\n{header}\n" in text
    cfg = parse(text)
    assert cfg.has(f"{name}:main" if sec.multi else name)
    assert set(cfg.get_section(f"{name}:main" if sec.multi else name)) == set(sec.keys)


def test_uncommenting_every_example_section_at_once_is_valid():
    text = config.example_text()
    for name, sec in config.SCHEMA.items():
        text = uncomment(text, f"[{name}:main]" if sec.multi else f"[{name}]")
    cfg = parse(text)
    assert len(cfg.sections()) == len(config.SCHEMA)


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
    assert f"{p}: [asterisk] ami_secret: still the example's placeholder 'change-me'" in r.stderr, r.stderr
    # Every section uncommented: the placeholders of the capabilities are named too.
    text = config.example_text()
    for name, sec in config.SCHEMA.items():
        text = uncomment(text, f"[{name}:main]" if sec.multi else f"[{name}]")
    p.write_text(text)
    r_all = run_cli("--config", str(p), "config", "check")
    assert r_all.returncode == 2, r_all.stdout + r_all.stderr
    for where in ("[asterisk] ami_secret: still the example's placeholder 'change-me'",
                  "[nimbox] url: still the example's placeholder 'example.com'",
                  "[beeline:main] token: still the example's placeholder '00000000-0000-0000-0000-000000000000'"):
        assert f"{p}: {where}" in r_all.stderr, r_all.stderr
    p.write_text(text.replace("change-me", "s3cret").replace("example.", "acme.")
                 .replace("00000000-0000-0000-0000-000000000000", "6f1c2b7e-1d2a-4c1b-9a57-3f1e2d4c5b6a"))
    r = run_cli("--config", str(p), "config", "check")
    assert r.returncode == 0, r.stderr


# ---- drop-ins: conf.d/*.ini beside the main file ------------------------------------------------

def test_dropins_are_merged_in_name_order_and_later_keys_win(tmp_path):
    main = tmp_path / "kit.ini"
    main.write_text(MIN + "[web]\nport = 8081\nlanguage = en\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "20-web.ini").write_text("[web]\nport = 8083\n")
    (tmp_path / "conf.d" / "10-web.ini").write_text("[web]\nport = 8082\nsession_hours = 3\n")
    (tmp_path / "conf.d" / "30-blf.ini").write_text("[blf]\ncontexts = a, b\n")
    (tmp_path / "conf.d" / "99-ignored.ini.dpkg-old").write_text("[nonsense]\n")
    cfg = config.load(str(main), environ={})
    assert cfg["web"]["port"] == 8083 and cfg["web"]["session_hours"] == 3 and cfg["web"]["language"] == "en"
    assert cfg.has("blf") and cfg["blf"]["contexts"] == ["a", "b"]
    assert cfg.files == [main] + [tmp_path / "conf.d" / n for n in ("10-web.ini", "20-web.ini", "30-blf.ini")]


def test_errors_name_the_dropin_file(tmp_path):
    main = tmp_path / "kit.ini"
    main.write_text(MIN)
    (tmp_path / "conf.d").mkdir()
    bad = tmp_path / "conf.d" / "50-x.ini"
    bad.write_text("[web]\nport = eighty\nbogus = 1\n[nonsense]\n")
    with pytest.raises(config.ConfigError) as ei:
        config.load(str(main), environ={})
    text = "\n".join(ei.value.problems)
    assert f"{bad}: [web] port: expected an integer" in text
    assert f"{bad}: [web] bogus: unknown key" in text
    assert f"{bad}: [nonsense]: unknown section" in text
    bad.write_text("not ini\n")
    with pytest.raises(config.ConfigError) as ei:
        config.load(str(main), environ={})
    assert ei.value.problems[0].startswith(f"{bad}: not a valid ini file")


def test_dropin_completes_a_section_of_the_main_file(tmp_path):
    """The secret can live in its own drop-in (its own mode and owner)."""
    main = tmp_path / "kit.ini"
    main.write_text("[asterisk]\nami_user = kit\n")
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "secret.ini").write_text("[asterisk]\nami_secret = s3cret\n")
    cfg = config.load(str(main), environ={})
    assert cfg["asterisk"]["ami_secret"] == "s3cret"
    assert cfg.secret_files == {tmp_path / "conf.d" / "secret.ini"}


def test_config_check_warns_about_world_readable_files_holding_secrets(tmp_path):
    main = tmp_path / "kit.ini"
    main.write_text("[asterisk]\nami_user = kit\n")
    main.chmod(0o640)
    (tmp_path / "conf.d").mkdir()
    secret = tmp_path / "conf.d" / "secret.ini"
    secret.write_text("[asterisk]\nami_secret = s3cret\n")
    plain = tmp_path / "conf.d" / "web.ini"
    plain.write_text("[web]\nport = 8081\n")
    plain.chmod(0o644)
    secret.chmod(0o640)
    r = run_cli("--config", str(main), "config", "check")
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert str(secret) in r.stdout and str(plain) in r.stdout          # drop-ins listed as read
    secret.chmod(0o644)
    r = run_cli("--config", str(main), "config", "check")
    assert r.returncode == 0
    (w,) = r.stderr.splitlines()
    assert w.startswith(f"warning: {secret} holds secrets and is readable by every user (mode 0644)")
    assert "s3cret" not in r.stdout + r.stderr
    main.chmod(0o644)
    r = run_cli("--config", str(main), "config", "check")
    assert len(r.stderr.splitlines()) == 2 and f"warning: {main} is the main config file" in r.stderr


# ---- AMI users per capability, typed views -------------------------------------------------------

def test_ami_capabilities_get_their_own_optional_ami_user():
    ami_sections = [n for n, s in config.SCHEMA.items() if s.ami]
    assert ami_sections, "at least one capability talks to AMI"
    name = ami_sections[0]
    cfg = parse(MIN + f"[{name}]\n")
    assert cfg.ami_credentials(name) == ("kit", "s3cret")
    assert cfg.ami_credentials("asterisk") == ("kit", "s3cret")
    cfg = parse(MIN + f"[{name}]\nami_user = own\nami_secret = other\n")
    assert cfg.ami_credentials(name) == ("own", "other")
    cfg = parse(MIN + f"[{name}]\n", env={config.env_name(name, "ami_user"): "envuser",
                                          config.env_name(name, "ami_secret"): "envsecret"})
    assert cfg.ami_credentials(name) == ("envuser", "envsecret")
    (p,) = problems(MIN + f"[{name}]\nami_user = own\n")
    assert f"[{name}] ami_secret: required when ami_user is set" in p
    assert "ami_user" not in config.SCHEMA["web"].keys           # only where the descriptor asks


def test_typed_views_match_the_schema():
    from asterisk_kit.settings import VIEWS
    cfg = parse(MIN)
    for section, cls in VIEWS.items():
        import dataclasses
        assert [f.name for f in dataclasses.fields(cls)] == list(config.SCHEMA[section].keys), section
        view = getattr(cfg, section)
        assert dataclasses.asdict(view) == cfg[section]
    assert cfg.asterisk.ami_port == 5038 and cfg.web.secure_cookies is False
    assert cfg.general.data_dir == cfg.data_dir and cfg.log.keep_days == 30
