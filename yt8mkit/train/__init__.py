"""Training: one trainer for every model, its losses, mixup, schedules and checkpoints."""
