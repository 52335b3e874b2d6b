"""The book's CNN (2.3) trained on CelebA faces at 64x64 to predict the 40 attributes (a sigmoid
per attribute): the feature extractor of the sample-quality metrics for faces (the faces VAE's
128x128 samples are resized to its input, the WGAN-GP's 64x64 ones are its input),
gdl_jax.eval.features. Its test accuracy is the mean over the attributes, reported beside the
majority-class baseline (CelebA's attributes are unbalanced: always answering the common value
scores ~80%)."""

from experiments.configs.common import classifier_config


def get_config():
    c = classifier_config("cnn", "features for the Frechet distance of face samples")
    c.model.num_classes = 40
    c.data.name = "celeba"
    c.data.image_size = 64
    c.data.crop = "none"        # the whole frame squashed to a square, as the faces VAE and WGAN-GP see it
    c.data.test_size = 500      # local copies without list_eval_partition.txt: the last 500 faces
    c.num_epochs = 5
    c.batch_size = 64
    c.eval_batch_size = 250
    return c
