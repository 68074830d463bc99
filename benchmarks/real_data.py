"""Accuracy on real spectroscopic catalogues: catalogue-only models against scikit-learn baselines.

For each real catalogue of the shared data (zCOSMOS-bright, 12 bands; SDSS MGS, ugriz) the
catalogue files are ingested with ``dpz ingest`` and the catalogue's shipped column map into a
temporary store; everything catalogue-specific lives in that map. A catalogue shipped as train
and test files gives two tiles; one shipped as a single file is split 70/30 by a seeded
permutation. DEEPZ (flux ratios + mixture density network; also with the reference band's
magnitude as one more input, ``deepz_refmag``) and a GaZNet catalogue path
(``gaznet_c9`` with its bands overridden by the tile's) are trained as small ensembles (seeds
``seed .. seed + members - 1``) on the training part, with a seeded 20 % of it held out for early
stopping and for the p(z) calibration (:mod:`distributed_pz.models.calibration`, fitted on the
ensemble's predictions of those validation rows, never on the test rows), and scored on the test
part next to k-nearest-neighbours and random-forest regressors fitted on the same rows and the
same features (magnitudes + adjacent colours, missing values filled with the training median plus
a missing mask, standardised for kNN).

    python -m benchmarks.real_data     # from the repository root; writes results/real_data.md
    python -m benchmarks.real_data --export /tmp/rail_split   # + the split for benchmarks.rail_comparison

Rows are also appended to ``results/real_data.jsonl`` through the harness. The data are read
from ``$DPZ_SHARED_DATA``, else from ``shared/data`` next to the repository; without them the
benchmark prints why and exits 0.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.ensemble import RandomForestRegressor
from sklearn.neighbors import KNeighborsRegressor

from benchmarks.harness import RESULTS_DIR, Run, argument_parser, markdown_table, opt
from distributed_pz.catalog import MIXTURE_COLUMNS
from distributed_pz.cli import main as dpz_main
from distributed_pz.metrics import GaussianMixturePDF, pit, pit_coverage, pit_uniformity, point_metrics
from distributed_pz.models import model_config
from distributed_pz.models.bundle import Bundle
from distributed_pz.models.calibration import RecordedCalibration, fit_calibration
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.models.reweight import photometric_features, target_weights
from distributed_pz.survey.store.store import open_store
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train import TrainConfig, TrainResult, train_member

NAME = "real_data"
COLUMNS = [
    "model",
    "features",
    "epochs",
    "train_s",
    "n_train",
    "n_test",
    "n_scored",
    "nmad",
    "outlier_fraction",
    "bias",
    "sigma68",
    "pit_ks",
    "coverage_68",
    "crps",
]
TEST_FRACTION = 0.3
VAL_FRACTION = 0.2


@dataclass(frozen=True)
class Catalogue:
    """A real catalogue of the shared data.

    Parameters
    ----------
    name
        Label of the catalogue in the tables.
    column_map
        Shipped column map that ingests its files.
    files
        Part name (``"train"``, ``"test"``) -> file relative to the shared data folder; a single
        ``"all"`` file is split into training and test rows by a seeded permutation.
    """

    name: str
    column_map: str
    files: dict[str, str]


CATALOGUES = (
    Catalogue("zcosmos_bright", "zcosmos_bright", {"all": "real/zcosmos_bright/zcosmost_bright20k.csv"}),
    Catalogue(
        "sdss_mgs",
        "sdss_mgs",
        {"train": "real/sdss_mgs/SDSS_MGS.train", "test": "real/sdss_mgs/SDSS_MGS.test"},
    ),
)


def shared_data_dir() -> Path:
    """The shared data folder: ``$DPZ_SHARED_DATA``, else ``shared/data`` next to the repository."""
    env = os.environ.get("DPZ_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


def missing_files(data_dir: Path, catalogues: tuple[Catalogue, ...] = CATALOGUES) -> list[Path]:
    """Catalogue files absent from ``data_dir``."""
    paths = [data_dir / f for c in catalogues for f in c.files.values()]
    return [p for p in paths if not p.is_file()]


def available_catalogues(names: list[str], script: str) -> tuple[Path, tuple[Catalogue, ...]] | None:
    """The shared data folder and the catalogues ``names``; ``None``, after one line saying why
    ``script`` is skipped, when a file of one of them is absent."""
    data_dir = shared_data_dir()
    chosen = tuple(c for c in CATALOGUES if c.name in names)
    absent = missing_files(data_dir, chosen)
    if absent:
        print(f"{script}: skipped, shared data not found ({absent[0]}); set DPZ_SHARED_DATA")
        return None
    return data_dir, chosen


def ingest(catalogue: Catalogue, data_dir: Path, store: Path) -> dict[str, TileArrays]:
    """Ingest every file of ``catalogue`` with ``dpz ingest``; one tile per part, read back.

    Raises
    ------
    RuntimeError
        ``dpz ingest`` failed (its error line is on stderr).
    """
    parts = {}
    for part, file in catalogue.files.items():
        tile_name = f"{catalogue.name}_{part}"
        argv = ["ingest", str(data_dir / file), "--columns", catalogue.column_map, "--store", str(store)]
        if dpz_main([*argv, "--tile", tile_name]) != 0:
            raise RuntimeError(f"dpz ingest of {data_dir / file} failed")
        tile = open_store(str(store)).tile(tile_name)
        parts[part] = TileArrays.from_attrs(tile.read(tile.array_names()), tile.attrs)
    return parts


def train_test(parts: dict[str, TileArrays], seed: int) -> tuple[TileArrays, TileArrays]:
    """Training and test rows with a finite spec-z: the train/test tiles, or a seeded split of one."""
    if "all" in parts:
        data = parts["all"]
        order = np.random.default_rng(seed).permutation(data.n_rows)
        n_test = int(round(TEST_FRACTION * data.n_rows))
        train, test = data.take(np.sort(order[n_test:])), data.take(np.sort(order[:n_test]))
    else:
        train, test = parts["train"], parts["test"]
    return tuple(t.take(np.isfinite(t.arrays["z_spec"])) for t in (train, test))


def subsample(data: TileArrays, n: int | None, seed: int) -> TileArrays:
    """At most ``n`` rows of ``data``, drawn with ``seed`` (all of them when ``n`` is None)."""
    if n is None or n >= data.n_rows:
        return data
    return data.take(np.sort(np.random.default_rng(seed).choice(data.n_rows, n, replace=False)))


def mag_colour_table(data: TileArrays) -> np.ndarray:
    """Magnitudes and adjacent colours ``(N, 2B - 1)``, NaN where a band is missing."""
    mag = data.arrays["mag"].astype(np.float64)
    return np.concatenate([mag, mag[:, :-1] - mag[:, 1:]], axis=1)


def baseline_features(train: TileArrays, test: TileArrays) -> tuple[np.ndarray, np.ndarray]:
    """Baseline inputs: magnitudes + colours with NaN -> training median, plus missing masks.

    A mask column is added for each feature missing somewhere in the training rows.
    """
    x_train, x_test = mag_colour_table(train), mag_colour_table(test)
    missing_train, missing_test = ~np.isfinite(x_train), ~np.isfinite(x_test)
    median = np.nanmedian(x_train, axis=0)
    masked = missing_train.any(axis=0)
    out = []
    for x, missing in ((x_train, missing_train), (x_test, missing_test)):
        filled = np.where(missing, median, x)
        out.append(np.concatenate([filled, missing[:, masked].astype(np.float64)], axis=1))
    return out[0], out[1]


def standardise(x_train: np.ndarray, x_test: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale both by the training mean and standard deviation (constant columns left at 0)."""
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (x_train - mean) / std, (x_test - mean) / std


