"""The papers' claims, tested on the simulator: GaZNet (Li et al. 2022) and DEEPZ (Eriksen et al. 2020).

Short CPU runs on simulated KiDS+VIKING tiles (training, test and a separate pre-training tile),
one experiment per claim, each reported as it came out:

- GaZNet §3: C9 (nine bands) beats C4 (four) in NMAD and outliers.
- GaZNet Table 1: GaZNet-1 (r cutout + nine bands) beats C9 in NMAD and outliers, at z < 0.8
  and at z > 0.8.
- DEEPZ §5.2: an ensemble lowers σ68 by ~10 % against a single member.
- DEEPZ §5: training on randomized coadds of the exposures beats training on the plain coadds.
- DEEPZ §3: pre-training on simulations, then fine-tuning on few labelled rows, beats training
  on those rows alone.
- GaZNet §4.1: separating stars and QSOs (here: the class head's ``NOT_GALAXY`` flag) cuts the
  outliers.

A separate stage, the learning curve (``--learning-curve SIZES``), trains C9, C9 at GaZNet-1's
widths and GaZNet-1 on nested training sets of each size and scores them at z < 0.8 and
z ≥ 0.8: do the cutouts help once there are enough training rows, and from which size on?
``--paper-mlp`` trains GaZNet-1 with C9's catalogue path and the paper's neck instead (and that
MLP alone): is GaZNet-1's narrower catalogue path why it trails C9?

Galaxy-only claims are scored on the test tile's galaxies; the class cut on all of its sources.
Networks run at CPU widths (see the table); the verdict column says whether our numbers show
the paper's direction, never more.

    python -m benchmarks.paper_claims      # writes results/paper_claims.md, appends results/paper_claims.jsonl
    python -m benchmarks.paper_claims --learning-curve 10000   # one size: results/paper_claims_learning_curve.{md,jsonl}
    python -m benchmarks.paper_claims --learning-curve 10000 --paper-mlp
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import numpy as np

from benchmarks.harness import (
    Run,
    argument_parser,
    command_line,
    commands_section,
    git_commit,
    markdown_table,
    opt,
    read_rows,
)
from benchmarks.pretrain_real import BATCH, schedule
from distributed_pz.catalog import NO_ESTIMATE, Flag
from distributed_pz.metrics.point import point_metrics
from distributed_pz.models import model_config
from distributed_pz.models.bundle import Bundle
from distributed_pz.models.gaznet import GaZNetConfig
from distributed_pz.models.predictor import EnsemblePredictor
from distributed_pz.survey.sim.simulate import (
    GROUP_ROWS,
    SimulationConfig,
    simulate_blocks,
    simulate_tile,
    tile_attrs,
)
from distributed_pz.survey.store.schema import CLASS_GALAXY
from distributed_pz.survey.store.tiles import TileArrays
from distributed_pz.train import TrainConfig, train_member

NAME = "paper_claims"
COLUMNS = ["claim", "paper", "ours", "verdict"]
CURVE_NAME = "paper_claims_learning_curve"
CURVE_COLUMNS = [
    "model",
    "n_train",
    "n_val",
    "epochs",
    "max_epochs",
    "train_s",
    "nmad_lowz",
    "outliers_lowz",
    "nmad_highz",
    "outliers_highz",
    "n_highz",
    "commit",
]
CURVE_MIN_EPOCHS = 30
"""Fewest epochs of a learning-curve run (larger sets; smaller ones run ``--curve-steps`` steps)."""
VAL_SHARE = 0.25
"""Validation sources per training source (the claims' 80/20 split)."""
Z_SPLIT = 0.8
"""GaZNet Table 1's two redshift ranges meet here."""
IMAGE_WIDTHS = {
    "conv_widths": (8, 16, 16, 32),
    "conv_depths": (1, 1, 1, 1),
    "catalog_widths": (64,) * 8,
    "neck_widths": (128, 64, 32, 16),
}
"""GaZNet-1 at CPU widths (the paper's layer counts, one conv per VGG block)."""
DEEPZ_WIDTHS = {"hidden": 128, "n_layers": 6}
"""DEEPZ at CPU widths (the paper: 10 layers × 250)."""
PAPER_MLP = {"catalog_widths": GaZNetConfig.catalog_widths, "neck_widths": GaZNetConfig.neck_widths}
"""GaZNet-1's catalogue path (C9's) and neck at the paper's widths, its image path at CPU widths."""
CURVE_MODELS = {
    "C9": ("gaznet_c9", {}),
    "C9 (GaZNet-1 MLP)": ("gaznet_c9", {k: IMAGE_WIDTHS[k] for k in ("catalog_widths", "neck_widths")}),
    "GaZNet-1": ("gaznet_1", IMAGE_WIDTHS),
    "C9 + paper neck": ("gaznet_c9", {"neck_widths": PAPER_MLP["neck_widths"]}),
    "GaZNet-1 (paper MLP)": ("gaznet_1", {**IMAGE_WIDTHS, **PAPER_MLP}),
}
"""The learning curve's models: label -> (registered name, widths)."""
IMAGE_MODELS = {"GaZNet-1": "C9 (GaZNet-1 MLP)", "GaZNet-1 (paper MLP)": "C9 + paper neck"}
"""Each image model -> itself without its image path (the same catalogue path and neck): what the
cutouts add, all else equal. ``--paper-mlp`` runs the second pair, else C9 and the first pair."""


def curve_models(paper_mlp: bool) -> dict[str, tuple[str, dict[str, Any]]]:
    """The models one learning-curve run trains: C9 and GaZNet-1 with its MLP, or (``paper_mlp``)
    GaZNet-1 at the paper's MLP widths with its MLP."""
    image = "GaZNet-1 (paper MLP)" if paper_mlp else "GaZNet-1"
    labels = (IMAGE_MODELS[image], image) if paper_mlp else ("C9", IMAGE_MODELS[image], image)
    return {label: CURVE_MODELS[label] for label in labels}


def simulated(
    n: int, seed: int, image_bands: tuple[str, ...] | None = None, blend_fraction: float = 0.0
) -> TileArrays:
    """A simulated tile (every class) as arrays; ``image_bands`` keeps only those cutout channels.

    Keeping one channel of four holds a quarter of the cutout memory (6.4 kB per row, not 26).
    ``blend_fraction`` of the galaxies are unrecognised blends (the simulator's option).
    """
    config = SimulationConfig(n_sources=n, seed=seed, tile=f"SIM_{seed:04d}", blend_fraction=blend_fraction)
    if image_bands is None:
        return TileArrays.from_attrs(*simulate_tile(config))
    attrs = tile_attrs(config)
    keep = [attrs["image_bands"].index(b) for b in image_bands]
    blocks = [
        {**block, "cutout": block["cutout"][:, keep].copy()}
        for _, block in simulate_blocks(config, GROUP_ROWS)
    ]
    arrays = {name: np.concatenate([b[name] for b in blocks]) for name in blocks[0]}
    return TileArrays.from_attrs(arrays, {**attrs, "image_bands": list(image_bands)})


def split(data: TileArrays, val_fraction: float, seed: int) -> tuple[TileArrays, TileArrays]:
    order = np.random.default_rng(seed).permutation(data.n_rows)
    n_val = int(round(val_fraction * data.n_rows))
    return data.take(np.sort(order[n_val:])), data.take(np.sort(order[:n_val]))


def metrics(out: dict[str, np.ndarray], z: np.ndarray, keep: np.ndarray | None = None) -> dict[str, float]:
    """Point metrics of the rows with an estimate (and ``keep``)."""
    ok = ((out["flags"] & NO_ESTIMATE) == 0) & np.isfinite(out["z_phot"])
    if keep is not None:
        ok &= keep
    return point_metrics(out["z_phot"][ok].astype(np.float64), z[ok].astype(np.float64))


def fmt(m: dict[str, float]) -> str:
    return f"NMAD {m['nmad']:.4f}, outl. {m['outlier_fraction']:.2%}, σ68 {m['sigma68']:.4f}"


def verdict(holds: bool) -> str:
    return "reproduced" if holds else "not reproduced"


class Claims:
    """The experiments, sharing the tiles and the trained members."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.train_all, self.val_all = split(simulated(args.train_sources, args.seed + 1), 0.2, args.seed)
        self.test = simulated(args.test_sources, args.seed + 2)
        self.z = self.test.arrays["z_spec"]
        self.galaxy = self.test.arrays["class"] == CLASS_GALAXY
        self.rows: list[dict[str, Any]] = []
        self.seconds: dict[str, float] = {}

    def train(
        self, label: str, name: str, epochs: int, seed: int = 0, data: TileArrays | None = None, **kw: Any
    ) -> Bundle:
        overrides = {k: v for k, v in kw.items() if k not in ("random_coadds", "init_bundle")}
        config = model_config(name, **overrides)
        tc = TrainConfig(
            epochs=epochs, batch_size=100, patience=5, random_coadds=kw.get("random_coadds", True)
        )
        started = time.perf_counter()
        result = train_member(
            config,
            data if data is not None else self.train_all,
            self.args.seed + seed,
            train_config=tc,
            val_data=self.val_all,
            init_bundle=kw.get("init_bundle"),
        )
        self.seconds[label] = time.perf_counter() - started
        print(f"  {label}: {self.seconds[label]:.0f} s", flush=True)
        return result.bundle

    def add(self, claim: str, paper: str, ours: str, holds: bool) -> None:
        self.rows.append({"claim": claim, "paper": paper, "ours": ours, "verdict": verdict(holds)})
        print(f"{claim}: {ours} -> {verdict(holds)}", flush=True)

    def gaznet(self) -> None:
        e = self.args.epochs
        c4 = EnsemblePredictor(self.train("C4", "gaznet_c4", e, classify=True))(self.test)
        c9_bundle = self.train("C9", "gaznet_c9", e, classify=True)
        c9 = EnsemblePredictor(c9_bundle)(self.test)
        g1 = EnsemblePredictor(
            self.train("GaZNet-1", "gaznet_1", self.args.epochs_image, classify=True, **IMAGE_WIDTHS)
        )(self.test)
        m4, m9 = metrics(c4, self.z, self.galaxy), metrics(c9, self.z, self.galaxy)
        self.add(
            "C9 < C4 (galaxies)",
            "GaZNet §3: nine bands beat four",
            f"C4 {fmt(m4)}; C9 {fmt(m9)}",
            m9["nmad"] < m4["nmad"] and m9["outlier_fraction"] <= m4["outlier_fraction"],
        )
        for label, sel in (("z < 0.8", self.z < 0.8), ("z > 0.8", self.z >= 0.8)):
            a, b = metrics(c9, self.z, self.galaxy & sel), metrics(g1, self.z, self.galaxy & sel)
            self.add(
                f"GaZNet-1 < C9, {label}",
                "Table 1: NMAD 0.014 vs 0.016, outl. 0.4 % vs 0.7 %"
                if label == "z < 0.8"
                else "Table 1: NMAD 0.041 vs 0.073, outl. 12.7 % vs 23.4 %",
                f"C9 {fmt(a)}; GaZNet-1 {fmt(b)}",
                b["nmad"] < a["nmad"] and b["outlier_fraction"] <= a["outlier_fraction"],
            )
        everyone = metrics(c9, self.z)
        kept = (c9["flags"] & Flag.NOT_GALAXY) == 0
        after = metrics(c9, self.z, kept)
        self.add(
            "class cut lowers outliers (all sources)",
            "GaZNet §4.1: ~65 % of outliers are stars/QSOs; separating them leaves ~0.3 %",
            f"C9 all {everyone['outlier_fraction']:.2%} -> {after['outlier_fraction']:.2%} after the NOT_GALAXY "
            f"cut ({np.mean(~kept):.1%} cut; galaxies only: {m9['outlier_fraction']:.2%})",
            after["outlier_fraction"] < everyone["outlier_fraction"],
        )

    def deepz(self) -> None:
        e = self.args.epochs
        members = [self.train(f"DEEPZ seed {s}", "deepz", e, seed=s, **DEEPZ_WIDTHS) for s in range(3)]
        singles = [metrics(EnsemblePredictor(b)(self.test), self.z, self.galaxy) for b in members]
        pooled = metrics(EnsemblePredictor(members)(self.test), self.z, self.galaxy)
        single = float(np.mean([m["sigma68"] for m in singles]))
        change = pooled["sigma68"] / single - 1
        self.add(
            "ensemble vs single member (DEEPZ)",
            "DEEPZ §5.2: ~10 % lower σ68",
            f"σ68 single (mean of 3) {single:.4f}, 3-member ensemble {pooled['sigma68']:.4f} ({change:+.1%})",
            change <= -0.05,
        )
        plain = metrics(
            EnsemblePredictor(
                self.train("DEEPZ plain coadds", "deepz", e, random_coadds=False, **DEEPZ_WIDTHS)
            )(self.test),
            self.z,
            self.galaxy,
        )
        self.add(
            "randomized vs plain coadds (DEEPZ)",
            "DEEPZ §5: randomized coadds lower scatter and outlier impact",
            f"randomized {fmt(singles[0])}; plain {fmt(plain)}",
            singles[0]["sigma68"] < plain["sigma68"],
        )
        few = self.train_all.take(np.arange(min(self.args.few_rows, self.train_all.n_rows)))
        pre_data = simulated(self.args.pretrain_sources, self.args.seed + 3)
        pre = train_member(
            model_config("deepz", **DEEPZ_WIDTHS),
            pre_data,
            self.args.seed + 7,
            train_config=TrainConfig(epochs=e, batch_size=100, patience=5),
        ).bundle
        tuned = metrics(
            EnsemblePredictor(
                self.train("DEEPZ fine-tuned", "deepz", e, data=few, init_bundle=pre, **DEEPZ_WIDTHS)
            )(self.test),
            self.z,
            self.galaxy,
        )
        scratch = metrics(
            EnsemblePredictor(self.train("DEEPZ scratch", "deepz", e, data=few, **DEEPZ_WIDTHS))(self.test),
            self.z,
            self.galaxy,
        )
        self.add(
            f"pre-training vs none ({few.n_rows} labelled rows, DEEPZ)",
            "DEEPZ §3: pre-training on simulations lowers σ68 with few training data",
            f"pre-trained on {pre_data.n_rows} simulated rows, fine-tuned: {fmt(tuned)}; from scratch: {fmt(scratch)}",
            tuned["sigma68"] < scratch["sigma68"],
        )


def redshift_scores(out: dict[str, np.ndarray], z: np.ndarray, galaxy: np.ndarray) -> dict[str, float]:
    """:func:`scores_by_redshift` of the galaxies with an estimate."""
    ok = galaxy & ((out["flags"] & NO_ESTIMATE) == 0) & np.isfinite(out["z_phot"])
    return scores_by_redshift(out["z_phot"][ok].astype(np.float64), z[ok].astype(np.float64))


def scores_by_redshift(z_phot: np.ndarray, z: np.ndarray) -> dict[str, float]:
    """NMAD, outlier fraction and count at z < 0.8 (``_lowz``) and z ≥ 0.8 (``_highz``)."""
    scores: dict[str, float] = {}
    for suffix, sel in (("lowz", z < Z_SPLIT), ("highz", z >= Z_SPLIT)):
        m = point_metrics(z_phot[sel], z[sel])
        scores |= {
            f"nmad_{suffix}": m["nmad"],
            f"outliers_{suffix}": m["outlier_fraction"],
            f"n_{suffix}": m["n"],
        }
    return scores


def first_rows(n: int, seed: int, blend_fraction: float = 0.0) -> TileArrays:
    """The first ``n`` sources of tile ``seed``, r cutout only: the same rows whatever tile size holds them.

    Rows are simulated in groups of :data:`GROUP_ROWS` whose draws depend on the group's size, so
    they come from a tile of whole groups.
    """
    return simulated(-(-n // GROUP_ROWS) * GROUP_ROWS, seed, ("r",), blend_fraction).take(slice(n))


def learning_curve(
    sizes: list[int],
    *,
    test_sources: int,
    steps: int,
    min_epochs: int = CURVE_MIN_EPOCHS,
    seed: int = 0,
    paper_mlp: bool = False,
    blend_fraction: float = 0.0,
) -> list[dict[str, Any]]:
    """:func:`curve_models` trained on nested training sets of each size, scored on one test tile.

    The training rows of size ``n`` are the first ``n`` sources (every class) of one tile (seed
    ``seed + 1``), their validation rows (early stopping) the first ``n / 4`` of another
    (``seed + 4``), so each smaller set lies inside every larger one (:func:`first_rows`); the
    test tile has seed ``seed + 2``, as the claims'. Cutouts are r only, all GaZNet-1 reads. Every run trains at most
    max(``min_epochs``, ``steps`` steps of 100 rows) epochs, patience a fifth of them. Every
    tile has ``blend_fraction`` of its galaxies blended (the simulator's option).

    Returns
    -------
    list of dict
        One row per size and model: :func:`redshift_scores` of the test tile's galaxies, epochs
        run (best), training and simulation seconds.
    """
    test = simulated(test_sources, seed + 2, ("r",), blend_fraction)
    z, galaxy = test.arrays["z_spec"], test.arrays["class"] == CLASS_GALAXY
    rows = []
    for n in sizes:
        started = time.perf_counter()
        fit = first_rows(n, seed + 1, blend_fraction)
        val = first_rows(max(1, round(VAL_SHARE * n)), seed + 4, blend_fraction)
        simulate_s = time.perf_counter() - started
        epochs, patience = schedule(n, min_epochs, steps)
        for label, (name, widths) in curve_models(paper_mlp).items():
            started = time.perf_counter()
            result = train_member(
                model_config(name, classify=True, **widths),
                fit,
                seed,
                train_config=TrainConfig(epochs=epochs, batch_size=BATCH, patience=patience),
                val_data=val,
            )
            train_s = time.perf_counter() - started
            row = {
                "model": label,
                "n_train": n,
                "n_val": val.n_rows,
                "epochs": f"{len(result.history)} ({result.best_epoch + 1})",
                "max_epochs": epochs,
                "train_s": train_s,
                "simulate_s": simulate_s,
                **redshift_scores(EnsemblePredictor(result.bundle)(test), z, galaxy),
            }
            rows.append(row)
            print(
                f"  {label}, {n} sources: trained {train_s:.0f} s, epochs {row['epochs']} of {epochs}; "
                f"NMAD {row['nmad_lowz']:.4f} (z < 0.8), {row['nmad_highz']:.4f} (z > 0.8)",
                flush=True,
            )
    return rows


def latest_points(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The last row of each (model, size), by size then model: the curve so far, over every run."""
    latest = {(r["model"], r["n_train"]): r for r in rows}
    return sorted(latest.values(), key=lambda r: (r["n_train"], list(CURVE_MODELS).index(r["model"])))


def crossings(points: list[dict[str, Any]]) -> str:
    """At which sizes each image model has a lower NMAD than C9 and than its own MLP, below and above z = 0.8."""
    by = {(r["model"], r["n_train"]): r for r in points}
    lines = []
    for image, mlp in IMAGE_MODELS.items():
        for other in ("C9", mlp):
            sizes = sorted({n for _, n in by if (other, n) in by and (image, n) in by})
            if not sizes:
                continue
            for suffix, label in (("lowz", "z < 0.8"), ("highz", "z > 0.8")):
                key = f"nmad_{suffix}"
                better = [n for n in sizes if by[image, n][key] < by[other, n][key]]
                lines.append(
                    f"- {image} vs {other}, {label}: lower NMAD at "
                    f"{', '.join(f'{n:,}' for n in better) or 'no size'} of {', '.join(f'{n:,}' for n in sizes)}"
                )
    return "\n".join(lines)


def blends_note(blend_fraction: float) -> str:
    """The setup's sentence on blended galaxies (none without them)."""
    if not blend_fraction:
        return ""
    return (
        f" Every tile has {blend_fraction:.0%} of its galaxies blended (`--blend-fraction`: the"
        " simulator's `blend_fraction`, a fainter galaxy of another redshift within 0.3–1.2″ whose"
        " light the catalogue adds and the cutout shows)."
    )


def run_learning_curve(args: argparse.Namespace) -> int:
    """The learning-curve stage: rows appended to its own ``.jsonl``, the curve so far in its ``.md``.

    With blends (``--blend-fraction``) the curve is another table, ``<name>_blends``.
    """
    name = f"{CURVE_NAME}_blends" if args.blend_fraction else CURVE_NAME
    run = Run(name, args)
    curve = learning_curve(
        sorted(args.learning_curve),
        test_sources=args.curve_test_sources,
        steps=args.curve_steps,
        seed=args.seed,
        paper_mlp=args.paper_mlp,
        blend_fraction=args.blend_fraction,
    )
    rows = [{**r, "simulator": args.simulator, "blend_fraction": args.blend_fraction} for r in curve]
    points = latest_points(
        read_rows(name) + [{**r, "commit": git_commit(), "command": command_line()} for r in rows]
    )
    return run.finish(
        rows,
        "GaZNet-1 vs C9 on the simulator: the learning curve",
        CURVE_SETUP.format(args=args, min_epochs=CURVE_MIN_EPOCHS, name=name)
        + blends_note(args.blend_fraction),
        markdown_table(points, CURVE_COLUMNS),
        crossings(points),
        "\n".join(commands_section(points)).rstrip(),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(
        __doc__,
        "test_sources",
        "threads",
        train_sources=5000,
        epochs=opt(20, help="epochs of catalogue models"),
        epochs_image=opt(10, help="epochs of GaZNet-1"),
        seed=opt(0, help="member seed; tiles use seed+1 .. seed+4"),
        out=opt(help=f"Markdown report (default results/{NAME}.md, or results/{CURVE_NAME}[_blends].md)"),
    )
    parser.add_argument("--pretrain-sources", type=int, default=5000, help="sources of the pre-training tile")
    parser.add_argument("--few-rows", type=int, default=600, help="labelled rows of the pre-training claim")
    parser.add_argument(
        "--simulator", default="current", help="which simulator the tiles came from (for the table)"
    )
    parser.add_argument(
        "--learning-curve",
        type=int,
        nargs="+",
        metavar="SIZE",
        help="run only the learning curve, on training sets of these many sources "
        "(e.g. 2000 5000 10000 30000; one size per run stays under 20 min on 2 cores)",
    )
    parser.add_argument(
        "--curve-test-sources", type=int, default=10_000, help="sources of the learning curve's test tile"
    )
    parser.add_argument(
        "--curve-steps", type=int, default=6000, help="fewest optimisation steps of a learning-curve run"
    )
    parser.add_argument(
        "--blend-fraction",
        type=float,
        default=0.0,
        help="learning curve on tiles with this share of galaxies blended (table <curve>_blends)",
    )
    parser.add_argument(
        "--paper-mlp",
        action="store_true",
        help="learning curve of GaZNet-1 with the paper's catalogue path and neck (and that MLP alone)",
    )
    args = parser.parse_args(argv)
    if args.learning_curve:
        return run_learning_curve(args)
    run = Run(NAME, args)
    claims = Claims(args)
    claims.gaznet()
    claims.deepz()
    context = {"simulator": args.simulator, **{f"train_s_{k}": v for k, v in claims.seconds.items()}}
    return run.finish(
        [{**r, **context} for r in claims.rows],
        "The papers' claims on the simulator",
        SETUP.format(args=args, tiles=f"{args.seed + 1}..{args.seed + 3}"),
        markdown_table(claims.rows, COLUMNS),
    )


SETUP = """\
Simulator: {args.simulator}. Training tile {args.train_sources} sources (80 % fitted, 20 % for
early stopping), test tile {args.test_sources}, pre-training tile {args.pretrain_sources} (all
simulated KiDS+VIKING, seeds {tiles}, stars and QSOs included); single members unless stated,
Adam, batch 100, at most {args.epochs} epochs ({args.epochs_image} for GaZNet-1), early stopping
after the first learning-rate drop; GaZNet models with a class head. CPU widths: GaZNet-1 conv
8-16-16-32 (one conv per block), catalogue 64, neck 128-64-32-16; DEEPZ 6 × 128. Galaxy claims
are scored on the test tile's galaxies, the class cut on all of its sources. Metrics on
δz = (z_phot − z_spec)/(1 + z_spec); outliers |δz| > 0.15. "reproduced" means our numbers go
the paper's way (and, for the ensemble, by at least 5 %), nothing about its size. The image
claim at this size says little: its learning curve (GaZNet-1 vs C9 from 2 000 to 30 000 training
sources, ``--learning-curve``) is in ``paper_claims_learning_curve.md``."""
CURVE_SETUP = """\
Simulator: {args.simulator}. `n_train` sources (every class) of one simulated KiDS+VIKING tile
(seed {args.seed} + 1) are fitted, `n_val` = n_train / 4 of another (seed {args.seed} + 4) stop
it early; both are the first rows of their tiles, so the sets are nested. Test tile
{args.curve_test_sources} sources (seed {args.seed} + 2), scored on its galaxies at z < 0.8
(`_lowz`) and z ≥ 0.8 (`_highz`; `n_highz` of them); outliers |δz| > 0.15, as fractions.
Single members with a class head, Adam, batch 100, the GaZNet schedule (peak rate for the first
half) over at most max({min_epochs}, {args.curve_steps} steps) epochs (`max_epochs`), patience a
fifth of them from the rate drop; `epochs` = run (best). CPU widths as in the claims: GaZNet-1
conv 8-16-16-32, catalogue 8 × 64, neck 128-64-32-16, reading the r cutout; C9 at the paper's
widths (4 × 128, 4 × 256); `C9 (GaZNet-1 MLP)` is GaZNet-1 less its image path. With
`--paper-mlp`: `GaZNet-1 (paper MLP)` is GaZNet-1 with C9's catalogue path and the paper's neck
(512-256-128-64), its image path still at CPU widths, and `C9 + paper neck` is it less its image
path: whether the narrow MLP is why GaZNet-1 trails C9. `train_s` =
training seconds, {args.threads} torch thread(s). The table holds the latest row of each model
and size over every run (`{name}.jsonl`), so sizes run one at a time make one curve."""


if __name__ == "__main__":
    sys.exit(main())
