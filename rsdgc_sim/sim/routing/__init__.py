"""Routes: which directed links a transfer crosses, one pair at a time or a whole pattern.

The routing *policy* (ECMP hash over equal-cost paths in numeric node order, dimension
order on direct networks) is described in :mod:`rsdgc_sim.sim.topology`; this package
implements it, once per shape of network, a module each:

* :mod:`.switched`: :class:`StarRouter` (``switch``), :class:`TreeRouter` (``tree``),
  :class:`FatTreeRouter` (``fat_tree``), :class:`TwoLevelRouter` (``two_level``): hosts
  hang off switches and routes are a handful of links, computed in O(1) per pair from the
  structure and for a whole pattern at once with numpy;
* :mod:`.torus`: :class:`TorusRouter` (``torus2d``, and ``ring`` as a torus of one row): a
  route is up to two arcs of rings (a row, then a column), possibly thousands of links
  long; a pattern's link loads come from difference arrays and its most loaded link per
  route from a sparse table (range maximum), so a pattern costs O(p log p) whatever the
  route lengths;
* :mod:`.graph`: :class:`GraphRouter`: any other graph (topology files): the shortest
  paths counted by one breadth-first search per destination (cached, within a budget of
  visits), the flow's path found by walking the counts, never by listing the paths.

Every router answers :meth:`~Router.route_links` (one pair, in path order),
:meth:`~Router.routes_links` (many pairs) and :meth:`~Router.pattern_cost` (a pattern: per
transfer its route latency, seconds per byte on its most loaded link and hops, and the
largest number of the pattern's transfers on one link).

(:mod:`.ecmp`: the flow hash and the numeric node order; :mod:`.base`: :class:`Router` and
:class:`PatternCost`.)
"""

from .base import PatternCost, Router, cost_from_links
from .ecmp import ecmp_hash, ecmp_hash_array, natural_key
from .graph import GRAPH_SEARCH_BUDGET, GraphRouter
from .switched import FatTreeRouter, StarRouter, TreeRouter, TwoLevelRouter
from .torus import TorusRouter

__all__ = ["GRAPH_SEARCH_BUDGET", "FatTreeRouter", "GraphRouter", "PatternCost", "Router",
           "StarRouter", "TorusRouter", "TreeRouter", "TwoLevelRouter", "cost_from_links",
           "ecmp_hash", "ecmp_hash_array", "natural_key"]
