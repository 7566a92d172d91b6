//! Token-priority graphs: the data generator of `data_utils.py` (official NTP code) and the
//! per-last-token priority graphs with their strongly connected components.
//!
//! Data: K tokens with unit embeddings in R^d, n sequences of T token ids (all distinct when
//! T ≤ K, each sequence drawn independently: `rep_seq=False`), and one label per sequence,
//! drawn uniformly from the K tokens and redrawn from the sequence's own positions when the
//! sequence does not contain it (`check_label=True`: a realisable label).
//!
//! Graph G^(k): for every sequence i whose last token is k, an edge y_i → x_{i,t} for every
//! other token x_{i,t} ≠ y_i of the sequence ("the label has priority over every other token
//! it was chosen against"). Its SCCs (Tarjan, petgraph) order the tokens: higher SCCs (closer
//! to the sources of the condensation) win.

use anyhow::{bail, Result};
use petgraph::graph::DiGraph;
use rand::seq::SliceRandom;
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::linalg::{axpy, dot, gaussian, norm, orthonormal_basis};

/// How token embeddings are drawn (`token_choice` in the official code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Embedding {
    /// K orthonormal vectors (needs K ≤ d).
    Ortho,
    /// Unit vectors with pairwise correlation ρ: √ρ·c₀ + √(1−ρ)·c_{k+1} for orthonormal c
    /// (needs K + 1 ≤ d; the official code builds K − 1 such tokens from K orthonormal ones).
    EquiCorr,
    /// Independent Gaussian vectors normalised to unit length (the notebooks' choice).
    #[default]
    Random,
}

/// Which priority graphs a data set must have (rejection sampling as in `next_data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum GraphKind {
    /// At least one SCC with more than one token (`check_asyc=False` in the notebooks).
    #[default]
    Cyclic,
    /// Every SCC a single token (`check_asyc=True`).
    Acyclic,
    /// No condition.
    Any,
}

/// Data-set parameters (`[data]` of an NTP experiment).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// Sequences.
    pub n: usize,
    /// Sequence length.
    #[serde(rename = "T")]
    pub t: usize,
    /// Vocabulary size.
    #[serde(rename = "K")]
    pub k: usize,
    /// Embedding dimension.
    pub d: usize,
    /// Embedding kind.
    #[serde(default)]
    pub embedding: Embedding,
    /// Correlation of `equi-corr` embeddings.
    #[serde(default = "default_rho")]
    pub rho: f64,
    /// Required graph structure.
    #[serde(default)]
    pub graph: GraphKind,
}

fn default_rho() -> f64 {
    0.5
}

/// One generated data set.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    /// Embedding dimension.
    pub d: usize,
    /// Embeddings, one unit vector per token.
    pub vocab: Vec<Vec<f64>>,
    /// Token ids, one row per sequence.
    pub seqs: Vec<Vec<usize>>,
    /// The label (next token) of each sequence.
    pub labels: Vec<usize>,
}

impl Dataset {
    /// Vocabulary size.
    pub fn k(&self) -> usize {
        self.vocab.len()
    }
    /// Last token of sequence `i`.
    pub fn last(&self, i: usize) -> usize {
        *self.seqs[i].last().expect("non-empty sequence")
    }
}

/// Draws embeddings of `k` tokens in R^d.
pub fn embeddings<R: Rng>(
    k: usize,
    d: usize,
    kind: Embedding,
    rho: f64,
    rng: &mut R,
) -> Result<Vec<Vec<f64>>> {
    let orthonormal = |m: usize, rng: &mut R| -> Vec<Vec<f64>> {
        // Gram–Schmidt of Gaussian vectors: Haar-distributed orthonormal rows (like QR).
        loop {
            let g: Vec<Vec<f64>> = (0..m).map(|_| (0..d).map(|_| gaussian(rng)).collect()).collect();
            let b = orthonormal_basis(&g, 1e-8);
            if b.len() == m {
                return b;
            }
        }
    };
    Ok(match kind {
        Embedding::Ortho => {
            if k > d {
                bail!("embedding = \"ortho\" needs K ≤ d (K = {k}, d = {d})");
            }
            orthonormal(k, rng)
        }
        Embedding::EquiCorr => {
            if k + 1 > d {
                bail!("embedding = \"equi-corr\" needs K + 1 ≤ d (K = {k}, d = {d})");
            }
            if !(0.0..1.0).contains(&rho) {
                bail!("rho must be in [0, 1), got {rho}");
            }
            let c = orthonormal(k + 1, rng);
            (0..k)
                .map(|i| {
                    let mut v: Vec<f64> = c[0].iter().map(|x| rho.sqrt() * x).collect();
                    axpy(&mut v, (1.0 - rho).sqrt(), &c[i + 1]);
                    v
                })
                .collect()
        }
        Embedding::Random => (0..k)
            .map(|_| {
                let v: Vec<f64> = (0..d).map(|_| gaussian(rng)).collect();
                let nv = norm(&v);
                v.into_iter().map(|x| x / nv).collect()
            })
            .collect(),
    })
}

