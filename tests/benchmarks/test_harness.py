"""The benchmark harness's shared command line, recorded command and report (no benchmark runs)."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks.harness import OPTIONS, ROOT, argument_parser, command_line, opt, report


def test_shared_options_take_the_scripts_defaults_and_changes():
    parser = argument_parser(
        "doc",
        "device",
        work="dpz_test",
        n=20_000,
        precision=opt(["fp32"], nargs="+", choices=["bf16", "fp32"], help="precisions"),
        workers=opt(2, nargs=None),
    )
    args = parser.parse_args([])
    assert (args.device, args.n, args.precision, args.workers) == ("cpu", 20_000, ["fp32"], 2)
    assert Path(args.work).name == "dpz_test"
    assert parser.parse_args(["--precision", "bf16", "fp32", "--workers", "3"]).precision == ["bf16", "fp32"]
    options = [a.option_strings[0] for a in parser._actions if not isinstance(a, argparse._HelpAction)]
    assert options == ["--work", "--n", "--device", "--precision", "--workers"]  # the order of OPTIONS
    assert set(OPTIONS) >= {"models", "threads", "seed", "out"}


def test_names_are_space_or_comma_separated_and_checked():
    parser = argument_parser("doc", models=opt(["a", "b"], choices=["a", "b", "c"]), catalogues=["x"])
    assert parser.parse_args([]).models == ["a", "b"]
    assert parser.parse_args(["--models", "c,a"]).models == ["c", "a"]
    assert parser.parse_args(["--models", "c", "a", "--catalogues", "y,z"]).catalogues == ["y", "z"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--models", "a,d"])


def test_command_is_recorded_relative_to_the_repository():
    script = str(ROOT / "benchmarks" / "survey_scale.py")
    assert command_line([script, "--stages", "bytes"]) == "python -m benchmarks.survey_scale --stages bytes"
    main = str(ROOT / "benchmarks" / "simulator_realism" / "__main__.py")
    assert command_line([main, "--quick"]) == "python -m benchmarks.simulator_realism --quick"
    assert command_line(["/elsewhere/pytest/__main__.py", "-q"]) == "python -m pytest -q"


def test_report_parts_and_commands(tmp_path):
    rows = [{"command": "python -m benchmarks.b --x"}, {"command": "python -m benchmarks.a"}]
    path = report("demo", "Title", "Intro.", "| a |\n|---|", rows=rows, results_dir=tmp_path)
    assert path == tmp_path / "demo.md"
    assert path.read_text() == (
        "# Title\n\nIntro.\n\n| a |\n|---|\n\nCommands:\n\n"
        "- `python -m benchmarks.a`\n- `python -m benchmarks.b --x`\n"
    )
    out = report("demo", "Title", "Only.", out=tmp_path / "sub" / "x.md")
    assert out.read_text() == "# Title\n\nOnly.\n"
