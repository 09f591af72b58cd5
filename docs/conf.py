"""Sphinx configuration: the user guide and the API reference (autodoc)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import etcdwamp  # noqa: E402

project = "etcdwamp"
author = "The etcdwamp authors"
copyright = "2026, The etcdwamp authors"
version = release = etcdwamp.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.viewcode",
]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Twisted's and Autobahn's own types appear in signatures; they are not ours to document.
nitpicky = False
