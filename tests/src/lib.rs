pub mod services;
pub mod pipeline;
pub mod native;
