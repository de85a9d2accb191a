//! papy facade placeholder
pub use papy_core::*;
pub use papy_macros::worker;
