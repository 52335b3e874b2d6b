"""Training core: state, steps, the loop, checkpoints, device mesh."""
