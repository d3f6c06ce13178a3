"""Kubernetes: project pod manifests (pure functions of a project, its quota and the site's
`KubernetesConfig`). The gateway, the only module that imports `kubernetes`, and the pod
reflector live here too."""
