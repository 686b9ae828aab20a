"""Figures for papers: units of a run composed into a grid (PDF, SVG, PNG)."""
from atlas.figures.artifacts import FigureError, RunArtifacts, parse_units
from atlas.figures.compose import GridFigure, make_figure, page_size
from atlas.figures.layout import Column, Grid, build_grid, parse_columns

__all__ = ["FigureError", "RunArtifacts", "parse_units", "GridFigure", "make_figure", "page_size",
           "Column", "Grid", "build_grid", "parse_columns"]
