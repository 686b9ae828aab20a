"""The data set's structure in one layer's feature space: 2-D maps (openTSNE, umap-learn)
and FAISS nearest neighbours."""