def reference_band(train: TileArrays, default: str) -> str:
    """DEEPZ's flux-ratio denominator: ``default`` when the tile has it, else its most measured band."""
    if default in train.bands:
        return default
    return train.bands[int(np.argmax(np.isfinite(train.arrays["mag"]).sum(axis=0)))]


NETWORKS = ("deepz", "deepz_refmag", "gaznet_c9")
"""The catalogue-only networks, by the names of their table rows."""


def network_configs(train: TileArrays) -> dict[str, Any]:
    """:data:`NETWORKS` configured for the tile's bands (registry overrides only)."""
    deepz = {
        "bands": train.bands,
        "reference_band": reference_band(train, model_config("deepz").reference_band),
    }
    return {
        "deepz": model_config("deepz", **deepz),
        "deepz_refmag": model_config("deepz", **deepz, reference_magnitude=True),
        "gaznet_c9": model_config("gaznet_c9", bands=train.bands),
    }


def feature_label(config: Any) -> str:
    """What a network reads, for the tables."""
    if config.family != "deepz":
        return "mags + colours"
    label = f"flux ratios over {config.reference_band}"
    return f"{label} + {config.reference_band} mag" if config.reference_magnitude else label


def score(z_phot: np.ndarray, z_spec: np.ndarray, pdf: GaussianMixturePDF | None = None) -> dict[str, float]:
    """Point metrics (and PIT KS, 68 % coverage and mean CRPS for a p(z)) of the scored rows."""
    row = {k: v for k, v in point_metrics(z_phot, z_spec).items() if k in COLUMNS}
    if pdf is not None:
        pit_values = pit(pdf, z_spec)
        row["pit_ks"] = pit_uniformity(pit_values)["ks"]
        row["coverage_68"] = pit_coverage(pit_values, 0.6827)
        row["crps"] = float(np.mean(pdf.crps(z_spec)))
    return row


