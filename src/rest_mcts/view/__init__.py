"""The search-tree viewer (``stage=view``): self-contained HTML pages of search trees.

``html`` renders (pure: dicts in, strings out); ``replay`` reads MCTS*'s per-iteration trace
for the page's replay; ``pages`` finds a run's trees and results and writes the pages;
``folders`` tells what a target is and writes the pages of every run of a loop's or a
multirun's folder, with an index over them.
It reads tree JSON as written by ``rest_mcts.runtime.search_run`` and imports nothing of the
search itself. A tree the page could not draw (step texts that are not strings, parent or
children links that loop, ids that are not distinct integers, a trace that does not parse)
is refused with one line naming the file and the node or trace line; NaN and infinite
values are drawn, shown as ``nan``, ``inf`` and ``-inf`` (``pages``).
"""

from rest_mcts.view.html import (
    chosen_path,
    render_folders_html,
    render_index_html,
    render_tree_html,
)
from rest_mcts.view.folders import write_views
from rest_mcts.view.pages import TreeFileError, load_tree
from rest_mcts.view.replay import parse_trace

__all__ = ["TreeFileError", "chosen_path", "load_tree", "parse_trace", "render_folders_html",
           "render_index_html", "render_tree_html", "write_views"]
