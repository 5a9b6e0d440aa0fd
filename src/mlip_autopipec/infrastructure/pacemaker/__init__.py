"""pacemaker's own files and log: input.yaml, the data file, the potential files, its outputs,
its log, its early stopping and the deadline callback it runs. Imports nothing of the trainer."""
