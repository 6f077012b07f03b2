//! Causal multi-head self-attention over packed `[q | k | v]` rows (`nn.MultiheadAttention` with
//! OpenAI CLIP's causal text mask) and its exact backward, per prompt and head. The prompts'
//! rows are stacked in one matrix for the linear layers; attention sees each prompt alone.

use rayon::prelude::*;

use crate::train::real::Real;

/// One prompt's rows inside the stacked `[rows, W]` matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seq {
    /// First row.
    pub start: usize,
    /// Rows (tokens up to and including EOT).
    pub len: usize,
}

/// Splits `buf` into consecutive pieces of the given sizes (the rest is dropped).
fn split_mut<T>(mut buf: &mut [T], sizes: impl Iterator<Item = usize>) -> Vec<&mut [T]> {
    let mut out = Vec::new();
    for n in sizes {
        let rest = std::mem::take(&mut buf);
        let (head, tail) = rest.split_at_mut(n.min(rest.len()));
        out.push(head);
        buf = tail;
    }
    out
}

/// Elements of the saved attention probabilities: `[heads, len, len]` per prompt.
pub fn probs_len(seqs: &[Seq], heads: usize) -> usize {
    seqs.iter().map(|s| heads * s.len * s.len).sum()
}

/// `a · b` with eight independent partial sums (the compiler vectorises it; one running sum
/// would serialise on the add latency).
#[inline]
fn dot<T: Real>(a: &[T], b: &[T]) -> T {
    let mut acc = [T::ZERO; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail = ca.remainder().iter().zip(cb.remainder()).fold(T::ZERO, |s, (&x, &y)| s + x * y);
    for (x, y) in ca.zip(cb) {
        for l in 0..8 {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().fold(tail, |s, &v| s + v)
}

#[inline]
fn axpy<T: Real>(alpha: T, x: &[T], y: &mut [T]) {
    y.iter_mut().zip(x).for_each(|(o, &v)| *o += alpha * v);
}

/// Causal attention of every prompt: `out` rows get `softmax(q kᵀ / √d + mask) v` per head;
/// `probs` keeps the softmax (zeros above the diagonal) for the backward pass.
///
/// # Shapes
/// `qkv`: `[rows, 3W]`; `out`: `[rows, W]`; `probs`: [`probs_len`]; `heads` divides `W`.
pub fn attention<T: Real>(qkv: &[T], seqs: &[Seq], width: usize, heads: usize, out: &mut [T], probs: &mut [T]) {
    let outs = split_mut(out, seqs.iter().map(|s| s.len * width));
    let ps = split_mut(probs, seqs.iter().map(|s| heads * s.len * s.len));
    seqs.par_iter().zip(outs).zip(ps).for_each(|((s, out), p)| {
        let rows = &qkv[s.start * 3 * width..(s.start + s.len) * 3 * width];
        attend_seq(rows, s.len, width, heads, out, p);
    });
}

/// One prompt: `qkv` `[t, 3W]` → `out` `[t, W]`, `probs` `[heads, t, t]`.
fn attend_seq<T: Real>(qkv: &[T], t: usize, w: usize, heads: usize, out: &mut [T], probs: &mut [T]) {
    let d = w / heads;
    let scale = T::ONE / T::from_usize(d).sqrt();
    let stride = 3 * w;
    for h in 0..heads {
        let p = &mut probs[h * t * t..(h + 1) * t * t];
        for i in 0..t {
            let q = &qkv[i * stride + h * d..][..d];
            let row = &mut p[i * t..(i + 1) * t];
            for (j, r) in row[..=i].iter_mut().enumerate() {
                *r = dot(q, &qkv[j * stride + w + h * d..][..d]) * scale;
            }
            let max = row[..=i].iter().fold(row[0], |m, &v| m.max(v));
            let mut sum = T::ZERO;
            for r in &mut row[..=i] {
                *r = (*r - max).exp();
                sum += *r;
            }
            row[..=i].iter_mut().for_each(|r| *r /= sum);
            row[i + 1..].fill(T::ZERO);
            let o = &mut out[i * w + h * d..][..d];
            o.fill(T::ZERO);
            for (j, &pij) in row[..=i].iter().enumerate() {
                axpy(pij, &qkv[j * stride + 2 * w + h * d..][..d], o);
            }
        }
    }
}

/// The gradient of [`attention`] with respect to `qkv`: from `dout` (`[rows, W]`) and the saved
/// `probs`, writes `dqkv` (`[rows, 3W]`, overwritten). With `dP = dO vᵀ`,
/// `dS = P ⊙ (dP − rowsum(P ⊙ dP))`: `dq = dS k / √d`, `dk = dSᵀ q / √d`, `dv = Pᵀ dO`.
#[allow(clippy::too_many_arguments)] // the forward's operands plus the two gradients
pub fn attention_backward<T: Real>(
    qkv: &[T],
    probs: &[T],
    dout: &[T],
    seqs: &[Seq],
    width: usize,
    heads: usize,
    dqkv: &mut [T],
) {
    let dqkvs = split_mut(dqkv, seqs.iter().map(|s| s.len * 3 * width));
    let mut at = 0;
    let offsets: Vec<usize> = seqs
        .iter()
        .map(|s| {
            let o = at;
            at += heads * s.len * s.len;
            o
        })
        .collect();
    seqs.par_iter().zip(offsets).zip(dqkvs).for_each(|((s, off), dqkv)| {
        let rows = &qkv[s.start * 3 * width..(s.start + s.len) * 3 * width];
        let dout = &dout[s.start * width..(s.start + s.len) * width];
        let p = &probs[off..off + heads * s.len * s.len];
        attend_seq_backward(rows, p, dout, s.len, width, heads, dqkv);
    });
}

/// One prompt's attention backward (see [`attention_backward`]).
fn attend_seq_backward<T: Real>(qkv: &[T], probs: &[T], dout: &[T], t: usize, w: usize, heads: usize, dqkv: &mut [T]) {
    let d = w / heads;
    let scale = T::ONE / T::from_usize(d).sqrt();
    let stride = 3 * w;
    let mut dp = vec![T::ZERO; t];
    dqkv.fill(T::ZERO);
    for h in 0..heads {
        let p = &probs[h * t * t..(h + 1) * t * t];
        let (qo, ko, vo) = (h * d, w + h * d, 2 * w + h * d);
        for i in 0..t {
            let g = &dout[i * w + h * d..][..d];
            let row = &p[i * t..=i * t + i];
            for (j, v) in dp[..=i].iter_mut().enumerate() {
                *v = dot(g, &qkv[j * stride + vo..][..d]);
            }
            let s = dot(row, &dp[..=i]);
            for (j, &pij) in row.iter().enumerate() {
                axpy(pij, g, &mut dqkv[j * stride + vo..][..d]);
                let ds = pij * (dp[j] - s) * scale;
                axpy(ds, &qkv[j * stride + ko..][..d], &mut dqkv[i * stride + qo..][..d]);
                axpy(ds, &qkv[i * stride + qo..][..d], &mut dqkv[j * stride + ko..][..d]);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::gradcheck::{check, dot, randn};
    use super::*;
    use crate::train::rng::Rng;

    const W: usize = 8;
    const HEADS: usize = 2;

    fn seqs() -> Vec<Seq> {
        vec![Seq { start: 0, len: 3 }, Seq { start: 3, len: 1 }, Seq { start: 4, len: 5 }]
    }

    fn forward(qkv: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let s = seqs();
        let mut out = vec![0.0; 9 * W];
        let mut probs = vec![0.0; probs_len(&s, HEADS)];
        attention(qkv, &s, W, HEADS, &mut out, &mut probs);
        (out, probs)
    }

    #[test]
    fn causal_attention_sees_only_earlier_tokens() {
        let mut rng = Rng::new(6);
        let qkv = randn(&mut rng, 9 * 3 * W, 1.0);
        let (out, probs) = forward(&qkv);
        // Each prompt's first row attends only to itself: its output is its own v.
        for start in [0, 3, 4] {
            let v = &qkv[start * 3 * W + 2 * W..start * 3 * W + 3 * W];
            assert!(out[start * W..(start + 1) * W].iter().zip(v).all(|(a, b)| (a - b).abs() < 1e-15));
        }
        // Probabilities: rows sum to 1, nothing above the diagonal.
        let mut at = 0;
        for s in seqs() {
            for row in probs[at..at + HEADS * s.len * s.len].chunks(s.len).enumerate() {
                let (i, row) = (row.0 % s.len, row.1);
                assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-12);
                assert!(row[i + 1..].iter().all(|&p| p == 0.0));
            }
            at += HEADS * s.len * s.len;
        }
        // Changing a later token leaves earlier outputs unchanged.
        let mut later = qkv.clone();
        later[(4 + 4) * 3 * W..].iter_mut().for_each(|v| *v += 1.0);
        assert_eq!(forward(&later).0[..(4 + 4) * W], out[..(4 + 4) * W]);
    }

    #[test]
    fn attention_gradient_matches_finite_differences() {
        let mut rng = Rng::new(7);
        let qkv = randn(&mut rng, 9 * 3 * W, 1.0);
        let c = randn(&mut rng, 9 * W, 1.0);
        let (_, probs) = forward(&qkv);
        let mut g = vec![1.0; qkv.len()];
        attention_backward(&qkv, &probs, &c, &seqs(), W, HEADS, &mut g);
        let err = check("attention", &qkv, &g, |x| dot(&c, &forward(x).0));
        eprintln!("causal attention: directional rel error {err:e}");
    }
}
