"""Finite-N experiments for the asymptotic theory (THEORY.md section 10, experiments E1-E13)."""
