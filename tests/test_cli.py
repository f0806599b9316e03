"""The `speechgpt-hf` command line: every verb answers --help, without loading torch."""

import argparse
import subprocess
import sys

import pytest

import speechgpt_hf_cli
from speechgpt_hf_cli.convert import CONVERTERS

VERBS = [[verb] for verb in speechgpt_hf_cli.COMMANDS] + [["convert", what] for what in CONVERTERS]


@pytest.mark.parametrize("verb", VERBS, ids=" ".join)
def test_every_verb_answers_help(verb, capsys):
    with pytest.raises(SystemExit) as exit_info:
        speechgpt_hf_cli.main([*verb, "--help"])
    assert exit_info.value.code == 0
    assert f"speechgpt-hf {' '.join(verb)}" in capsys.readouterr().out


def test_help_does_not_import_torch():
    code = "import sys, speechgpt_hf_cli; speechgpt_hf_cli.build_parser(); print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


def test_unknown_verb_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        speechgpt_hf_cli.main(["no-such-verb"])
    assert exit_info.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_build_speechinstruct_offers_the_three_configurations(capsys):
    from speechgpt_hf.stages import STAGES

    with pytest.raises(SystemExit):
        speechgpt_hf_cli.main(["build-speechinstruct", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert all(name in help_text for name in STAGES)
    with pytest.raises(SystemExit) as exit_info:
        speechgpt_hf_cli.main(["build-speechinstruct", "out", "--configs", "cross-modal"])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and all(repr(name) in error for name in STAGES)  # argparse names the choices


def _verb_parsers() -> dict[str, argparse.ArgumentParser]:
    """Every verb's parser (and every converter's), by its command line."""
    found, todo = {}, [("", speechgpt_hf_cli.build_parser())]
    while todo:
        name, parser = todo.pop()
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {verb}".strip(), sub) for verb, sub in action.choices.items()]
        if name:
            found[name] = parser
    return found


def _values(action: argparse.Action, tmp_path) -> list[str]:
    """Command-line values `action` accepts."""
    if action.nargs == 0:
        return []
    if action.choices:
        return [str(next(iter(action.choices)))]
    return [{int: "7", float: "0.25"}.get(action.type, str(tmp_path))]


def _long_options(parser: argparse.ArgumentParser) -> list[tuple[argparse.Action, str]]:
    return [
        (action, option)
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and ("-" in option[2:] or "_" in option[2:]) and action.dest != "help"
    ]


@pytest.mark.parametrize("verb", sorted(_verb_parsers()))
def test_every_option_takes_hyphens_and_underscores(verb, tmp_path, monkeypatch):
    parser = _verb_parsers()[verb]
    for action in parser._actions:  # parse one option at a time: nothing else is required here
        monkeypatch.setattr(action, "required", False)
    options = _long_options(parser)
    for action, option in options:
        assert "_" not in option, f"{verb} {option}: declare the hyphenated spelling, the one help shows"
        parsed = []
        for spelling in (option, "--" + option[2:].replace("-", "_")):
            namespace, extra = parser.parse_known_args([spelling, *_values(action, tmp_path)])
            assert extra == [], f"{verb} {spelling}"
            parsed.append(getattr(namespace, action.dest))
        assert parsed[0] == parsed[1] != action.default, f"{verb} {option}"
        # an abbreviation naming one option, as argparse allows, still names it with two spellings registered
        prefix = option[: option.index("-", 2)]
        if [o for a in parser._actions for o in a.option_strings if o.startswith(prefix)] == [option]:
            namespace, _ = parser.parse_known_args([prefix, *_values(action, tmp_path)])
            assert getattr(namespace, action.dest) == parsed[0], f"{verb} {prefix}"


def test_train_takes_hyphens_and_underscores_in_its_fields(tmp_path):
    from speechgpt_hf_cli.train import check_required

    for spelling in ("--output-dir", "--output_dir"):
        args = speechgpt_hf_cli.build_parser().parse_known_args(
            ["train", "--stage", "cross_modal", "--dataset-name", "data/", spelling, str(tmp_path)]
        )
        args[0].extra = args[1]
        assert spelling in check_required(args[0])