def train_ensemble(
    config: Any,
    fit: TileArrays,
    val: TileArrays,
    seed: int,
    members: int,
    tc: TrainConfig,
    init_bundle: Bundle | None = None,
) -> tuple[list[TrainResult], float]:
    """Members of seeds ``seed .. seed + members - 1`` trained on ``fit``, early-stopped on ``val``.

    Returns the members and the seconds their training took; ``init_bundle`` is fine-tuned.
    """
    started = time.perf_counter()
    results = [
        train_member(config, fit, seed + k, train_config=tc, val_data=val, init_bundle=init_bundle)
        for k in range(members)
    ]
    return results, time.perf_counter() - started


def calibrated_ensemble(bundles: list[Bundle], val: TileArrays, seed: int) -> EnsemblePredictor:
    """The ensemble of ``bundles`` with its p(z) calibration fitted on its predictions of ``val``."""
    on_val = EnsemblePredictor(bundles)(val)
    return EnsemblePredictor(bundles, calibration=validation_calibration(on_val, val, seed))


def validation_calibration(
    on_val: dict[str, np.ndarray], val: TileArrays, seed: int, row_weights: np.ndarray | None = None
) -> RecordedCalibration:
    """The calibration fitted on the ensemble's predictions ``on_val`` of ``val``; ``row_weights``
    (:func:`weights_to_test`) reweight the validation rows to the test photometry."""
    fitted_on = "validation rows" + (" reweighted to the test photometry" if row_weights is not None else "")
    return fit_calibration(
        *(on_val[k] for k in MIXTURE_COLUMNS), val.arrays["z_spec"], fitted_on, seed, row_weights
    )


def weights_to_test(val: TileArrays, test: TileArrays, seed: int) -> np.ndarray:
    """Weights of the validation rows that reweight them to the test rows' photometry
    (:func:`distributed_pz.models.reweight.target_weights`; magnitudes only, never a redshift)."""
    ref = val.bands.index(reference_band(val, model_config("deepz").reference_band))
    return target_weights(*(photometric_features(t.arrays["mag"], ref) for t in (val, test)), seed=seed)


