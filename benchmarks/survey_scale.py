"""Speed at survey scale (issues 15, 25): the pipeline against its bound, start-up, training, student, scale.

Stages (``--stages``, default all, in this order; each appends its rows as it finishes):

- ``predict50``: a 50-member DEEPZ ensemble (freshly initialised paper-size members) through
  ``dpz predict`` on a catalogue-only 100k-source tile (a KiDS DR4 tile's size), one 1-thread
  worker, the whole command timed (interpreter, cluster start, plugin, reads, Parquet, commit);
  bound = 1-thread 1024² fp32 matmul rate measured in the same run / (50 x 3.05 MFLOP per source).
- ``overhead``: the same rows with one DEEPZ member: ``EnsemblePredictor`` alone on rows in
  memory (1 thread) vs the ``predict_store`` pipeline (one 1-thread worker, cluster running).
- ``bytes``: GaZNet-1 through the reference run on a tile with cutouts: bytes the process
  read (``/proc/self/io`` ``rchar``) per source.
- ``train``: ``dpz train`` 1 x 2 and 10 x 5 DEEPZ members on the same 20k rows, 6 epochs, batch
  100, one Ray run each: the whole command, its training (``status.json``: first to last report)
  and the rest (Ray start, data, finish) apart; member-samples/s per core against the FLOP bound
  (3 x 3.05 MFLOP per sample, 1-thread matmul measured in the same run); the paper plan's wall
  time (300 epochs) extrapolated from it.
- ``train_rate``: samples/s of ``train_stacked`` vs ``train_member`` one member after another,
  10 and 50 DEEPZ members (``--train-rate-epochs``), 1 thread; bound = 1-thread matmul rate
  measured in the same run / (3 x 3.05 MFLOP per sample), and each one's fraction of it.
- ``student``: distil the 10 x 5 ensemble of ``train`` (the 1 x 2 one when 10 x 5 is absent) on
  its training rows and as many unlabeled rows; NMAD and PIT KS of ensemble and student on the
  galaxies of a held-out simulated tile (stars, whose z = 0 is a class label, left out); the
  student through ``dpz predict`` (one 1-thread worker, start included) on the 100k-source
  tile, and RAIL GPz, trained on the same training rows, estimating the same
  100k rows in one 1-thread process of the RAIL environment (``benchmarks.rail_rate``; without
  that environment GPz is skipped and said so).
- ``cnn``: GaZNet-1 training steps, ``vmap`` over stacked members vs the member loop.
- ``startup``: the whole ``dpz predict`` command on a 1000-source tile (best and median of 3):
  interpreter, imports, cluster, ensemble, commit, shutdown — what a run costs besides its sources.
- ``scale``: the student (one fresh DEEPZ member of its size when the ``student`` stage has not
  run) through ``dpz predict`` on 1e4, 1e5 and ``--scale-tiles`` x 1e5 sources (10 = 1e6),
  catalogue-only, 1-thread workers (1, and 2 for the last point), each point run
  :data:`SCALE_REPEATS` times: the median seconds per source (and the range), the rows
  written, the peak RSS of the client and of each worker process (sampled every 0.2 s), and the
  cores the command kept busy (CPU seconds of all its processes / wall seconds): on a machine of
  C cores, W workers can be at most C / (one worker's cores busy) times as fast as one.
- ``pinned``: strong scaling, the 1e6 sources of ``scale`` with W 1-thread workers given W cores
  (the whole ``dpz predict`` process tree's CPU affinity set to cores 0..W-1: client, scheduler
  and workers share them), W = 1 and 2, each :data:`SCALE_REPEATS` times: the median seconds and
  the speed-up over W = 1 — what a second worker gains when it brings its own core, which
  ``scale``'s unpinned runs cannot show on a 2-core machine (there one worker's reader and writer
  threads already use part of the second core).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import torch

from benchmarks.harness import (
    RESULTS_DIR,
    append_rows,
    argument_parser,
    load_average,
    machine,
    markdown_table,
    read_rows,
    report,
)

NAME = "survey_scale"
DEEPZ_MFLOP = 3.05
"""FLOPs per source of one paper-size DEEPZ member's full forward pass (``bounds.md``)."""
STUDENT = {"epochs": 30, "samples": 8}
"""Distillation settings of the ``student`` stage (``--student-epochs``, ``--student-samples``)."""
TRAIN = {"rows": 20_000, "epochs": 6}
"""Rows and epochs of the ``train`` stage (``--train-rows``)."""
PAPER_EPOCHS = 300
"""DEEPZ's training (Eriksen et al. 2020 §2.4: 100 + 200 epochs at batch 100)."""
TRAIN_RATE = {"members": (10, 50), "epochs": 2}
"""Members and epochs of the ``train_rate`` stage (``--train-rate-epochs``)."""
SCALE = [(10_000, 1, 1), (100_000, 1, 1), (100_000, 10, 1), (100_000, 10, 2)]
"""(sources per tile, tiles, workers) of the scale curve; ``--scale-tiles`` sets the tiles of the
last two (10 = 1e6 sources)."""
SCALE_REPEATS = 3
"""Runs of each scale point; its seconds are their median (one run of 1e6 varied by ±8 % here)."""
PREDICT_SOURCES = 100_000
"""Sources of the ``predict50``, ``overhead`` and ``student`` tile (a KiDS DR4 tile's size)."""


