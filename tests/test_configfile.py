"""``--config FILE.toml``: keys are a command's options, the command line wins, unknown keys are refused."""

from __future__ import annotations

import tomllib

import pytest
import tomli_w

from distributed_pz.cli import build_parser, main
from distributed_pz.configfile import ConfigFileError, read_config
from distributed_pz.options import resolved
from distributed_pz.train.cli import OPTIONS


def test_train_options_from_a_file_command_line_wins(tmp_path):
    config = tmp_path / "train.toml"
    config.write_text(
        'store = "s3://bucket/sim.zarr"\nout = "ens"\ntile = ["A", "B"]\nmodel = "deepz"\n'
        'model-set = ["hidden=16"]\nsplits = 3\nepochs = 7\nlr = 0.01\n'
    )
    parser = build_parser(["train"], read_config(str(config), OPTIONS))
    args = parser.parse_args(["train", "--epochs", "2"])
    assert (args.store, args.out, args.tiles, args.n_splits, args.epochs, args.lr) == (
        "s3://bucket/sim.zarr",
        str(tmp_path / "ens"),  # relative to the config file; a URL as it is
        ["A", "B"],
        3,
        2,
        0.01,
    )
    options = resolved(OPTIONS, args)
    assert options["epochs"] == 2 and options["model-set"] == ["hidden=16"]
    assert tomllib.loads(tomli_w.dumps(options)) == options  # the resolved copy reads back as written


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("no-such-option = 1\n", "unknown option(s) no-such-option; this command takes: "),
        ('model = "nope"\n', "model = 'nope': expected one of"),
        ('splits = "three"\n', "splits = 'three'"),
        ("store = [1, 2\n", "--config"),
    ],
)
def test_bad_files_are_one_clear_error(tmp_path, text, message):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigFileError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_config(str(config), OPTIONS)


def test_every_command_takes_config_and_a_positional_may_come_from_it(tmp_path, capsys):
    store = tmp_path / "sim.zarr"
    simulate = tmp_path / "simulate.toml"
    simulate.write_text(f'out = "{store}"\nn = 64\nchunk-rows = 32\nshard-rows = 64\n')
    assert main(["simulate", "--config", str(simulate)]) == 0
    resolved = tmp_path / "sim.zarr.dpz-simulate.toml"  # beside the store, not inside it
    assert "n = 64" in resolved.read_text()
    (tmp_path / "validate.toml").write_text(f'store = "{store}"\ndeep = true\n')
    assert main(["validate", "--config", str(tmp_path / "validate.toml")]) == 0
    assert "ok:" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["validate", "--config", str(simulate)])  # simulate's keys are not validate's options
    assert "unknown option(s) chunk-rows" in capsys.readouterr().err
