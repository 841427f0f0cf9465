"""The dashboard: one HTML page served at ``/`` and its scripts, styles and chart library
under ``/dashboard/``, every file from this package (nothing from a CDN); and the JSON
shapes of the aggregate endpoints it reads (``schemas``).

The page is a single-page app with hash routes (``/#/sweeps/3``, ``/#/trials/17``) that
reads the REST API under ``/api/v1``; neither the page nor its assets need the token.
The aggregate endpoints' queries are ``queries``.
"""
