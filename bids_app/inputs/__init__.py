"""BIDS input: the dataset's layout, validation, participants table and inventory."""
