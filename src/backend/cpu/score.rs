//! CPU twin of `shaders/score.wgsl`: token-wise abnormal probabilities (METHOD.md B6, A4).

use crate::backend::ScoreMix;

/// `F.normalize`'s floor on the norm.
const NORM_EPS: f32 = 1e-12;

/// `softmax([normal, abnormal] / τ)[abnormal]`, max-subtracted as PyTorch's softmax.
pub fn abnormal_probability(normal: f32, abnormal: f32, temperature: f32) -> f32 {
    let (a, b) = (normal / temperature, abnormal / temperature);
    let m = a.max(b);
    let (ea, eb) = ((a - m).exp(), (b - m).exp());
    eb / (ea + eb)
}

/// One token's abnormal probability from its patch embedding `p` (`[D]`), its subspace weights
/// `w` (`[M]`) and the text embeddings `t_n`, `t_a` (`[M, D]`); see `Backend::token_probabilities`.
pub fn token_probability(p: &[f32], w: &[f32], t_n: &[f32], t_a: &[f32], temperature: f32, mix: ScoreMix) -> f32 {
    let d = p.len();
    match mix {
        ScoreMix::Embeddings => {
            let (mut nn, mut pn, mut aa, mut pa) = (0.0f32, 0.0f32, 0.0f32, 0.0f32);
            for (c, &pc) in p.iter().enumerate() {
                let (mut un, mut ua) = (0.0f32, 0.0f32);
                for (j, &wj) in w.iter().enumerate() {
                    un += wj * t_n[j * d + c];
                    ua += wj * t_a[j * d + c];
                }
                nn += un * un;
                pn += pc * un;
                aa += ua * ua;
                pa += pc * ua;
            }
            abnormal_probability(pn / nn.sqrt().max(NORM_EPS), pa / aa.sqrt().max(NORM_EPS), temperature)
        }
        ScoreMix::Probabilities => w
            .iter()
            .enumerate()
            .map(|(j, &wj)| {
                let dot = |t: &[f32]| p.iter().zip(&t[j * d..(j + 1) * d]).map(|(a, b)| a * b).sum::<f32>();
                wj * abnormal_probability(dot(t_n), dot(t_a), temperature)
            })
            .sum(),
    }
}