/// One draw of sequences and labels over `k` tokens (no graph condition).
pub fn draw_sequences<R: Rng>(n: usize, t: usize, k: usize, rng: &mut R) -> (Vec<Vec<usize>>, Vec<usize>) {
    let mut seqs = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for _ in 0..n {
        let mut ids: Vec<usize> = (0..k).collect();
        ids.shuffle(rng);
        let seq: Vec<usize> = if t <= k {
            ids.truncate(t);
            ids
        } else {
            ids.extend((0..t - k).map(|_| rng.gen_range(0..k)));
            ids
        };
        let mut y = rng.gen_range(0..k);
        if !seq.contains(&y) {
            y = seq[rng.gen_range(0..t)];
        }
        seqs.push(seq);
        labels.push(y);
    }
    (seqs, labels)
}

/// Generates a data set, redrawing sequences and embeddings until the graph condition holds.
pub fn generate<R: Rng>(cfg: &DataConfig, rng: &mut R) -> Result<Dataset> {
    if cfg.n == 0 || cfg.t < 2 || cfg.k < 2 || cfg.d == 0 {
        bail!("need n ≥ 1, T ≥ 2, K ≥ 2, d ≥ 1");
    }
    for _ in 0..100_000 {
        let vocab = embeddings(cfg.k, cfg.d, cfg.embedding, cfg.rho, rng)?;
        let (seqs, labels) = draw_sequences(cfg.n, cfg.t, cfg.k, rng);
        let ds = Dataset { d: cfg.d, vocab, seqs, labels };
        let g = PriorityGraphs::build(&ds);
        let ok = match cfg.graph {
            GraphKind::Cyclic => g.is_cyclic(),
            GraphKind::Acyclic => !g.is_cyclic(),
            GraphKind::Any => true,
        };
        if ok {
            return Ok(ds);
        }
    }
    bail!("no data set with graph = {:?} in 100000 draws", cfg.graph)
}

/// The SCCs of G^(k) for one last token k.
#[derive(Debug, Clone, PartialEq)]
pub struct SccGraph {
    /// SCC id of every token (ids follow petgraph's Tarjan order).
    pub scc: Vec<usize>,
    /// Depth of each SCC id in the condensation DAG: the longest path from a source, so 0 is
    /// top priority and an edge always goes to a larger depth.
    pub depth: Vec<usize>,
    /// Size of each SCC.
    pub size: Vec<usize>,
    /// Edges (from, to) of G^(k), deduplicated.
    pub edges: Vec<(usize, usize)>,
}

impl SccGraph {
    /// Builds G over `k` nodes from `edges` and runs Tarjan.
    pub fn from_edges(k: usize, edges: &[(usize, usize)]) -> Self {
        let mut e: Vec<(usize, usize)> = edges.to_vec();
        e.sort_unstable();
        e.dedup();
        let mut g = DiGraph::<(), ()>::new();
        let nodes: Vec<_> = (0..k).map(|_| g.add_node(())).collect();
        for &(a, b) in &e {
            g.add_edge(nodes[a], nodes[b], ());
        }
        // Reverse topological order of the condensation.
        let sccs = petgraph::algo::tarjan_scc(&g);
        let mut scc = vec![0; k];
        for (id, c) in sccs.iter().enumerate() {
            for v in c {
                scc[v.index()] = id;
            }
        }
        let mut depth = vec![0usize; sccs.len()];
        for id in (0..sccs.len()).rev() {
            for v in &sccs[id] {
                for &(a, b) in e.iter().filter(|(a, _)| *a == v.index()) {
                    let (sa, sb) = (scc[a], scc[b]);
                    if sa != sb {
                        depth[sb] = depth[sb].max(depth[sa] + 1);
                    }
                }
            }
        }
        let size = sccs.iter().map(|c| c.len()).collect();
        Self { scc, depth, size, edges: e }
    }

    /// Whether tokens `a` and `b` share an SCC.
    pub fn same(&self, a: usize, b: usize) -> bool {
        self.scc[a] == self.scc[b]
    }

