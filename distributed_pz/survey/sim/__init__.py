"""The survey simulator: populations, SEDs, photometry, images and PSFs written into a survey store."""
