"""Data: image sources, mask synthesis, damage, edges and the LightningDataModule."""
