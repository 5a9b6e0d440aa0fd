"""Exploration: molecular dynamics with a potential, watched by its extrapolation grade."""
