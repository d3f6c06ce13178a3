"""``python -m cocalc_k8s.agent``: see `cocalc_k8s.agent.server`."""

from cocalc_k8s.agent.server import main

if __name__ == "__main__":
    main()
