"""One construct per capability; the stack only composes them.

(Not named ``constructs``: that would shadow the ``constructs`` package when ``infra/app.py`` runs as a script.)
"""
