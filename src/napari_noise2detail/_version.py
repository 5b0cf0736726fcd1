"""The package version, in a module of its own so that the engine can record it in saved models."""

__version__ = "0.2.0"
