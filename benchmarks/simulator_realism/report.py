"""Plots, per-target verdicts and the markdown report."""

from __future__ import annotations

from pathlib import Path

from benchmarks.harness import machine
from benchmarks.simulator_realism.common import ZCOSMOS_BANDS


# --- plots and report ------------------------------------------------------------------------
def plots(samples: dict, out_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    real, sim = samples["real"], samples["sim"]
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    for ax, (name, a, b) in zip(axes, (("u-g", 0, 1), ("g-r", 1, 2), ("r-i", 2, 3)), strict=True):
        ax.scatter(
            sim.z, sim.mag[:, a] - sim.mag[:, b], s=1, alpha=0.15, c="tab:blue", label="sim (zCOSMOS set-up)"
        )
        ax.scatter(
            real.z, real.mag[:, a] - real.mag[:, b], s=1, alpha=0.25, c="tab:red", label="zCOSMOS-bright"
        )
        ax.set(xlabel="z_spec", ylabel=name, xlim=(0, 1.3), ylim=(-0.5, 3.0 if name == "u-g" else 2.0))
    axes[0].legend(markerscale=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(out_dir / "simulator_realism_colour_z.png", dpi=110)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    for ax, (lo, hi) in zip(axes, ((0.2, 0.4), (0.6, 0.8)), strict=True):
        for s, colour, label in ((sim, "tab:blue", "sim"), (real, "tab:red", "zCOSMOS")):
            rows = (s.z >= lo) & (s.z < hi)
            ax.scatter(
                s.mag[rows, 2] - s.mag[rows, 3],
                s.mag[rows, 1] - s.mag[rows, 2],
                s=1,
                alpha=0.25,
                c=colour,
                label=label,
            )
        ax.set(xlabel="r-i", ylabel="g-r", title=f"{lo} < z < {hi}", xlim=(-0.3, 1.3), ylim=(-0.2, 2.0))
    axes[0].legend(markerscale=8)
    fig.tight_layout()
    fig.savefig(out_dir / "simulator_realism_colour_colour.png", dpi=110)
    plt.close(fig)


CALIBRATION_NOTE = """
## What was calibrated on which data

- **Mean rest-frame SED correction** (`distributed_pz/data/templates/sed_correction_zcosmos.txt`,
  `SimulationConfig.sed_correction`): fitted on the zCOSMOS-bright **training split only** (80 %,
  permutation seed 0 of `measures.zcosmos_all`) — median sim − real (band − i) colours at matched
  (z, i) in z bins of 0.1 for u g r z Ks, turned into Δm(λ_rest, z) at the bands' rest pivots,
  three iterations (15 000-, 15 000- and 60 000-source zCOSMOS-set-up tiles). The 20 % test split, on which the
  sim-to-real rows are measured, was never used. The colour table above compares with *all*
  zCOSMOS galaxies (80 % of them the calibration set), so its medians are largely in-sample; the
  σ68 ratios were not tuned.
- **zCOSMOS J zero point**: the catalogue's J is ≈ 0.2 mag faint relative to the simulation at
  every redshift (evidence row above), while the z band — which samples the same rest
  wavelengths at lower z — agrees to a few 0.01 and independent CWW templates give the same
  z − J as the simulator (`findings/SIMULATOR-REALISM.md`). That is a data offset, so it is
  corrected in the comparison (one offset, J only, fitted on the training split) and both the raw
  and the corrected transfer are reported; the simulator is not bent to it.
- Everything else (difficulty knobs, depths fitted from the real errors) is as before.
"""


def _bins(bins: list) -> str:
    return ", ".join(f"{lo:.1f}: {b:+.3f}" for lo, b in bins)


def verdicts(r: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, measured, criterion, pass) per issue-13 target; pass is None for reported-only rows."""
    lo_ratio, hi_ratio = r["colour_sigma_ratio_range"]
    return [
        (
            "RF NMAD at z<0.8, KiDS+VIKING sim (another tile)",
            f"{r['kids_nmad_lowz']:.4f} (outliers {100 * r['kids_outliers_lowz']:.2f} %)",
            "0.013–0.025",
            0.013 <= r["kids_nmad_lowz"] <= 0.025,
        ),
        (
            "SDSS-like sim RF / real SDSS MGS RF",
            f"{r['sdss_sim_nmad']:.4f} / {r['sdss_real_nmad']:.4f} = {r['sdss_ratio']:.2f}",
            "0.8–1.25",
            0.8 <= r["sdss_ratio"] <= 1.25,
        ),
        (
            "zCOSMOS-set-up sim RF / real zCOSMOS RF",
            f"{r['zcosmos_sim_nmad']:.4f} / {r['zcosmos_real_nmad']:.4f} = {r['zcosmos_ratio']:.2f}",
            "0.8–1.25",
            0.8 <= r["zcosmos_ratio"] <= 1.25,
        ),
        (
            "sim-trained RF on real zCOSMOS / real-trained (7 bands, catalogue as published)",
            f"{r['transfer_nmad']:.4f} / {r['zcosmos_real_nmad']:.4f} = {r['transfer_ratio']:.2f}",
            "≤ 1.3",
            r["transfer_ratio"] <= 1.3,
        ),
        (
            "⋯ max \\|bias\\| per z bin of 0.2",
            f"{r['transfer_max_abs_bias']:.3f} (" + _bins(r["transfer_bias_bins"]) + ")",
            "≤ 0.01",
            r["transfer_max_abs_bias"] <= 0.01,
        ),
        (
            "sim-trained RF on real zCOSMOS / real-trained, zCOSMOS J zero point corrected "
            f"({r['zero_point_offsets'][5]:+.2f} mag, fitted on the real training split)",
            f"{r['transfer_j_nmad']:.4f} / {r['zcosmos_real_nmad']:.4f} = {r['transfer_j_ratio']:.2f}",
            "≤ 1.3",
            r["transfer_j_ratio"] <= 1.3,
        ),
        (
            "⋯ max \\|bias\\| per z bin of 0.2",
            f"{r['transfer_j_max_abs_bias']:.3f} (" + _bins(r["transfer_j_bias_bins"]) + ")",
            "≤ 0.01",
            r["transfer_j_max_abs_bias"] <= 0.01,
        ),
        (
            "⋯ optical u g r i z only (no J, Ks)",
            f"ratio {r['transfer_optical_ratio']:.2f}, max \\|bias\\| {r['transfer_optical_max_abs_bias']:.3f}",
            "context",
            None,
        ),
        (
            "⋯ every band aligned (offsets fitted on the real training set)",
            f"ratio {r['transfer_aligned_ratio']:.2f}, max \\|bias\\| {r['transfer_aligned_max_abs_bias']:.3f}; offsets "
            + ", ".join(f"{b} {o:+.2f}" for b, o in zip(ZCOSMOS_BANDS, r["zero_point_offsets"], strict=True)),
            "context",
            None,
        ),
        (
            "evidence for the J offset: sim − real (band − i) per z bin of 0.2, z / J / Ks",
            "; ".join(
                f"{lo:.1f}: "
                + " / ".join(
                    f"{dict(r['offset_by_z'][b]).get(lo, float('nan')):+.2f}" for b in ("z", "J", "Ks")
                )
                for lo, _ in r["offset_by_z"]["J"]
            ),
            "J constant in z = band zero point",
            None,
        ),
        (
            "colours g−r, r−i, u−g per z bin: max \\|Δ median\\| vs zCOSMOS",
            f"{r['colour_max_abs_delta']:.3f}",
            "≤ 0.05",
            r["colour_max_abs_delta"] <= 0.05,
        ),
        (
            "colours: σ68 sim / real, range over bins",
            f"{lo_ratio:.2f}–{hi_ratio:.2f}",
            "0.7–1.3",
            0.7 <= lo_ratio and hi_ratio <= 1.3,
        ),
        (
            "corr(catalogue r error, cutout 2″-aperture r error), 21<r<23",
            f"{r['image_error_correlation_21_23']:.3f} (18<r<21: {r['image_error_correlation_18_21']:.3f})",
            "≥ 0.8",
            r["image_error_correlation_21_23"] >= 0.8,
        ),
        (
            "RF + r-band image moments vs catalogue only, z<0.8",
            f"{r['image_rf_moments_nmad_lowz']:.4f} vs {r['image_rf_catalogue_nmad_lowz']:.4f} (gain {100 * r['image_rf_gain']:.1f} %)",
            "measured (no free photometry)",
            None,
        ),
        (
            "speed with cutouts, 2 workers",
            f"{r['speed_sources_per_s']:,.0f} sources/s ({r['speed_n']:,} sources; load average {r['loadavg_1m']:.1f} on 2 shared cores); "
            f"{r['speed_sources_per_cpu_s']:,.0f} sources per CPU-second, so ≈ {2 * r['speed_sources_per_cpu_s']:,.0f}/s on 2 idle cores",
            "≥ 1 500",
            r["speed_sources_per_s"] >= 1500,
        ),
    ]


def report(r: dict, command: str) -> str:
    lines = ["| target | measured | criterion | verdict |", "|---|---|---|---|"]
    lines += [
        f"| {t} | {m} | {c} | {'reported' if ok is None else 'pass' if ok else '**miss**'} |"
        for t, m, c, ok in verdicts(r)
    ]
    colours = [
        "| z bin | colour | N real | Δ median (sim − real) | σ68 sim / real |",
        "|---|---|---|---|---|",
    ]
    colours += [
        f"| {c['z_lo']:.2f}–{c['z_hi']:.2f} | {c['colour']} | {c['n_real']} | {c['delta_median']:+.3f} | {c['sigma68_ratio']:.2f} |"
        for c in r["colours"]
    ]
    info = machine()
    return (
        "# Simulator realism (issue 13)\n\n"
        f"Command: `{command}`; machine: {info['host_cpu']}, {info['cpu_count']} cores, {info['device']}; "
        f"{r['time_utc']}, commit {r['commit']}. Method: `benchmarks/simulator_realism/__init__.py` docstring.\n\n"
        + "\n".join(lines)
        + f"\n\nKiDS+VIKING high-z (0.8 < z < 3): NMAD {r['kids_nmad_highz']:.3f}, outliers "
        f"{100 * r['kids_outliers_highz']:.1f} %. Real zCOSMOS RF outliers {100 * r['zcosmos_real_outliers']:.2f} %; "
        f"sim-trained on real {100 * r['transfer_outliers']:.2f} %.\n\n## Colours vs zCOSMOS-bright at matched (z, i)\n\n"
        + "\n".join(colours)
        + "\n\nPlots: `simulator_realism_colour_z.png`, `simulator_realism_colour_colour.png`.\n"
        + CALIBRATION_NOTE
    )
