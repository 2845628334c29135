"""What surrounds one run: processes (distributed), signals, run directories, sweeps and their jobs.

Nothing here imports cnnbench beyond `cnnbench.errors`: the engine and the commands build on it.
"""
