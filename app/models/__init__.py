"""The model registry: base models, trained versions with lineage, aliases."""
