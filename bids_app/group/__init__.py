"""Group level: design → scikit-learn-style estimators → statistics → results."""
