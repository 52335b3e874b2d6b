"""gdl_jax: JAX/Flax reproductions of "Generative Deep Learning", chapters 1-4.

Importing the package does not import jax, so `gdl_jax.runtime.configure()` can still set
XLA flags before the backend starts.
"""

__version__ = "0.1.0"
