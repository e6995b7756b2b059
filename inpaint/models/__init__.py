"""LightningModules that train the networks, with their losses and metrics."""
