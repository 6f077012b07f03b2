//! L2 normalisation with its backward, and the orthogonality term L_orth (METHOD.md B2).

use crate::train::real::Real;

/// `F.normalize`'s floor on the norm.
pub(super) const NORM_EPS: f64 = 1e-12;

/// Rows of `t` (`[m, d]`) divided by their norms (floored at 1e-12), and the floored norms.
pub(super) fn normalize_rows<T: Real>(t: &[T], m: usize, d: usize) -> (Vec<T>, Vec<T>) {
    let mut out = t.to_vec();
    let mut norms = Vec::with_capacity(m);
    for row in out.chunks_exact_mut(d) {
        let n = row.iter().map(|&v| v * v).sum::<T>().sqrt().max(T::from_f64(NORM_EPS));
        row.iter_mut().for_each(|v| *v /= n);
        norms.push(n);
    }
    (out, norms)
}

/// Backward of `u = v / |v|` for one vector: `(g − u ⟨u, g⟩) / |v|` (for |v| above the floor).
pub(super) fn normalize_backward<T: Real>(g: &[T], u: &[T], norm: T, out: &mut [T]) {
    let dot: T = u.iter().zip(g).map(|(&a, &b)| a * b).sum();
    for ((o, &gi), &ui) in out.iter_mut().zip(g).zip(u) {
        *o = (gi - ui * dot) / norm;
    }
}

/// The gradient w.r.t. the raw rows from the gradient `g` w.r.t. the normalised rows `u`.
pub(super) fn project_back<T: Real>(g: &[T], u: &[T], norms: &[T], d: usize) -> Vec<T> {
    let mut out = vec![T::ZERO; g.len()];
    for (((o, gr), ur), &n) in out.chunks_exact_mut(d).zip(g.chunks_exact(d)).zip(u.chunks_exact(d)).zip(norms) {
        normalize_backward(gr, ur, n, o);
    }
    out
}

/// L_orth and the mean off-diagonal cosine.
pub(super) struct Orthogonality {
    /// Mean over ordered pairs m ≠ m' of `⟨n^m, n^m'⟩² + ⟨a^m, a^m'⟩²`.
    pub loss: f64,
    /// Mean of `⟨n^m, n^m'⟩` and `⟨a^m, a^m'⟩` over the same pairs (signed).
    pub mean_cosine: f64,
}

/// L_orth of the normalised embeddings `n`, `a` (`[m, d]`); adds `weight · dL_orth` to `gn`, `ga`.
/// Both are 0 when m = 1 (no pairs).
pub(super) fn orthogonality<T: Real>(
    n: &[T],
    a: &[T],
    m: usize,
    d: usize,
    weight: T,
    gn: &mut [T],
    ga: &mut [T],
) -> Orthogonality {
    if m < 2 {
        return Orthogonality { loss: 0.0, mean_cosine: 0.0 };
    }
    let pairs = T::from_usize(m * (m - 1));
    let (mut loss, mut cos) = (T::ZERO, T::ZERO);
    for (t, g) in [(n, gn), (a, ga)] {
        for i in 0..m {
            for j in (0..m).filter(|&j| j != i) {
                let (ti, tj) = (&t[i * d..(i + 1) * d], &t[j * d..(j + 1) * d]);
                let c: T = ti.iter().zip(tj).map(|(&x, &y)| x * y).sum();
                loss += c * c;
                cos += c;
                // Each unordered pair appears twice: d/dt_i of Σ_(ordered) c² is 4 Σ_j c_ij t_j.
                let k = weight * T::from_f64(4.0) * c / pairs;
                for (gv, &y) in g[i * d..(i + 1) * d].iter_mut().zip(tj) {
                    *gv += k * y;
                }
            }
        }
    }
    Orthogonality { loss: (loss / pairs).to_f64(), mean_cosine: (cos / (pairs * T::from_f64(2.0))).to_f64() }
}