    /// Members of the SCC of token `a`, ascending.
    pub fn members(&self, a: usize) -> Vec<usize> {
        (0..self.scc.len()).filter(|&b| self.scc[b] == self.scc[a]).collect()
    }
}

/// G^(k) for every last token k that ends some sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorityGraphs {
    /// `graphs[k]` is `None` when no sequence ends with k.
    pub graphs: Vec<Option<SccGraph>>,
}

impl PriorityGraphs {
    /// Builds every G^(k) of a data set.
    pub fn build(ds: &Dataset) -> Self {
        let k = ds.k();
        let mut edges: Vec<Vec<(usize, usize)>> = vec![Vec::new(); k];
        let mut present = vec![false; k];
        for (i, seq) in ds.seqs.iter().enumerate() {
            let last = ds.last(i);
            present[last] = true;
            let y = ds.labels[i];
            if !seq.contains(&y) {
                continue; // unrealisable label: no edges (as in the official Tarjan class)
            }
            for &x in seq {
                if x != y {
                    edges[last].push((y, x));
                }
            }
        }
        let graphs =
            (0..k).map(|last| present[last].then(|| SccGraph::from_edges(k, &edges[last]))).collect();
        Self { graphs }
    }

    /// The graph of last token `k` (panics if no sequence ends with `k`).
    pub fn of(&self, k: usize) -> &SccGraph {
        self.graphs[k].as_ref().expect("graph of a last token that ends a sequence")
    }

    /// Whether some G^(k) has an SCC with more than one token.
    pub fn is_cyclic(&self) -> bool {
        self.graphs.iter().flatten().any(|g| g.size.iter().any(|&s| s > 1))
    }

    /// SCC rank of every position of sequence `i` relative to its label: 0 for the label's SCC
    /// (the top SCC of the sequence), else the depth difference (≥ 1).
    pub fn ranks(&self, ds: &Dataset, i: usize) -> Vec<usize> {
        let g = self.of(ds.last(i));
        let y = ds.labels[i];
        let dy = g.depth[g.scc[y]];
        ds.seqs[i]
            .iter()
            .map(|&x| if g.same(x, y) { 0 } else { g.depth[g.scc[x]].saturating_sub(dy).max(1) })
            .collect()
    }
}

/// The Gram matrix of the embeddings (for tests and reports).
pub fn gram(vocab: &[Vec<f64>]) -> Vec<Vec<f64>> {
    vocab.iter().map(|a| vocab.iter().map(|b| dot(a, b)).collect()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn scc_of_a_cycle_and_a_chain() {
        // 0 → 1 → 2 → 0 is one SCC; 2 → 3 → 4 a chain below it.
        let g = SccGraph::from_edges(5, &[(0, 1), (1, 2), (2, 0), (2, 3), (3, 4)]);
        assert!(g.same(0, 1) && g.same(1, 2) && !g.same(2, 3) && !g.same(3, 4));
        assert_eq!(g.depth[g.scc[0]], 0);
        assert_eq!(g.depth[g.scc[3]], 1);
        assert_eq!(g.depth[g.scc[4]], 2);
        assert_eq!(g.members(1), vec![0, 1, 2]);
    }

    #[test]
    #[allow(clippy::needless_range_loop)]
    fn generator_matches_the_official_rules() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        for graph in [GraphKind::Cyclic, GraphKind::Acyclic] {
            for embedding in [Embedding::Ortho, Embedding::EquiCorr, Embedding::Random] {
                let cfg = DataConfig { n: 6, t: 4, k: 6, d: 8, embedding, rho: 0.5, graph };
                let ds = generate(&cfg, &mut rng).unwrap();
                let g = PriorityGraphs::build(&ds);
                assert_eq!(g.is_cyclic(), graph == GraphKind::Cyclic);
                for (i, s) in ds.seqs.iter().enumerate() {
                    let mut u = s.clone();
                    u.sort();
                    u.dedup();
                    assert_eq!(u.len(), 4, "distinct tokens when T ≤ K");
                    assert!(s.contains(&ds.labels[i]), "realisable label");
                }
                let gr = gram(&ds.vocab);
                for a in 0..6 {
                    assert!((gr[a][a] - 1.0).abs() < 1e-12);
                    for b in 0..a {
                        match embedding {
                            Embedding::Ortho => assert!(gr[a][b].abs() < 1e-12),
                            Embedding::EquiCorr => assert!((gr[a][b] - 0.5).abs() < 1e-12),
                            Embedding::Random => {}
                        }
                    }
                }
            }
        }
    }
}
