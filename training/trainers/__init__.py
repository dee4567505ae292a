"""Ray Train / Ray Tune loops for the models in training/models (one module per model)."""
