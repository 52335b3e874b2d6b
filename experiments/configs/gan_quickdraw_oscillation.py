"""Book 4.3, Fig 4-11: oscillating loss. The book's GAN with one change, Adam (beta_1 0.9, Keras'
defaults) in place of RMSprop at the same learning rates: the momentum makes the discriminator and
the generator overshoot each other, and the generator's loss swings for tens of steps at a time
(between ~1 and ~11 early in the book-preset run, then between 2 and 6). `results.json` gives
`loss_oscillation` (the swing of each loss's moving average about its trend, after the first 10%
of the run) to compare with the book's settings."""

import ml_collections

from experiments.configs import gan_quickdraw


def get_config() -> ml_collections.ConfigDict:
    c = gan_quickdraw.get_config()
    c.figure = "Fig 4-11"
    c.optimizer = "adam"
    c.optimizer_kwargs = {"b1": 0.9, "b2": 0.999, "eps": 1e-7}
    c.num_steps = 1000
    c.analysis.sample_steps = (100, 300, 600, 1000)
    c.analysis.history_png = "fig_4_11_oscillating_loss.png"
    return c
