"""The `speechgpt-hf` command line: every verb answers --help, without loading torch."""

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
