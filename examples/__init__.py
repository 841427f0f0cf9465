"""Example sweep documents, shipped with the package (``hypersweep demo`` runs one)."""
