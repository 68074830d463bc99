"""Pre-training on the simulator, then fine-tuning on few real labelled rows (DEEPZ §3 on real data).

For each real catalogue (zCOSMOS-bright, SDSS MGS) the files are ingested and split as
:mod:`benchmarks.real_data` does: one fixed test set (zCOSMOS: its seeded 30 %; SDSS: the test
file) scored by every run, and a training pool. From the pool come nested, seeded labelled sets
of 300, 1 000 and 3 000 rows, each with a validation share (early stopping and the p(z)
calibration, as in ``real_data``). On every set DEEPZ is trained as a small ensemble from scratch
and fine-tuned from one DEEPZ pre-trained on a simulated catalogue of the same bands.

The simulated catalogue is :mod:`benchmarks.simulator_realism`'s set-up of the catalogue:
the real filter curves, per-band depths fitted to the real errors of the training pool (moved
by the simulated/real galaxy error ratio), the survey's selection (zCOSMOS-bright i < 22.5;
SDSS MGS 16 < r < 17.77, z < 0.3) applied to the simulated magnitudes; galaxies only, read as
catalogue magnitudes like the real rows. The simulator has a zCOSMOS set-up only for
u g r i z J Ks (CFHT u*, Subaru g+ r+ i+ z+, UKIRT J, CFHT Ks): GALEX FUV NUV, Subaru B V and
CFHT i* have no survey design or fitted depths, so on zCOSMOS every DEEPZ here reads those seven
bands. SDSS uses all of ugriz.

    python -m benchmarks.pretrain_real              # writes results/pretrain_real.md
    python -m benchmarks.pretrain_real --quick      # a smoke run (small sizes, few steps)

Rows are appended to ``results/pretrain_real.jsonl``. Without the shared data it says why and
exits 0.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.harness import RESULTS_DIR, Run, argument_parser, markdown_table, opt
from benchmarks.real_data import (
    CATALOGUES,
    VAL_FRACTION,
    Catalogue,
    available_catalogues,
    calibrated_ensemble,
    ingest,
    reference_band,
    score,
    train_ensemble,
    train_test,
)
from benchmarks.simulator_realism.common import ZCOSMOS_BANDS, Sample
from benchmarks.simulator_realism.samples import (
    calibrated_depths,
    fitted_depths,
    register_zcosmos,
    sdss_config,
    zcosmos_config,
)
from distributed_pz.catalog import MIXTURE_COLUMNS
from distributed_pz.metrics import GaussianMixturePDF
from distributed_pz.models import model_config
from distributed_pz.models.bundle import Bundle
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.sim.simulate import SimulationConfig, simulate_catalogue, tile_attrs
from distributed_pz.survey.store.schema import CLASS_GALAXY
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train import TrainConfig, TrainResult

NAME = "pretrain_real"
COLUMNS = [
    "catalogue",
    "n_train",
    "init",
    "epochs",
    "nmad",
    "outlier_fraction",
    "pit_ks",
    "coverage_68",
    "train_s",
]
BATCH = 100
SELECTIONS = {"zcosmos_bright": ("i", 0.0, 22.5, 1.4), "sdss_mgs": ("r", 16.0, 17.77, 0.3)}
"""The real selection per catalogue (band, brightest, faintest, z_max), as simulator_realism applies it."""


def labelled_sets(pool: TileArrays, sizes: list[int], seed: int) -> dict[int, tuple[TileArrays, TileArrays]]:
    """Nested (fitted, validation) rows of each size: ``round(VAL_FRACTION n)`` validation rows.

    The validation rows of every size are the first of one seeded sequence, the fitted rows the
    first of another (disjoint), so each smaller set lies inside every larger one.
    """
    order = np.random.default_rng(seed).permutation(pool.n_rows)
    n_val = {n: int(round(VAL_FRACTION * n)) for n in sizes}
    val_rows, fit_rows = order[: max(n_val.values())], order[max(n_val.values()) :]
    if max(n - n_val[n] for n in sizes) > len(fit_rows):
        raise ValueError(f"a training pool of {pool.n_rows} rows is too small for {max(sizes)} labelled rows")
    return {
        n: (pool.take(np.sort(fit_rows[: n - n_val[n]])), pool.take(np.sort(val_rows[: n_val[n]])))
        for n in sizes
    }


def selected(data: TileArrays, selection: tuple[str, float, float, float]) -> np.ndarray:
    """Rows inside ``selection`` (band, brightest, faintest, z_max)."""
    band, lo, hi, z_max = selection
    mag = data.arrays["mag"][:, data.bands.index(band)]
    return (mag > lo) & (mag < hi) & (data.arrays["z_spec"] < z_max)


def error_sample(
    pool: TileArrays, bands: tuple[str, ...], selection: tuple[str, float, float, float]
) -> Sample:
    """The pool's rows in ``selection`` measured in every one of ``bands`` (for the depth fit)."""
    idx = pool.band_indices(bands)
    mag, err = (
        pool.arrays["mag"][:, idx].astype(np.float64),
        pool.arrays["mag_err"][:, idx].astype(np.float64),
    )
    good = selected(pool, selection) & np.all(np.isfinite(mag) & (err > 0) & (err < 1), axis=1)
    return Sample(mag[good], err[good], pool.arrays["z_spec"][good].astype(np.float64))


