"""``dpz export --hats`` rows of the review of the new surfaces (H2, H4-H7, export reads outside the run).

A run of the three tiles (and one whose T2 failed) is exported; every catalogue read back with
lsdb must hold each reference row once, and a refused export must leave nothing behind.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

lsdb = pytest.importorskip("lsdb", reason="needs the [hats] extra")
pytest.importorskip("hats_import")

from hats_import.catalog.resume_plan import ResumePlan  # noqa: E402

from distributed_pz.cli import main  # noqa: E402
from distributed_pz.evaluate.export import EXPORT_RECORD, INTERMEDIATE, export_hats, run_catalogues  # noqa: E402
from distributed_pz.infer.manifest import RUN_MANIFEST  # noqa: E402
from distributed_pz.infer.stream import predict_store  # noqa: E402

from .conftest import N_ROWS, TILES, shard  # noqa: E402

pytestmark = [pytest.mark.faults, pytest.mark.distributed, pytest.mark.slow]


@pytest.fixture(scope="module")
def runs(client, world, tmp_path_factory):
    """``full``: the three tiles committed; ``failed``: T2's ``mag`` shard deleted, T2 failed (skip)."""
    root = tmp_path_factory.mktemp("export")
    damaged = root / "damaged.zarr"
    shutil.copytree(world["store"], damaged)
    shard(damaged, "T2", "mag", 3).unlink()
    out = {}
    for name, store in (("full", world["store"]), ("failed", damaged)):
        predict_store(
            client, str(store), str(world["ensemble"]), str(root / name), on_error="skip", progress=False
        )
        out[name] = root / name
    return out


def assert_every_row_once(hats, world, tiles=TILES) -> None:
    frame = lsdb.open_catalog(hats).compute()
    ids = np.concatenate([world["reference"][t]["object_id"] for t in tiles])
    z_phot = np.concatenate([world["reference"][t]["z_phot"] for t in tiles])
    assert len(frame) == len(ids) == len(np.unique(frame["object_id"]))
    by_id = frame.set_index("object_id").loc[ids]
    assert np.allclose(by_id["z_phot"].to_numpy(dtype=np.float32), z_phot, rtol=1e-5, equal_nan=True)


def error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("dpz export:")]


def test_h4_a_run_with_a_failed_tile_is_refused_unless_allow_partial(runs, world, tmp_path, capsys):
    out = tmp_path / "photoz"
    assert main(["export", "--run", str(runs["failed"]), "--hats", str(out)]) == 1
    (line,) = error_lines(capsys)
    assert "tiles failed or unfinished: T2" in line and "--allow-partial" in line
    assert not out.exists()
    assert main(["export", "--run", str(runs["failed"]), "--hats", str(out), "--allow-partial"]) == 0
    assert error_lines(capsys) == ["dpz export: warning: tiles failed or unfinished, left out: T2"]
    assert_every_row_once(str(out), world, tiles=("T0", "T1"))


def test_h2_an_interrupted_export_resumes_with_the_same_command(runs, world, tmp_path, capsys, monkeypatch):
    out = tmp_path / "photoz"
    argv = ["export", "--run", str(runs["full"]), "--hats", str(out)]
    wait_for_splitting = ResumePlan.wait_for_splitting

    def interrupted(self, futures):  # Ctrl-C once the input is mapped and split
        wait_for_splitting(self, futures)
        raise KeyboardInterrupt

    monkeypatch.setattr(ResumePlan, "wait_for_splitting", interrupted)
    assert main(argv) == 130
    assert "interrupted" in capsys.readouterr().err
    assert (out / EXPORT_RECORD).is_file() and (out / INTERMEDIATE).is_dir()
    monkeypatch.undo()
    assert main(argv) == 0
    assert f"{3 * N_ROWS} rows of 3 catalogues" in capsys.readouterr().out
    assert not (out / EXPORT_RECORD).exists() and not (out / INTERMEDIATE).exists()  # no pickles left
    assert_every_row_once(str(out), world)
    assert main(argv) == 1  # a finished catalogue is never written again
    (line,) = error_lines(capsys)
    assert "exists; HATS export writes a new catalogue" in line


def test_h5_h6_an_existing_folder_or_file_is_refused_with_nothing_written(runs, tmp_path):
    catalogues = run_catalogues(str(runs["full"])).files
    folder, file = tmp_path / "folder", tmp_path / "file"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    file.write_text("mine")
    with pytest.raises(ValueError, match=r"folder exists; HATS export writes a new catalogue"):
        export_hats(catalogues, str(folder))
    with pytest.raises(ValueError, match=r"file is a file; --hats names a new HATS catalogue folder"):
        export_hats(catalogues, str(file))
    assert [p.name for p in folder.iterdir()] == ["keep.txt"] and file.read_text() == "mine"


@pytest.mark.parametrize("entry", ["../other/T0.parquet", "/abs/T0.parquet"], ids=["dotdot", "absolute"])
def test_manifest_files_outside_the_run_are_refused(runs, tmp_path, capsys, entry):
    run = tmp_path / "run"
    shutil.copytree(runs["full"], run)
    entry = str(tmp_path / "elsewhere.parquet") if entry.startswith("/") else entry
    manifest = json.loads((run / RUN_MANIFEST).read_text())
    manifest["tiles"]["T1"]["file"] = entry
    (run / RUN_MANIFEST).write_text(json.dumps(manifest))
    out = tmp_path / "photoz"
    assert main(["export", "--run", str(run), "--hats", str(out)]) == 1
    (line,) = error_lines(capsys)
    assert f"tile 'T1': catalogue {entry!r} is not inside the run; refused" in line
    assert not out.exists()


def test_h7_run_and_hats_on_s3(bucket, runs, world, tmp_path, capsys):
    fs, root = bucket
    fs.put(str(runs["full"]), f"{root}/run", recursive=True)
    argv = ["export", "--run", f"{root}/run", "--hats", f"{root}/hats/photoz"]
    assert main(argv) == 0, capsys.readouterr().err
    assert f"{3 * N_ROWS} rows of 3 catalogues" in capsys.readouterr().out
    assert not fs.exists(f"{root}/hats/photoz/{EXPORT_RECORD}")
    fs.get(
        f"{root}/hats/photoz", str(tmp_path / "photoz"), recursive=True
    )  # read where the cluster's workers can
    assert_every_row_once(str(tmp_path / "photoz"), world)
