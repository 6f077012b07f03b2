//! Timing of one text-encoder training step (forward and backward over all `2M` prompts), for
//! `tokenclip bench` and the trainer's progress report. No test asserts on time.

use std::time::{Duration, Instant};

use crate::tokenclip::prompts::Prompts;
use crate::train::real::Real;
use crate::Error;

use super::TextModel;

/// Median times of one text step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TextStepTiming {
    /// The forward pass with its tape.
    pub forward: Duration,
    /// The backward pass into the prompts.
    pub backward: Duration,
}

/// Runs `reps` forward + backward passes of `prompts` (after one untimed warm-up) with a fixed
/// cotangent on the embeddings and returns the median time of each half.
///
/// # Errors
/// As [`TextModel::forward`].
pub fn bench_text_step<T: Real>(model: &TextModel<T>, prompts: &Prompts, reps: usize) -> Result<TextStepTiming, Error> {
    let mut fwd = Vec::with_capacity(reps);
    let mut bwd = Vec::with_capacity(reps);
    for rep in 0..=reps {
        let t0 = Instant::now();
        let (out, tape) = model.forward(prompts)?;
        let t1 = Instant::now();
        let dn: Vec<T> = out.normal.iter().map(|&v| v - T::from_f32(0.01)).collect();
        let da: Vec<T> = out.abnormal.iter().map(|&v| v + T::from_f32(0.01)).collect();
        let t2 = Instant::now();
        let grads = model.backward(&tape, &dn, &da)?;
        let t3 = Instant::now();
        std::hint::black_box(grads);
        if rep > 0 {
            fwd.push(t1 - t0);
            bwd.push(t3 - t2);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v.get(v.len() / 2).copied().unwrap_or_default()
    };
    Ok(TextStepTiming { forward: median(&mut fwd), backward: median(&mut bwd) })
}
