"""Is the simulator as hard as the real sky? Random-forest difficulty, sim-to-real transfer, colours, images, speed.

.venv/bin/python -m benchmarks.simulator_realism [--quick]

Every comparison with real data follows the realism review (``findings/SIMULATOR-REALISM.md``):
the simulator is run through the real catalogue's filter curves (zCOSMOS: CFHT u*, Subaru
g+ r+ i+ z+, UKIRT J, CFHT Ks; SDSS: the shipped ugriz), with per-band depths fitted to the real
error–magnitude relation, the real selection applied to the observed magnitudes (zCOSMOS-bright
i < 22.5; SDSS MGS 16 < r < 17.77, z < 0.3), and the simulated galaxies resampled to the real
(z, i) [zCOSMOS] or (z, r) [SDSS] distribution. The random forest is always the same: 200 trees,
min_samples_leaf 2, max_features 0.5, on magnitudes + adjacent colours (non-detections at their
1σ limit, missing bands at the training median). The KiDS+VIKING and image forests are tested
on another tile (seed) than they were trained on — tiles have their own zero points, so that is
the honest split; the real catalogues come from one field each (zCOSMOS, split 80/20) or one
calibrated survey (SDSS MGS), so their simulated counterparts are trained and tested on
disjoint halves of one tile. NMAD = 1.4826 median |Δ − median Δ|, Δ = (z_p − z_s)/(1 + z_s); outliers |Δ| > 0.15.

Needs the shared real catalogues (``$DPZ_SHARED_DATA`` or ``../shared/data``); without them it
says so and exits 0. Results: ``results/simulator_realism.{jsonl,md}`` and two PNGs.
"""
