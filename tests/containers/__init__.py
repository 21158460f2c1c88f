"""Every service image, run as a container the way Kubernetes runs it."""
