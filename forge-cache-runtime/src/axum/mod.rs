//! axum integration (placeholder).
