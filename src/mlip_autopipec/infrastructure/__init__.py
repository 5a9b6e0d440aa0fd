"""What runs outside the Python process: pacemaker (its files, the trainer), the run directory, the
batch scheduler."""
