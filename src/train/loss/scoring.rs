//! Token-wise probabilities (METHOD.md B6, A4) in any [`Real`], with the weights `w` constant,
//! and their backward into the text embeddings. Both mixes follow
//! `tools/tokenclip_reference.py`'s `token_probabilities`:
//! - embeddings: `ñ_i = normalize(Σ_m w_im t_n^m)`, `ã_i` likewise,
//!   `(p_n, p_a) = softmax([⟨P_i, ñ_i⟩, ⟨P_i, ã_i⟩] / τ)`;
//! - probabilities: `p_a = Σ_m w_im softmax([⟨P_i, t_n^m⟩, ⟨P_i, t_a^m⟩] / τ)[1]`, `p_n = 1 − p_a`.
//!
//! Everything is expressed through `q_i = P_i [t_n; t_a]ᵀ` (2 dot products per kept subspace) and
//! the Gram matrices `t tᵀ`, so a token costs O(K·D) forward and backward.

use crate::clip::config::Mix;
use crate::train::real::Real;

use super::orth::NORM_EPS;

/// The (normalised) text embeddings and their Gram matrices.
pub(super) struct Text<T> {
    pub m: usize,
    pub d: usize,
    /// Normal then abnormal embeddings, `[2M, D]`.
    pub rows: Vec<T>,
    /// Gram matrices `t_n t_nᵀ` then `t_a t_aᵀ`, `[2, M, M]`.
    pub gram: Vec<T>,
}

impl<T: Real> Text<T> {
    pub fn new(n: &[T], a: &[T], m: usize, d: usize) -> Self {
        let rows: Vec<T> = n.iter().chain(a).copied().collect();
        let mut gram = vec![T::ZERO; 2 * m * m];
        for h in 0..2 {
            for i in 0..m {
                for j in 0..m {
                    let (ri, rj) = (&rows[(h * m + i) * d..][..d], &rows[(h * m + j) * d..][..d]);
                    gram[(h * m + i) * m + j] = ri.iter().zip(rj).map(|(&x, &y)| x * y).sum();
                }
            }
        }
        Text { m, d, rows, gram }
    }
}

/// Lanes of [`dot`]'s partial sums (independent chains the compiler can put in vector registers).
const LANES: usize = 8;

/// `⟨a, b⟩` with [`LANES`] partial sums.
pub(super) fn dot<T: Real>(a: &[f32], b: &[T]) -> T {
    let (ac, bc) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: T = ac.remainder().iter().zip(bc.remainder()).map(|(&x, &y)| T::from_f32(x) * y).sum();
    let mut acc = [T::ZERO; LANES];
    for (x, y) in ac.zip(bc) {
        for k in 0..LANES {
            acc[k] += T::from_f32(x[k]) * y[k];
        }
    }
    acc.iter().copied().sum::<T>() + tail
}

/// `softmax([n, a] / τ)` as `(p_n, p_a)`, max-subtracted as PyTorch's softmax.
pub(super) fn two_way<T: Real>(n: T, a: T, tau: T) -> (T, T) {
    let (x, y) = (n / tau, a / tau);
    let mx = x.max(y);
    let (ex, ey) = ((x - mx).exp(), (y - mx).exp());
    let s = ex + ey;
    (ex / s, ey / s)
}

/// Per-token forward results kept for the backward.
pub(super) struct Tokens<T> {
    /// `[N, 2M]` dot products `⟨P_i, t^j⟩`.
    pub q: Vec<T>,
    /// `[N]` normal and abnormal probabilities.
    pub p_n: Vec<T>,
    pub p_a: Vec<T>,
}

/// `(a, ν, ν̃)` of one channel: `a = Σ w_m q_m`, `ν = |Σ w_m t^m|`, `ν̃ = max(ν, eps)`.
fn mixed<T: Real>(w: &[f32], q: &[T], gram: &[T]) -> (T, T, T) {
    let m = w.len();
    let a: T = w.iter().zip(q).map(|(&wm, &qm)| T::from_f32(wm) * qm).sum();
    let mut nn = T::ZERO;
    for (i, &wi) in w.iter().enumerate().filter(|(_, &v)| v != 0.0) {
        let row: T = w.iter().zip(&gram[i * m..(i + 1) * m]).map(|(&wj, &g)| T::from_f32(wj) * g).sum();
        nn += T::from_f32(wi) * row;
    }
    let nu = nn.max(T::ZERO).sqrt();
    (a, nu, nu.max(T::from_f64(NORM_EPS)))
}