def simulation(
    catalogue: Catalogue, pool: TileArrays, data_dir: Path, n_sources: int, seed: int
) -> tuple[SimulationConfig, tuple[str, ...]]:
    """The catalogue's simulated counterpart (depths fitted to the pool's errors) and its bands."""
    selection = SELECTIONS[catalogue.name]
    bands = ZCOSMOS_BANDS if catalogue.name == "zcosmos_bright" else pool.bands
    real = error_sample(pool, bands, selection)
    make = sdss_config
    if catalogue.name == "zcosmos_bright":
        files = register_zcosmos(data_dir, fitted_depths(real))

        def make(depths: tuple[float, ...], n: int, s: int) -> SimulationConfig:
            return dataclasses.replace(zcosmos_config(files, n, s), depth_5sigma=depths)

    band, lo, hi, z_max = selection
    depths = calibrated_depths(make, real, bands.index(band), lo, hi, z_max)
    return make(depths, n_sources, seed), tuple(bands)


def simulated_catalogue(config: SimulationConfig, selection: tuple[str, float, float, float]) -> TileArrays:
    """The selected galaxies of a simulated tile, without exposures: read as catalogue magnitudes."""
    arrays = simulate_catalogue(config)
    keep = ("mag", "mag_err", "mag_flag", "z_spec", "class")
    data = TileArrays.from_attrs({k: arrays[k] for k in keep}, tile_attrs(config))
    return data.take((data.arrays["class"] == CLASS_GALAXY) & selected(data, selection))


