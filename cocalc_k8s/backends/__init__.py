"""Where projects run: the backend interface and its local and Kubernetes implementations."""
