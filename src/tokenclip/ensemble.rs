//! Training-free "ensemble" text embeddings (METHOD.md C, the CLIP-AC / WinCLIP prompt
//! ensemble as in AnomalyCLIP's `prompt_ensemble.py`): every state phrase of a class placed in
//! every template, encoded by plain CLIP, each embedding normalised, averaged per state and
//! normalised again. The result is an M = 1 detector from CLIP weights alone.

use crate::backend::Backend;
use crate::clip::text::TextTower;
use crate::clip::tokenizer::Tokenizer;
use crate::Error;

use super::prompts::{normalize, TextEmbeddings};

/// Phrases describing a normal object (`{}` = the class name).
pub const NORMAL_STATES: [&str; 7] =
    ["{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect", "{} without damage"];

/// Phrases describing an anomalous object.
pub const ABNORMAL_STATES: [&str; 5] = ["damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage"];

/// CLIP's sentence templates (`{}` = a state phrase).
pub const TEMPLATES: [&str; 35] = [
    "a bad photo of a {}.",
    "a low resolution photo of the {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of my {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a photo of one {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a large {}.",
    "a blurry photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "a dark photo of a {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
];

/// The class name used when none is given.
pub const DEFAULT_CLASS_NAME: &str = "object";

/// Every sentence of one state list for `class_name`, states outermost.
pub fn sentences(states: &[&str], class_name: &str) -> Vec<String> {
    states
        .iter()
        .flat_map(|s| {
            let phrase = s.replace("{}", class_name);
            TEMPLATES.iter().map(move |t| t.replace("{}", &phrase))
        })
        .collect()
}

/// The ensemble's normal and abnormal embeddings (M = 1) for `class_name`.
pub async fn ensemble_embeddings<B: Backend>(
    be: &B,
    text: &TextTower<B>,
    class_name: &str,
) -> Result<TextEmbeddings, Error> {
    let tokenizer = Tokenizer::shared()?;
    let mut states = Vec::with_capacity(2);
    for list in [&NORMAL_STATES[..], &ABNORMAL_STATES[..]] {
        let mut sum: Vec<f32> = Vec::new();
        let all = sentences(list, class_name);
        for s in &all {
            let ids = tokenizer.tokenize(s, text.config().context_length);
            let mut t = be.read(&text.encode_tokens(be, &ids)?).await?;
            normalize(&mut t);
            if sum.is_empty() {
                sum = vec![0.0; t.len()];
            }
            sum.iter_mut().zip(&t).for_each(|(a, b)| *a += b);
        }
        let n = all.len() as f32;
        sum.iter_mut().for_each(|v| *v /= n);
        normalize(&mut sum);
        states.push(sum);
    }
    let abnormal = states.pop().unwrap_or_default();
    let normal = states.pop().unwrap_or_default();
    let dim = normal.len();
    Ok(TextEmbeddings { normal, abnormal, subspaces: 1, dim })
}
