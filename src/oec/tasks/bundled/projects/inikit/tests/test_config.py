import pytest

from inikit import ConfigError, parse

TEXT = """
[DEFAULT]
base = /opt
timeout = 30

[app]
debug = yes
workers = 4
ratio = 0.75
data = ${base}/data
log = ${data}/log
hosts = a.example, b.example,, c.example
flag = maybe

[db]
name = main
"""


@pytest.fixture()
def config():
    return parse(TEXT)


def test_get_missing_key_raises(config):
    with pytest.raises(KeyError):
        config.get("app", "nope")


def test_get_missing_section_raises(config):
    with pytest.raises(KeyError):
        config.get("nope", "x")


def test_fallback(config):
    assert config.get("app", "nope", fallback="dflt") == "dflt"


def test_default_section_fills_in(config):
    assert config.get("db", "timeout") == "30"
    assert "DEFAULT" not in config.sections()


def test_getint_and_getfloat(config):
    assert config.getint("app", "workers") == 4
    assert config.getfloat("app", "ratio") == 0.75
    assert config.getint("app", "missing", fallback=7) == 7


def test_getint_bad_value(config):
    with pytest.raises(ConfigError):
        config.getint("db", "name")


@pytest.mark.parametrize("text,expected", [("yes", True), ("True", True), ("on", True), ("1", True), ("no", False), ("false", False), ("0", False)])
def test_getbool_values(text, expected):
    assert parse(f"[a]\nx = {text}\n").getbool("a", "x") is expected


def test_getbool_rejects_other_words(config):
    with pytest.raises(ConfigError):
        config.getbool("app", "flag")


def test_getlist_drops_empty_items(config):
    assert config.getlist("app", "hosts") == ["a.example", "b.example", "c.example"]


def test_interpolation_same_section_and_default(config):
    assert config.get("app", "data") == "/opt/data"
    assert config.get("app", "log") == "/opt/data/log"


def test_raw_value(config):
    assert config.get("app", "data", raw=True) == "${base}/data"


def test_bad_reference():
    with pytest.raises(ConfigError, match="bad reference"):
        parse("[a]\nx = ${nope}\n").get("a", "x")


def test_reference_loop():
    with pytest.raises(ConfigError, match="deeper"):
        parse("[a]\nx = ${y}\ny = ${x}\n").get("a", "x")


def test_to_dict(config):
    assert config.to_dict()["db"] == {"base": "/opt", "timeout": "30", "name": "main"}
