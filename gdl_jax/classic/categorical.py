"""Generative models of categorical features: the full multinomial and Naive Bayes (book 1.3-1.6).

Both fit by maximum likelihood with optional additive smoothing (a pseudocount per cell) and
expose the same pure interface: `fit(codes, cardinalities) -> model`, `model.log_prob(codes)`,
`model.sample(key, n)`. Codes are int arrays (N, K): feature k takes values 0..cardinalities[k]-1.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from numpy.typing import ArrayLike

from gdl_jax.errors import DataError


def check_codes(codes, cardinalities: Sequence[int]) -> np.ndarray:
    """The codes as an int array (N, K), or a DataError naming what is wrong."""
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[0] == 0:
        raise DataError(f"expected a non-empty (N, {len(cardinalities)}) array of codes, got shape {codes.shape}")
    if codes.shape[1] != len(cardinalities):
        raise DataError(f"expected {len(cardinalities)} features per observation, got {codes.shape[1]}")
    if not np.issubdtype(codes.dtype, np.integer):
        raise DataError(f"codes must be integers, got {codes.dtype}")
    bad = (codes < 0) | (codes >= np.asarray(cardinalities))
    if bad.any():
        n, k = np.argwhere(bad)[0]
        raise DataError(f"observation {n}, feature {k}: code {codes[n, k]} outside 0..{cardinalities[k] - 1}")
    return codes.astype(np.int32)


class Multinomial(struct.PyTreeNode):
    """One probability per point of the sample space (prod(cardinalities) cells)."""
    theta: jax.Array                              # (prod(cardinalities),)
    cardinalities: tuple[int, ...] = struct.field(pytree_node=False)

    @classmethod
    def fit(cls, codes, cardinalities: Sequence[int], pseudocount: float = 0.0) -> "Multinomial":
        """theta_j = (n_j + pseudocount) / (N + d * pseudocount), d = number of cells."""
        cards = tuple(int(c) for c in cardinalities)
        codes = check_codes(codes, cards)
        counts = np.bincount(np.ravel_multi_index(codes.T, cards), minlength=int(np.prod(cards)))
        theta = (counts + pseudocount) / (len(codes) + counts.size * pseudocount)
        return cls(theta=jnp.asarray(theta, jnp.float32), cardinalities=cards)

    @property
    def num_free_params(self) -> int:
        return int(np.prod(self.cardinalities)) - 1

    def prob(self, codes: ArrayLike) -> jax.Array:
        """p(x) of each row of codes (N, K): its cell of the joint table."""
        codes = check_codes(codes, self.cardinalities)
        return self.theta[jnp.ravel_multi_index(tuple(codes.T), self.cardinalities, mode="clip")]

    def log_prob(self, codes: ArrayLike) -> jax.Array:
        """log p(x) of each row of codes (N, K); -inf for a cell never observed without smoothing."""
        return jnp.log(self.prob(codes))

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        flat = jax.random.choice(key, self.theta.size, (n,), p=self.theta)
        return jnp.stack(jnp.unravel_index(flat, self.cardinalities), axis=-1)


class NaiveBayes(struct.PyTreeNode):
    """Independent features: p(x) = prod_k p(x_k); sum_k (L_k - 1) free parameters."""
    theta: jax.Array                              # (K, max L): p(x_k = l), zero-padded
    cardinalities: tuple[int, ...] = struct.field(pytree_node=False)

    @classmethod
    def fit(cls, codes, cardinalities: Sequence[int], pseudocount: float = 0.0) -> "NaiveBayes":
        """theta_kl = (n_kl + pseudocount) / (N + L_k * pseudocount)."""
        cards = tuple(int(c) for c in cardinalities)
        codes = check_codes(codes, cards)
        width = max(cards)
        counts = np.zeros((len(cards), width))
        for k, card in enumerate(cards):
            counts[k, :card] = np.bincount(codes[:, k], minlength=card) + pseudocount
        theta = counts / counts.sum(axis=1, keepdims=True)
        return cls(theta=jnp.asarray(theta, jnp.float32), cardinalities=cards)

    @property
    def num_free_params(self) -> int:
        return sum(self.cardinalities) - len(self.cardinalities)

    def marginal(self, k: int) -> jax.Array:
        return self.theta[k, :self.cardinalities[k]]

    def log_prob(self, codes: ArrayLike) -> jax.Array:
        """log p(x) of each row of codes (N, K): the sum of its features' log marginals."""
        codes = check_codes(codes, self.cardinalities)
        return _nb_log_prob(self.theta, jnp.asarray(codes))

    def prob(self, codes: ArrayLike) -> jax.Array:
        """p(x) of each row of codes (N, K): the product of its features' marginals."""
        return jnp.exp(self.log_prob(codes))

    def sample(self, key: jax.Array, n: int) -> jax.Array:
        """(n, K) codes, each feature drawn independently from its marginal."""
        logits = jnp.log(self.theta)  # padding and unseen values: log 0 = -inf, never drawn
        return jax.random.categorical(key, logits, axis=-1, shape=(n, len(self.cardinalities)))


@jax.jit
def _nb_log_prob(theta: jax.Array, codes: jax.Array) -> jax.Array:
    k = jnp.arange(codes.shape[1])
    return jnp.sum(jnp.log(theta[k, codes]), axis=-1)


def log_likelihood(model: Multinomial | NaiveBayes, codes: ArrayLike) -> float:
    """The data set's log-likelihood under `model`: sum over observations of log p(x) (nats)."""
    return float(jnp.sum(model.log_prob(codes)))
