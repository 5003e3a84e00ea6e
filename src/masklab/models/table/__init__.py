"""Masked autoencoder for tables: numeric and categorical cells, missing cells never hidden nor scored."""

from masklab.models.table.model import TableMAE, TableMAEConfig

__all__ = ["TableMAE", "TableMAEConfig"]
