"""An interrupted run: what it keeps (interim), going on (resume), made usable (finish)."""
