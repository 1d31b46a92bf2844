"""Paperfeed's domain: paper identity, the event store on Redis, trending, training and ranking.

Nothing in this package imports Flask; the HTTP edge lives in :mod:`server`.
"""
