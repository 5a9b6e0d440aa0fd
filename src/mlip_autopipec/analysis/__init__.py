"""Checks and plots of trained potentials."""