def schedule(n_fit: int, min_epochs: int, steps: int) -> tuple[int, int]:
    """Epochs (at least ``min_epochs`` and ``steps`` optimisation steps) and patience (a fifth of them)."""
    epochs = max(min_epochs, math.ceil(steps * BATCH / n_fit))
    return epochs, max(5, epochs // 5)


def epochs_label(results: list[TrainResult]) -> str:
    """Run (best) epochs of each member."""
    return ", ".join(f"{len(r.history)} ({r.best_epoch + 1})" for r in results)


def calibrated_or_not(bundles: list[Bundle], val: TileArrays, seed: int) -> tuple[EnsemblePredictor, bool]:
    """The calibrated ensemble, or the ensemble alone when the fit is refused or ``val`` too small."""
    try:
        return calibrated_ensemble(bundles, val, seed), True
    except ValueError:  # CalibrationRefused, or fewer than 50 rows
        return EnsemblePredictor(bundles), False


def run_catalogue(
    catalogue: Catalogue,
    data_dir: Path,
    store: Path,
    *,
    sizes: list[int],
    members: int = 3,
    min_epochs: int = 40,
    steps: int = 1500,
    finetune_lr: float = 1e-4,
    sim_sources: int = 30_000,
    pretrain_epochs: int = 30,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """Pre-train once on the catalogue's simulation, then train and score every size both ways.

    Parameters
    ----------
    catalogue, data_dir, store
        The catalogue, the shared data folder, and a store to ingest into.
    sizes
        Labelled rows (fitted + validation) of each training set.
    members
        Members of every ensemble (seeds ``seed ..``); fine-tuned members share one pre-trained start.
    min_epochs, steps
        Every run trains at least ``min_epochs`` epochs and ``steps`` optimisation steps of
        :data:`BATCH` rows (the DEEPZ schedule stretched over them; patience a fifth of them).
    finetune_lr
        Peak learning rate of fine-tuning (from scratch: the DEEPZ 1e-3).
    sim_sources, pretrain_epochs
        Sources of the simulated tile (before the selection) and epochs of the pre-training.
    seed
        Seeds the split, the labelled sets, the simulation and the networks.

    Returns
    -------
    list of dict
        One row per run, scored on the test rows that every run predicts (``n_scored``), and a
        ``simulation only`` row: the pre-trained network on the test rows, uncalibrated.
    """
    pool, test = train_test(ingest(catalogue, data_dir, store), seed)
    sets = labelled_sets(pool, sizes, seed + 2)
    started = time.perf_counter()
    sim_config, bands = simulation(catalogue, pool, data_dir, sim_sources, seed + 11)
    sim = simulated_catalogue(sim_config, SELECTIONS[catalogue.name])
    k = int(0.9 * sim.n_rows)  # pre-training rows; the rest stop it early
    sim_fit, sim_val = sim.take(slice(k)), sim.take(slice(k, None))
    sim_s = time.perf_counter() - started
    print(f"{catalogue.name}: simulated {sim.n_rows} selected galaxies in {sim_s:.0f} s", flush=True)
    config = model_config("deepz", bands=bands, reference_band=reference_band(pool, "i"))
    pre, pre_s = train_ensemble(
        config,
        sim_fit,
        sim_val,
        seed + 7,
        1,
        TrainConfig(epochs=pretrain_epochs, batch_size=BATCH, patience=5),
    )
    print(f"{catalogue.name}: pre-trained in {pre_s:.0f} s, epochs {epochs_label(pre)}", flush=True)
    outputs = [
        ("simulation only", 0, epochs_label(pre), pre_s, EnsemblePredictor(pre[0].bundle)(test), False)
    ]
    for n, (fit, val) in sets.items():
        epochs, patience = schedule(fit.n_rows, min_epochs, steps)
        for init, lr, start in (("scratch", 1e-3, None), ("pretrained", finetune_lr, pre[0].bundle)):
            tc = TrainConfig(epochs=epochs, batch_size=BATCH, lr=lr, patience=patience)
            results, train_s = train_ensemble(config, fit, val, seed, members, tc, init_bundle=start)
            predictor, calibrated = calibrated_or_not([r.bundle for r in results], val, seed)
            outputs.append((init, n, epochs_label(results), train_s, predictor(test), calibrated))
            print(
                f"{catalogue.name}: {n} rows, {init}: {train_s:.0f} s, epochs {epochs_label(results)}",
                flush=True,
            )
    z_spec = test.arrays["z_spec"].astype(np.float64)
    scored = np.logical_and.reduce([np.isfinite(out["z_phot"]) for *_, out, _ in outputs])
    rows = []
    for init, n, epochs, train_s, out, calibrated in outputs:
        pdf = GaussianMixturePDF(*(out[k][scored] for k in MIXTURE_COLUMNS))
        rows.append(
            {
                "catalogue": catalogue.name,
                "bands": " ".join(bands),
                "n_train": n,
                "n_val": sets[n][1].n_rows if n else 0,
                "init": init,
                "members": 1 if n == 0 else members,
                "epochs": epochs,
                "train_s": train_s,
                "calibrated": calibrated,
                "n_test": test.n_rows,
                "n_scored": int(scored.sum()),
                "n_sim": sim.n_rows,
                "simulate_s": sim_s,
                **score(out["z_phot"][scored].astype(np.float64), z_spec[scored], pdf),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    """Run every catalogue, append the rows and write the Markdown report; exit 0 without data."""
    parser = argument_parser(
        __doc__,
        "quick",
        "threads",
        epochs=opt(40, help="fewest epochs of a run on real rows"),
        seed=opt(0, help="split, labelled sets, simulation and network seed"),
        catalogues=[c.name for c in CATALOGUES],
        out=RESULTS_DIR / f"{NAME}.md",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 3000], help="labelled rows")
    parser.add_argument("--members", type=int, default=3, help="members of each ensemble")
    parser.add_argument("--steps", type=int, default=1500, help="fewest optimisation steps of a run")
    parser.add_argument("--finetune-lr", type=float, default=1e-4, help="peak learning rate of fine-tuning")
    parser.add_argument("--sim-sources", type=int, default=30_000, help="sources of the simulated tile")
    parser.add_argument("--pretrain-epochs", type=int, default=30, help="epochs of the pre-training")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.members, args.epochs, args.steps = [100, 300], 2, 2, 6
        args.sim_sources, args.pretrain_epochs = 3000, 2
    available = available_catalogues(args.catalogues, "pretrain_real")
    if available is None:
        return 0
    data_dir, chosen = available
    run = Run(NAME, args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dpz_pretrain_") as tmp:
        for catalogue in chosen:
            t0 = time.perf_counter()
            rows += run_catalogue(
                catalogue,
                data_dir,
                Path(tmp) / "store",
                sizes=sorted(args.sizes),
                members=args.members,
                min_epochs=args.epochs,
                steps=args.steps,
                finetune_lr=args.finetune_lr,
                sim_sources=args.sim_sources,
                pretrain_epochs=args.pretrain_epochs,
                seed=args.seed,
            )
            print(f"{catalogue.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return run.finish(
        rows,
        "Pre-training on the simulator, fine-tuning on few real labelled rows",
        SETUP.format(args=args, val=VAL_FRACTION),
        *[section(c, [r for r in rows if r["catalogue"] == c.name]) for c in chosen],
    )


def section(catalogue: Catalogue, rows: list[dict[str, Any]]) -> str:
    """The Markdown section of one catalogue."""
    first = rows[0]
    return (
        f"## {catalogue.name} (bands {first['bands']}; {first['n_sim']} simulated galaxies; "
        f"{first['n_scored']} of {first['n_test']} test rows scored)\n\n" + markdown_table(rows, COLUMNS)
    )


SETUP = """\
Test rows and training pool as in `benchmarks.real_data` (zCOSMOS-bright: its seeded 30 % test
split of the rows with z > 0; SDSS MGS: the test file). `n_train` labelled rows are drawn from the
pool, nested and seeded; {val:.0%} of them are the validation rows (early stopping, then the
calibration of the pooled p(z) on the ensemble's predictions of them; never the test rows).
DEEPZ (10 × 250, flux ratios over i, 10-Gaussian MDN) as ensembles of {args.members} (seeds
{args.seed}..), Adam, batch 100, the DEEPZ schedule stretched over max({args.epochs} epochs,
{args.steps} steps) and patience a fifth of those epochs (counted from the first learning-rate
drop). `scratch`: peak rate 1e-3, autoencoder loss on. `pretrained`: every weight and the feature
scaling start from one DEEPZ trained {args.pretrain_epochs} epochs (early-stopped on 10 % of
them) on the simulated galaxies; all weights fine-tuned, peak rate {args.finetune_lr:g},
autoencoder loss off (DEEPZ §4.2), the same epochs and stopping rule. `simulation only`: that
pre-trained network on the test rows, no real row seen, uncalibrated. Simulation
(`benchmarks.simulator_realism`'s set-up): real filter curves, depths fitted to the training
pool's errors, the survey's selection, galaxies only, catalogue magnitudes; zCOSMOS bands
u g r i z J Ks only (the simulator has no GALEX, B, V or CFHT i* set-up), SDSS ugriz. The
zCOSMOS simulation carries a mean rest-frame SED correction calibrated on zCOSMOS-bright colours
(80 % of its secure galaxies, another permutation: some of these test rows' colours informed
it, not their redshifts). Metrics on the test rows every run predicts: NMAD, outliers
|δz| > 0.15, `pit_ks` = KS distance of the PIT from uniform, `coverage_68` = share inside the
central 68 % interval; `epochs` = run (best) per member; `train_s` = training seconds of the
ensemble (the simulation-only row: of the pre-training)."""


if __name__ == "__main__":
    sys.exit(main())
