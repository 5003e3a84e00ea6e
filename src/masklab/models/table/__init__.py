"""Masked autoencoder for tables: numeric and categorical cells, missing cells never hidden nor scored."""

from masklab.models.table.model import PRESETS, TableDraw, TableMAE, TableMAEConfig

__all__ = ["PRESETS", "TableDraw", "TableMAE", "TableMAEConfig"]
