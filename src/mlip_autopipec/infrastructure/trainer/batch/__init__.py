"""A fit whose compute steps run as one batch job: submit, follow, wait, status, the job's entry."""