def dpz(*args: str, threads: int = 1) -> float:
    """Run ``dpz ARGS`` in a fresh interpreter; its wall seconds (:func:`children_cpu` gives its CPU seconds)."""
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "distributed_pz.cli", *args],
        check=True,
        env=dpz_env(threads),
        stdout=subprocess.DEVNULL,
    )
    return time.perf_counter() - started


def dpz_env(threads: int = 1) -> dict[str, str]:
    """The environment of a ``dpz`` child: ``threads`` torch threads, no Ray usage reporting."""
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "RAY_USAGE_STATS_ENABLED": "0"}


def children_cpu() -> float:
    """CPU seconds (user + system) of every finished child process so far (its own children too)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def matmul_rate(size: int = 1024, repeats: int = 20) -> float:
    """Single-thread fp32 matmul FLOP/s (best of ``repeats``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    torch.set_num_threads(threads)
    return 2 * size**3 / best


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def catalogue_store(url: str, tiles: int, n: int, seed: int = 0, with_cutouts: bool = False) -> str:
    """A store of ``tiles`` simulated tiles ``S0000...`` of ``n`` sources (catalogue-only unless asked)."""
    from distributed_pz.survey.sim.simulate import SimulationConfig, simulate_catalogue, tile_attrs
    from distributed_pz.survey.sim.simulate_cli import write_simulated_tile
    from distributed_pz.survey.store.store import open_store

    store = open_store(url, "a")
    for i in range(tiles):
        name = f"SIM_{i:04d}"
        if name in store.tile_names() and store.tile(name).complete:
            continue
        config = SimulationConfig(n_sources=n, seed=seed + i, tile=name, object_id_start=i * n)
        if with_cutouts:
            write_simulated_tile(store, config)
        else:
            store.write_tile(name, simulate_catalogue(config), tile_attrs(config))
    return url


def fresh_ensemble(root: Path, store_url: str, members: int) -> str:
    """``members`` freshly initialised paper-size DEEPZ members (feature statistics from the tile)."""
    from benchmarks.inference import ensure_ensemble
    from distributed_pz.models import create_model
    from distributed_pz.models.bundle import make_bundle, save_bundle
    from distributed_pz.models.inputs import batch_tensors, fit_feature_stats
    from distributed_pz.survey.store.store import open_store

    base = root / "deepz"
    if not base.exists():
        rows = open_store(store_url).tile("SIM_0000").read_rows(["mag", "flux_exp", "flux_exp_err"], 0, 4096)
        torch.manual_seed(0)
        model = create_model("deepz")
        stats = fit_feature_stats(model.input_spec, batch_tensors(rows, model.input_spec))
        save_bundle(base, make_bundle(model, stats, rows.bands, rows.image_bands))
    return ensure_ensemble(root, str(base), members)


def predict_args(bundle: str, store: str, out: str, *tiles: str, workers: int = 1) -> list[str]:
    tile_args = [a for t in tiles for a in ("--tile", t)]
    return [
        "predict",
        "--bundle",
        bundle,
        "--store",
        store,
        "--out",
        out,
        "--workers",
        str(workers),
        "--quiet",
        *tile_args,
    ]


def stage_predict50(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    store = catalogue_store(str(work / "cat100k.zarr"), 1, PREDICT_SOURCES)
    ensemble = fresh_ensemble(work / "bundles", store, 50)
    rate = matmul_rate()
    cpu = children_cpu()
    with tempfile.TemporaryDirectory() as out:
        seconds = dpz(*predict_args(ensemble, store, out))
    cpu = children_cpu() - cpu
    bound = rate / (50 * DEEPZ_MFLOP * 1e6)
    return [
        {
            **common,
            "stage": "predict50",
            "what": f"50-member DEEPZ, dpz predict, 1 worker x 1 thread, {PREDICT_SOURCES:,} sources, start included",
            "sources": PREDICT_SOURCES,
            "seconds": seconds,
            "sources_per_s": PREDICT_SOURCES / seconds,
            "matmul_1t_gflop_s": rate / 1e9,
            "bound_sources_per_s": bound,
            "fraction_of_bound": PREDICT_SOURCES / seconds / bound,
            "cpu_seconds": cpu,
            "sources_per_cpu_s": PREDICT_SOURCES / cpu,
            "cpu_fraction_of_bound": PREDICT_SOURCES / cpu / bound,
            **load_average(),
        }
    ]


def stage_overhead(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    from distributed_pz.infer.cluster import connect
    from distributed_pz.infer.stream import predict_store
    from distributed_pz.models.ensemble import EnsembleDir
    from distributed_pz.models.predictor import EnsemblePredictor
    from distributed_pz.survey.store.store import open_store

    store = catalogue_store(str(work / "cat100k.zarr"), 1, PREDICT_SOURCES)
    fresh_ensemble(work / "bundles", store, 50)
    member = work / "bundles" / "deepz"
    tile = open_store(store).tile("SIM_0000")
    torch.set_num_threads(1)
    predictor = EnsemblePredictor.from_ensemble(EnsembleDir(member).read(device="cpu"))
    rows = tile.read_rows(predictor.input_arrays(tile.array_names()))
    predictor(rows)
    alone = min(_timed(lambda: predictor(rows)) for _ in range(3))
    with connect("local", workers=1) as client:  # the cluster dpz predict starts

        def run() -> None:
            with tempfile.TemporaryDirectory() as out:
                predict_store(client, store, str(member), out, progress=False)

        run()
        pipeline = min(_timed(run) for _ in range(3))
    return [
        {
            **common,
            "stage": "overhead",
            "what": f"1 DEEPZ member, {PREDICT_SOURCES:,} sources: predictor alone vs predict_store (cluster running)",
            "sources": tile.n_rows,
            "predictor_sources_per_s": tile.n_rows / alone,
            "pipeline_sources_per_s": tile.n_rows / pipeline,
            "pipeline_over_predictor": alone / pipeline,
            **load_average(),
        }
    ]


def stage_bytes(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    from benchmarks.fixtures import ensure_bundle
    from distributed_pz.infer.local import predict_tile_local
    from distributed_pz.models.ensemble import EnsembleDir
    from distributed_pz.models.predictor import EnsemblePredictor

    store = catalogue_store(str(work / "img2k.zarr"), 1, 2048, with_cutouts=True)
    bundle = ensure_bundle(work / "bundles", "gaznet_1", store)
    predictor = EnsemblePredictor.from_ensemble(EnsembleDir(bundle).read(device="cpu"))
    read_before = _rchar()
    predict_tile_local(store, "SIM_0000", predictor)
    read = _rchar() - read_before
    return [
        {
            **common,
            "stage": "bytes",
            "what": "GaZNet-1 reference run (infer.local), 2048 sources with 4-band cutouts",
            "sources": 2048,
            "image_bands_read": ",".join(predictor.image_bands),
            "bytes_read_per_source": read / 2048,
            "one_band_bytes": 40 * 40 * 4,
            **load_average(),
        }
    ]


def _rchar() -> int:
    text = Path("/proc/self/io").read_text()
    return int(next(line.split()[1] for line in text.splitlines() if line.startswith("rchar")))


def stage_train(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    store = catalogue_store(str(work / "train20k.zarr"), 1, TRAIN["rows"], seed=100)
    rate = matmul_rate()
    bound = rate / (3 * DEEPZ_MFLOP * 1e6)  # member-samples/s of one core
    rows = []
    for splits, folds in ((1, 2), (10, 5)):
        out = work / f"ens_{splits}x{folds}"
        if (out / "ensemble.json").exists():
            continue
        seconds = dpz(
            "train",
            "--store",
            store,
            "--out",
            str(out),
            "--splits",
            str(splits),
            "--folds",
            str(folds),
            "--epochs",
            str(TRAIN["epochs"]),
            "--batch-size",
            "100",
            "--patience",
            "0",
            threads=1,
        )
        status = json.loads((out / "status.json").read_text())
        training = status["updated"] - status["started"]
        samples = splits * folds * TRAIN["rows"] * (folds - 1) / folds * TRAIN["epochs"]
        cores = os.cpu_count() or 1
        per_core = samples / training / cores
        rows.append(
            {
                **common,
                "stage": "train",
                "what": (
                    f"dpz train DEEPZ, {TRAIN['rows']:,} rows, {TRAIN['epochs']} epochs, batch 100, one "
                    f"Ray run on {cores} cores; member-samples = members x training rows x epochs"
                ),
                "members": splits * folds,
                "seconds": seconds,
                "training_s": training,
                "start_and_finish_s": seconds - training,
                "member_samples_per_s_per_core": per_core,
                "bound_per_core": bound,
                "fraction_of_bound": per_core / bound,
                "paper_plan_h": (seconds - training + training * PAPER_EPOCHS / TRAIN["epochs"]) / 3600,
                **load_average(),
            }
        )
    return rows


def stage_train_rate(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    """Samples/s of ``train_stacked`` and the member loop (``train_member`` one member after another),
    10 and 50 DEEPZ members, 1 thread, against the FLOP bound measured in the same run."""
    from distributed_pz.survey.store.store import open_store
    from distributed_pz.train.member import TrainConfig, train_member
    from distributed_pz.train.vmapped import MemberJob, train_stacked

    store = catalogue_store(str(work / "train4k.zarr"), 1, 4000, seed=100)
    data = open_store(store).tile("SIM_0000").read_rows(["mag", "flux_exp", "flux_exp_err", "z_spec"])
    torch.set_num_threads(1)
    tc = TrainConfig(epochs=TRAIN_RATE["epochs"], batch_size=100, patience=None)
    warm = TrainConfig(epochs=1, batch_size=100)
    train_stacked(_config(), [MemberJob(data.take(np.arange(400)), s) for s in range(2)], train_config=warm)
    train_member(_config(), data.take(np.arange(400)), 0, train_config=warm)
    rate = matmul_rate()
    bound = rate / (3 * DEEPZ_MFLOP * 1e6)  # forward and backward: 3 x the forward's FLOPs
    rows = []
    for members in TRAIN_RATE["members"]:
        jobs = [MemberJob(data.take(np.arange(s * 40, s * 40 + 2000)), s) for s in range(members)]
        samples = members * 1600 * tc.epochs  # 2000 rows less the 20 % validation split
        stacked = _cpu_and_wall(train_stacked, _config(), jobs, train_config=tc)
        loop = _cpu_and_wall(
            lambda each: [train_member(_config(), j.data, j.seed, train_config=tc) for j in each], jobs
        )
        rows.append(
            {
                **common,
                "stage": "train_rate",
                "what": (
                    f"DEEPZ members of 2000 rows, batch 100, {tc.epochs} epochs, 1 thread; samples/s per"
                    " CPU second of the process (wall in the rows); bound = 1-thread 1024² fp32 matmul"
                    f" rate / (3 x {DEEPZ_MFLOP} MFLOP per sample), setup and validation included"
                ),
                "members": members,
                "stacked_samples_per_s": samples / stacked[0],
                "loop_samples_per_s": samples / loop[0],
                "stacked_wall_samples_per_s": samples / stacked[1],
                "loop_wall_samples_per_s": samples / loop[1],
                "speedup": loop[0] / stacked[0],
                "matmul_1t_gflop_s": rate / 1e9,
                "bound_samples_per_s": bound,
                "stacked_fraction_of_bound": samples / stacked[0] / bound,
                "loop_fraction_of_bound": samples / loop[0] / bound,
                **load_average(),
            }
        )
    return rows


def _cpu_and_wall(fn, *args: Any, **kwargs: Any) -> tuple[float, float]:
    """CPU seconds of this process and wall seconds of ``fn(*args, **kwargs)``."""
    cpu, wall = time.process_time(), time.perf_counter()
    fn(*args, **kwargs)
    return time.process_time() - cpu, time.perf_counter() - wall


def stage_cnn(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    """GaZNet-1 training steps of 4 members, vmap over stacked parameters vs one member after another."""
    import copy

    from torch.func import functional_call, stack_module_state, vmap

    from distributed_pz.models import create_model

    torch.set_num_threads(1)
    models = []
    for seed in range(4):
        torch.manual_seed(seed)
        models.append(create_model("gaznet_1").train())
    n_catalog = models[0].config.input_spec().n_catalog
    batch = {"catalog": torch.randn(4, 32, 2 * n_catalog), "image": torch.randn(4, 32, 1, 40, 40)}
    params, buffers = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def stacked_step() -> None:
        out = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), randomness="different")(
            params, buffers, batch
        )
        out["z"].sum().backward()

    def loop_step() -> None:
        for j, model in enumerate(models):
            model({k: v[j] for k, v in batch.items()})["z"].sum().backward()

    stacked_step()
    loop_step()
    stacked = min(_timed(stacked_step) for _ in range(3))
    loop = min(_timed(loop_step) for _ in range(3))
    return [
        {
            **common,
            "stage": "cnn",
            "what": "4 GaZNet-1 members, batch 32, forward + backward, 1 thread",
            "vmap_s": stacked,
            "loop_s": loop,
            "vmap_over_loop": stacked / loop,
            **load_average(),
        }
    ]


def _config():
    from distributed_pz.models.registry import model_config

    return model_config("deepz")


def stage_student(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    from distributed_pz.metrics.pdf import GaussianMixturePDF, ks_statistic, pit
    from distributed_pz.metrics.point import nmad
    from distributed_pz.models.ensemble import EnsembleDir
    from distributed_pz.models.predictor import EnsemblePredictor
    from distributed_pz.survey.store.store import open_store
    from distributed_pz.train.calibrate import fitting_rows

    ensemble = (
        str(work / "ens_10x5") if (work / "ens_10x5" / "ensemble.json").exists() else str(work / "ens_1x2")
    )
    train_store = catalogue_store(str(work / "train20k.zarr"), 1, TRAIN["rows"], seed=100)
    distil_store = catalogue_store(str(work / "distil40k.zarr"), 1, TRAIN["rows"], seed=100)  # training rows
    catalogue_store(distil_store, 2, TRAIN["rows"], seed=100)  # and as many unlabeled rows of the survey
    survey = catalogue_store(str(work / "cat100k.zarr"), 1, PREDICT_SOURCES)
    student = work / "student"
    if not student.exists():
        dpz(
            "distill",
            "--ensemble",
            ensemble,
            "--store",
            distil_store,
            "--out",
            str(student),
            "--epochs",
            str(STUDENT["epochs"]),
            "--samples",
            str(STUDENT["samples"]),
            threads=2,
        )
    test_store = catalogue_store(str(work / "test5k.zarr"), 1, 5000, seed=200)
    tile = open_store(test_store).tile("SIM_0000")
    scores = {}
    for name, path in (("ensemble", ensemble), ("student", str(student))):
        predictor = EnsemblePredictor.from_ensemble(EnsembleDir(path).read(device="cpu"))
        rows = tile.read_rows([*predictor.input_arrays(tile.array_names()), "z_spec", "class"])
        out = predictor(rows)
        z = rows.arrays["z_spec"]
        ok = np.isfinite(out["z_phot"]) & np.isfinite(z) & fitting_rows(rows.arrays["class"])
        mix = GaussianMixturePDF(
            *(out[k][ok].astype(np.float64) for k in ("pdf_weights", "pdf_means", "pdf_sigmas"))
        )
        scores[name] = {"nmad": nmad(out["z_phot"][ok], z[ok]), "pit_ks": ks_statistic(pit(mix, z[ok]))}
    with tempfile.TemporaryDirectory() as out:
        seconds = dpz(*predict_args(str(student), survey, out))
    gpz = rail_rate(work, train_store, survey)
    rate = PREDICT_SOURCES / seconds
    return [
        {
            **common,
            "stage": "student",
            "what": (
                f"student of {Path(ensemble).name} (distilled on its training rows + as many unlabeled): "
                f"the galaxies of 5000 held-out rows; dpz predict of {PREDICT_SOURCES:,} sources, 1 worker x 1 thread, "
                "start included; RAIL GPz on the same rows, one process, 1 thread"
            ),
            "ensemble_nmad": scores["ensemble"]["nmad"],
            "student_nmad": scores["student"]["nmad"],
            "nmad_ratio": scores["student"]["nmad"] / scores["ensemble"]["nmad"],
            "ensemble_pit_ks": scores["ensemble"]["pit_ks"],
            "student_pit_ks": scores["student"]["pit_ks"],
            "student_sources_per_s": rate,
            "gpz_rows_per_s": gpz.get("rows_per_s"),
            "gpz_train_s": gpz.get("train_s"),
            "vs_gpz": rate / gpz["rows_per_s"] if gpz else None,
            **load_average(),
        }
    ]


RAIL_PYTHON = Path(__file__).resolve().parent.parent / ".rail-venv" / "bin" / "python"
"""The RAIL environment of ``benchmarks.rail_comparison`` (its docstring says how to make it)."""


def rail_rate(work: Path, train_store: str, survey: str) -> dict[str, Any]:
    """RAIL GPz trained on the training tile and timed on the survey tile's rows, in the RAIL
    environment (:mod:`benchmarks.rail_rate`); ``{}`` when that environment is absent."""
    from distributed_pz.survey.store.store import open_store

    if not RAIL_PYTHON.exists():
        print(f"survey_scale: no RAIL environment at {RAIL_PYTHON}; GPz not run", file=sys.stderr)
        return {}
    train = open_store(train_store).tile("SIM_0000").read(["mag", "mag_err", "z_spec"])
    tile = open_store(survey).tile("SIM_0000")
    test = tile.read(["mag", "mag_err"])
    path = work / "gpz_rows.npz"
    np.savez(
        path,
        bands=np.array(tile.bands),
        train_mag=train["mag"],
        train_mag_err=train["mag_err"],
        train_z=train["z_spec"],
        test_mag=test["mag"],
        test_mag_err=test["mag_err"],
    )
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    done = subprocess.run(
        [str(RAIL_PYTHON), "-m", "benchmarks.rail_rate", str(path)],
        check=True,
        env=env,
        capture_output=True,
        text=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def stage_startup(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    store = catalogue_store(str(work / "cat1k.zarr"), 1, 1000, seed=400)
    bundle, name = scale_model(work, store)
    seconds = []
    for _ in range(3):
        with tempfile.TemporaryDirectory() as out:
            seconds.append(dpz(*predict_args(bundle, store, out)))
    return [
        {
            **common,
            "stage": "startup",
            "what": f"dpz predict of a 1000-source tile with the {name}, 1 worker x 1 thread: the whole command",
            "model": name,
            "seconds_min": min(seconds),
            "seconds_median": float(np.median(seconds)),
            **load_average(),
        }
    ]


def scale_model(work: Path, store: str) -> tuple[str, str]:
    """The student of the ``student`` stage when there is one, else one fresh paper-size DEEPZ
    member (the student's architecture: the same cost per source); its path and what it is."""
    if (work / "student").exists():
        return str(work / "student"), "student"
    fresh_ensemble(work / "bundles", store, 1)
    return str(work / "bundles" / "deepz"), "DEEPZ member"


def scale_store(work: Path, n: int) -> str:
    """The catalogue-only store of the ``scale`` points of ``n`` sources per tile (as many tiles as
    the largest of them reads)."""
    return catalogue_store(str(work / f"scale_{n}.zarr"), max(t for m, t, _ in SCALE if m == n), n, seed=300)


def scale_point(
    work: Path, n: int, tiles: int, workers: int, cores: int | None = None
) -> tuple[str, dict[str, Any]]:
    """``dpz predict`` of ``tiles`` tiles of ``n`` sources with ``workers`` workers (on ``cores``
    cores when given), :data:`SCALE_REPEATS` times: the model's name and the figures of the median run."""
    store = scale_store(work, n)
    bundle, name = scale_model(work, store)
    names = [f"SIM_{i:04d}" for i in range(tiles)]
    runs = []
    for _ in range(SCALE_REPEATS):
        with tempfile.TemporaryDirectory() as out:
            seconds, peaks = sampled(predict_args(bundle, store, out, *names, workers=workers), cores=cores)
            written = sum(pq.read_metadata(f"{out}/{t}.parquet").num_rows for t in names)
        runs.append((seconds, peaks, written))
    seconds, peaks, written = sorted(runs, key=lambda run: run[0])[len(runs) // 2]
    everything = [run[1] for run in runs]
    sources = n * tiles
    return name, {
        "sources": sources,
        "tiles": tiles,
        "workers": workers,
        "rows_written": written,
        "seconds": seconds,
        "seconds_range": f"{min(r[0] for r in runs):.1f}–{max(r[0] for r in runs):.1f}",
        "us_per_source": seconds / sources * 1e6,
        "rows_written_every_run": all(r[2] == sources for r in runs),
        "peak_rss_mb_client": max(p["client"] for p in everything) / 2**20,
        "peak_rss_mb_worker": max(max(p["workers"], default=0) for p in everything) / 2**20,
        "cores_busy": peaks["cpu_s"] / seconds,
    }


def stage_scale(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for n, tiles, workers in SCALE:
        name, figures = scale_point(work, n, tiles, workers)
        what = f"{name}, dpz predict, catalogue-only tiles of {n:,} sources, median of {SCALE_REPEATS} runs"
        rows.append({**common, "stage": "scale", "what": what, "model": name, **figures, **load_average()})
    return rows


def stage_pinned(work: Path, common: dict[str, Any]) -> list[dict[str, Any]]:
    n, tiles, _ = SCALE[-1]
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("the pinned stage needs at least 2 cores")
    rows = []
    for workers in (1, 2):
        name, figures = scale_point(work, n, tiles, workers, cores=workers)
        what = (
            f"{name}, dpz predict of {n * tiles:,} catalogue-only sources, W 1-thread workers on W cores "
            f"(the process tree's CPU affinity), median of {SCALE_REPEATS} runs"
        )
        speedup = (rows[0]["seconds"] if rows else figures["seconds"]) / figures["seconds"]
        rows.append(
            {**common, "stage": "pinned", "what": what, "model": name, "cores": workers, **figures}
            | {"speedup": speedup, **load_average()}
        )
    return rows


def sampled(args: list[str], every_s: float = 0.2, cores: int | None = None) -> tuple[float, dict[str, Any]]:
    """Run ``dpz ARGS`` (as :func:`dpz`; on cores ``0..cores-1`` only when ``cores`` is given: the
    affinity is set before exec, so every process it starts inherits it); its wall seconds, the peak
    RSS (bytes, sampled every ``every_s``) of its client process and of each of its worker processes,
    and the CPU seconds (user + system, as last sampled) of all its processes."""
    import psutil

    pin = None if cores is None else (lambda: os.sched_setaffinity(0, range(cores)))
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "distributed_pz.cli", *args],
        env=dpz_env(),
        stdout=subprocess.DEVNULL,
        preexec_fn=pin,
    )
    client, peaks, cpu = psutil.Process(process.pid), {}, {}
    while process.poll() is None:
        try:
            for p in [client, *client.children(recursive=True)]:
                peaks[p.pid] = max(peaks.get(p.pid, 0), p.memory_info().rss)
                times = p.cpu_times()
                cpu[p.pid] = times.user + times.system
        except psutil.Error:
            pass  # a process ended between the listing and the reading
        time.sleep(every_s)
    seconds = time.perf_counter() - started
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, args)
    workers = [rss for pid, rss in peaks.items() if pid != client.pid and rss > 100 * 2**20]
    return seconds, {"client": peaks.get(client.pid, 0), "workers": workers, "cpu_s": sum(cpu.values())}


STAGES = {
    "predict50": stage_predict50,
    "overhead": stage_overhead,
    "bytes": stage_bytes,
    "train": stage_train,
    "train_rate": stage_train_rate,
    "student": stage_student,
    "startup": stage_startup,
    "scale": stage_scale,
    "pinned": stage_pinned,
    "cnn": stage_cnn,
}


def write_report() -> str:
    rows = read_rows(NAME)
    parts = [__doc__.split("\n\n", 1)[1]]
    columns = {
        "predict50": [
            "time_utc",
            "sources",
            "sources_per_s",
            "matmul_1t_gflop_s",
            "bound_sources_per_s",
            "fraction_of_bound",
            "seconds",
            "loadavg_1m",
        ],
        "overhead": [
            "time_utc",
            "sources",
            "predictor_sources_per_s",
            "pipeline_sources_per_s",
            "pipeline_over_predictor",
            "loadavg_1m",
        ],
        "bytes": ["time_utc", "image_bands_read", "bytes_read_per_source", "one_band_bytes", "loadavg_1m"],
        "train": [
            "time_utc",
            "members",
            "seconds",
            "training_s",
            "start_and_finish_s",
            "member_samples_per_s_per_core",
            "fraction_of_bound",
            "paper_plan_h",
            "loadavg_1m",
        ],
        "train_rate": [
            "time_utc",
            "members",
            "stacked_samples_per_s",
            "loop_samples_per_s",
            "speedup",
            "bound_samples_per_s",
            "stacked_fraction_of_bound",
            "loop_fraction_of_bound",
            "loadavg_1m",
        ],
        "student": [
            "time_utc",
            "ensemble_nmad",
            "student_nmad",
            "nmad_ratio",
            "ensemble_pit_ks",
            "student_pit_ks",
            "student_sources_per_s",
            "gpz_rows_per_s",
            "vs_gpz",
            "loadavg_1m",
        ],
        "startup": ["time_utc", "model", "seconds_min", "seconds_median", "loadavg_1m"],
        "scale": [
            "time_utc",
            "model",
            "sources",
            "workers",
            "rows_written",
            "seconds",
            "seconds_range",
            "us_per_source",
            "peak_rss_mb_client",
            "peak_rss_mb_worker",
            "cores_busy",
            "loadavg_1m",
        ],
        "pinned": [
            "time_utc",
            "model",
            "sources",
            "workers",
            "cores",
            "rows_written",
            "seconds",
            "seconds_range",
            "speedup",
            "peak_rss_mb_worker",
            "cores_busy",
            "loadavg_1m",
        ],
        "cnn": ["time_utc", "vmap_s", "loop_s", "vmap_over_loop", "loadavg_1m"],
    }
    for stage, cols in columns.items():
        chosen = [r for r in rows if r["stage"] == stage]
        if chosen:
            parts += [f"## {stage}", chosen[-1]["what"], markdown_table(chosen, cols)]
    if any(r["stage"] == "scale" and "workers" in r for r in rows):
        parts.append(f"![cost per source against sources]({plot_scale(rows).name})")
    return str(report(NAME, "Speed at survey scale (issue 15)", *parts, rows=rows))


def plot_scale(rows: list[dict[str, Any]]) -> Path:
    """Microseconds per source against sources, per worker count (the latest row of each point);
    the start-up of the latest ``startup`` row dashed (its share of each run's cost)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latest = list(
        {(r["workers"], r["sources"]): r for r in rows if r["stage"] == "scale" and "workers" in r}.values()
    )
    fig, ax = plt.subplots(figsize=(6, 4))
    for workers in sorted({r["workers"] for r in latest}):
        points = sorted((r["sources"], r["us_per_source"]) for r in latest if r["workers"] == workers)
        ax.plot([x for x, _ in points], [y for _, y in points], "o-", label=f"{workers} worker(s)")
    startup = [r for r in rows if r["stage"] == "startup"]
    if startup:
        grid = np.geomspace(min(r["sources"] for r in latest), max(r["sources"] for r in latest), 50)
        ax.plot(grid, startup[-1]["seconds_min"] / grid * 1e6, "k--", lw=0.8, label="start-up share")
    ax.set(xscale="log", yscale="log", xlabel="sources", ylabel="µs per source (whole dpz predict)")
    ax.set_title(
        f"{latest[-1]['model']}, 1-thread workers, load ≤ {max(r['loadavg_1m'] for r in latest):.1f}"
    )
    ax.legend()
    path = RESULTS_DIR / f"{NAME}_scale.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__, work="dpz_bench_scale")
    parser.add_argument("--stages", nargs="+", default=list(STAGES), choices=list(STAGES))
    parser.add_argument("--student-epochs", type=int, default=STUDENT["epochs"], help="student epochs")
    parser.add_argument("--student-samples", type=int, default=STUDENT["samples"], help="draws per row")
    parser.add_argument("--train-rate-epochs", type=int, default=TRAIN_RATE["epochs"], help="epochs")
    parser.add_argument("--train-rows", type=int, default=TRAIN["rows"], help="rows of the train stage")
    parser.add_argument(
        "--scale-tiles", type=int, default=10, help="100k-source tiles of the last scale points"
    )
    args = parser.parse_args(argv)
    SCALE[-2:] = [(100_000, args.scale_tiles, 1), (100_000, args.scale_tiles, 2)]
    STUDENT.update(epochs=args.student_epochs, samples=args.student_samples)
    TRAIN_RATE["epochs"] = args.train_rate_epochs
    TRAIN["rows"] = args.train_rows
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    common = machine()
    for stage in args.stages:
        rows = STAGES[stage](work, common)
        append_rows(NAME, rows)
        print(
            json.dumps([{k: v for k, v in r.items() if k not in common} for r in rows], default=str),
            flush=True,
        )
        write_report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
