"""What a fit costs: the estimate before it, the probe that measures it, the budget that sizes it,
and the record after it (cost, convergence)."""
