//! The active version of every transform: the seam of hot swap.
//!
//! Workers look a transform up at the start of each batch and re-instantiate
//! when its generation changed, so a whole batch is processed by one version
//! and a swap takes effect at a batch boundary.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::engine::TransformModule;

/// One active version of a transform.
#[derive(Clone, Debug)]
pub struct Active {
    pub module: Arc<TransformModule>,
    /// The config handed to `init`, as JSON text.
    pub config: Arc<str>,
    /// Increases with every activation of any transform; equal generations
    /// mean the same (module, config).
    pub generation: u64,
}

#[derive(Default)]
pub struct Registry {
    inner: RwLock<Inner>,
}

#[derive(Default)]
struct Inner {
    next_generation: u64,
    active: HashMap<String, Active>,
}

impl Registry {
    pub fn new() -> Self {
        Self::default()
    }

    /// The active version of `name`, if the transform exists.
    pub fn active(&self, name: &str) -> Option<Active> {
        self.inner.read().expect("registry lock").active.get(name).cloned()
    }

    /// Makes (`module`, `config`) the active version of `name`; returns its generation.
    pub fn activate(&self, name: &str, module: Arc<TransformModule>, config: impl Into<Arc<str>>) -> u64 {
        let mut inner = self.inner.write().expect("registry lock");
        inner.next_generation += 1;
        let generation = inner.next_generation;
        tracing::info!(transform = name, version = module.version(), generation, "Activated transform version.");
        inner.active.insert(
            name.to_owned(),
            Active {
                module,
                config: config.into(),
                generation,
            },
        );
        generation
    }

    /// Names of the registered transforms.
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.inner.read().expect("registry lock").active.keys().cloned().collect();
        names.sort();
        names
    }
}
