"""The web page: ``flamefit serve`` (FastAPI + uvicorn), top layer above :mod:`flamefit.fitting`.

A visitor uploads a photo, the server validates it and queues a fit, the page follows its
progress through server-sent events, shows the overlay and the textured head (three.js,
vendored in ``static/vendor/three``) and offers the result files for download. Needs the
``web`` extra: ``pip install 'flamefit[web]'``.
"""
