"""Tests of the fixed layers (forgetless.layers)."""
