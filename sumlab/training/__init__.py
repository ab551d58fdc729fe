"""Training: ``train(config)`` into a run directory, with callbacks, tracking and resumable checkpoints."""
