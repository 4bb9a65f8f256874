"""Studies: a scenario's profiles and every point of its grid and sweep simulated, a store
of finished points (resume), execution here, in local processes (``--jobs``) or on a Dask
cluster; the break-even search and time to accuracy built on them."""
