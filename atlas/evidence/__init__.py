"""Evidence from a data set: receptive fields, top-image patches and heatmaps, unit
statistics and unit labels (class names, NetDissect concepts, dominant classes)."""
