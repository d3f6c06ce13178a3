"""cocalc-k8s: a self-hosted, collaborative computing platform."""

__version__ = "0.1.0"
