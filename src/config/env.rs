//! ${VAR} substitution (stub).
