//! The spanned YAML tree (stub).
