"""Deep learning: 3D networks for patient stratification and their LRP relevance maps."""