/// Probabilities of every token of `patches` (`[N, D]`) with weights `w` (`[N, M]`). Only the
/// subspaces a token keeps (w ≠ 0) are scored.
pub(super) fn forward<T: Real>(patches: &[f32], w: &[f32], text: &Text<T>, tau: T, mix: Mix) -> Tokens<T> {
    let (m, d) = (text.m, text.d);
    let n = patches.len() / d;
    let mut q = vec![T::ZERO; n * 2 * m];
    let (mut p_n, mut p_a) = (vec![T::ZERO; n], vec![T::ZERO; n]);
    for (i, (p, (qi, wi))) in patches.chunks_exact(d).zip(q.chunks_exact_mut(2 * m).zip(w.chunks_exact(m))).enumerate()
    {
        for j in (0..m).filter(|&j| wi[j] != 0.0) {
            qi[j] = dot(p, &text.rows[j * d..(j + 1) * d]);
            qi[m + j] = dot(p, &text.rows[(m + j) * d..(m + j + 1) * d]);
        }
        (p_n[i], p_a[i]) = match mix {
            Mix::Embeddings => {
                let (an, _, dn) = mixed(wi, &qi[..m], &text.gram[..m * m]);
                let (aa, _, da) = mixed(wi, &qi[m..], &text.gram[m * m..]);
                two_way(an / dn, aa / da, tau)
            }
            Mix::Probabilities => {
                let pa: T = (0..m).map(|j| T::from_f32(wi[j]) * two_way(qi[j], qi[m + j], tau).1).sum();
                (T::ONE - pa, pa)
            }
        };
    }
    Tokens { q, p_n, p_a }
}

/// Gradient parts of one feature map: `rows` (`[2M, D]`) gets `Σ_i K_ij P_i`, `gram`
/// (`[2, M, M]`) the coefficients `B` of the `−Σ_m' B_mm' t^m'` terms that come through the norms.
pub(super) struct TokenGrad<T> {
    pub rows: Vec<T>,
    pub gram: Vec<T>,
}

/// Backward of [`forward`] from `gp_i = dL/dp_a,i − dL/dp_n,i` (`[N]`).
pub(super) fn backward<T: Real>(
    patches: &[f32],
    w: &[f32],
    text: &Text<T>,
    tau: T,
    mix: Mix,
    tok: &Tokens<T>,
    gp: &[T],
) -> TokenGrad<T> {
    let (m, d) = (text.m, text.d);
    let mut out = TokenGrad { rows: vec![T::ZERO; 2 * m * d], gram: vec![T::ZERO; 2 * m * m] };
    let mut k = vec![T::ZERO; 2 * m];
    for (i, &g) in gp.iter().enumerate() {
        let (wi, qi) = (&w[i * m..(i + 1) * m], &tok.q[i * 2 * m..(i + 1) * 2 * m]);
        match mix {
            Mix::Embeddings => {
                // p_a = σ(z), p_n = σ(−z), z = (cos_a − cos_n)/τ: dL/dz = gp · p_a · p_n.
                let dz = g * tok.p_a[i] * tok.p_n[i] / tau;
                for (h, dcos) in [(0, -dz), (1, dz)] {
                    let gram = &text.gram[h * m * m..(h + 1) * m * m];
                    let (a, nu, den) = mixed(wi, &qi[h * m..(h + 1) * m], gram);
                    for (kj, &wj) in k[h * m..(h + 1) * m].iter_mut().zip(wi) {
                        *kj = dcos * T::from_f32(wj) / den;
                    }
                    if nu.to_f64() >= NORM_EPS {
                        // d(a/ν)/dt^m through ν = −(a/ν³) w_m Σ_m' w_m' t^m'.
                        let c = dcos * a / (nu * nu * nu);
                        let b = &mut out.gram[h * m * m..(h + 1) * m * m];
                        for (r, &wr) in wi.iter().enumerate().filter(|(_, &v)| v != 0.0) {
                            for (bv, &ws) in b[r * m..(r + 1) * m].iter_mut().zip(wi) {
                                *bv += c * T::from_f32(wr) * T::from_f32(ws);
                            }
                        }
                    }
                }
            }
            Mix::Probabilities => {
                // p_a = Σ w_m σ(z_m), z_m = (q_a,m − q_n,m)/τ, p_n = 1 − p_a.
                for j in 0..m {
                    let (pn, pa) = two_way(qi[j], qi[m + j], tau);
                    let dz = g * T::from_f32(wi[j]) * pa * pn / tau;
                    (k[j], k[m + j]) = (-dz, dz);
                }
            }
        }
        let p = &patches[i * d..(i + 1) * d];
        for (row, &kj) in out.rows.chunks_exact_mut(d).zip(&k).filter(|(_, &kj)| kj != T::ZERO) {
            for (acc, &pc) in row.iter_mut().zip(p) {
                *acc += kj * T::from_f32(pc);
            }
        }
    }
    out
}

impl<T: Real> TokenGrad<T> {
    /// Adds these parts to `gn`, `ga` (`[M, D]` each, w.r.t. the normalised embeddings).
    pub fn add_to(&self, text: &Text<T>, gn: &mut [T], ga: &mut [T]) {
        let (m, d) = (text.m, text.d);
        for (h, g) in [(0, gn), (1, ga)] {
            for j in 0..m {
                let row = &mut g[j * d..(j + 1) * d];
                for (v, &x) in row.iter_mut().zip(&self.rows[(h * m + j) * d..][..d]) {
                    *v += x;
                }
                for jj in 0..m {
                    let b = self.gram[(h * m + j) * m + jj];
                    if b != T::ZERO {
                        for (v, &t) in row.iter_mut().zip(&text.rows[(h * m + jj) * d..][..d]) {
                            *v -= b * t;
                        }
                    }
                }
            }
        }
    }
}
