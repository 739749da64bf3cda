"""Datasets and corpora the chapters train on, built from real sources (see data/ and the manifest)."""
