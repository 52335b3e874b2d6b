"""Figures: one function per kind of figure, each writing a PNG."""
