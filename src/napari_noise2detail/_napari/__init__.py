"""napari-facing shells around the engine: widgets, sample data, layer helpers."""
