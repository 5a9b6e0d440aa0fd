"""The run directory: every file name of a run (files), its claim and lock (claim), its records."""
