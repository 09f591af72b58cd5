"""txaioetcd's module name for the persistent maps: ``from txaioetcd import _pmap as pmap``
becomes ``from etcdwamp import _pmap as pmap`` (new code imports :mod:`etcdwamp.pmap`)."""

from .pmap import *  # noqa: F403
from .pmap import __all__  # noqa: F401
