"""The search-tree viewer (``stage=view``): self-contained HTML pages of search trees.

``html`` renders (pure: dicts in, strings out); ``pages`` finds a run's trees and results
and writes the pages. It reads tree JSON as written by ``rest_mcts.runtime.search_run`` and
imports nothing of the search itself. A tree the page could not draw (step texts that are
not strings, parent or children links that loop, ids that are not distinct integers) is
refused with one line naming the file and the node; NaN and infinite values are drawn, shown
as ``nan``, ``inf`` and ``-inf`` (``pages``).
"""

from rest_mcts.view.html import chosen_path, render_index_html, render_tree_html
from rest_mcts.view.pages import TreeFileError, load_tree, write_views

__all__ = ["TreeFileError", "chosen_path", "load_tree", "render_index_html", "render_tree_html",
           "write_views"]
