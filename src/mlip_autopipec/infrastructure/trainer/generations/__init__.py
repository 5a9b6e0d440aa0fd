"""A next generation: the parent run, read safely, and the fit that continues from it."""
