pub mod services;
pub mod pipeline;
