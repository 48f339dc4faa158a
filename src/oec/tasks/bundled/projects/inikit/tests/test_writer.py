from inikit import dumps, parse


def test_round_trip():
    text = "[DEFAULT]\nx = 1\n\n[a]\ny = two\n  lines\n\n[b]\nz = ${a:y}\n"
    config = parse(text)
    assert parse(dumps(config)) == config


def test_output_format():
    assert dumps(parse("[a]\nk: v\n")) == "[a]\nk = v\n"


def test_section_values_only_written_once():
    out = dumps(parse("[DEFAULT]\nx = 1\n[a]\ny = 2\n"))
    assert out == "[DEFAULT]\nx = 1\n\n[a]\ny = 2\n"