def run_catalogue(
    catalogue: Catalogue,
    data_dir: Path,
    store: Path,
    *,
    epochs: int = 40,
    patience: int = 10,
    seed: int = 0,
    max_rows: int | None = None,
    members: int = 3,
    networks: tuple[str, ...] = NETWORKS,
    export: Path | None = None,
) -> list[dict[str, Any]]:
    """Ingest, split, train, predict and score one catalogue.

    Parameters
    ----------
    catalogue, data_dir
        The catalogue and the shared data folder holding its files.
    store
        Survey store to ingest into (created if absent).
    epochs, patience
        Most epochs of the networks, and epochs without validation improvement before stopping.
    seed
        Seeds the split, the validation rows, the networks and the random forest.
    max_rows
        Use at most this many training and this many test rows (a smoke test); None = all.
    members
        Members of each network's ensemble.
    networks
        The networks to train, of :data:`NETWORKS` (the baselines always run).
    export
        Directory to write the split (``<catalogue>.npz``: bands, magnitudes, errors, z_spec of
        the training and test rows, the scored mask) and our rows (``<catalogue>_ours.json``)
        for :mod:`benchmarks.rail_comparison`.

    Returns
    -------
    list of dict
        One row per model and baseline: :data:`COLUMNS` plus the catalogue, bands and bundle hash.
        Every model is scored on the test rows that all of them predict (``n_scored``).
    """
    train, test = train_test(ingest(catalogue, data_dir, store), seed)
    train, test = subsample(train, max_rows, seed), subsample(test, max_rows, seed + 1)
    order = np.random.default_rng(seed + 2).permutation(train.n_rows)
    n_val = int(round(VAL_FRACTION * train.n_rows))
    fit, val = train.take(np.sort(order[n_val:])), train.take(np.sort(order[:n_val]))
    predictions: dict[str, dict[str, Any]] = {}
    reweighted = weights_to_test(val, test, seed)
    configs = network_configs(train)
    for name in networks:
        config = configs[name]
        tc = TrainConfig(epochs=epochs, batch_size=100, patience=patience)
        results, train_s = train_ensemble(config, fit, val, seed, members, tc)
        bundles = [r.bundle for r in results]
        on_val = EnsemblePredictor(bundles)(val)
        for label, row_weights in (
            (f"{name} ×{members}", None),
            (f"{name} ×{members} reweighted", reweighted),
        ):
            calibration = validation_calibration(on_val, val, seed, row_weights)
            out = EnsemblePredictor(bundles, calibration=calibration)(test)
            predictions[label] = {
                "z_phot": out["z_phot"],
                "pdf": tuple(out[k] for k in MIXTURE_COLUMNS),
                "features": feature_label(config),
                "epochs": ", ".join(f"{len(r.history)} ({r.best_epoch + 1})" for r in results),
                "train_s": train_s,
                "bundle": bundles[0].content_hash[:12],
            }
    x_fit, x_test = baseline_features(fit, test)
    baselines = {
        "knn": (KNeighborsRegressor(n_neighbors=10, weights="distance"), True, "k=10, distance-weighted"),
        "random_forest": (
            RandomForestRegressor(n_estimators=100, min_samples_leaf=2, n_jobs=1, random_state=seed),
            False,
            "100 trees, min leaf 2",
        ),
    }
    for name, (regressor, scaled, settings) in baselines.items():
        a, b = standardise(x_fit, x_test) if scaled else (x_fit, x_test)
        started = time.perf_counter()
        regressor.fit(a, fit.arrays["z_spec"])
        predictions[name] = {
            "z_phot": regressor.predict(b),
            "pdf": None,
            "features": f"mags + colours + masks ({settings})",
            "epochs": "",
            "train_s": time.perf_counter() - started,
        }
    z_spec = test.arrays["z_spec"].astype(np.float64)
    scored = np.logical_and.reduce([np.isfinite(p["z_phot"]) for p in predictions.values()])
    rows = []
    for name, p in predictions.items():
        pdf = GaussianMixturePDF(*(a[scored] for a in p["pdf"])) if p["pdf"] is not None else None
        row = {
            "catalogue": catalogue.name,
            "bands": " ".join(train.bands),
            "model": name,
            "features": p["features"],
            "epochs": p["epochs"],
            "train_s": p["train_s"],
            "n_train": fit.n_rows,
            "n_val": val.n_rows,
            "n_test": test.n_rows,
            "n_scored": int(scored.sum()),
            **score(p["z_phot"][scored].astype(np.float64), z_spec[scored], pdf),
        }
        if "bundle" in p:
            row["bundle"] = p["bundle"]
        rows.append(row)
    if export is not None:
        export_split(export, catalogue.name, train, test, scored, rows)
    return rows


def export_split(
    directory: Path,
    name: str,
    train: TileArrays,
    test: TileArrays,
    scored: np.ndarray,
    rows: list[dict[str, Any]],
) -> None:
    """Write the split and our scored rows for :mod:`benchmarks.rail_comparison` (another venv)."""
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(
        directory / f"{name}.npz",
        bands=np.array(train.bands),
        train_mag=train.arrays["mag"],
        train_mag_err=train.arrays["mag_err"],
        train_z=train.arrays["z_spec"],
        test_mag=test.arrays["mag"],
        test_mag_err=test.arrays["mag_err"],
        test_z=test.arrays["z_spec"],
        scored=scored,
    )
    (directory / f"{name}_ours.json").write_text(json.dumps(rows, default=float))


