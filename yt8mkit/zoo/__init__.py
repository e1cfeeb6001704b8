"""Many (model, fold) jobs from one config, locally or on a Ray cluster."""
