"""Accuracy of every registered model after short CPU training on a simulated KiDS+VIKING tile.

Trains one member of each model on the galaxies of one simulated tile and scores it on the
galaxies of another (GaZNet metrics: NMAD, outlier fraction |δz| > 0.15, mean bias; DEEPZ's
σ68; all z and split at z = 0.8 as in GaZNet Table 1; PIT KS statistic for p(z) models).
Image models use narrower conv blocks than the defaults so the whole run fits in ~10 minutes
on two shared CPU cores; the table says which widths each row used.

    python -m benchmarks.model_zoo_accuracy     # from the repository root; writes results/model_zoo_accuracy.md

Rows are also appended to ``results/model_zoo_accuracy.jsonl`` through the harness.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from scipy import stats

from benchmarks.harness import RESULTS_DIR, Run, argument_parser, markdown_table, opt
from distributed_pz.catalog import NO_ESTIMATE
from distributed_pz.metrics.pdf import GaussianMixturePDF, pit
from distributed_pz.metrics.point import point_metrics
from distributed_pz.models import list_models, model_config
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.sim.simulate import SimulationConfig, simulate_tile
from distributed_pz.survey.store.schema import CLASS_GALAXY
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train import TrainConfig, train_member

NAME = "model_zoo_accuracy"
COLUMNS = [
    "model",
    "inputs",
    "widths",
    "epochs",
    "train_s",
    "nmad",
    "outlier_fraction",
    "bias",
    "sigma68",
    "nmad_z<0.8",
    "outl_z<0.8",
    "nmad_z>0.8",
    "outl_z>0.8",
    "pit_ks",
]


def galaxies(n: int, seed: int) -> TileArrays:
    """The galaxies of a simulated tile (photometry, exposures, cutouts, true z)."""
    arrays, attrs = simulate_tile(SimulationConfig(n_sources=n, seed=seed, tile=f"SIM_{seed:04d}"))
    keep = arrays["class"] == CLASS_GALAXY
    return TileArrays.from_attrs({k: v[keep] for k, v in arrays.items()}, attrs)


def describe(config) -> tuple[str, str]:
    """Inputs and widths of a model config, for the table."""
    if config.family == "deepz":
        return (
            f"flux ratios {len(config.bands)} bands",
            f"{config.n_layers}×{config.hidden}, latent {config.latent}",
        )
    parts = []
    if config.image_bands:
        parts.append(f"{''.join(config.image_bands)} images")
    if config.bands:
        parts.append(f"{len(config.bands)}-band catalogue")
    widths = []
    if config.image_bands:
        widths.append("conv " + "-".join(map(str, config.conv_widths)))
    if config.bands:
        widths.append("cat " + "-".join(map(str, sorted(set(config.catalog_widths)))))
    return " + ".join(parts) + (" (p(z))" if config.head == "mdn" else ""), ", ".join(widths)


def score(out: dict[str, np.ndarray], z_spec: np.ndarray, has_pdf: bool) -> dict[str, float]:
    ok = ((out["flags"] & NO_ESTIMATE) == 0) & np.isfinite(out["z_phot"])
    zp, zs = out["z_phot"][ok], z_spec[ok]
    row = {k: v for k, v in point_metrics(zp, zs).items() if k in COLUMNS or k == "n"}
    for label, sel in (("z<0.8", zs < 0.8), ("z>0.8", zs >= 0.8)):
        m = point_metrics(zp[sel], zs[sel])
        row[f"nmad_{label}"], row[f"outl_{label}"] = m["nmad"], m["outlier_fraction"]
    if has_pdf:  # a point member's one Gaussian has the floor width: no calibrated p(z)
        pdf = GaussianMixturePDF(out["pdf_weights"][ok], out["pdf_means"][ok], out["pdf_sigmas"][ok])
        row["pit_ks"] = float(stats.kstest(pit(pdf, zs), "uniform").statistic)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(
        __doc__,
        "test_sources",
        "threads",
        train_sources=6000,
        epochs_image=12,
        models=list_models(),
        seed=opt(0, help="member seed (tiles use seed+1, seed+2)"),
        out=RESULTS_DIR / f"{NAME}.md",
    )
    parser.add_argument("--epochs-catalog", type=int, default=30, help="epochs of catalogue-only models")
    parser.add_argument("--image-conv-widths", default="8,16,32,64", help="conv block widths of image models")
    args = parser.parse_args(argv)
    run = Run(NAME, args)
    train, test = galaxies(args.train_sources, args.seed + 1), galaxies(args.test_sources, args.seed + 2)
    simulate_s = run.seconds
    conv = tuple(int(w) for w in args.image_conv_widths.split(","))
    rows = []
    for name in args.models:
        config = model_config(name)
        if config.family == "gaznet" and config.image_bands:
            config = model_config(name, conv_widths=conv)
        epochs = (
            args.epochs_image if config.family == "gaznet" and config.image_bands else args.epochs_catalog
        )
        tc = TrainConfig(epochs=epochs, batch_size=100, patience=None)
        t0 = time.perf_counter()
        result = train_member(config, train, seed=args.seed, train_config=tc)
        train_s = time.perf_counter() - t0
        out = EnsemblePredictor(result.bundle, device=result.bundle.device)(test)
        inputs, widths = describe(config)
        row = {"model": name, "inputs": inputs, "widths": widths, "epochs": epochs, "train_s": train_s}
        row.update(score(out, test.arrays["z_spec"], result.bundle.model.has_pdf))
        row.update(
            best_epoch=result.best_epoch,
            n_train=result.bundle.metadata["n_train"],
            bundle=result.bundle.content_hash[:12],
        )
        rows.append(row)
        print(
            f"{name}: {train_s:.0f} s, NMAD {row['nmad']:.4f}, outliers {row['outlier_fraction']:.3f}",
            flush=True,
        )
    n_train = rows[0]["n_train"] if rows else 0
    return run.finish(
        rows,
        "Model zoo accuracy (short CPU training, simulated KiDS+VIKING galaxies)",
        SETUP.format(n_train=n_train, train=train.n_rows, test=test.n_rows),
        METRICS,
        markdown_table(rows, COLUMNS),
        f"Simulation {simulate_s:.0f} s; other jobs share the cores, so `train_s` measures contention too.",
    )


SETUP = """\
One member per model, seed-fixed, trained on {n_train} galaxies of a simulated tile
({train} galaxies; the rest validate for early stopping / best weights), tested on the
{test} galaxies of an independent tile. Adam, batch 100, the family's learning-rate
schedule compressed to the epochs shown (GaZNet: 1e-3 then 1e-4 at half; DEEPZ: 1e-3 for a
third, then 1e-4, 1e-5, 1e-6), augmentations on (whole-pixel moves; randomized coadds α = 0.8),
no pre-training. **Image models use reduced conv widths** (column `widths`; paper layout 2-2-3-3
convs per block); catalogue paths and DEEPZ use the default widths."""
METRICS = """\
Metrics on δz = (z_phot − z_spec)/(1 + z_spec): NMAD, outlier fraction |δz| > 0.15, mean bias,
σ68; the same split at z = 0.8 (GaZNet Table 1); `pit_ks` = Kolmogorov–Smirnov distance of
the PIT from uniform (p(z) models only). z_phot is the mode of p(z) for p(z) models.
These are short runs on 2 shared cores: orderings are indicative, not converged values."""


if __name__ == "__main__":
    sys.exit(main())
