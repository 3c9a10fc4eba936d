"""A minimal kubelet for the local control plane (see __main__.py): run it as `python -m podrunner`
with hack/ on PYTHONPATH (hack/localcluster.py does). Modules: env (environment and commands),
volumes (mount plan), probe, container (one process), pod (one pod's lifecycle)."""
