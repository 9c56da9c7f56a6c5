"""Feast: the repository (apply, materialize), where its tables live, and training sets from it."""
