"""Paperfeed's HTTP edge: the Flask app factory, blueprints, schemas, auth and errors.

``create_app`` builds the WSGI app; gunicorn serves ``server.wsgi:app``.
"""
