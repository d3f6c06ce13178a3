"""What cocalc-k8s adds to Jupyter inside a project (see `cocalc_jupyter.identity`)."""
