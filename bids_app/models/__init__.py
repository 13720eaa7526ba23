"""Group-level scikit-learn-style estimators: harmonisation, classifiers, cross-validation."""
