"""Clustering, and incomplete multi-view clustering: k-means, spectral clustering and solvers.

Every solver is a pure, jit-compiled function with fixed shapes: a missing (sample, view) entry
enters as a zero weight or a masked graph row, never by boolean indexing, so a sweep over masks,
rates and seeds is one `jax.vmap`-ed program. Scoring a clustering against labels is in
`lqmm.metrics` (`clustering_accuracy`, `normalized_mutual_info`, ...).
"""

from lqmm.cluster import anchor_graph
from lqmm.cluster import factorization
from lqmm.cluster import graph_consensus
from lqmm.cluster import graphs
from lqmm.cluster import kmeans as kmeans_lib
from lqmm.cluster import late_fusion as late_fusion_lib
from lqmm.cluster import online
from lqmm.cluster import solvers
from lqmm.cluster.anchor_graph import AnchorGraphFactors
from lqmm.cluster.anchor_graph import fimvc_via
from lqmm.cluster.factorization import DAIMCFactors
from lqmm.cluster.factorization import daimc
from lqmm.cluster.factorization import daimc_init
from lqmm.cluster.factorization import daimc_objective
from lqmm.cluster.factorization import MICFactors
from lqmm.cluster.factorization import mic
from lqmm.cluster.factorization import mic_init
from lqmm.cluster.factorization import mic_weights
from lqmm.cluster import spectral
from lqmm.cluster.graph_consensus import IMSCAGLFactors
from lqmm.cluster.graph_consensus import PICFusion
from lqmm.cluster.graph_consensus import adaptive_neighbour_graph
from lqmm.cluster.graph_consensus import imsc_agl
from lqmm.cluster.graph_consensus import knn_graph
from lqmm.cluster.graph_consensus import pic
from lqmm.cluster.graph_consensus import project_rows_to_simplex
from lqmm.cluster.graph_consensus import singular_value_threshold
from lqmm.cluster.graphs import batch_adjacency
from lqmm.cluster.graphs import knn_neighbours
from lqmm.cluster.kmeans import KMeansResult
from lqmm.cluster.kmeans import assign
from lqmm.cluster.kmeans import kmeans
from lqmm.cluster.kmeans import kmeans_plus_plus
from lqmm.cluster.kmeans import squared_distances
from lqmm.cluster.spectral import spectral_clustering
from lqmm.cluster.late_fusion import LateFusion
from lqmm.cluster.late_fusion import base_partitions
from lqmm.cluster.late_fusion import cosine_kernels
from lqmm.cluster.late_fusion import late_fusion
from lqmm.cluster.online import OPIMCResult
from lqmm.cluster.online import opimc
from lqmm.cluster.solvers import SolverResult
from lqmm.cluster.solvers import normalize_samples
from lqmm.cluster.solvers import raise_if_not_finite
from lqmm.cluster.spectral import spectral_embedding

__all__ = [
    'AnchorGraphFactors', 'DAIMCFactors', 'IMSCAGLFactors', 'KMeansResult', 'LateFusion',
    'MICFactors', 'OPIMCResult', 'PICFusion', 'SolverResult', 'adaptive_neighbour_graph',
    'anchor_graph', 'assign', 'base_partitions', 'batch_adjacency', 'cosine_kernels', 'daimc',
    'daimc_init', 'daimc_objective', 'factorization', 'fimvc_via', 'graph_consensus', 'graphs',
    'imsc_agl', 'kmeans', 'kmeans_lib', 'kmeans_plus_plus', 'knn_graph', 'knn_neighbours',
    'late_fusion', 'late_fusion_lib', 'mic', 'mic_init', 'mic_weights', 'normalize_samples',
    'online', 'opimc', 'pic', 'project_rows_to_simplex', 'raise_if_not_finite',
    'singular_value_threshold', 'solvers', 'spectral', 'spectral_clustering', 'spectral_embedding',
    'squared_distances',
]