def main(argv: list[str] | None = None) -> int:
    """Run every catalogue, append the rows and write the Markdown tables; exit 0 without data."""
    parser = argument_parser(
        __doc__,
        "threads",
        epochs=opt(40, help="most epochs of the networks"),
        seed=opt(0, help="split, validation, network and forest seed"),
        catalogues=[c.name for c in CATALOGUES],
        out=RESULTS_DIR / f"{NAME}.md",
    )
    parser.add_argument("--patience", type=int, default=10, help="early-stopping patience in epochs")
    parser.add_argument("--members", type=int, default=3, help="members of each network's ensemble")
    parser.add_argument(
        "--networks", nargs="+", choices=NETWORKS, default=list(NETWORKS), help="networks to train"
    )
    parser.add_argument(
        "--export", type=Path, help="also write the split for benchmarks.rail_comparison here"
    )
    args = parser.parse_args(argv)
    available = available_catalogues(args.catalogues, "real_data")
    if available is None:
        return 0
    data_dir, chosen = available
    run = Run(NAME, args)
    rows = []
    with tempfile.TemporaryDirectory(prefix="dpz_real_") as tmp:
        for catalogue in chosen:
            t0 = time.perf_counter()
            rows += run_catalogue(
                catalogue,
                data_dir,
                Path(tmp) / "store",
                epochs=args.epochs,
                patience=args.patience,
                seed=args.seed,
                members=args.members,
                networks=tuple(args.networks),
                export=args.export,
            )
            print(f"{catalogue.name}: {time.perf_counter() - t0:.0f} s", flush=True)
    return run.finish(
        rows,
        "Real catalogues: catalogue-only models vs scikit-learn baselines",
        SETUP,
        *[catalogue_table(c, [r for r in rows if r["catalogue"] == c.name]) for c in chosen],
    )


def catalogue_table(catalogue: Catalogue, rows: list[dict[str, Any]]) -> str:
    """The Markdown section of one catalogue: how it was split, its table."""
    split = (
        "its train / test files"
        if "all" not in catalogue.files
        else f"a seeded {1 - TEST_FRACTION:.0%} / {TEST_FRACTION:.0%} row split"
    )
    return (
        f"## {catalogue.name} (column map `{catalogue.column_map}`; bands {rows[0]['bands']}; "
        f"test = {split})\n\n" + markdown_table(rows, COLUMNS)
    )


SETUP = f"""\
Each catalogue is ingested with `dpz ingest --columns <shipped map>`; nothing else is
catalogue-specific. Networks: small ensembles (`×N`: N seeds, trained on the same rows), Adam,
batch 100, the family's learning-rate schedule compressed to the epoch budget, early stopping
(never before the first learning-rate drop) on a seeded {VAL_FRACTION:.0%} of the training part
(`n_train` = rows fitted, the validation rows are extra; `epochs` = run (best) per member). Every
network's pooled p(z) is calibrated (`distributed_pz.models.calibration`: a mixture by a shift, width
temperature and floor per z_phot bin; a point ensemble's one Gaussian by the kernel of its
standardised residuals per z_phot bin, `models/kernel_calibration.py`) on its predictions of those
validation rows — never on the test rows.
A `reweighted` row is the same ensemble with its calibration fitted on the same validation rows
weighted to the test rows' photometry (reference magnitude + adjacent colours; Lima et al. 2008
nearest-neighbour density ratio, k = 20, `distributed_pz.models.reweight`): what a survey does
with its photometric sample, which has magnitudes but no redshifts; the test redshifts are never used.
`deepz` = DEEPZ flux ratios + 10-Gaussian MDN (z_phot = mode of p(z));
its reference band is the registry's (i) when the catalogue has it, else its most measured band.
`deepz_refmag` = the same DEEPZ with `reference_magnitude=true`: the reference band's magnitude as
one more input (brightness, which flux ratios lack).
`gaznet_c9` = the GaZNet catalogue path with `bands` overridden by the catalogue's bands (point
head; its p(z) is the members' mean and spread, calibrated by the residual kernel). Baselines are fitted on the same `n_train` rows with magnitudes + adjacent colours,
missing values set to the training median plus a mask column per feature missing in training (standardised for kNN).
All models are scored on the `n_scored` test rows that every model predicts (DEEPZ flags rows
without the reference band). Metrics on δz = (z_phot − z_spec)/(1 + z_spec): NMAD, outlier
fraction |δz| > 0.15, mean bias, σ68; `pit_ks` = KS distance of the PIT from uniform,
`coverage_68` = share of sources inside their central 68 % interval, `crps` = mean CRPS (p(z)
models only). Short CPU runs: indicative, not converged values."""


if __name__ == "__main__":
    sys.exit(main())
