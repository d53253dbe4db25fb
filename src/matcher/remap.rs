//! Hot reload: which rules of a new rule set continue rules of the old one, so that the state
//! and buffered hits of unchanged rules survive a reload.
//!
//! A rule continues when it has the same name (id, else title) and the same content (the hash
//! an alert quotes as `analytic.version`); a correlation must also group by the same fields
//! and have as many stages (a pipeline change can alter those without touching the text).
//! Anything else starts empty: its state is dropped and counted.

use std::collections::HashMap;

use super::RuleSet;
use crate::vocab::Target;

/// Old target index to new, per kind.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TargetMap {
    correlations: Vec<Option<u32>>,
    detections: Vec<Option<u32>>,
}

impl TargetMap {
    /// How `old`'s targets continue in `new`.
    pub fn between(old: &RuleSet, new: &RuleSet) -> TargetMap {
        let corr_key = |set: &RuleSet, c: usize| {
            let corr = &set.correlations[c];
            let meta = &set.meta[corr.rule as usize];
            (
                meta.label(),
                meta.version.clone(),
                corr.group_by.clone(),
                corr.stages.len(),
            )
        };
        let new_corr: HashMap<_, u32> = (0..new.correlations.len())
            .map(|c| (corr_key(new, c), c as u32))
            .collect();
        let correlations = (0..old.correlations.len())
            .map(|c| new_corr.get(&corr_key(old, c)).copied())
            .collect();
        let det_key = |set: &RuleSet, d: usize| {
            let meta = set.detection_meta(d as u32);
            (meta.label(), meta.version.clone())
        };
        let new_det: HashMap<_, u32> = (0..new.detections.len())
            .map(|d| (det_key(new, d), d as u32))
            .collect();
        let detections = (0..old.detections.len())
            .map(|d| new_det.get(&det_key(old, d)).copied())
            .collect();
        TargetMap {
            correlations,
            detections,
        }
    }

    /// Where `target` of the old set lives in the new one, if it continues.
    pub fn map(&self, target: Target) -> Option<Target> {
        match target {
            Target::Correlation(c) => self
                .correlations
                .get(c as usize)
                .copied()
                .flatten()
                .map(Target::Correlation),
            Target::Detection(d) => self
                .detections
                .get(d as usize)
                .copied()
                .flatten()
                .map(Target::Detection),
        }
    }

    /// Correlations of the old set that continue.
    pub fn kept_correlations(&self) -> usize {
        self.correlations.iter().flatten().count()
    }
}
