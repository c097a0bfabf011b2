"""Scoring back-ends.  Importing the package registers the built-in ones
(``cosine``, ``plda``); see :mod:`pyutils.backends.base` for adding one."""
from pyutils.backends import cosine as _cosine, plda as _plda  # noqa: F401  (registration)
