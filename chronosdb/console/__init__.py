"""The web console's static assets (package data, served by ``chronosdb.server.handlers.console``).

Everything here is plain HTML, CSS and ES modules written for this project: no build step, no
third-party code, so ``pip install .`` works on a machine without Node.js.

* ``index.html``  the single page; it loads ``app.js`` as a module.
* ``app.js``      login, navigation between pages (``#/query``, ``#/browse``, ...), the shell.
* ``api.js``      the only module that talks to the server: ``/query``, ``/api/keys``,
                  ``/metrics``, ``/stream`` (an SSE reader over ``fetch``, because
                  ``EventSource`` cannot send an ``Authorization`` header).
* ``influxql.js`` a tokenizer for InfluxQL (highlighting, completion context, zoom rewriting).
* ``editor.js``   textarea + highlighted overlay, completion popup, history, error marks.
* ``chart.js``    the time-series chart (canvas): time ticks, legend, hover read-out, drag-zoom.
* ``pages/*.js``  one module per page: query, browse, databases, keys, cqs, status.
* ``console.css``, ``docs.css``, ``favicon.svg``.
"""
from pathlib import Path

ASSET_DIR = Path(__file__).resolve().parent
