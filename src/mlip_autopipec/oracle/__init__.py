"""Labelling structures with reference energies and forces."""
