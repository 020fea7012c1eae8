"""Pretraining experiments (Tables 2, 4, 5, 6; Figures 2, 4, 5, 6): configs and entry points over relabel's trainer."""
