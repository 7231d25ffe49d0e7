"""Kailash Nexus reference application: product classification over the Kailash stack."""

__version__ = "1.0.0"
