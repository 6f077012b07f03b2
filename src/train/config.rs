//! Training hyperparameters (METHOD.md A5 and B; defaults from there), stored with every
//! checkpoint so `--resume` continues exactly the same run.

use serde::{Deserialize, Serialize};

use crate::clip::config::DetectionConfig;

use super::adam::AdamConfig;

/// Everything that defines a training run besides its data and base model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Scoring hyperparameters (M-independent): K, ε, Sinkhorn, mix, score mode, τ, σ.
    pub detection: DetectionConfig,
    /// Textual subspaces M.
    pub subspaces: usize,
    /// Learned context tokens per prompt.
    pub context_tokens: usize,
    /// Text layers with deep prompts (clamped to the tower's depth − 1).
    pub deep_layers: usize,
    /// Positions each deep prompt overwrites.
    pub deep_tokens: usize,
    /// Standard deviation of the prompts' normal initialisation (AnomalyCLIP: 0.02).
    pub init_std: f32,
    /// Weight of the pixel terms (focal + two Dice), averaged over feature layers.
    pub lambda_local: f32,
    /// Weight of the orthogonality term.
    pub lambda_orth: f32,
    /// The optimiser.
    pub adam: AdamConfig,
    /// Passes over the data.
    pub epochs: usize,
    /// Images per step.
    pub batch: usize,
    /// Seed of initialisation and shuffling.
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            detection: DetectionConfig::default(),
            subspaces: 4,
            context_tokens: 12,
            deep_layers: 8,
            deep_tokens: 4,
            init_std: 0.02,
            lambda_local: 4.0,
            lambda_orth: 0.1,
            adam: AdamConfig::default(),
            epochs: 15,
            batch: 8,
            seed: 111,
        }
    }
}
